"""The live console over a remote channel: the BBS's own SSH server, or
``bbs console``'s Unix socket (:mod:`console.attach`).

:func:`run_remote_console` is what the composition root registers as
``app.remote_console``; the SSH server calls it when a sysop runs
``ssh -t -p <port> sysop@host console``, the console socket when ``bbs
console`` attaches. Any byte channel with a window size will do
(:class:`ConsoleChannel`; :class:`QueueChannel` builds one from callbacks).
Each call is a second, independent console: its own
:class:`~console.model.ConsoleModel` on the App's bus, its own urwid
``MainLoop`` on the running loop, its own screen. Several can run at once,
next to the local one.

urwid's raw display wants a terminal, so each remote console gets a pty
pair: urwid reads its keys from the pty's slave side (in cbreak mode, as on a
real terminal), the channel's bytes are written into the master side, and
the pty carries the caller's window size (``TIOCSWINSZ`` from the SSH PTY
request and every window change). urwid's output does not go through the
pty: :class:`_ChannelWriter` hands each frame straight to the channel (which
buffers), so a slow client can never block the loop in a pty write.

Quitting (``q`` and ``y``) or the channel closing ends only this console:
its "stop" event is its own, never the one ``serve`` waits on. The BBS
stopping ends it too.
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import struct
import termios
from typing import Any, Callable, Protocol

import urwid

from console.live import SysopConsole, open_console

log = logging.getLogger(__name__)

#: Window size when the client sent no PTY size (Synchronet's default terminal is 80x24).
DEFAULT_COLS = 80
DEFAULT_ROWS = 24
#: Terminal type when the client sent none.
DEFAULT_TERM = "vt100"
#: Bytes read from a channel at most per write into the pty (the N_TTY input buffer is 4 KB).
PTY_CHUNK = 4096


class ConsoleChannel(Protocol):
    """What a protocol hands to :func:`run_remote_console` (the SSH server's
    link fits): bytes in and out, the caller's terminal type and window size,
    and ``on_resize``, which the protocol calls after a window change."""

    term_type: str
    cols: int
    rows: int
    on_resize: Callable[[], None] | None

    async def read(self) -> bytes:
        """The next bytes from the caller; b"" once the channel is gone."""

    def write(self, data: bytes) -> None: ...


class QueueChannel:
    """A :class:`ConsoleChannel` fed by a protocol's callbacks: ``feed``
    the caller's bytes, ``resized`` on a window change, ``feed_eof`` when
    the caller is gone; ``write`` goes to ``send``. (The SSH server's link
    is its own; ``bbs console``'s Unix socket uses this one.)"""

    def __init__(self, send: Callable[[bytes], None], term_type: str = "", cols: int = 0, rows: int = 0) -> None:
        self.term_type, self.cols, self.rows = term_type, cols, rows
        self.on_resize: Callable[[], None] | None = None
        self._send = send
        self._input = asyncio.StreamReader()
        self._eof = False

    def feed(self, data: bytes) -> None:
        if data and not self._eof:
            self._input.feed_data(data)

    def feed_eof(self) -> None:
        self._eof = True
        self._input.feed_eof()

    def resized(self, cols: int, rows: int) -> None:
        self.cols, self.rows = cols, rows
        if self.on_resize is not None:
            self.on_resize()

    async def read(self) -> bytes:
        return await self._input.read(PTY_CHUNK)

    def write(self, data: bytes) -> None:
        self._send(data)


class RemoteSysopConsole(SysopConsole):
    """The live console on a remote channel: ``q`` closes this console only."""

    quit_question = "Close this remote console? (the BBS keeps running)"

    def quit(self) -> str:
        self.stop.set()  # the remote console's own event, not serve's
        return "closing the remote console ..."

    def announce_password(self, alias: str, password: str) -> None:  # pragma: no cover - never called
        raise RuntimeError("the remote console does not create the sysop account")


class _Fd:
    """A file descriptor as urwid's ``SupportsFileno``."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd


class _ChannelWriter:
    """urwid's output stream: text collected per frame, sent to the channel
    on flush (UTF-8, LF as CR LF as the pty's ONLCR would). ``fileno`` is
    the pty's, where urwid reads the window size."""

    def __init__(self, fd: int, write: Callable[[bytes], None]) -> None:
        self.fd = fd
        self._write = write
        self._parts: list[str] = []

    def fileno(self) -> int:
        return self.fd

    def write(self, text: str) -> int:
        self._parts.append(text)
        return len(text)

    def flush(self) -> None:
        if self._parts:
            data = "".join(self._parts).replace("\n", "\r\n").encode("utf-8", "replace")
            self._parts.clear()
            self._write(data)


class _ChannelScreen(urwid.display.raw.Screen):
    """A raw display on a pty that is not this process's terminal: no
    SIGWINCH/SIGTSTP handlers (they belong to the local console; the size
    comes from the channel) and no terminal signals from its keys."""

    def signal_init(self) -> None:
        pass

    def signal_restore(self) -> None:
        pass

    def _start(self, *args: Any, **kwargs: Any) -> None:
        super()._start(*args, **kwargs)
        fd = self._input_fileno()
        mode = termios.tcgetattr(fd)
        mode[3] &= ~termios.ISIG  # lflag: Ctrl+C/Ctrl+Z/Ctrl+\ are keys here, never signals
        termios.tcsetattr(fd, termios.TCSANOW, mode)

    def resized(self) -> None:
        """The pty's size changed: redraw at the next input round."""
        urwid.display._raw_display_base.Screen._sigwinch_handler(self)  # flag + wake-up, no signal chain

    def close(self) -> None:
        """Close urwid's wake-up socket pair now rather than at garbage collection."""
        for sock in (self._resize_pipe_rd, self._resize_pipe_wr):
            sock.close()


def set_window_size(fd: int, cols: int, rows: int) -> None:
    """TIOCSWINSZ on a pty (either side): what the slave side reports from now on."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", max(1, rows), max(1, cols), 0, 0))


class _PtyInput:
    """Channel bytes into the pty master, without ever blocking the loop:
    what the pty does not take now waits for it to become writable."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        self.loop, self.fd = loop, fd
        self.pending = bytearray()
        self.watching = False

    def feed(self, data: bytes) -> None:
        self.pending += data
        self._flush()

    def _flush(self) -> None:
        while self.pending:
            try:
                sent = os.write(self.fd, self.pending[:PTY_CHUNK])
            except BlockingIOError:
                break
            del self.pending[:sent]
        want = bool(self.pending)
        if want != self.watching:
            if want:
                self.loop.add_writer(self.fd, self._flush)
            else:
                self.loop.remove_writer(self.fd)
            self.watching = want

    def close(self) -> None:
        if self.watching:
            self.loop.remove_writer(self.fd)
            self.watching = False


async def run_remote_console(app: Any, channel: ConsoleChannel) -> int:
    """Run one remote live console of ``app`` on ``channel`` until the sysop
    quits it, the channel closes or the BBS stops; returns the exit status
    for the channel (0). Called by the SSH server for a sysop's ``console``
    command; never sets the BBS's stop event. Everything it opened (pty,
    urwid loop, bus subscription, timers) is closed before it returns."""
    loop = asyncio.get_running_loop()
    term = channel.term_type or DEFAULT_TERM
    master, slave = os.openpty()
    pty_input = _PtyInput(loop, master)
    screen: _ChannelScreen | None = None
    previous_resize = channel.on_resize
    try:
        os.set_blocking(master, False)
        set_window_size(master, channel.cols or DEFAULT_COLS, channel.rows or DEFAULT_ROWS)
        screen = _ChannelScreen(input=_Fd(slave), output=_ChannelWriter(slave, channel.write),
                                bracketed_paste_mode=False, focus_reporting=False)
        screen.term = term
        screen.set_terminal_properties(colors=256 if "256color" in term else 16)

        def on_resize() -> None:
            set_window_size(master, channel.cols or DEFAULT_COLS, channel.rows or DEFAULT_ROWS)
            screen.resized()

        channel.on_resize = on_resize
        done = asyncio.Event()
        async with open_console(app, done, screen=screen, console_class=RemoteSysopConsole):
            async def pump() -> None:
                while data := await channel.read():
                    pty_input.feed(data)

            waits = [asyncio.ensure_future(pump()), asyncio.ensure_future(done.wait()),
                     asyncio.ensure_future(app.shutdown.wait())]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in waits:
                    task.cancel()
                await asyncio.gather(*waits, return_exceptions=True)
        return 0
    finally:
        channel.on_resize = previous_resize
        pty_input.close()
        if screen is not None:
            screen.close()
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)
