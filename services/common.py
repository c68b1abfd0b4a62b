"""What the small services share: reading one bounded query line, and the
list of who is online (node table + user base)."""
from __future__ import annotations

import asyncio
import dataclasses
import time

from bbs.app import App
from bbs.nodetable import NodeRecord, NodeStatus

#: Longest query a line service accepts (RFC 1288 sets none; a name fits easily).
MAX_QUERY = 512


class BadQuery(Exception):
    """The client sent something no service should parse (too long, binary)."""


async def read_query(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """Read one CRLF/LF-terminated line of at most MAX_QUERY bytes.

    Returns the line without its end (EOF ends it too). Raises BadQuery for
    an over-long line, asyncio.TimeoutError when the client says nothing.
    """
    data = bytearray()
    while b"\n" not in data:
        chunk = await asyncio.wait_for(reader.read(MAX_QUERY + 2), timeout or None)
        if not chunk:
            break
        data.extend(chunk)
        if len(data) > MAX_QUERY + 2:
            raise BadQuery("query too long")
    return bytes(data.split(b"\n", 1)[0]).rstrip(b"\r")


def decode_query(raw: bytes) -> str:
    """ASCII printable text of a query; raises BadQuery for binary or 8-bit data."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise BadQuery("binary query") from None
    if not text.isprintable():
        raise BadQuery("binary query")
    return text


@dataclasses.dataclass(frozen=True)
class Caller:
    """One busy node, as the public may see it."""

    node: int
    user: str
    activity: str
    connection: str
    since: float

    @property
    def minutes(self) -> int:
        return int((time.time() - self.since) // 60) if self.since else 0


def callers(app: App) -> list[Caller]:
    """Who is online now: every node that is not waiting or offline."""
    result = []
    for record in app.nodes.in_use():
        result.append(Caller(record.number, _who(record), record.activity or record.status.value,
                             record.connection, record.since))
    return result


def _who(record: NodeRecord) -> str:
    if record.user:
        return record.user
    return "(new user)" if record.status is NodeStatus.NEWUSER else "(logging on)"
