"""Message Send Protocol (RFC 1312, version B), TCP and UDP.

A message is ``B`` followed by seven NUL-terminated parts: recipient,
recipient terminal, message, sender, sender terminal, cookie, signature.
It is delivered as a telegram to the named BBS user (shown at once when
online, at the next logon otherwise). On TCP the server answers ``+`` or
``-`` with a NUL-terminated reason (RFC 1312 section 3); on UDP nothing is
sent back (a UDP reply could be aimed at a forged source address).
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging

from bbs.app import App
from bbs.errors import BBSError
from bbs.listenconf import ListenerConfig
from bbs.listeners import Connection

log = logging.getLogger(__name__)

#: RFC 1312: the whole message should fit in 512 octets (the UDP limit); we
#: allow a little more on TCP but never unbounded input.
MAX_MESSAGE = 2048
PARTS = 7


class BadMessage(Exception):
    pass


@dataclasses.dataclass(frozen=True)
class MSPMessage:
    recipient: str
    recipient_term: str
    text: str
    sender: str
    sender_term: str
    cookie: str
    signature: str


def parse(data: bytes) -> MSPMessage:
    """Parse one version-B message; raises BadMessage with a short reason."""
    if len(data) > MAX_MESSAGE:
        raise BadMessage("message too long")
    if not data.startswith(b"B"):
        raise BadMessage("unsupported version (expected B)")
    parts = data[1:].split(b"\0")
    if len(parts) < PARTS + 1 or any(parts[PARTS:]):
        raise BadMessage("malformed message (expected 7 NUL-terminated parts)")
    text = [p.decode("utf-8", "replace") for p in parts[:PARTS]]
    message = MSPMessage(*text)
    if not message.recipient.strip():
        raise BadMessage("no recipient")
    if not message.text.strip():
        raise BadMessage("empty message")
    return message


def complete(data: bytes) -> bool:
    """True when ``data`` is ready to parse: all seven parts ended, or its
    first byte already shows a version we do not speak."""
    return bool(data) and (data[:1] != b"B" or data.count(b"\0") >= PARTS)


async def deliver(app: App, message: MSPMessage, address: str) -> str:
    """Deliver ``message`` as a telegram; returns "" or the failure reason."""
    try:
        user = await app.users.find(message.recipient.strip())
    except BBSError:
        return "no such user"
    sender = message.sender.strip() or f"unknown@{address}"
    try:
        await app.telegrams.send(user.number, user.alias, f"{sender} (MSP)", message.text)
    except BBSError as exc:
        return str(exc)
    log.info("msp %s: message from %s delivered to %s", address, sender, user.alias)
    return ""


def tcp(app: App):
    timeout = app.config.server.services.common.max_inactivity or None

    async def msp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: Connection) -> None:
        data = bytearray()
        try:
            while not complete(data) and len(data) <= MAX_MESSAGE:
                chunk = await asyncio.wait_for(reader.read(1024), timeout)
                if not chunk:
                    break
                data.extend(chunk)
            message = parse(bytes(data))
            failure = await deliver(app, message, conn.address)
        except BadMessage as exc:
            log.warning("msp %s: %s", conn.address, exc)
            failure = str(exc)
        except asyncio.TimeoutError:
            return
        writer.write(b"-" + failure.encode() + b"\0" if failure else b"+\0")
        await writer.drain()

    return msp


def udp(app: App):
    async def msp(data: bytes, address: str, listener: ListenerConfig) -> None:
        try:
            message = parse(data)
        except BadMessage as exc:
            log.warning("msp %s (udp): %s", address, exc)
            return None
        await deliver(app, message, address)
        return None

    return msp
