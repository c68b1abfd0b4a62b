"""Message Send Protocol client (RFC 1312, version B) for callers: send a
short message to ``user@otherbbs`` and report the server's ``+``/``-`` reply.

The formatting and reply parsing are pure (bytes in, bytes out; unit-tested);
:func:`send` is the only part that touches a socket. The nodes package keeps
its own small client so it depends only on :mod:`bbs` (the MSP *server* is
services/msp.py).
"""
from __future__ import annotations

import asyncio
import dataclasses
import re
import time

#: RFC 1312 section 2: MSP's well-known port, TCP and UDP.
MSP_PORT = 18
#: RFC 1312 section 3: the whole message should fit in 512 octets.
MAX_MESSAGE = 512
#: Longest reply we read (a '+' or '-' with a short NUL-terminated reason).
MAX_REPLY = 512
#: Seconds to connect and to wait for the reply (ours).
CONNECT_TIMEOUT = 15.0
REPLY_TIMEOUT = 30.0

_TARGET = re.compile(r"(?P<user>[^@\s:]+(?: [^@\s:]+)*)@(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(?P<port>\d{1,5}))?")


class MSPError(Exception):
    """A message that cannot be sent (bad address, too long, network)."""


@dataclasses.dataclass(frozen=True)
class Target:
    user: str
    host: str
    port: int


def parse_target(text: str) -> Target:
    """``user@host[:port]`` (``[v6]`` literals allowed); raises MSPError."""
    match = _TARGET.fullmatch(text.strip())
    if match is None:
        raise MSPError("use user@host or user@host:port")
    port = int(match["port"]) if match["port"] else MSP_PORT
    if not 0 < port < 65536:
        raise MSPError("the port must be 1-65535")
    return Target(match["user"], match["host"].strip("[]"), port)


def format_message(recipient: str, text: str, sender: str, *, recipient_term: str = "",
                   sender_term: str = "", cookie: str = "", signature: str = "") -> bytes:
    """A version-B message: ``B`` and seven NUL-terminated parts (RFC 1312
    section 3): recipient, recipient terminal, message, sender, sender
    terminal, cookie, signature. Raises MSPError when a part holds a NUL or
    the whole exceeds MAX_MESSAGE."""
    parts = (recipient, recipient_term, text, sender, sender_term, cookie, signature)
    if any("\0" in p for p in parts):
        raise MSPError("a message part may not contain NUL")
    if not recipient.strip() or not text.strip():
        raise MSPError("a message needs a recipient and text")
    data = b"B" + b"".join(p.encode("utf-8") + b"\0" for p in parts)
    if len(data) > MAX_MESSAGE:
        raise MSPError(f"the message is too long ({len(data)} of {MAX_MESSAGE} octets)")
    return data


def make_cookie(now: float | None = None) -> str:
    """RFC 1312 section 3: a cookie unique per message from this sender
    (the date and time serve, as the RFC suggests)."""
    now = time.time() if now is None else now
    return time.strftime("%y%m%d%H%M%S", time.gmtime(now)) + f"{int(now * 1000) % 1000:03d}"


def parse_reply(data: bytes) -> tuple[bool, str]:
    """The server's answer: ``(True, text)`` for ``+``, ``(False, reason)``
    for ``-`` (RFC 1312 section 3). Raises MSPError for anything else."""
    if not data:
        raise MSPError("the server closed the connection without a reply")
    text = data[1:].split(b"\0", 1)[0].decode("utf-8", "replace")
    text = "".join(c for c in text if c.isprintable())
    if data[:1] == b"+":
        return True, text
    if data[:1] == b"-":
        return False, text or "refused"
    raise MSPError("the server's reply is not MSP")


def reply_complete(data: bytes) -> bool:
    return b"\0" in data or len(data) >= MAX_REPLY


async def send(host: str, port: int, message: bytes) -> tuple[bool, str]:
    """Send one message over TCP and return the parsed reply. Raises MSPError."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT)
    except (OSError, asyncio.TimeoutError) as exc:
        raise MSPError(f"cannot connect to {host} port {port}: {exc or 'timed out'}") from None
    try:
        writer.write(message)
        await writer.drain()
        data = b""
        async with asyncio.timeout(REPLY_TIMEOUT):
            while not reply_complete(data):
                chunk = await reader.read(MAX_REPLY)
                if not chunk:
                    break
                data += chunk
    except (OSError, TimeoutError) as exc:
        raise MSPError(f"no reply from {host}: {exc or 'timed out'}") from None
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
    return parse_reply(data)
