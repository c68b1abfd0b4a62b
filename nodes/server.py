"""Terminal server entry point (telnet nodes).

Until the caller shell lands (terminal-server issue) a telnet caller gets a
node from the node table and the answer banner, and the node is held until
the caller presses a key or MaxLoginInactivity passes. When every node is
busy the caller is told so politely and disconnected.
"""
from __future__ import annotations

import asyncio
import logging

from bbs.app import App
from bbs.listeners import Connection, ServiceHandler
from bbs.runner import ServerParts

log = logging.getLogger(__name__)

IAC = 255
#: Shown when FirstNode..LastNode are all in use (Synchronet's "all nodes busy").
ALL_BUSY = b"\r\nSorry, all nodes are busy right now. Please call again later.\r\n"


def create(app: App) -> ServerParts:
    """Called by the composition root; returns the telnet handler."""

    async def telnet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: Connection) -> None:
        node = app.nodes.allocate("telnet", conn.address, conn.id)
        if node is None:
            log.warning("telnet %s: all nodes busy", conn.address)
            writer.write(ALL_BUSY)
            await writer.drain()
            return
        conn.node = node.number
        log.info("Node %d telnet connection accepted from %s port %d", node.number, conn.address, conn.port)
        try:
            system = app.config.system
            writer.write(
                f"\r\n{system.name}\r\nNode {node.number} of {system.first_node}-{system.last_node}, "
                f"sysop {system.operator}.\r\n\r\nThe caller shell opens with the terminal-server "
                f"release. Press a key to hang up.\r\n".encode("cp437", "replace"))
            await writer.drain()
            timeout = app.config.server.bbs.max_login_inactivity or None
            key = asyncio.ensure_future(_read_key(reader))
            down = asyncio.ensure_future(app.shutdown.wait())
            try:
                await asyncio.wait({key, down}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                key.cancel()
                down.cancel()
            if down.done() and not down.cancelled():
                writer.write(b"\r\nThe BBS is shutting down. Please call again later.\r\n")
            elif not key.done() or key.cancelled():
                writer.write(b"\r\nInactive too long. Goodbye.\r\n")
            await writer.drain()
        finally:
            app.nodes.release(node.number)
            log.info("Node %d telnet %s logged off", node.number, conn.address)

    return ServerParts(handlers={"telnet": ServiceHandler(stream=telnet)})


async def _read_key(reader: asyncio.StreamReader) -> None:
    """Wait for one keystroke, skipping telnet negotiation (IAC sequences)."""
    while True:
        byte = await reader.read(1)
        if not byte:
            return
        if byte[0] == IAC:
            command = await reader.read(1)
            if command and command[0] in (251, 252, 253, 254):
                await reader.read(1)
            continue
        return
