"""Finger (RFC 1288): ``finger @host`` lists who is online; ``finger
user@host`` shows that user's public profile (alias, location, last on,
.plan). Forwarding (``user@host2``) is refused as RFC 1288 2.5.5 advises.
Only public fields are ever shown: never real name, e-mail or level.
"""
from __future__ import annotations

import asyncio
import logging
import time

from bbs.app import App
from bbs.errors import BBSError
from bbs.listeners import Connection
from services.common import BadQuery, callers, decode_query, read_query

log = logging.getLogger(__name__)

FORWARDING_DENIED = "Finger forwarding service denied.\r\n"
NO_SUCH_USER = "No such user.\r\n"
INVALID_QUERY = "Invalid query.\r\n"


def _when(stamp: float | None) -> str:
    return time.strftime("%a %b %d %Y %H:%M", time.localtime(stamp)) if stamp else "never"


def who_is_online(app: App) -> str:
    """The ``finger @host`` answer."""
    system = app.config.system
    lines = [f"{system.name} ({app.config.server.global_.hostname})  {time.strftime('%a %b %d %H:%M:%S %Y')}",
             ""]
    online = callers(app)
    if not online:
        lines.append("Nobody is online.")
    else:
        lines.append(f"{'Node':>4}  {'User':<25} {'Activity':<28} {'Via':<7} {'Time':>5}")
        for caller in online:
            lines.append(f"{caller.node:>4}  {caller.user:<25.25} {caller.activity:<28.28} "
                         f"{caller.connection:<7} {caller.minutes // 60:>2}:{caller.minutes % 60:02}")
        lines += ["", f"{len(online)} of {len(system.nodes)} nodes in use."]
    return "\r\n".join(lines) + "\r\n"


async def profile(app: App, name: str) -> str:
    """The ``finger user@host`` answer: public fields only."""
    try:
        user = await app.users.find(name)
    except BBSError:
        return NO_SUCH_USER
    online = [c for c in callers(app) if c.user.lower() == user.alias.lower()]
    lines = [f"User: {user.alias}", f"From: {user.location or '(unknown)'}"]
    if online:
        lines.append(f"On:   node {online[0].node} since {_when(online[0].since)} ({online[0].activity})")
    else:
        lines.append(f"Last on: {_when(user.last_on)}")
    plan = str(user.settings.get("plan", "")).strip()
    lines += ["Plan:" if plan else "No plan.", *(plan.splitlines() if plan else [])]
    return "\r\n".join(lines) + "\r\n"


async def answer(app: App, raw: bytes) -> str:
    """The reply to one finger query line (pure of sockets)."""
    try:
        query = decode_query(raw).strip()
    except BadQuery:
        return INVALID_QUERY
    if query.upper().startswith("/W"):  # RFC 1288 2.5.2: verbose switch, same answer here
        query = query[2:].strip()
    if "@" in query:
        return FORWARDING_DENIED
    if not query:
        return who_is_online(app)
    return await profile(app, query)


def handler(app: App):
    timeout = app.config.server.services.common.max_inactivity

    async def finger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: Connection) -> None:
        try:
            raw = await read_query(reader, timeout)
        except BadQuery as exc:
            log.warning("finger %s: %s", conn.address, exc)
            writer.write(INVALID_QUERY.encode())
            await writer.drain()
            return
        except asyncio.TimeoutError:
            return
        log.info("finger %s: query %r", conn.address, raw[:64])
        writer.write((await answer(app, raw)).encode("utf-8", "replace"))
        await writer.drain()

    return finger
