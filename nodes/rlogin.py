"""RLogin nodes (RFC 1282).

The client opens with ``\\0 client-user \\0 server-user \\0 terminal/speed \\0``;
the server answers one zero byte and the session starts. Like Synchronet,
the *server-user* is the BBS alias and the *client-user* may carry the
password (SyncTERM's RLogin does this): when they match an account the
caller is logged straight in; otherwise the log-on prompt opens with the
name filled in. In-band window-size messages (``FF FF s s`` + rows, cols,
x and y pixels, RFC 1282 "Window size") are honoured when a client sends them.
"""
from __future__ import annotations

import asyncio
import struct
from typing import TYPE_CHECKING

from bbs.listeners import Connection
from nodes.io import QueueLink

if TYPE_CHECKING:
    from nodes.server import NodeServices

#: Longest handshake accepted (RFC 1282 leaves the field lengths open; real
#: clients send well under this). A longer one is junk: the caller is dropped.
MAX_HANDSHAKE = 1024
#: Seconds a client has to send its handshake.
HANDSHAKE_TIMEOUT = 30.0
WINDOW_MAGIC = b"\xff\xffss"


class Handshake:
    """Pure parser of the RLogin opening (bytes in, fields out)."""

    def __init__(self) -> None:
        self.buffer = b""
        self.fields: list[str] | None = None

    def feed(self, data: bytes) -> bytes | None:
        """Add bytes; once the four NUL-terminated fields are in, return what
        follows them (session data, maybe b""). Raises ValueError for junk."""
        self.buffer += data
        if not self.buffer.startswith(b"\0") and self.buffer:
            raise ValueError("handshake does not start with NUL")
        if self.buffer.count(b"\0") < 4:
            if len(self.buffer) > MAX_HANDSHAKE:
                raise ValueError("handshake too long")
            return None
        parts = self.buffer[1:].split(b"\0", 3)
        self.fields = [p.decode("latin-1") for p in parts[:3]]
        return parts[3]

    @property
    def client_user(self) -> str:
        return self.fields[0] if self.fields else ""

    @property
    def server_user(self) -> str:
        return self.fields[1] if self.fields else ""

    @property
    def terminal(self) -> str:
        return self.fields[2].split("/", 1)[0] if self.fields else ""


def split_window(data: bytes) -> tuple[bytes, list[tuple[int, int]]]:
    """Remove in-band window-size messages; return (data, [(cols, rows) ...])."""
    sizes = []
    while True:
        at = data.find(WINDOW_MAGIC)
        if at < 0 or len(data) < at + 12:
            return data, sizes
        rows, cols, _, _ = struct.unpack("!4H", data[at + 4:at + 12])
        sizes.append((cols, rows))
        data = data[:at] + data[at + 12:]


class RLoginLink(QueueLink):
    protocol = "rlogin"

    def __init__(self, transport: asyncio.Transport) -> None:
        super().__init__()
        self.transport = transport

    def write(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        self.transport.close()


class RLoginProtocol(asyncio.Protocol):
    def __init__(self, services: "NodeServices", conn: Connection, node: int) -> None:
        self.services, self.conn, self.node = services, conn, node
        self.handshake = Handshake()
        self.link: RLoginLink | None = None
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.timer = asyncio.get_running_loop().call_later(HANDSHAKE_TIMEOUT, transport.close)

    def data_received(self, data: bytes) -> None:
        if self.link is not None:
            data, sizes = split_window(data)
            for cols, rows in sizes:
                self.link.resized(cols, rows)
            self.link.feed(data)
            return
        try:
            rest = self.handshake.feed(data)
        except ValueError:
            self.transport.close()
            return
        if rest is None:
            return
        if self.timer is not None:
            self.timer.cancel()
        self.transport.write(b"\0")
        self.link = RLoginLink(self.transport)
        self.link.term_type = self.handshake.terminal
        if rest:
            self.data_received(rest)
        self.task = asyncio.ensure_future(self.services.run_session(
            self.link, self.conn, self.node, name_hint=self.handshake.server_user,
            password_hint=self.handshake.client_user))

    def eof_received(self) -> bool:
        if self.link is not None:
            self.link.feed_eof()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.link is not None:
            self.link.feed_eof()
        else:
            self.services.release(self.node, self.conn)


class _Busy(asyncio.Protocol):
    def __init__(self, message: bytes) -> None:
        self.message = message

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(b"\0" + self.message)  # type: ignore[attr-defined]
        transport.close()


def rlogin_factory(services: "NodeServices"):
    """The ``ServiceHandler(protocol=...)`` factory of the rlogin service."""

    def factory(conn: Connection) -> asyncio.Protocol:
        node = services.allocate(conn)
        if node is None:
            return _Busy(services.all_busy_message())
        return RLoginProtocol(services, conn, node)

    return factory
