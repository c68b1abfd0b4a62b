"""The caller's terminal as a session sees it: keys in, text out.

A :class:`Link` is what each protocol module (telnet, SSH, RLogin) gives the
session: bytes in, bytes out, the terminal type and window size it learned.
:class:`Terminal` builds the caller's experience on a link: key decoding,
echo, line input with editing, Ctrl-A colours and output encoding (via the
pure :mod:`nodes.terminal`), paging sized to the screen, inactivity limits
with a warning, telegrams shown while the caller waits at a prompt, and the
BBS shutdown notice.

The sysop's hooks (see :mod:`bbs.spy`) are here too: :meth:`Terminal.add_tap`
copies output to a spying console (nothing is copied, and no work done, while
nobody spies), :meth:`Terminal.inject` takes the sysop's keys as input and
:meth:`Terminal.break_in` runs a job (a chat, an interrupt) at the caller's
next wait for a key, then draws the prompt again if the job wrote anything.
"""
from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
from typing import Awaitable, Callable

from nodes import terminal as t

log = logging.getLogger(__name__)

#: Seconds a lone ESC waits for the rest of an escape sequence (ours; VT
#: terminals send sequences in one write, so a short pause is enough).
ESC_TIMEOUT = 0.15
#: Seconds the cursor-position probe waits for an answer (Synchronet waits
#: a few seconds for its terminal detection; telnet round trips are short).
CPR_TIMEOUT = 2.0
#: Seconds before an inactivity cut that the caller is warned (ours;
#: Synchronet warns "are you still there?" shortly before hanging up).
INACTIVITY_WARNING = 60.0
#: Default screen when the client reports none (Synchronet: 80x24).
DEFAULT_COLS = 80
DEFAULT_ROWS = 24
#: Longest line a caller may type at any prompt (Synchronet's LEN_* fields
#: are all shorter; the line editor uses its own width).
MAX_LINE = 250


class Hangup(Exception):
    """The session must end: the caller left, idled out, or the BBS stops.

    ``message`` is written to the caller first; ``logoff``: the caller is
    still there and gets the normal logoff (the sysop's interrupt)."""

    def __init__(self, reason: str, message: str = "", *, logoff: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.message = message
        self.logoff = logoff


class Link:
    """A caller's connection, implemented per protocol.

    Attributes the protocol fills in: ``protocol`` ("telnet", "ssh",
    "rlogin"), ``term_type`` (TTYPE, the PTY's TERM, or RLogin's terminal
    type), ``cols``/``rows`` (0 while unknown) and ``on_resize`` (set by the
    terminal, called after a window-size change).
    """

    protocol = "?"

    def __init__(self) -> None:
        self.term_type = ""
        self.cols = 0
        self.rows = 0
        self.on_resize: Callable[[], None] | None = None

    def resized(self, cols: int, rows: int) -> None:
        """Called by the protocol when the caller's window changes."""
        self.cols, self.rows = max(0, int(cols)), max(0, int(rows))
        if self.on_resize is not None:
            self.on_resize()

    async def read(self) -> bytes:
        """The next bytes from the caller; b"" once the connection is gone."""
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    async def drain(self) -> None:
        """Wait until the output buffer is below its high-water mark."""

    def close(self) -> None:
        raise NotImplementedError


class QueueLink(Link):
    """A link fed by protocol callbacks (SSH session, RLogin protocol)."""

    def __init__(self) -> None:
        super().__init__()
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._eof = False

    def feed(self, data: bytes) -> None:
        if data and not self._eof:
            self._queue.put_nowait(bytes(data))

    def feed_eof(self) -> None:
        if not self._eof:
            self._eof = True
            self._queue.put_nowait(b"")

    async def read(self) -> bytes:
        if self._eof and self._queue.empty():
            return b""
        return await self._queue.get()


class Terminal:
    """One caller's terminal: input, output, detection, limits.

    ``shutdown`` is the App's shutdown event: any wait for input ends with
    :class:`Hangup` when it is set. ``idle_limit`` (seconds, 0 = none) is the
    inactivity limit of the current phase (login, new user, session).
    """

    def __init__(self, link: Link, shutdown: asyncio.Event) -> None:
        self.link = link
        self.shutdown = shutdown
        self.decoder = t.KeyDecoder("utf-8")
        self.keys: collections.deque = collections.deque()
        self.ansi = False
        self.charset = "ascii"
        self.fixed_cols = 0  # caller's override (settings); 0 = as reported
        self.fixed_rows = 0
        self.render_state = t.RenderState()
        self.idle_limit = 0.0
        self.notices: collections.deque[str] = collections.deque()
        self._notice = asyncio.Event()
        self._redraw: Callable[[], Awaitable[None]] | None = None
        self._read_task: asyncio.Task | None = None
        self._down_task: asyncio.Task | None = None
        self.resizes = 0
        #: Every write to the caller goes through here: the link's own write,
        #: or :meth:`_send_tapped` while a sysop spies (see :meth:`add_tap`).
        self._send: Callable[[bytes], None] = link.write
        self._taps: list[Callable[[bytes], None]] = []
        self._injected = t.KeyDecoder("utf-8")  # the sysop's keys (the console is UTF-8)
        self._breakins: collections.deque[Callable[[], Awaitable[bool]]] = collections.deque()
        link.on_resize = self._on_resize

    # -- screen ----------------------------------------------------------
    @property
    def cols(self) -> int:
        return self.fixed_cols or self.link.cols or DEFAULT_COLS

    @property
    def rows(self) -> int:
        return self.fixed_rows or self.link.rows or DEFAULT_ROWS

    def _on_resize(self) -> None:
        self.resizes += 1
        log.debug("window is now %dx%d", self.link.cols, self.link.rows)

    def set_charset(self, charset: str) -> None:
        """``utf-8``, ``cp437`` or ``ascii`` for output; input follows."""
        self.charset = charset
        self.decoder.set_charset("utf-8" if charset == "utf-8" else "cp437")

    # -- output ----------------------------------------------------------
    async def write(self, text: str) -> None:
        """Write text with Ctrl-A codes (rendered for this terminal)."""
        for part in t.render(text, self.ansi, self.render_state):
            if part is t.PAUSE:
                await self.pause()
            else:
                self._send(t.encode_output(part, self.charset))
        await self.link.drain()

    def write_raw(self, data: bytes) -> None:
        self._send(data)

    async def newline(self) -> None:
        await self.write("\r\n")

    async def cls(self) -> None:
        await self.write("\x01L" if self.ansi else "\r\n")

    async def page(self, text: str) -> bool:
        """Write ``text`` pausing every screenful ([Hit a key]); returns False
        when the caller answered the pause with Q (stop)."""
        lines = text.split("\n")
        shown = 0
        nonstop = False
        for index, line in enumerate(lines):
            last = index == len(lines) - 1
            await self.write(line if last else line + "\n")
            if last:
                break
            shown += 1
            if not nonstop and shown >= self.rows - 1:
                shown = 0
                answer = await self.pause(more=True)
                if answer == "q":
                    return False
                if answer == "n":
                    nonstop = True
        return True

    async def pause(self, more: bool = False) -> str:
        """[Hit a key]; returns the key pressed, lower-cased ('q' to stop)."""
        prompt = "\x01n\x01h\x01k[\x01n\x01cHit a key" + (", \x01hQ\x01n\x01c to quit, \x01hN\x01n\x01c nonstop" if more else "") + "\x01h\x01k]\x01n"
        saved = dataclasses.replace(self.render_state.attr)

        async def redraw() -> None:
            await self.write(prompt)

        await redraw()
        previous, self._redraw = self._redraw, redraw
        try:
            key = await self.getkey()
        finally:
            self._redraw = previous
        width = t.visible_len(prompt)
        await self.write("\r" + " " * width + "\r")
        self.render_state.attr = saved
        return key.lower() if isinstance(key, str) and len(key) == 1 else ""

    # -- input -------------------------------------------------------------
    def notify(self, text: str) -> None:
        """Queue a notice (telegram) to show at the next input wait."""
        self.notices.append(text)
        self._notice.set()

    async def show_notices(self) -> None:
        while self.notices:
            await self.write("\r\n" + self.notices.popleft() + "\x01n\r\n")
        self._notice.clear()

    # -- the sysop's hooks (bbs.spy) ------------------------------------------
    def add_tap(self, sink: Callable[[bytes], None]) -> Callable[[], None]:
        """Copy every later write to the caller to ``sink`` until the
        returned function is called. Binary transfers (:meth:`write_bytes`)
        and terminal probes are not copied. A failing sink is logged and
        removed; it never breaks the session."""
        self._taps.append(sink)
        self._send = self._send_tapped

        def remove() -> None:
            if sink in self._taps:
                self._taps.remove(sink)
            if not self._taps:
                self._send = self.link.write
        return remove

    def _send_tapped(self, data: bytes) -> None:
        self.link.write(data)
        for sink in list(self._taps):
            try:
                sink(data)
            except Exception:
                log.exception("a spy's output sink failed; removing it")
                self._taps.remove(sink)
                if not self._taps:
                    self._send = self.link.write

    def inject(self, data: bytes) -> None:
        """The sysop's keys (UTF-8, VT sequences, whole per call) as if the
        caller had typed them; a waiting :meth:`getkey` returns them."""
        keys = self._injected.feed(data)
        if self._injected.holding:  # a lone ESC: each call is one whole key
            keys += self._injected.flush()
        if keys:
            self.keys.extend(keys)
            self._notice.set()

    def break_in(self, job: Callable[[], Awaitable[bool]]) -> None:
        """Run ``job`` at the caller's next wait for a key (at once when the
        session waits now): the sysop's chat or interrupt. ``job`` returns
        whether it wrote to the screen; if one did, the prompt the caller
        was at is drawn again afterwards (else the prompt is still there as
        it was). A Hangup raised by the job ends the session."""
        self._breakins.append(job)
        self._notice.set()

    async def _run_breakins(self) -> None:
        redraw = self._redraw
        wrote = False
        try:
            while self._breakins:
                job = self._breakins.popleft()
                self._redraw = None
                if await job():
                    wrote = True
        finally:
            self._redraw = redraw
        if wrote and redraw is not None:
            await redraw()

    async def getkey(self, timeout: float | None = None):
        """The next key (a character, a ``KEY_*`` name or a CursorReport).

        Applies ``idle_limit`` (warning, then Hangup("inactive")), ends with
        Hangup("shutdown") when the BBS stops and Hangup("disconnected") when
        the caller has gone. ``timeout`` (for probes) returns None instead.
        """
        warned = False
        while True:
            if self.keys:
                return self.keys.popleft()
            if self.notices:
                await self.show_notices()
                if self._redraw is not None:
                    await self._redraw()
                continue
            if self._breakins and timeout is None:  # never inside a terminal probe
                await self._run_breakins()
                continue
            self._notice.clear()  # woken for injected keys or a break-in: both handled above
            if self.shutdown.is_set():
                raise Hangup("shutdown", "\r\n\x01n\x01h\x01yThe BBS is shutting down. Please call again later.\x01n\r\n")
            if self._read_task is None:
                self._read_task = asyncio.ensure_future(self.link.read())
            if self._down_task is None:
                self._down_task = asyncio.ensure_future(self.shutdown.wait())
            notice = asyncio.ensure_future(self._notice.wait())
            wait = timeout
            if wait is None and self.idle_limit:
                wait = self._idle_wait(warned)
            if self.decoder.holding:
                wait = ESC_TIMEOUT if wait is None else min(wait, ESC_TIMEOUT)
            try:
                done, _ = await asyncio.wait({self._read_task, self._down_task, notice}, timeout=wait,
                                             return_when=asyncio.FIRST_COMPLETED)
            finally:
                notice.cancel()
            if self._read_task in done:
                task, self._read_task = self._read_task, None
                data = task.result()
                if not data:
                    raise Hangup("disconnected")
                self.keys.extend(self.decoder.feed(data))
                warned = False
                continue
            if done:
                continue  # shutdown or a notice: handled at the top of the loop
            if self.decoder.holding:
                self.keys.extend(self.decoder.flush())
                continue
            if timeout is not None:
                return None
            if not warned and self.idle_limit > INACTIVITY_WARNING * 2:
                warned = True
                await self.write("\x07\r\n\x01n\x01h\x01rAre you still there? \x01n\x01rYou will be "
                                 "disconnected for inactivity in a minute.\x01n\r\n")
                if self._redraw is not None:
                    await self._redraw()
                continue
            if not warned and self.idle_limit > 2:
                warned = True  # a short limit: warn half-way
                await self.write("\x07\r\n\x01n\x01h\x01rAre you still there?\x01n\r\n")
                if self._redraw is not None:
                    await self._redraw()
                continue
            raise Hangup("inactive", "\r\n\x01n\x01h\x01rInactive too long. Goodbye.\x01n\r\n")

    def _idle_wait(self, warned: bool) -> float:
        limit = self.idle_limit
        if limit > INACTIVITY_WARNING * 2:
            return INACTIVITY_WARNING if warned else limit - INACTIVITY_WARNING
        if limit > 2:
            return limit / 2
        return limit

    async def getline(self, prompt: str = "", *, maxlen: int = 60, mask: bool = False,
                      default: str = "", upper: bool = False, hotkeys: str = "") -> str:
        """Read a line with echo and editing (Backspace, Ctrl-U/Ctrl-X to clear).

        ``mask`` echoes ``*`` (passwords); ``upper`` upper-cases as typed;
        ``hotkeys``: typing one of these as the first character returns it
        at once (menu style). Returns the text without control characters.
        """
        maxlen = min(maxlen, MAX_LINE)
        buf: list[str] = list(default)

        async def redraw() -> None:
            shown = "*" * len(buf) if mask else "".join(buf)
            await self.write(prompt + shown)

        await redraw()
        previous, self._redraw = self._redraw, redraw
        try:
            while True:
                key = await self.getkey()
                if key in ("\r", t.KEY_ENTER):
                    await self.write("\r\n")
                    return "".join(buf)
                if key in (t.KEY_BACKSPACE, t.KEY_LEFT, t.KEY_DELETE):
                    if buf:
                        buf.pop()
                        await self.write("\x08 \x08")
                    continue
                if key in ("\x15", "\x18"):  # Ctrl-U, Ctrl-X: erase the line
                    await self.write("\x08 \x08" * len(buf))
                    buf.clear()
                    continue
                if not isinstance(key, str) or len(key) != 1 or not key.isprintable():
                    continue
                if upper:
                    key = key.upper()
                if hotkeys and not buf and key.upper() in hotkeys.upper():
                    await self.write(key + "\r\n")
                    return key
                if len(buf) >= maxlen:
                    await self.write("\x07")
                    continue
                buf.append(key)
                await self.write("*" if mask else key)
        finally:
            self._redraw = previous

    async def hotkey(self, prompt: str, allowed: str, default: str = "") -> str:
        """One key from ``allowed`` (case-insensitive; Enter gives ``default``)."""
        async def redraw() -> None:
            await self.write(prompt)

        await redraw()
        previous, self._redraw = self._redraw, redraw
        try:
            while True:
                key = await self.getkey()
                if key == "\r" and default:
                    key = default
                if isinstance(key, str) and len(key) == 1 and key.upper() in allowed.upper():
                    await self.write(key.upper() + "\r\n")
                    return key.upper()
        finally:
            self._redraw = previous

    async def yesno(self, question: str, default: bool = True) -> bool:
        hint = "\x01h\x01wY\x01n\x01c/n" if default else "y/\x01h\x01wN\x01n\x01c"
        answer = await self.hotkey(f"\x01n\x01c{question} [{hint}]? \x01n", "YN", "Y" if default else "N")
        return answer == "Y"

    # -- raw bytes (file transfers) ---------------------------------------------
    async def read_raw(self) -> bytes:
        """The next bytes from the caller as they came, without key decoding
        (for ZMODEM and other transfers); b"" once the caller has gone.

        Called by a transfer's input pump, which may be cancelled at any
        time: a read still under way stays with the terminal, so no byte is
        lost and the next :meth:`getkey` picks it up. The links already
        un-escape telnet's IAC IAC (RFC 854) on input; SSH and RLogin carry
        bytes unchanged.
        """
        if self._read_task is None:
            self._read_task = asyncio.ensure_future(self.link.read())
        task = self._read_task
        data = await asyncio.shield(task)
        if self._read_task is task:
            self._read_task = None
        return data

    async def write_bytes(self, data: bytes) -> None:
        """Write bytes unchanged (no Ctrl-A, no charset) and wait for the
        output buffer to drain; the telnet link escapes 0xFF as IAC IAC."""
        self.link.write(data)
        await self.link.drain()

    def discard_input(self) -> None:
        """Forget typed-ahead keys (after a transfer: its trailing bytes,
        such as ZMODEM's "OO", are no keys)."""
        if self.decoder.holding:
            self.decoder.flush()
        self.keys.clear()

    # -- detection -----------------------------------------------------------
    async def probe_cpr(self, timeout: float = CPR_TIMEOUT) -> t.CursorReport | None:
        """Ask for the cursor position; the report, or None (dumb terminal)."""
        self.link.write(t.CPR_REQUEST.encode())
        await self.link.drain()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        held = []
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return None
                key = await self.getkey(timeout=remaining)
                if key is None:
                    return None
                if isinstance(key, t.CursorReport):
                    return key
                held.append(key)
        finally:
            self.keys.extendleft(reversed(held))

    def close(self) -> None:
        for task in (self._read_task, self._down_task):
            if task is not None:
                task.cancel()
        self._read_task = self._down_task = None
