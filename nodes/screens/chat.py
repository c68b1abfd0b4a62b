"""Chat screens: the multinode chat channels and paging the sysop.

The channels are ``[chan:CODE]`` of ctrl/chat.ini (:mod:`bbs.chatconf`, re-read
when it changes), each with a requirement. Their rooms (:class:`ChatChannel`,
by code in :class:`ChatRooms`) are shared by every node: created once by
:func:`nodes.server.create` as ``services.chat``. Each member
has an :class:`asyncio.Queue`; a line typed by one member is put on every
other member's queue at once, and a small task per member moves its queue
into the terminal's notices, so the line shows while the caller is typing
(the input line is drawn again after it, like a telegram).

Paging the sysop sends a telegram to the Operator account (main.ini) through
``app.telegrams.send``; a sysop who is on a node sees it at once, and the
sysop console is told (:class:`bbs.spy.SysopPaged`) so it can answer with a
chat. :func:`sysop_chat` is the caller's side of that chat (started by the
console through :mod:`bbs.spy`, at the caller's next prompt).

chat.ini's ``[sysop]`` decides whether a page goes out: it is refused with a
message when the sysop is not available (the ``available`` toggle and
``hours``) unless the caller meets ``override_ars``; a page that goes out
rings on the caller's screen for ``page_duration`` seconds (``page_bell``: a
beep each second) or until the caller presses a key.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import TYPE_CHECKING

from bbs.chatconf import ChannelConfig, ChatConfig
from bbs.errors import BBSError, Reason
from bbs.spy import LEN_SYSOP_CHAT_LINE, ChatSide, SysopChat, SysopPaged
from nodes import terminal as t

if TYPE_CHECKING:
    from nodes.session import Session

log = logging.getLogger(__name__)

#: Longest line a chatter may type.
LEN_CHAT_LINE = 200
#: Longest reason for a page.
LEN_PAGE_REASON = 60
#: Lines waiting for a member before the oldest are dropped (a stuck caller
#: must not hold memory for the others).
QUEUE_LIMIT = 200


@dataclasses.dataclass
class Member:
    node: int
    alias: str
    queue: asyncio.Queue[str]


class ChatChannel:
    """The multinode chat channel: who is in it and their queues."""

    def __init__(self) -> None:
        self.members: dict[int, Member] = {}

    def join(self, node: int, alias: str) -> Member:
        member = Member(node, alias, asyncio.Queue(QUEUE_LIMIT))
        self.members[node] = member
        self.broadcast(f"\x01n\x01h\x01y*** [{node}] {alias} has joined the chat.\x01n", exclude=node)
        return member

    def leave(self, node: int) -> None:
        member = self.members.pop(node, None)
        if member is not None:
            self.broadcast(f"\x01n\x01h\x01y*** [{node}] {member.alias} has left the chat.\x01n", exclude=node)

    def say(self, node: int, text: str) -> None:
        member = self.members.get(node)
        if member is not None:
            self.broadcast(f"\x01n\x01c[{node}] {member.alias}: {t.printable(text)}\x01n", exclude=node)

    def who(self) -> list[Member]:
        return [self.members[n] for n in sorted(self.members)]

    def broadcast(self, line: str, *, exclude: int | None = None) -> None:
        for member in list(self.members.values()):
            if member.node == exclude:
                continue
            if member.queue.full():
                member.queue.get_nowait()
            member.queue.put_nowait(line)


class ChatRooms:
    """The rooms of the chat channels, by code (a room is made at its first join)."""

    def __init__(self) -> None:
        self.rooms: dict[str, ChatChannel] = {}

    def room(self, code: str) -> ChatChannel:
        return self.rooms.setdefault(code.upper(), ChatChannel())


def rooms_of(session: "Session") -> ChatRooms:
    """The rooms shared by all nodes (made by nodes.server.create)."""
    rooms = getattr(session.services, "chat", None)
    if rooms is None:  # services built without create() (tests)
        rooms = session.services.chat = ChatRooms()
    return rooms


def chat_settings(session: "Session") -> ChatConfig:
    """ctrl/chat.ini as in force now."""
    return session.services.live["chat.ini"].current()


async def _choose_channel(session: "Session") -> ChannelConfig | None:
    """The channel to join: the only one the caller may join, or one they pick."""
    ctx = session.access()
    channels = [c for c in chat_settings(session).channels if c.ars.allows(ctx)]
    if not channels:
        await session.print("\x01n\x01h\x01rThere is no chat channel you may join.\x01n\r\n")
        return None
    if len(channels) == 1:
        return channels[0]
    rooms = rooms_of(session)
    await session.print("\r\n\x01n\x01h\x01wChat channels\x01n\r\n")
    for index, item in enumerate(channels, 1):
        count = len(rooms.room(item.code).members)
        await session.print(f"\x01n\x01h\x01c{index:>3}\x01n\x01c) \x01h{item.name[:40]:<40}\x01n\x01c "
                            f"{count} chatting\r\n")
    text = (await session.term.getline("\x01n\x01cChannel number (Enter = 1): \x01h", maxlen=3)).strip() or "1"
    if not text.isdigit() or not 1 <= int(text) <= len(channels):
        return None
    return channels[int(text) - 1]


async def _pump(session: "Session", member: Member) -> None:
    """Move the member's queue into the terminal's notices (shown at once)."""
    while True:
        line = await member.queue.get()
        session.term.notify(line)


async def chat_join(session: "Session", args: tuple[str, ...]) -> None:
    """Join a multinode chat channel (chat.ini, by its requirement) until /q."""
    chosen = await _choose_channel(session)
    if chosen is None:
        return
    channel = rooms_of(session).room(chosen.code)
    alias = session.user.alias
    if session.node in channel.members:  # cannot happen; be safe
        channel.leave(session.node)
    session.set_activity("in multinode chat")
    others = [m for m in channel.who() if m.node != session.node]
    member = channel.join(session.node, alias)
    session.log.info("joined multinode chat channel %s", chosen.code)
    pump = asyncio.ensure_future(_pump(session, member))
    try:
        await session.print(f"\r\n\x01n\x01h\x01wMultinode chat\x01n\x01c ({t.printable(chosen.name)}): type to talk, "
                            "\x01h/who\x01n\x01c lists who is here, \x01h/q\x01n\x01c leaves.\r\n")
        await _show_who(session, others, empty="\x01n\x01cNobody else is here yet.\r\n")
        while True:
            text = (await session.term.getline("\x01n\x01h\x01bChat> \x01n", maxlen=LEN_CHAT_LINE)).strip()
            if not text:
                continue
            command = text.lower()
            if command in ("/q", "/quit"):
                break
            if command == "/who":
                await _show_who(session, channel.who())
                continue
            if command.startswith("/"):
                await session.print("\x01n\x01cCommands: \x01h/who\x01n\x01c, \x01h/q\x01n\x01c.\r\n")
                continue
            channel.say(session.node, text)
    finally:
        pump.cancel()
        channel.leave(session.node)
        session.log.info("left multinode chat")
    await session.print("\x01n\x01cYou have left the chat.\r\n")


async def _show_who(session: "Session", members: list[Member], empty: str = "") -> None:
    if not members:
        if empty:
            await session.print(empty)
        return
    await session.print("\x01n\x01h\x01wIn the chat:\x01n\r\n")
    for m in members:
        mine = " <- you" if m.node == session.node else ""
        await session.term.write(f"\x01n\x01h\x01c  node {m.node:>3}  {t.printable(m.alias)}{mine}\x01n\r\n")


async def page_sysop(session: "Session", args: tuple[str, ...]) -> None:
    """Page the sysop: a telegram to the Operator account, shown at once when
    the sysop is on a node; refused when chat.ini says the sysop is not
    available (unless the caller meets its override_ars)."""
    session.set_activity("paging the sysop")
    operator = session.system.operator
    settings = chat_settings(session)
    if not await _may_page(session, settings, operator):
        return
    try:
        sysop = await session.app.users.find(operator)
    except BBSError as exc:
        if exc.reason is not Reason.NOT_FOUND:
            raise
        await session.print("\x01n\x01h\x01rThere is no sysop account to page.\x01n\r\n")
        session.log.warning("page: no user named %r (main.ini Operator)", operator)
        return
    reason = (await session.term.getline("\x01n\x01cReason for paging the sysop: \x01h",
                                         maxlen=LEN_PAGE_REASON)).strip()
    if not reason:
        await session.print("\x01n\x01cNo page sent.\r\n")
        return
    alias = session.user.alias
    try:
        await session.app.telegrams.send(sysop.number, sysop.alias, alias,
                                         f"Node {session.node}: {alias} is paging you: {reason}")
    except BBSError as exc:
        await session.print(f"\x01n\x01h\x01rNot sent: {exc}.\x01n\r\n")
        return
    session.log.info("paged the sysop (%s): %s", sysop.alias, reason)
    session.app.bus.publish(SysopPaged(session.node, alias, reason))
    await _ring(session, settings, sysop.alias)
    online = any(r.user_number == sysop.number for r in session.app.nodes.in_use())
    await session.print(f"\x01n\x01h\x01gPage sent to {sysop.alias}"
                        f"{'' if online else ' (not on line now; shown at their next logon)'}.\x01n\r\n")


async def _may_page(session: "Session", settings: ChatConfig, operator: str) -> bool:
    """Whether the sysop takes this page now; tells the caller when not."""
    if settings.sysop_available():
        return True
    if settings.override_ars is not None and settings.override_ars.allows(session.access()):
        session.log.info("page while the sysop is not available: allowed by override_ars %r",
                         settings.override_ars.text)
        return True
    hours = ""
    if settings.available and settings.hours is not None:
        start, end = settings.hours
        hours = f" Pages are taken from {start // 60:02d}:{start % 60:02d} to {end // 60:02d}:{end % 60:02d}."
    await session.print(f"\x01n\x01h\x01r{t.printable(operator)} is not available for chat.\x01n\x01c{hours} "
                        "Leave feedback instead: \x01hE\x01n\x01c-mail, then \x01hF\x01n\x01c.\x01n\r\n")
    session.log.info("page refused: the sysop is not available (chat.ini [sysop])")
    return False


async def _ring(session: "Session", settings: ChatConfig, sysop: str) -> None:
    """The page rings on the caller's screen: a dot (and a beep with
    page_bell) each second for page_duration seconds, or until the caller
    presses a key (as in Synchronet). It waits on the terminal, so a caller
    who hangs up or is dropped, or the BBS shutting down, ends it at once
    (Hangup)."""
    if not settings.page_duration:
        return
    await session.print(f"\x01n\x01cPaging \x01h{t.printable(sysop)}\x01n\x01c for chat")
    for _ in range(settings.page_duration):
        if await session.term.getkey(timeout=1.0) is not None:
            break  # a key stops the ringing
        await session.term.write(("\x07" if settings.page_bell else "") + ".")
    await session.term.write("\x01n\r\n")


class _ChatOver(Exception):
    """Raised at the caller's prompt when the sysop ends the chat."""


class _CallerSide(ChatSide):
    """The caller's end of a sysop chat: the sysop's lines show at once
    (like a telegram, the input line is drawn again after them)."""

    def __init__(self, session: "Session", chat: SysopChat) -> None:
        self.session, self.chat = session, chat
        self.showing = True  # the chat screen runs; cleared when it returns

    def line(self, text: str) -> None:
        self.session.term.notify(f"\x01n\x01h\x01y{t.printable(self.chat.sysop)}: \x01n\x01y{text}")

    def ended(self, by: str) -> None:
        if by == "sysop":
            self.session.term.break_in(self._leave)

    async def _leave(self) -> bool:
        """A break-in job: ends the chat screen; writes nothing when the
        caller has left it already (typed /q meanwhile)."""
        if self.showing:
            raise _ChatOver
        return False


async def sysop_chat(session: "Session", chat: SysopChat) -> bool:
    """The sysop's chat on the caller's screen, run at the caller's next
    prompt (Terminal.break_in): lines both ways until either side ends it
    (the caller with /q); then the caller's prompt comes back. Returns
    whether it wrote to the screen (not when the sysop gave up first)."""
    alias = session.user.alias if session.user else "caller"
    side = _CallerSide(session, chat)
    if not chat.open(alias, side):
        return False  # the sysop gave up before the caller got here
    previous = session.app.nodes.get(session.node).activity
    session.set_activity("chatting with the sysop")
    session.log.info("chat with the sysop (%s) begins", chat.sysop)
    try:
        await session.print(f"\r\n\x01n\x01h\x01y*** {t.printable(chat.sysop)} (the sysop) is chatting with you. "
                            "\x01n\x01yType and press Enter; \x01h/q\x01n\x01y ends the chat.\x01n\r\n")
        while True:
            text = (await session.term.getline("\x01n\x01h\x01gYou: \x01n", maxlen=LEN_SYSOP_CHAT_LINE)).strip()
            if text.lower() in ("/q", "/quit"):
                chat.end("caller")
                break
            if text:
                chat.caller_says(text)
        await session.print("\x01n\x01h\x01y*** Chat ended.\x01n\r\n")
    except _ChatOver:
        await session.print("\r\n\x01n\x01h\x01y*** The sysop has ended the chat.\x01n\r\n")
    finally:
        side.showing = False
        chat.end("gone")  # the caller hung up; nothing happens when the chat has ended already
        session.set_activity(previous)
        session.log.info("chat with the sysop ends (%s)", chat.ended_by)
    return True


SCREENS = {"chat_join": chat_join, "page_sysop": page_sysop}
