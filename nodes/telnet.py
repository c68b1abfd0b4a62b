"""Telnet nodes on telnetlib3 (bytes mode).

telnetlib3's :class:`TelnetServer` is an asyncio protocol, so the listener
manager installs it on the admitted transport (``ServiceHandler(protocol=)``).
It negotiates TTYPE (cycled), NAWS, SGA and ECHO (character mode) and BINARY,
and escapes IAC both ways so 0xFF passes in data (RFC 854/856). We run it
with ``encoding=False`` (we encode CP437/UTF-8 per caller), ``timeout=0``
(our own inactivity rules) and our shell, which builds a :class:`TelnetLink`
and a session. A client that negotiates nothing gets a working session once
``connect_maxwait`` passes.
"""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import telnetlib3
from telnetlib3.telopt import NAWS

from bbs.listeners import Connection
from nodes.io import Link

if TYPE_CHECKING:
    from nodes.server import NodeServices

log = logging.getLogger(__name__)

#: Seconds telnetlib3 waits for option negotiation before starting the
#: session anyway (a raw TCP client answers nothing).
CONNECT_MAXWAIT = 2.0


class TelnetLink(Link):
    """The session's view of a telnetlib3 connection."""

    protocol = "telnet"

    def __init__(self, reader, writer) -> None:
        super().__init__()
        self.reader, self.writer = reader, writer

    async def read(self) -> bytes:
        try:
            return await self.reader.read(4096)
        except (ConnectionError, OSError):
            return b""

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    async def drain(self) -> None:
        try:
            await self.writer.drain()
        except (ConnectionError, OSError):
            pass

    def close(self) -> None:
        self.writer.close()


class NodeTelnetServer(telnetlib3.TelnetServer):
    """telnetlib3's server protocol bound to one node of the BBS."""

    def __init__(self, services: "NodeServices", conn: Connection, node: int) -> None:
        super().__init__(shell=self._shell, encoding=False, timeout=0, connect_maxwait=CONNECT_MAXWAIT,
                         term="unknown")
        self.services, self.conn, self.node = services, conn, node
        self.link: TelnetLink | None = None
        self.started = False

    def on_naws(self, rows: int, cols: int) -> None:
        super().on_naws(rows, cols)
        if self.link is not None:
            self.link.resized(cols, rows)

    def on_ttype(self, ttype: str) -> None:
        super().on_ttype(ttype)
        if self.link is not None and ttype:
            self.link.term_type = ttype

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            super().connection_lost(exc)
        finally:
            if not self.started:  # negotiation never finished: no session will release the node
                self.services.release(self.node, self.conn)

    async def _shell(self, reader, writer) -> None:
        self.started = True
        link = TelnetLink(reader, writer)
        link.term_type = writer.get_extra_info("TERM") or ""
        if writer.remote_option.enabled(NAWS):
            link.cols, link.rows = writer.get_extra_info("cols") or 0, writer.get_extra_info("rows") or 0
        self.link = link
        await self.services.run_session(link, self.conn, self.node)


class _Busy(asyncio.Protocol):
    """All nodes busy: say so and hang up (before any negotiation)."""

    def __init__(self, message: bytes) -> None:
        self.message = message

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.message)  # type: ignore[attr-defined]
        transport.close()


def telnet_factory(services: "NodeServices"):
    """The ``ServiceHandler(protocol=...)`` factory of the telnet service."""
    # telnetlib3 logs every connection at INFO; our node lines say it once.
    logging.getLogger("telnetlib3").setLevel(logging.WARNING)

    def factory(conn: Connection) -> asyncio.Protocol:
        node = services.allocate(conn)
        if node is None:
            return _Busy(services.all_busy_message())
        return NodeTelnetServer(services, conn, node)

    return factory
