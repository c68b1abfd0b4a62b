"""Message-area screens: choose an area, list, read (next/prev/reply/thread),
scan for new messages, post, search. Storage is :mod:`bbs.msgbase`."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from bbs.boardconf import MsgSub
from bbs.errors import BBSError
from bbs.msgbase import LEN_SUBJECT, Message
from nodes import editor
from nodes import terminal as t

if TYPE_CHECKING:
    from nodes.session import Session


def _groups(session: "Session"):
    ctx = session.access()
    return [g for g in session.app.config.msgs.groups if g.ars.allows(ctx)]


def readable_subs(session: "Session") -> list[MsgSub]:
    """Subs the caller may read (group, sub and read requirements)."""
    ctx = session.access()
    groups = {g.name for g in _groups(session)}
    return [s for s in session.app.config.msgs.subs
            if s.group in groups and s.ars.allows(ctx) and s.read_ars.allows(ctx)]


def current_sub(session: "Session") -> MsgSub | None:
    subs = readable_subs(session)
    wanted = (session.user.settings or {}).get("sub", "")
    return next((s for s in subs if s.code.lower() == str(wanted).lower()), subs[0] if subs else None)


async def choose_area(session: "Session", args: tuple[str, ...]) -> None:
    """Pick a group, then a sub; remembered in the user's settings."""
    session.set_activity("choosing a message area")
    groups = _groups(session)
    subs = readable_subs(session)
    if not subs:
        await session.print("\x01n\x01h\x01rThere are no message areas you can read.\x01n\r\n")
        return
    if len(groups) > 1:
        await session.print("\r\n\x01n\x01h\x01wMessage groups\x01n\r\n")
        for index, group in enumerate(groups, 1):
            await session.print(f"\x01n\x01h\x01c{index:>3}\x01n\x01c) {group.description or group.name}\r\n")
        text = (await session.term.getline("\x01n\x01cGroup number: \x01h", maxlen=3)).strip()
        if not text.isdigit() or not 1 <= int(text) <= len(groups):
            return
        group = groups[int(text) - 1]
    else:
        group = groups[0]
    in_group = [s for s in subs if s.group == group.name]
    await session.print(f"\r\n\x01n\x01h\x01w{group.description or group.name}\x01n\r\n"
                        "\x01n\x01c  #  Area                       Msgs  New\r\n")
    for index, sub in enumerate(in_group, 1):
        count, _, new = await session.services.msgs.stats(sub.code, session.user.number)
        await session.print(f"\x01n\x01h\x01c{index:>3}\x01n\x01c) \x01h{sub.name[:25]:<25}\x01n\x01c {count:>5} "
                            f"\x01h\x01y{new:>4}\x01n\r\n")
    text = (await session.term.getline("\x01n\x01cArea number: \x01h", maxlen=3)).strip()
    if not text.isdigit() or not 1 <= int(text) <= len(in_group):
        return
    sub = in_group[int(text) - 1]
    session.user = await session.app.users.update(session.user.number,
                                                  settings={**(session.user.settings or {}), "sub": sub.code})
    await session.print(f"\x01n\x01cNow in \x01h{sub.name}\x01n\x01c.\r\n")


def _header(msg: Message, sub: MsgSub, high: int) -> str:
    when = time.strftime("%a %b %d %Y %H:%M", time.localtime(msg.posted))
    reply = f"  \x01n\x01c(reply to #{msg.reply_to})" if msg.reply_to else ""
    return (f"\r\n\x01n\x01h\x01b{sub.name}\x01n\x01b  #{msg.number} of {high}{reply}\x01n\r\n"
            f"\x01n\x01cSubj: \x01h\x01w{msg.subject}\x01n\r\n"
            f"\x01n\x01cFrom: \x01h\x01g{msg.from_name}\x01n\r\n"
            f"\x01n\x01cTo  : \x01h{msg.to_name}\x01n\r\n"
            f"\x01n\x01cDate: \x01h{when}\x01n\r\n"
            "\x01n\x01b" + "─" * 40 + "\x01n\r\n")


async def show_message(session: "Session", msg: Message, sub: MsgSub, high: int) -> bool:
    """Show one message paged; mark it read. False when the caller quit the pager."""
    body = "\n".join(t.wrap_lines(msg.body, max(20, session.term.cols - 1)))
    await session.term.write(_header(msg, sub, high))
    ok = await session.term.page(body.replace("\x01", "") + "\n")
    await session.services.msgs.set_last_read(session.user.number, sub.code, msg.number)
    return ok


async def read_sub(session: "Session", sub: MsgSub, numbers: list[int], index: int, *, new_only: bool = False) -> bool:
    """The reader: show ``numbers[index]`` and follow the caller's commands.
    Returns False when the caller asked to stop (Q)."""
    msgs = session.services.msgs
    session.set_activity(f"reading messages in {sub.name}")
    while 0 <= index < len(numbers):
        try:
            msg = await msgs.get(sub.code, numbers[index])
        except BBSError:
            index += 1
            continue
        await show_message(session, msg, sub, numbers[-1])
        can_post = sub.post_ars.allows(session.access())
        keys = "NPTQ" + ("R" if can_post else "")
        prompt = ("\x01n\x01c[\x01h" + f"{msg.number}" + "\x01n\x01c] \x01hN\x01n\x01cext \x01hP\x01n\x01crev "
                  + ("\x01hR\x01n\x01ceply " if can_post else "") + "\x01hT\x01n\x01chread \x01hQ\x01n\x01cuit: \x01n")
        choice = await session.term.hotkey(prompt, keys, "N")
        if choice == "N":
            index += 1
        elif choice == "P":
            index = max(0, index - 1)
        elif choice == "Q":
            return False
        elif choice == "R":
            await post(session, (), sub=sub, reply=msg)
            index += 1  # on to the next message, as after reading it
        elif choice == "T":
            thread = await msgs.thread(sub.code, msg.number)
            await session.print(f"\r\n\x01n\x01h\x01wThread of \"{thread[0].subject}\"\x01n\r\n")
            for item in thread:
                indent = "  " if item.reply_to else ""
                await session.print(f"\x01n\x01c{indent}#{item.number:<5} \x01h{item.from_name:<25}\x01n\x01c "
                                    f"{item.subject[:40]}\r\n")
    if new_only:
        return True
    await session.print("\x01n\x01cNo more messages here.\r\n")
    return True


async def read(session: "Session", args: tuple[str, ...]) -> None:
    """Read the current area from the first new message (or a chosen number)."""
    sub = current_sub(session)
    if sub is None:
        await session.print("\x01n\x01h\x01rThere are no message areas you can read.\x01n\r\n")
        return
    msgs = session.services.msgs
    numbers = await msgs.numbers(sub.code)
    if not numbers:
        await session.print(f"\x01n\x01cThere are no messages in \x01h{sub.name}\x01n\x01c yet.\r\n")
        return
    pointer = await msgs.last_read(session.user.number, sub.code)
    start = next((i for i, n in enumerate(numbers) if n > pointer), None)
    if start is None:
        text = (await session.term.getline(f"\x01n\x01cNo new messages. Start at number "
                                           f"(1-{numbers[-1]}): \x01h", maxlen=6)).strip()
        if not text.isdigit():
            return
        start = next((i for i, n in enumerate(numbers) if n >= int(text)), len(numbers) - 1)
    await read_sub(session, sub, numbers, start)


async def scan_new(session: "Session", args: tuple[str, ...]) -> None:
    """Read every new message in every area the caller may read."""
    msgs = session.services.msgs
    found = False
    for sub in readable_subs(session):
        session.set_activity(f"scanning {sub.name} for new messages")
        pointer = await msgs.last_read(session.user.number, sub.code)
        numbers = [n for n in await msgs.numbers(sub.code) if n > pointer]
        if not numbers:
            continue
        found = True
        await session.print(f"\r\n\x01n\x01h\x01y{len(numbers)} new in {sub.name}\x01n\r\n")
        if not await read_sub(session, sub, numbers, 0, new_only=True):
            return
    await session.print("\x01n\x01cNo more new messages.\r\n" if found else "\x01n\x01cNo new messages.\r\n")


async def post(session: "Session", args: tuple[str, ...], *, sub: MsgSub | None = None,
               reply: Message | None = None) -> None:
    """Post a message (or a reply, quoting it) with the line editor."""
    sub = sub or current_sub(session)
    if sub is None:
        return
    if not sub.post_ars.allows(session.access()):
        await session.print(f"\x01n\x01h\x01rYou may not post in {sub.name}.\x01n\r\n")
        return
    session.set_activity(f"posting in {sub.name}")
    default_to = reply.from_name if reply else "All"
    to_name = t.printable(await session.term.getline("\x01n\x01cTo: \x01h", maxlen=25, default=default_to)).strip()
    subject = reply.subject if reply else ""
    if reply and not subject.lower().startswith("re:"):
        subject = "Re: " + subject
    subject = t.printable(await session.term.getline("\x01n\x01cSubject: \x01h", maxlen=LEN_SUBJECT,
                                                     default=subject[:LEN_SUBJECT])).strip()
    if not subject:
        await session.print("\x01n\x01cAborted.\r\n")
        return
    quoted = editor.quote(reply.body, reply.from_name) if reply else None
    body = await editor.edit(session, quoted=quoted)
    if body is None:
        await session.print("\x01n\x01cMessage aborted; nothing saved.\r\n")
        return
    try:
        msg = await session.services.msgs.post(sub.code, session.user.alias, subject, body,
                                                to_name=to_name or "All", from_number=session.user.number,
                                                reply_to=reply.number if reply else 0)
    except BBSError as exc:
        await session.print(f"\x01n\x01h\x01rNot posted: {exc}.\x01n\r\n")
        return
    await session.services.msgs.set_last_read(session.user.number, sub.code, msg.number)
    session.user = await session.app.users.add_stats(session.user.number, posts=1)
    await session.print(f"\x01n\x01h\x01gPosted as message #{msg.number} in {sub.name}.\x01n\r\n")


async def list_messages(session: "Session", args: tuple[str, ...]) -> None:
    """One line per message of the current area."""
    sub = current_sub(session)
    if sub is None:
        return
    session.set_activity(f"listing messages in {sub.name}")
    messages = await session.services.msgs.list(sub.code)
    pointer = await session.services.msgs.last_read(session.user.number, sub.code)
    await _list(session, sub, messages, pointer)


async def _list(session: "Session", sub: MsgSub, messages: list[Message], pointer: int) -> None:
    if not messages:
        await session.print(f"\x01n\x01cNo messages in \x01h{sub.name}\x01n\x01c.\r\n")
        return
    lines = [f"\x01n\x01h\x01w{sub.name}: #     From                 To              Subject\x01n"]
    for m in messages:
        mark = "\x01h\x01y*" if m.number > pointer else " "
        lines.append(f"{mark}\x01n\x01c{m.number:<5} \x01h{m.from_name[:20]:<20}\x01n\x01c {m.to_name[:15]:<15} "
                     f"{m.subject[:max(10, session.term.cols - 47)]}")
    await session.term.page("\r\n" + "\n".join(lines) + "\n")


async def search(session: "Session", args: tuple[str, ...]) -> None:
    """Find messages of the current area containing a text."""
    sub = current_sub(session)
    if sub is None:
        return
    text = t.printable(await session.term.getline("\x01n\x01cSearch for: \x01h", maxlen=40)).strip()
    if not text:
        return
    found = await session.services.msgs.search(sub.code, text)
    await _list(session, sub, found, await session.services.msgs.last_read(session.user.number, sub.code))
    if found and await session.term.yesno("Read them", True):
        await read_sub(session, sub, [m.number for m in found], 0)


SCREENS = {
    "msg_area": choose_area, "msg_read": read, "msg_scan": scan_new, "msg_post": post,
    "msg_list": list_messages, "msg_search": search,
}
