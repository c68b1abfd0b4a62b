"""The FTP data connection: passive listeners, active connects, TLS, transfers.

Used by :mod:`ftp.session`. A data connection is a connected socket (from
:class:`PassiveListener.accept` or :func:`connect_active`) wrapped by
:meth:`DataStream.open`, TLS (server side, RFC 4217 section 9) when the
client asked for ``PROT P``. Files go out with ``loop.sendfile`` (the kernel's
sendfile on plain TCP; asyncio falls back to read/write in a worker thread
under TLS); uploads are read from the socket on the loop and written to disk
in a worker thread, so a slow disk never blocks other sessions.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import random
import socket
import ssl
from typing import BinaryIO

from bbs.filters import normalize_ip

log = logging.getLogger(__name__)

#: Seconds the client has to connect to a passive port, or we to its PORT
#: (vsftpd's accept_timeout and connect_timeout are 60 s).
DATA_CONNECT_TIMEOUT = 60.0
#: Seconds a data-channel TLS handshake may take (as the control listeners).
TLS_HANDSHAKE_TIMEOUT = 30.0
#: Bytes read from the data socket per read; uploads are written to disk in
#: batches of :data:`WRITE_BATCH` by a worker thread.
READ_CHUNK = 256 * 1024
WRITE_BATCH = 1024 * 1024
#: Bytes per sendfile(2) call on a plain data connection (pyftpdlib uses 64 KB).
SENDFILE_CHUNK = 256 * 1024
#: Bytes sent without a pause before RETR lets the loop run other sessions
#: (a client that keeps up on loopback never makes sendfile(2) block).
SENDFILE_FAIR_SHARE = 1024 * 1024
#: Ports tried when binding a passive socket in a PasvPortLow..High range.
MAX_PASV_TRIES = 100
#: The whole unprivileged range: let the kernel pick (cheaper than probing).
FULL_RANGE = (1024, 65535)


class DataError(Exception):
    """A data connection could not be made; ``str()`` is for the log."""


class PassiveListener:
    """A listening socket for one passive data connection (PASV/EPSV)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.port: int = sock.getsockname()[1]

    @classmethod
    def open(cls, address: str, low: int, high: int) -> "PassiveListener":
        """Listen on ``address`` at a free port in ``low..high`` (PasvPortLow,
        PasvPortHigh). Raises DataError when no port is free."""
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        if (low, high) == FULL_RANGE or low == 0:
            candidates = [0]
        else:
            span = high - low + 1
            start = random.randrange(span)
            candidates = [low + (start + i) % span for i in range(min(span, MAX_PASV_TRIES))]
        last: OSError | None = None
        for port in candidates:
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.bind((address, port))
                sock.listen(1)
                sock.setblocking(False)
                return cls(sock)
            except OSError as exc:
                sock.close()
                last = exc
                if exc.errno != errno.EADDRINUSE:
                    break
        raise DataError(f"no free passive port in {low}-{high} on {address}: {last}")

    async def accept(self, peer: str, timeout: float = DATA_CONNECT_TIMEOUT) -> socket.socket:
        """Wait for the data connection from ``peer`` (the control connection's
        address); connections from other addresses are closed (PASV port
        theft, RFC 2577 section 3). Raises DataError on time-out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            sock, addr = await self._next(loop, deadline)
            if normalize_ip(addr[0]) == normalize_ip(peer):
                return sock
            log.warning("FTP data connection to passive port %d from %s refused (control is %s)",
                        self.port, addr[0], peer)
            sock.close()

    async def _next(self, loop: asyncio.AbstractEventLoop, deadline: float) -> tuple[socket.socket, tuple]:
        """The next connection; DataError at ``deadline``. Clients connect
        right after the 227/229 reply, so it is usually waiting already;
        otherwise a reader callback and one timer wait for it."""
        while True:
            try:
                sock, addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                pass
            else:
                sock.setblocking(False)
                return sock, addr
            if loop.time() >= deadline:
                raise DataError("no data connection arrived")
            ready = loop.create_future()
            fd = self.sock.fileno()
            loop.add_reader(fd, _wake, ready)
            timer = loop.call_at(deadline, _wake, ready)
            try:
                await ready
            finally:
                loop.remove_reader(fd)
                timer.cancel()

    def close(self) -> None:
        self.sock.close()


def _wake(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


async def connect_active(address: str, port: int, local: str,
                         timeout: float = DATA_CONNECT_TIMEOUT) -> socket.socket:
    """Connect to the client's PORT/EPRT ``address:port`` from the control
    connection's local address. Raises DataError."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if (":" in local) == (":" in address):
            sock.bind((local, 0))
        await asyncio.wait_for(loop.sock_connect(sock, (address, port)), timeout)
    except (OSError, asyncio.TimeoutError) as exc:
        sock.close()
        raise DataError(f"cannot connect to {address} port {port}: {exc or 'timed out'}") from None
    return sock


class _DataProtocol(asyncio.Protocol):
    """Buffers what the client sends (with flow control) and tracks the end.

    Unlike a StreamReader it remembers a clean end of data (FIN, or TLS
    close_notify) separately from a later error: TLS clients close the
    socket right after their close_notify, so our own close_notify fails
    with EPIPE although the upload was complete."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.eof = False
        self.lost = False
        self.error: BaseException | None = None
        self.paused = False
        self._wake = asyncio.Event()
        self._can_write = asyncio.Event()
        self._can_write.set()
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered >= READ_CHUNK and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake.set()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake.set()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.error = exc
        self._wake.set()
        self._can_write.set()
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    async def read(self) -> bytes:
        """What has arrived (waiting for some); b"" at a clean end of data.
        Raises ConnectionError when the connection broke before the end."""
        while not self.chunks:
            if self.eof or (self.lost and self.error is None):
                return b""
            if self.lost:
                raise ConnectionError(f"data connection lost: {self.error}")
            self._wake.clear()
            await self._wake.wait()
        data = b"".join(self.chunks)
        self.chunks.clear()
        self.buffered = 0
        if self.paused and not self.lost and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data

    async def drain(self) -> None:
        await self._can_write.wait()
        if self.lost:
            raise ConnectionError(f"data connection lost: {self.error}")


class DataStream:
    """A connected data channel (plain or TLS) with transfer helpers.

    A plain connection stays a bare non-blocking socket until something needs
    a transport (listings, uploads): RETR then runs the kernel's sendfile in
    :data:`SENDFILE_CHUNK` steps, paced by the socket becoming writable, as
    pyftpdlib does. (``loop.sendfile`` pushes each call until the socket
    buffer is full, which measured slower on loopback.) TLS connections are
    a transport from the start; their files go through ``loop.sendfile``'s
    read/write fallback in a worker thread."""

    def __init__(self, sock: socket.socket, transport: asyncio.Transport | None = None,
                 protocol: _DataProtocol | None = None) -> None:
        self.sock = sock
        self.transport = transport
        self.protocol = protocol
        self.bytes = 0

    @classmethod
    async def open(cls, sock: socket.socket, tls: ssl.SSLContext | None) -> "DataStream":
        """Wrap a connected socket; TLS handshake (server side) when ``tls``.

        Raises DataError when that fails (the socket is closed)."""
        stream = cls(sock)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # see ftp.session
            if tls is not None:
                await stream._attach(tls)
        except (OSError, ssl.SSLError, ConnectionError, asyncio.TimeoutError) as exc:
            sock.close()
            raise DataError(f"data connection failed{' (TLS)' if tls else ''}: {exc}") from None
        return stream

    async def _attach(self, tls: ssl.SSLContext | None = None) -> tuple[asyncio.Transport, _DataProtocol]:
        """The transport of this connection (made on first use)."""
        if self.transport is None or self.protocol is None:
            protocol = _DataProtocol()
            transport, _ = await asyncio.get_running_loop().connect_accepted_socket(
                lambda: protocol, sock=self.sock, ssl=tls,
                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if tls is not None else None)
            self.transport, self.protocol = transport, protocol  # type: ignore[assignment]
        return self.transport, self.protocol  # type: ignore[return-value]

    async def send_bytes(self, data: bytes) -> None:
        """Send ``data`` (a listing, the index file)."""
        transport, protocol = await self._attach()
        transport.write(data)
        await protocol.drain()
        self.bytes += len(data)

    async def send_file(self, file: BinaryIO, offset: int, count: int) -> None:
        """Send ``count`` bytes of ``file`` from ``offset`` (RETR after REST)."""
        if count <= 0:
            return
        loop = asyncio.get_running_loop()
        if self.transport is not None:
            sent = await loop.sendfile(self.transport, file, offset, count)
            self.bytes += sent
            if sent != count:
                raise ConnectionError(f"sent {sent} of {count} bytes")
            return
        fd, source, position, end = self.sock.fileno(), file.fileno(), offset, offset + count
        unpaused = 0
        while position < end:
            try:
                sent = os.sendfile(fd, source, position, min(end - position, SENDFILE_CHUNK))
            except BlockingIOError:
                await self._writable(loop, fd)
                unpaused = 0
                continue
            if sent == 0:
                raise ConnectionError("file ended early")
            position += sent
            self.bytes += sent
            unpaused += sent
            if unpaused >= SENDFILE_FAIR_SHARE:
                await asyncio.sleep(0)
                unpaused = 0

    @staticmethod
    async def _writable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
        ready = loop.create_future()
        loop.add_writer(fd, lambda: ready.done() or ready.set_result(None))
        try:
            await ready
        finally:
            loop.remove_writer(fd)

    async def receive_to(self, file: BinaryIO, limit: int = 0) -> None:
        """Copy everything the client sends into ``file`` until end of data.

        ``limit`` > 0 stops at that many bytes (MaxFileSize) with OverflowError.
        """
        _, protocol = await self._attach()
        batch = bytearray()
        while True:
            chunk = await protocol.read()
            if not chunk:
                break
            batch += chunk
            self.bytes += len(chunk)
            if limit and self.bytes > limit:
                raise OverflowError(f"upload exceeds {limit} bytes")
            if len(batch) >= WRITE_BATCH:
                data, batch = bytes(batch), bytearray()
                await asyncio.to_thread(file.write, data)
        if batch:
            await asyncio.to_thread(file.write, bytes(batch))

    async def close(self) -> None:
        """Close gracefully (TLS close_notify, then FIN), never raising."""
        if self.transport is None or self.protocol is None:
            self.sock.close()
            return
        try:
            self.transport.close()
            await asyncio.wait_for(asyncio.shield(self.protocol.closed), 5.0)
        except (OSError, ssl.SSLError, ConnectionError, asyncio.TimeoutError):
            self.transport.abort()

    def abort(self) -> None:
        """Drop the connection at once (ABOR)."""
        if self.transport is None:
            self.sock.close()
        else:
            self.transport.abort()
