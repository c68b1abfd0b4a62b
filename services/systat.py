"""SYSTAT / Active Users (RFC 866): on TCP the list of active users is sent
and the connection closed; on UDP any datagram gets the list in one reply
datagram (cut to fit 512 bytes, as RFC 866 UDP answers are small)."""
from __future__ import annotations

import asyncio
import logging

from bbs.app import App
from bbs.listenconf import ListenerConfig
from bbs.listeners import Connection
from services.common import callers

log = logging.getLogger(__name__)

#: Largest UDP answer (a safe datagram size on any path).
MAX_UDP_REPLY = 512


def active_users(app: App) -> str:
    """One line per active user: name, node, connection, activity."""
    lines = [f"{c.user:<25.25} node {c.node:<3} {c.connection:<7} {c.activity}" for c in callers(app)]
    return "".join(line.rstrip() + "\r\n" for line in lines) or "No active users.\r\n"


def tcp(app: App):
    async def systat(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: Connection) -> None:
        log.info("systat %s: active users requested", conn.address)
        writer.write(active_users(app).encode("utf-8", "replace"))
        await writer.drain()

    return systat


def udp(app: App):
    async def systat(data: bytes, address: str, listener: ListenerConfig) -> bytes:
        reply = active_users(app).encode("utf-8", "replace")
        if len(reply) > MAX_UDP_REPLY:
            reply = reply[:MAX_UDP_REPLY].rsplit(b"\r\n", 1)[0] + b"\r\n"
        return reply

    return systat
