"""The sysop's hold on one node session (the terminal server's side of :mod:`bbs.spy`).

:class:`SessionAccess` is what a :class:`~nodes.session.Session` registers in
``app.spy`` while it runs: the console's spy reads the caller's output through
the terminal's tap and types through :meth:`~nodes.io.Terminal.inject`; a chat
or an interrupt waits for the caller's next prompt
(:meth:`~nodes.io.Terminal.break_in`), so the caller's screen is never broken
in the middle of a line and the session goes on where it was.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from bbs.errors import BBSError, Reason
from bbs.spy import ChatState, NodeAccess, OutputSink, SysopChat
from nodes.io import Hangup

if TYPE_CHECKING:
    from nodes.session import Session

#: What an interrupted caller reads before the normal logoff (Synchronet's
#: "interrupt node" logs the user off with a message at the next chance).
INTERRUPT_MESSAGE = ("\r\n\x01n\x01h\x01r*** The sysop needs this node. You are being logged off; "
                     "please call again later.\x01n\r\n")


class SessionAccess(NodeAccess):
    """One session as the sysop console sees it."""

    def __init__(self, session: "Session") -> None:
        super().__init__()
        self.session = session
        self.node = session.node
        self._chat: SysopChat | None = None

    @property
    def charset(self) -> str:
        return self.session.term.charset

    @property
    def size(self) -> tuple[int, int]:
        return self.session.term.cols, self.session.term.rows

    @property
    def caller(self) -> str:
        return self.session.user.alias if self.session.user is not None else ""

    def tap(self, sink: OutputSink) -> Callable[[], None]:
        return self.session.term.add_tap(sink)

    def inject(self, data: bytes) -> None:
        self.session.term.inject(data)

    def chat(self, chat: SysopChat) -> None:
        if self._chat is not None and self._chat.state is not ChatState.ENDED:
            raise BBSError(Reason.EXISTS, f"node {self.node} is in a chat with the sysop already")
        from nodes.screens.chat import sysop_chat  # screens import the session module

        self._chat = chat
        self.session.log.info("the sysop (%s) asks for a chat", chat.sysop)
        self.session.term.break_in(lambda: sysop_chat(self.session, chat))

    def interrupt(self) -> None:
        self.session.log.info("interrupted by the sysop: logging off at the next prompt")
        self.session.term.break_in(self._interrupted)

    async def _interrupted(self) -> bool:
        raise Hangup("interrupted by the sysop", INTERRUPT_MESSAGE, logoff=True)

    def close(self) -> None:
        """The session ended: a chat still waiting or open is over."""
        if self._chat is not None:
            self._chat.end("gone")
