"""The sysop's hold on live node sessions: spy, chat, interrupt (Synchronet umonitor).

The terminal server and the sysop console never import each other; they meet
here. Each node session registers a :class:`NodeAccess` under its node number
in the App's :class:`SpyRegistry` (``app.spy``) for as long as it runs; the
console looks it up by number and

- spies: :meth:`NodeAccess.tap` copies everything the node sends its caller
  (bytes as the caller receives them, in :attr:`NodeAccess.charset`) to the
  console, and :meth:`NodeAccess.inject` types bytes into the caller's input
  as if the caller had typed them;
- chats: :meth:`NodeAccess.chat` hands the session a :class:`SysopChat`; the
  session opens it at its next input wait (a safe point: between prompts,
  or at once when it is waiting for a key), lines go both ways through the
  chat object, either side ends it and the session goes on where it was;
- interrupts: :meth:`NodeAccess.interrupt` logs the caller off at its next
  input wait with a message and the normal logoff (a kick drops the
  connection instead).

A page from a caller (the chat menu's "page the sysop") is published as
:class:`SysopPaged` so a console can offer to answer it with a chat.
"""
from __future__ import annotations

import abc
import asyncio
import dataclasses
import enum
import logging
from typing import Callable

from bbs.errors import BBSError, Reason
from bbs.events import Event

log = logging.getLogger(__name__)

#: Longest chat line either side may send (the caller's chat prompt allows the same).
LEN_SYSOP_CHAT_LINE = 200

#: What a spy receives: the bytes of one write to the caller.
OutputSink = Callable[[bytes], None]


@dataclasses.dataclass(frozen=True)
class SysopPaged(Event):
    """The caller on ``node`` paged the sysop (published by the chat menu's page)."""

    node: int
    user: str
    reason: str


class ChatState(enum.Enum):
    REQUESTED = "waiting for the caller's session"
    OPEN = "open"
    ENDED = "ended"


class ChatSide(abc.ABC):
    """One end of a :class:`SysopChat` (the console's view, the caller's screen).

    Called inline, on the loop, by the other side's actions: keep it cheap.
    """

    @abc.abstractmethod
    def line(self, text: str) -> None:
        """The other side said ``text``."""

    @abc.abstractmethod
    def ended(self, by: str) -> None:
        """The chat is over; ``by`` is "sysop", "caller" or "gone" (the session ended)."""

    def opened(self, alias: str) -> None:
        """The caller's session shows the chat now (sysop side only)."""


class SysopChat:
    """One chat between the sysop (``sysop``: the name the caller sees) and
    the caller on ``node``. The console makes it with its own side; the
    session attaches the caller's side when it opens the chat screen."""

    def __init__(self, node: int, sysop: str, sysop_side: ChatSide) -> None:
        self.node = node
        self.sysop = sysop
        self.state = ChatState.REQUESTED
        self.ended_by = ""
        self._sysop_side = sysop_side
        self._caller_side: ChatSide | None = None

    # -- the caller's session ------------------------------------------------
    def open(self, alias: str, caller_side: ChatSide) -> bool:
        """The session shows the chat screen now. False when the chat ended
        before the session got there (the sysop gave up waiting)."""
        if self.state is not ChatState.REQUESTED:
            return False
        self.state = ChatState.OPEN
        self._caller_side = caller_side
        self._sysop_side.opened(alias)
        return True

    def caller_says(self, text: str) -> None:
        if self.state is ChatState.OPEN:
            self._sysop_side.line(_chat_text(text))

    # -- the console ---------------------------------------------------------
    def sysop_says(self, text: str) -> None:
        """Send a line to the caller; raises BBSError LIMIT unless the chat is open."""
        if self.state is not ChatState.OPEN or self._caller_side is None:
            raise BBSError(Reason.LIMIT, f"the chat is {self.state.value}")
        self._caller_side.line(_chat_text(text))

    # -- either side -----------------------------------------------------------
    def end(self, by: str) -> None:
        """End the chat (idempotent); the other side is told."""
        if self.state is ChatState.ENDED:
            return
        self.state = ChatState.ENDED
        self.ended_by = by
        for side in (self._sysop_side, self._caller_side):
            if side is not None:
                try:
                    side.ended(by)
                except Exception:  # one side's bug never leaves the other one hanging
                    log.exception("chat on node %d: a side failed to end", self.node)


def _chat_text(text: str) -> str:
    """A chat line made safe for the other side: printable characters only
    (no escape sequences, no Ctrl-A codes), at most LEN_SYSOP_CHAT_LINE."""
    return "".join(ch for ch in text if ch.isprintable())[:LEN_SYSOP_CHAT_LINE]


class NodeAccess(abc.ABC):
    """What a live node session offers the sysop (implemented by the terminal server)."""

    #: The node number.
    node: int

    def __init__(self) -> None:
        #: Set when the session ends: spies and chats on it are over.
        self.ended = asyncio.Event()

    @property
    @abc.abstractmethod
    def charset(self) -> str:
        """The caller's output encoding: "utf-8", "cp437" or "ascii"."""

    @property
    @abc.abstractmethod
    def size(self) -> tuple[int, int]:
        """The caller's screen as (columns, rows)."""

    @property
    @abc.abstractmethod
    def caller(self) -> str:
        """Who is on the node: the user's alias, or "" before logon."""

    @abc.abstractmethod
    def tap(self, sink: OutputSink) -> Callable[[], None]:
        """Copy every later write to the caller to ``sink`` (binary file
        transfers excepted) until the returned function is called."""

    @abc.abstractmethod
    def inject(self, data: bytes) -> None:
        """Bytes typed by the sysop (UTF-8, VT keys), read as the caller's input."""

    @abc.abstractmethod
    def chat(self, chat: SysopChat) -> None:
        """Open ``chat`` at the session's next input wait; raises BBSError
        EXISTS when the node is in a chat with the sysop already."""

    @abc.abstractmethod
    def interrupt(self) -> None:
        """Log the caller off at the next input wait, telling them why."""


class SpyRegistry:
    """Node number -> the :class:`NodeAccess` of the session on it (``app.spy``)."""

    def __init__(self) -> None:
        self._nodes: dict[int, NodeAccess] = {}

    def register(self, access: NodeAccess) -> Callable[[], None]:
        """Called when a session starts; returns the function that
        unregisters it (and sets its ``ended`` event) when it ends."""
        self._nodes[access.node] = access

        def unregister() -> None:
            if self._nodes.get(access.node) is access:
                del self._nodes[access.node]
            access.ended.set()
        return unregister

    def get(self, node: int) -> NodeAccess:
        """The session on ``node``; raises BBSError NOT_FOUND when there is none."""
        access = self._nodes.get(node)
        if access is None:
            raise BBSError(Reason.NOT_FOUND, f"node {node} has no caller")
        return access

    def __contains__(self, node: int) -> bool:
        return node in self._nodes
