"""Spy on a node, chat with its caller, interrupt it (Synchronet umonitor), in the console.

The console side of :mod:`bbs.spy`. From the Nodes pane:

- :func:`spy_on` replaces the pane with a :class:`SpyView`: the caller's
  screen, emulated by urwid's VT terminal (``urwid.vterm.TermCanvas``) at the
  caller's size, fed with what the node sends from now on (CP437 callers are
  converted for the sysop's terminal). Keys the sysop types go to the caller's
  session as typed input; ``Ctrl-]`` (:data:`SPY_LEAVE_KEY`) leaves.
  Output is collected and drawn at most every :data:`SPY_REFRESH` seconds,
  so a busy node costs the console one redraw per interval.
- :func:`chat_with` replaces the pane with a :class:`ChatView`: the caller's
  session shows a chat screen at its next prompt; lines go both ways; ``Esc``
  ends it, as does the caller's ``/q``. It also answers a page.
- :func:`interrupt_node` asks the session to log its caller off at the next
  prompt with a message and the normal logoff.

Each view lives as a console task (``ui.spawn``): when it ends, or the console
closes (a remote console's SSH session dropping), the tap is removed and the
chat ended, so a node never writes into a console that is gone. Every action
is logged with the console that did it.
"""
from __future__ import annotations

import asyncio
import codecs
import collections
import logging
from typing import Any, Callable, Iterator

import urwid
from urwid.vterm import CHARSET_UTF8, TermCanvas, TermModes

from bbs.errors import BBSError
from bbs.spy import LEN_SYSOP_CHAT_LINE, ChatSide, ChatState, NodeAccess, SysopChat
from console.actions import ActionError

log = logging.getLogger(__name__)

#: The urwid key that leaves the spy view (Ctrl-], telnet's escape character).
SPY_LEAVE_KEY = "ctrl ]"
SPY_LEAVE_NAME = "Ctrl-]"
#: Seconds between redraws of a spied screen (at most 20 a second, like a slow terminal).
SPY_REFRESH = 0.05
#: Bytes of caller output kept between two redraws (a full ANSI screen);
#: older output is dropped: a flood must not grow the console's memory or one
#: redraw's work (urwid's terminal emulator parses 200-400 KB/s, so 8 KB is
#: at most some 40 ms).
SPY_BACKLOG = 8 * 1024
#: The emulator may use at most 1/SPY_DUTY of the loop's time: after a flush
#: that took d seconds the next waits at least (SPY_DUTY - 1) * d.
SPY_DUTY = 5
#: Bytes fed to the emulator per turn of the loop (some 5-10 ms; other tasks
#: run between two slices).
SPY_SLICE = 2048
#: Keys the sysop types while spying, as a VT terminal sends them to the caller.
SPY_KEYS = {
    "enter": b"\r", "backspace": b"\x08", "tab": b"\t", "esc": b"\x1b",
    "up": b"\x1b[A", "down": b"\x1b[B", "right": b"\x1b[C", "left": b"\x1b[D",
    "home": b"\x1b[H", "end": b"\x1b[F", "insert": b"\x1b[2~", "delete": b"\x1b[3~",
    "page up": b"\x1b[5~", "page down": b"\x1b[6~",
}
#: Chat lines kept on the sysop's chat screen.
CHAT_SCROLLBACK = 500


def key_bytes(key: str) -> bytes | None:
    """What a VT terminal sends for the urwid ``key`` (None: nothing, e.g. a mouse event)."""
    if key in SPY_KEYS:
        return SPY_KEYS[key]
    if key.startswith("ctrl ") and len(key) == 6 and "@" <= key[5].upper() <= "_":
        return bytes([ord(key[5].upper()) - 64])
    if len(key) == 1 and key.isprintable():
        return key.encode("utf-8")
    return None


def console_name(ui: Any) -> str:
    """Who acts, for the log: the console's ``sysop`` when it names one;
    else the local console (the one whose quit stops the BBS) or a remote
    one (its ``ssh ... console`` log line names the user)."""
    from console.live import SysopConsole  # live imports the panes, which import this module

    name = getattr(ui, "sysop", "")
    if name:
        return name
    return "the local console" if type(ui).quit is SysopConsole.quit else "a remote console"


def access_of(app: Any, number: int) -> NodeAccess:
    """The live session on node ``number``; ActionError when there is none."""
    try:
        return app.spy.get(number)
    except BBSError:
        raise ActionError(f"node {number} has no caller") from None


def describe(app: Any, access: NodeAccess) -> str:
    """"Alice (telnet 203.0.113.5)" for log lines and titles."""
    record = app.nodes.get(access.node)
    return f"{access.caller or 'a caller logging on'} ({record.connection} {record.address})"


# -- the caller's screen --------------------------------------------------------
class _ScreenCanvas(urwid.Canvas):
    """A window of ``cols`` x ``rows`` onto a TermCanvas's screen, from row
    ``top``: cut where the console is smaller than the caller's screen,
    blank where it is larger. (A TermCanvas itself ignores trimming.)"""

    cacheable = False

    def __init__(self, term: TermCanvas, cols: int, rows: int, top: int, cursor: tuple[int, int] | None) -> None:
        super().__init__()
        self._term, self._cols, self._rows, self._top = term, cols, rows, top
        self.cursor = cursor

    def cols(self) -> int:
        return self._cols

    def rows(self) -> int:
        return self._rows

    def content(self, trim_left: int = 0, trim_top: int = 0, cols: int | None = None, rows: int | None = None,
                attr: Any = None) -> Iterator[list]:
        cols = self._cols - trim_left if cols is None else cols
        rows = self._rows - trim_top if rows is None else rows
        blank = (attr.get(None) if attr else None, None, b" ")
        lines = self._term.term
        for row in range(self._top + trim_top, self._top + trim_top + rows):
            line = lines[row][trim_left:trim_left + cols] if row < len(lines) else []
            yield list(line) + [blank] * (cols - len(line))


class CallerScreen(urwid.Widget):
    """The caller's screen, emulated: a VT terminal of the caller's size fed
    with UTF-8 bytes. Terminal answers (cursor reports) are dropped: the
    caller's own terminal gives them."""

    _selectable = True
    _sizing = frozenset([urwid.Sizing.BOX])

    def __init__(self, cols: int, rows: int) -> None:
        super().__init__()
        self.term_modes = TermModes()
        self.term = TermCanvas(max(1, cols), max(1, rows), self)
        self.term.has_focus = True
        self.term_modes.main_charset = CHARSET_UTF8  # the bytes fed are UTF-8 whatever the locale

    # what TermCanvas calls on its widget
    def beep(self) -> None:
        pass

    def respond(self, string: str) -> None:
        pass

    def set_title(self, title: str) -> None:
        pass

    def leds(self, which: str) -> None:
        pass

    @property
    def size(self) -> tuple[int, int]:
        return self.term.width, self.term.height

    def resize(self, cols: int, rows: int) -> None:
        if (cols, rows) != self.size and cols > 0 and rows > 0:
            self.term.resize(cols, rows)
            self._invalidate()

    def feed(self, data: bytes) -> None:
        self.term.addstr(data)
        self._invalidate()

    def lines(self) -> list[str]:
        """The screen's text, one string a row (for tests and captures)."""
        return [b"".join(cell[2] for cell in row).decode("utf-8", "replace") for row in self.term.term]

    def render(self, size: tuple[int, int], focus: bool = False) -> urwid.Canvas:
        cols, rows = size
        x, y = self.term.term_cursor
        # Smaller than the caller's screen: show the rows around the cursor.
        top = max(0, min(y - rows + 1, self.term.height - rows)) if rows < self.term.height else 0
        cursor = (x, y - top) if focus and 0 <= y - top < rows and x < cols else None
        return _ScreenCanvas(self.term, cols, rows, top, cursor)

    def keypress(self, size, key):
        return key


class SpyView(urwid.WidgetWrap):
    """Watching node ``access.node``: its screen, the sysop's keys going to it."""

    def __init__(self, ui: Any, access: NodeAccess) -> None:
        self.ui = ui
        self.access = access
        self.title = f"Spying on node {access.node}: {describe(ui.app, access)}"
        self.help = f"Spying on node {access.node}: your keys go to the caller; {SPY_LEAVE_NAME} leaves"
        cols, rows = access.size
        self.screen = CallerScreen(cols, rows)
        self.header = urwid.Text("", wrap="clip")
        self._show_header()
        super().__init__(urwid.Frame(self.screen, header=urwid.AttrMap(self.header, "colhead")))
        self.done = asyncio.Event()
        self._pending: collections.deque[bytes] = collections.deque()
        self._pending_bytes = 0
        self._timer: asyncio.Handle | None = None
        self._next_flush = 0.0  # loop time before which no flush starts (SPY_DUTY)
        self._feeding = b""  # converted output still to feed the emulator, a slice per loop turn
        self._batch_time = 0.0
        self._dirty = False
        self._charset = ""
        self._decoder: codecs.IncrementalDecoder | None = None

    def _show_header(self) -> None:
        cols, rows = self.screen.size
        self.header.set_text(f"{self.title}  {cols}x{rows} {self.access.charset}  "
                             f"(from now on; {SPY_LEAVE_NAME} leaves)")

    # -- output from the node (called inline by its Terminal: cheap) ---------------
    def output(self, data: bytes) -> None:
        self._pending.append(data)
        self._pending_bytes += len(data)
        while self._pending_bytes > SPY_BACKLOG and len(self._pending) > 1:
            self._pending_bytes -= len(self._pending.popleft())
        if self._pending_bytes > SPY_BACKLOG:  # one write longer than the backlog: its end
            self._pending[0] = self._pending[0][-SPY_BACKLOG:]
            self._pending_bytes = SPY_BACKLOG
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(SPY_REFRESH, self._next_flush - loop.time()), self.flush)

    def flush(self) -> None:
        """Feed the collected output to the screen, SPY_SLICE bytes per turn
        of the loop (other tasks run in between), then draw once."""
        self._timer = None
        loop = asyncio.get_running_loop()
        started = loop.time()
        if not self._feeding:  # a new batch: convert what was collected
            data = b"".join(self._pending)
            self._pending.clear()
            self._pending_bytes = 0
            charset = self.access.charset
            if charset != self._charset or self._decoder is None:
                self._charset = charset
                self._decoder = codecs.getincrementaldecoder("cp437" if charset == "cp437" else "utf-8")("replace")
            if self.access.size != self.screen.size:
                self.screen.resize(*self.access.size)
                self._show_header()
                self._dirty = True
            self._feeding = self._decoder.decode(data).encode("utf-8")
            self._batch_time = 0.0
        if self._feeding:
            chunk, self._feeding = self._feeding[:SPY_SLICE], self._feeding[SPY_SLICE:]
            self.screen.feed(chunk)
            self._dirty = True
        if self._feeding:
            self._batch_time += loop.time() - started
            self._timer = loop.call_soon(self.flush)
            return
        if self._dirty:
            self._dirty = False
            self.ui.draw()
        self._batch_time += loop.time() - started
        self._next_flush = loop.time() + (SPY_DUTY - 1) * self._batch_time
        if self._pending:  # written while the slices were fed
            self._timer = loop.call_later(max(SPY_REFRESH, self._next_flush - loop.time()), self.flush)

    # -- the sysop's keys ------------------------------------------------------------
    def keypress(self, size, key):
        if key == SPY_LEAVE_KEY:
            self.done.set()
            return None
        data = key_bytes(key) if isinstance(key, str) else None
        if data is not None:
            self.access.inject(data)
        return None  # every key belongs to the caller while spying

    async def run(self) -> None:
        """Watch until the sysop leaves, the caller goes or the console closes."""
        remove = self.access.tap(self.output)
        who = console_name(self.ui)
        log.info("%s spies on node %d, %s", who, self.access.node, describe(self.ui.app, self.access))
        ended = asyncio.ensure_future(self.access.ended.wait())
        leave = asyncio.ensure_future(self.done.wait())
        gone = False
        try:
            await asyncio.wait({ended, leave}, return_when=asyncio.FIRST_COMPLETED)
            gone = ended.done()
        finally:
            ended.cancel()
            leave.cancel()
            remove()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            log.info("%s stopped spying on node %d", who, self.access.node)
            _leave_view(self.ui, self, f"node {self.access.node}: the caller has gone" if gone
                        else f"stopped spying on node {self.access.node}")


# -- chat -------------------------------------------------------------------------
class ChatView(urwid.WidgetWrap):
    """The sysop's side of a chat with the caller on a node: the conversation
    above, the sysop's line below (Enter sends, Esc ends the chat)."""

    def __init__(self, ui: Any, access: NodeAccess) -> None:
        self.ui = ui
        self.access = access
        self.caller = access.caller or "the caller"
        sysop = ui.app.config.system.operator
        self.chat = SysopChat(access.node, sysop, _SysopSide(self))
        self.help = f"Chat with node {access.node}: Enter sends your line, Esc ends the chat"
        self.walker = urwid.SimpleFocusListWalker([])
        self.header = urwid.Text("", wrap="clip")
        self.edit = urwid.Edit(("ask", f"{sysop}: "))
        self.frame = urwid.Frame(urwid.ListBox(self.walker), header=urwid.AttrMap(self.header, "colhead"),
                                 footer=self.edit, focus_part="footer")
        super().__init__(self.frame)
        self.done = asyncio.Event()
        self._set_header(ChatState.REQUESTED.value + " (at the caller's next prompt)")

    def _set_header(self, state: str) -> None:
        self.header.set_text(f"Chat with {self.caller} on node {self.access.node}: {state}")

    def add(self, text: str, attr: str | None = None) -> None:
        self.walker.append(urwid.Text((attr, text) if attr else text))
        if len(self.walker) > CHAT_SCROLLBACK:
            del self.walker[0]
        self.walker.set_focus(len(self.walker) - 1)

    def lines(self) -> list[str]:
        """The conversation's text (for tests and captures)."""
        return [w.text for w in self.walker]

    def keypress(self, size, key):
        if key in ("esc", SPY_LEAVE_KEY):
            self.chat.end("sysop")
            return None
        if key == "enter":
            text = self.edit.edit_text.strip()
            if text:
                try:
                    self.chat.sysop_says(text)
                except BBSError as exc:
                    self.ui.status(f"not sent: {exc}", "error_msg")
                else:
                    self.add(f"{self.chat.sysop}: {text}")
                    self.edit.set_edit_text("")
            return None
        if key in ("up", "down", "page up", "page down"):
            self.frame.body.keypress((size[0], max(1, size[1] - 2)), key)
            return None
        self.edit.keypress((size[0],), key)
        if len(self.edit.edit_text) > LEN_SYSOP_CHAT_LINE:
            self.edit.set_edit_text(self.edit.edit_text[:LEN_SYSOP_CHAT_LINE])
        return None  # nothing leaks to the console's pane keys while chatting

    async def run(self) -> None:
        """Wait until the chat (asked for by :func:`chat_with`) ends, or the console closes."""
        log.info("%s asks node %d for a chat, %s", console_name(self.ui), self.access.node,
                 describe(self.ui.app, self.access))
        try:
            await self.done.wait()
        finally:
            self.chat.end("sysop")  # the console closed: the caller goes back to the BBS
            by = {"sysop": "the sysop", "caller": self.caller, "gone": "the caller hanging up"}.get(
                self.chat.ended_by, self.chat.ended_by)
            log.info("chat with node %d ended by %s", self.access.node, by)
            _leave_view(self.ui, self, f"chat with node {self.access.node} ended by {by}")


class _SysopSide(ChatSide):
    def __init__(self, view: ChatView) -> None:
        self.view = view

    def opened(self, alias: str) -> None:
        self.view._set_header("open (Esc ends it)")
        self.view.add(f"*** {alias} is in the chat now.", "node_logon")
        self.view.ui.draw()

    def line(self, text: str) -> None:
        self.view.add(f"{self.view.caller}: {text}", "value")
        self.view.ui.draw()

    def ended(self, by: str) -> None:
        self.view.done.set()


# -- the Nodes pane's actions ---------------------------------------------------------
def _show_view(ui: Any, view: Any) -> None:
    ui.frame.body = view
    ui.status(view.help, "ask")
    ui.frame.focus_position = "body"


def _leave_view(ui: Any, view: Any, message: str) -> None:
    """Back to the pane (unless something else replaced the view meanwhile)."""
    if ui.frame.body is view:
        ui.select(ui.current)
        ui.status(message, "ok_msg")
        ui.draw()


def spy_on(ui: Any, number: int) -> str:
    """Open the spy view on node ``number`` (ActionError: no caller there)."""
    view = SpyView(ui, access_of(ui.app, number))
    _show_view(ui, view)
    ui.spawn(view.run())
    return view.help


def chat_with(ui: Any, number: int) -> str:
    """Open a chat with the caller on node ``number``."""
    access = access_of(ui.app, number)
    view = ChatView(ui, access)
    try:
        access.chat(view.chat)
    except BBSError as exc:
        raise ActionError(str(exc)) from None
    _show_view(ui, view)
    ui.spawn(view.run())
    return view.help


def interrupt_node(ui: Any, number: int) -> str:
    """Log the caller on node ``number`` off at its next prompt, with a message."""
    access = access_of(ui.app, number)
    log.warning("%s interrupts node %d, %s", console_name(ui), number, describe(ui.app, access))
    access.interrupt()
    return f"node {number}: the caller is logged off at the next prompt"
