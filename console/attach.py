"""``bbs console``: the live console of a running BBS in another terminal.

The running BBS listens on a Unix socket, ``data/console.sock`` of its
instance, created with mode 0600 (bound under a temporary name, chmod-ed,
then renamed into place, so nobody can connect in between) and answering
only peers of the BBS's own user (or root, ``SO_PEERCRED``). Each
connection becomes one more remote console (:func:`console.remote.run_remote_console`
on a :class:`console.remote.QueueChannel`), exactly like ``ssh ...
console``: closing it, or quitting it (``q`` then ``y``), never stops the
BBS.

The client (:func:`attach`) puts its terminal in raw mode and speaks a
small framed protocol to the BBS (every frame: one kind byte, a 2-byte
big-endian length, the payload): ``H`` hello (columns, rows as two 16-bit
numbers, then the terminal type), ``D`` the keys typed, ``W`` a new window
size (on SIGWINCH). The BBS answers with the console's screen bytes as
they are (no framing). :class:`FrameDecoder` is the pure parser.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import signal
import socket
import struct
import sys
import termios
import tty
from pathlib import Path
from typing import Any, Iterator

from console.remote import QueueChannel

log = logging.getLogger(__name__)

#: The console socket's name under the instance's data/ folder.
SOCKET_NAME = "console.sock"
#: Frame kinds of the client's side.
HELLO, DATA, WINDOW = b"H", b"D", b"W"
_HEADER = struct.Struct("!cH")
_SIZE = struct.Struct("!HH")
#: Largest payload of one frame (the length is 16 bits).
MAX_PAYLOAD = 0xFFFF
#: Longest terminal type accepted in a hello (TERM values are short).
MAX_TERM = 64
#: Seconds a client has to send its hello; a connection without one is a probe (`bbs scfg`).
HELLO_TIMEOUT = 10.0
#: Bytes read from the socket or the terminal at once.
CHUNK = 65536
#: AF_UNIX path limit (sun_path is 108 bytes on Linux, with the final NUL).
MAX_SUN_PATH = 107


class FrameError(ValueError):
    """The peer sent something that is not a console frame."""


def frame(kind: bytes, payload: bytes = b"") -> bytes:
    """One frame; DATA longer than a frame holds is split into several."""
    if len(payload) <= MAX_PAYLOAD:
        return _HEADER.pack(kind, len(payload)) + payload
    return b"".join(frame(kind, payload[i:i + MAX_PAYLOAD]) for i in range(0, len(payload), MAX_PAYLOAD))


def hello_frame(term: str, cols: int, rows: int) -> bytes:
    return frame(HELLO, _SIZE.pack(_clamp(cols), _clamp(rows)) + term.encode("ascii", "replace")[:MAX_TERM])


def window_frame(cols: int, rows: int) -> bytes:
    return frame(WINDOW, _SIZE.pack(_clamp(cols), _clamp(rows)))


def _clamp(value: int) -> int:
    return max(1, min(int(value), 0xFFFF))


class FrameDecoder:
    """Bytes in, ``(kind, payload)`` frames out; raises FrameError on a kind
    it does not know or a malformed hello or window frame."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= _HEADER.size:
            kind, length = _HEADER.unpack_from(self._buffer)
            if kind not in (HELLO, DATA, WINDOW):
                raise FrameError(f"unknown frame kind {kind!r}")
            if len(self._buffer) < _HEADER.size + length:
                break
            payload = bytes(self._buffer[_HEADER.size:_HEADER.size + length])
            del self._buffer[:_HEADER.size + length]
            if kind in (HELLO, WINDOW) and len(payload) < _SIZE.size:
                raise FrameError(f"short {kind.decode()} frame")
            if kind == HELLO and len(payload) > _SIZE.size + MAX_TERM:
                raise FrameError("terminal type too long")
            frames.append((kind, payload))
        return frames


def parse_size(payload: bytes) -> tuple[int, int]:
    """(columns, rows) of a hello or window frame."""
    return _SIZE.unpack_from(payload)


def socket_path(instance_root: Path) -> Path:
    return Path(instance_root) / "data" / SOCKET_NAME


@contextlib.contextmanager
def _sun_path(path: Path) -> Iterator[str]:
    """An address for ``path`` that fits sun_path: the path itself, or,
    when too long, the same file through /proc/self/fd of its folder."""
    if len(os.fsencode(path)) <= MAX_SUN_PATH:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def _connect(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with _sun_path(path) as address:
            sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock


def bbs_running(instance_root: Path) -> bool:
    """Whether a BBS runs on this instance (its console socket answers)."""
    try:
        _connect(socket_path(instance_root)).close()
    except OSError:
        return False
    return True


# -- the BBS's side ------------------------------------------------------------

class ConsoleSocket:
    """The listening console socket of a running BBS (see :func:`open_console_socket`)."""

    def __init__(self, app: Any, path: Path) -> None:
        self.app = app
        self.path = path
        self.server: asyncio.AbstractServer | None = None
        self.sessions: set[asyncio.Task] = set()
        self._inode = 0

    async def start(self) -> None:
        sock = _bind_private(self.path)
        self._inode = os.stat(self.path).st_ino
        self.server = await asyncio.start_unix_server(self._accepted, sock=sock)
        log.info("local console on %s (bbs console)", self.path)

    async def close(self) -> None:
        """Stop listening and remove the socket file; consoles still open end
        with the BBS (they watch ``app.shutdown``)."""
        if self.server is not None:
            self.server.close()
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self._inode:  # never another process's socket
                self.path.unlink()
        if self.sessions:
            await asyncio.wait(list(self.sessions), timeout=5.0)

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()  # asyncio runs each connection as a task of its own
        if task is not None:
            self.sessions.add(task)
            task.add_done_callback(self.sessions.discard)
        await self._session(reader, writer)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pid, uid = _peer(writer.get_extra_info("socket"))
        try:
            if uid not in (os.getuid(), 0):
                log.warning("local console refused to process %d of uid %d (not the BBS's user)", pid, uid)
                writer.write(b"console: only the BBS's own user may attach\r\n")
                return
            decoder = FrameDecoder()
            try:
                first = await asyncio.wait_for(_next_frames(reader, decoder), HELLO_TIMEOUT)
            except (asyncio.TimeoutError, ConnectionError, FrameError, EOFError):
                log.debug("console socket: a connection without a hello (a probe)")
                return
            kind, payload = first[0]
            if kind != HELLO:
                log.warning("local console: process %d did not start with a hello; closed", pid)
                return
            cols, rows = parse_size(payload)
            term = payload[_SIZE.size:].decode("ascii", "replace")
            channel = QueueChannel(writer.write, term, cols, rows)
            pump = asyncio.ensure_future(_pump(reader, decoder, channel, first[1:]))
            log.info("local console attached (process %d)", pid)
            try:
                await self.app.remote_console(self.app, channel)
            finally:
                pump.cancel()
                await asyncio.gather(pump, return_exceptions=True)
            log.info("local console detached (process %d)", pid)
        except Exception:
            log.exception("local console (process %d) crashed; closing it", pid)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def _next_frames(reader: asyncio.StreamReader, decoder: FrameDecoder) -> list[tuple[bytes, bytes]]:
    while True:
        data = await reader.read(CHUNK)
        if not data:
            raise EOFError
        frames = decoder.feed(data)
        if frames:
            return frames


async def _pump(reader: asyncio.StreamReader, decoder: FrameDecoder, channel: QueueChannel,
                early: list[tuple[bytes, bytes]]) -> None:
    """The client's frames into the channel until it goes (then EOF)."""
    def apply(frames: list[tuple[bytes, bytes]]) -> None:
        for kind, payload in frames:
            if kind == DATA:
                channel.feed(payload)
            elif kind == WINDOW:
                channel.resized(*parse_size(payload))
    try:
        apply(early)
        while data := await reader.read(CHUNK):
            apply(decoder.feed(data))
    except (ConnectionError, FrameError) as exc:
        log.warning("local console: %s; closing it", exc)
    finally:
        channel.feed_eof()


def _peer(sock: socket.socket | None) -> tuple[int, int]:
    """(pid, uid) of the process at the other end (SO_PEERCRED); (0, -1) when unknown."""
    if sock is None:
        return 0, -1
    try:
        pid, uid, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                          struct.calcsize("3i")))
    except OSError:
        return 0, -1
    return pid, uid


def _bind_private(path: Path) -> socket.socket:
    """A listening Unix socket at ``path`` that only its owner can use: bound
    under a temporary name, mode 0600, listening, then renamed into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with _sun_path(tmp) as address:
            sock.bind(address)
        os.chmod(tmp, 0o600)
        sock.listen(8)
        sock.setblocking(False)
        os.replace(tmp, path)
    except BaseException:
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return sock


async def open_console_socket(app: Any) -> ConsoleSocket | None:
    """Listen on the instance's console socket (the composition root calls
    this when the BBS offers remote consoles). When another BBS process
    already answers there, leaves it alone and returns None; a stale socket
    file (left by a crash) is replaced."""
    path = socket_path(app.instance.root)
    if path.exists() or path.is_symlink():
        if await asyncio.to_thread(bbs_running, app.instance.root):
            log.warning("%s: another BBS process answers there; `bbs console` attaches to that one", path)
            return None
        path.unlink()
    console_socket = ConsoleSocket(app, path)
    try:
        await console_socket.start()
    except OSError as exc:
        log.warning("no local console (bbs console): cannot listen on %s: %s", path, exc)
        return None
    return console_socket


# -- the client: `bbs console` ------------------------------------------------

class AttachError(Exception):
    """`bbs console` cannot attach; ``str()`` says why and what to do."""


def attach(instance_root: Path, stdin: int = 0, stdout: int = 1) -> None:
    """Attach this terminal to the console of the BBS running on
    ``instance_root`` until the console closes (``q`` then ``y``, or the
    BBS stops). Raw mode while attached; the terminal is restored whatever
    happens. Raises AttachError when no BBS answers or this is no terminal."""
    path = socket_path(instance_root)
    try:
        sock = _connect(path)
    except (FileNotFoundError, ConnectionRefusedError):
        raise AttachError(f"no BBS is running on {instance_root} (nothing answers on {path}); "
                          f"start it with: bbs run {instance_root}") from None
    except PermissionError:
        raise AttachError(f"{path}: permission denied (attach as the user that runs the BBS)") from None
    with sock:
        if not (os.isatty(stdin) and os.isatty(stdout)):
            raise AttachError("the console needs a terminal")
        cols, rows = os.get_terminal_size(stdout)
        sock.sendall(hello_frame(os.environ.get("TERM", "vt100"), cols, rows))
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        saved_mode = termios.tcgetattr(stdin)
        previous_handler = signal.signal(signal.SIGWINCH, lambda *_: None)  # wakes select via the fd below
        previous_wakeup = signal.set_wakeup_fd(wake_write)
        try:
            tty.setraw(stdin)
            _relay(sock, stdin, stdout, wake_read)
        finally:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved_mode)
            signal.set_wakeup_fd(previous_wakeup)
            signal.signal(signal.SIGWINCH, previous_handler)
            os.close(wake_read)
            os.close(wake_write)


def _relay(sock: socket.socket, stdin: int, stdout: int, wake: int) -> None:
    """Keys to the BBS, the screen back, window changes as WINDOW frames,
    until the BBS closes the connection or the terminal is gone."""
    try:
        while True:
            try:
                ready, _, _ = select.select([stdin, sock, wake], [], [])
            except InterruptedError:
                continue
            if wake in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake, 256)
                cols, rows = os.get_terminal_size(stdout)
                sock.sendall(window_frame(cols, rows))
            if sock in ready:
                data = sock.recv(CHUNK)
                if not data:
                    return
                view = memoryview(data)
                while view:
                    view = view[os.write(stdout, view):]
            if stdin in ready:
                data = os.read(stdin, CHUNK)
                if not data:
                    return
                sock.sendall(frame(DATA, data))
    except (BrokenPipeError, ConnectionResetError):
        return


def main(instance_root: Path) -> int:
    """`bbs console`: exit status 0 after detaching, 1 when it could not attach."""
    try:
        attach(instance_root)
    except AttachError as exc:
        print(f"bbs console: {exc}", file=sys.stderr)
        return 1
    print("bbs console: detached; the BBS keeps running.", file=sys.stderr)
    return 0
