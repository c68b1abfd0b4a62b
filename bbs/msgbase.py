"""Message bases: the posts of every sub-board, and each user's read pointers.

Protocol-free core module (no wire formats): the terminal server's message
areas use it, and so will NNTP (a sub's ``newsgroup``) and the mail server's
``sub:`` recipients. Messages live in ``data/msgs.db`` (a
:class:`bbs.db.Database` opened with :data:`MSG_MIGRATIONS`).

As in Synchronet, every sub numbers its messages 1, 2, 3 ... (never reused,
also after deletions); a reply records the number it answers (``reply_to``)
and the thread it belongs to (``thread``: the number of the thread's first
message). A user's *last-read pointer* per sub is the highest number they
have read; "new" messages are those above it.

Every failure is a :class:`bbs.errors.BBSError`: ``NOT_FOUND`` (no such
message), ``BAD_VALUE`` (empty or over-long fields), ``STORAGE``.
"""
from __future__ import annotations

import dataclasses
import logging
import sqlite3
import time
import uuid

from bbs.db import Database
from bbs.errors import BBSError, Reason

log = logging.getLogger(__name__)

__all__ = ["MSG_MIGRATIONS", "Message", "MessageBase", "LEN_SUBJECT", "MAX_BODY"]

#: Synchronet's LEN_TITLE: message subjects.
LEN_SUBJECT = 70
#: Synchronet's LEN_ALIAS: from/to names.
LEN_NAME = 25
#: Longest message body accepted (ours; Synchronet's default "maximum
#: message size" for local posts is of this order).
MAX_BODY = 64 * 1024

_SCHEMA_1 = """
CREATE TABLE messages (
    id          INTEGER PRIMARY KEY,
    sub         TEXT    NOT NULL COLLATE NOCASE,
    number      INTEGER NOT NULL,
    from_name   TEXT    NOT NULL,
    from_number INTEGER NOT NULL DEFAULT 0,
    to_name     TEXT    NOT NULL DEFAULT 'All',
    subject     TEXT    NOT NULL,
    posted      REAL    NOT NULL,
    body        TEXT    NOT NULL,
    reply_to    INTEGER NOT NULL DEFAULT 0,
    thread      INTEGER NOT NULL DEFAULT 0,
    msgid       TEXT    NOT NULL UNIQUE,
    deleted     INTEGER NOT NULL DEFAULT 0,
    UNIQUE (sub, number)
);
CREATE INDEX messages_thread ON messages (sub, thread);
CREATE TABLE last_read (
    user_number INTEGER NOT NULL,
    sub         TEXT    NOT NULL COLLATE NOCASE,
    number      INTEGER NOT NULL,
    PRIMARY KEY (user_number, sub)
);
CREATE TABLE sub_high (
    sub         TEXT    PRIMARY KEY COLLATE NOCASE,
    number      INTEGER NOT NULL
);
"""

#: Schema history of data/msgs.db; pass to :class:`bbs.db.Database`.
MSG_MIGRATIONS = (_SCHEMA_1,)


@dataclasses.dataclass(frozen=True)
class Message:
    """One message of a sub. ``posted`` is a Unix time; ``reply_to`` and
    ``thread`` are message numbers in the same sub (0 = none)."""

    sub: str
    number: int
    from_name: str
    to_name: str
    subject: str
    posted: float
    body: str
    reply_to: int = 0
    thread: int = 0
    from_number: int = 0
    msgid: str = ""


_FIELDS = "sub, number, from_name, to_name, subject, posted, body, reply_to, thread, from_number, msgid"


def _clean(value: str, limit: int, what: str, *, required: bool = True) -> str:
    if not isinstance(value, str):
        raise BBSError(Reason.BAD_VALUE, f"{what} must be text")
    value = "".join(ch for ch in value if ch.isprintable()).strip()
    if required and not value:
        raise BBSError(Reason.BAD_VALUE, f"{what} is empty")
    return value[:limit]


class MessageBase:
    """The message store shared by every protocol through the app object.

    ``db`` must be opened with :data:`MSG_MIGRATIONS` before use. All
    methods are coroutines; SQLite work runs in the database's thread.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    async def post(self, sub: str, from_name: str, subject: str, body: str, *,
                   to_name: str = "All", from_number: int = 0, reply_to: int = 0,
                   posted: float | None = None) -> Message:
        """Store a new message in ``sub`` and return it with its number.

        Called when a caller saves a post (never for a half-written one), and
        later by NNTP POST and mail to ``sub:``. ``reply_to`` must be an
        existing message of the same sub; the reply joins its thread.
        Raises ``BAD_VALUE`` (empty subject/sender, body over
        :data:`MAX_BODY`), ``NOT_FOUND`` (reply_to unknown), ``STORAGE``.
        """
        sub = _clean(sub, 64, "sub code")
        from_name = _clean(from_name, LEN_NAME, "sender")
        to_name = _clean(to_name or "All", LEN_NAME, "recipient")
        subject = _clean(subject, LEN_SUBJECT, "subject")
        if not isinstance(body, str):
            raise BBSError(Reason.BAD_VALUE, "body must be text")
        body = body.replace("\r\n", "\n").replace("\r", "\n")
        if len(body.encode("utf-8")) > MAX_BODY:
            raise BBSError(Reason.BAD_VALUE, f"message longer than {MAX_BODY} bytes")
        when = time.time() if posted is None else float(posted)
        msgid = f"<{uuid.uuid4().hex}@msgbase>"

        def insert(conn: sqlite3.Connection) -> Message:
            thread = 0
            if reply_to:
                row = conn.execute("SELECT number, thread FROM messages WHERE sub = ? AND number = ? "
                                   "AND deleted = 0", (sub, reply_to)).fetchone()
                if row is None:
                    raise BBSError(Reason.NOT_FOUND, f"no message {reply_to} in {sub}")
                thread = row[1] or row[0]
            row = conn.execute("SELECT number FROM sub_high WHERE sub = ?", (sub,)).fetchone()
            number = (row[0] if row else 0) + 1
            conn.execute("INSERT INTO sub_high (sub, number) VALUES (?, ?) ON CONFLICT (sub) "
                         "DO UPDATE SET number = excluded.number", (sub, number))
            conn.execute(f"INSERT INTO messages ({_FIELDS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (sub, number, from_name, to_name, subject, when, body, reply_to,
                          thread or number, from_number, msgid))
            return Message(sub, number, from_name, to_name, subject, when, body, reply_to,
                           thread or number, from_number, msgid)

        message = await self.db.run(insert)
        log.info("message %s #%d posted by %s", message.sub, message.number, message.from_name)
        return message

    async def get(self, sub: str, number: int) -> Message:
        """Message ``number`` of ``sub``; raises ``NOT_FOUND``."""
        def select(conn: sqlite3.Connection) -> Message:
            row = conn.execute(f"SELECT {_FIELDS} FROM messages WHERE sub = ? AND number = ? AND deleted = 0",
                               (sub, int(number))).fetchone()
            if row is None:
                raise BBSError(Reason.NOT_FOUND, f"no message {number} in {sub}")
            return Message(*row)
        return await self.db.run(select)

    async def list(self, sub: str, *, after: int = 0, limit: int = 1000) -> list[Message]:
        """Messages of ``sub`` numbered above ``after``, oldest first, at most ``limit``."""
        def select(conn: sqlite3.Connection) -> list[Message]:
            rows = conn.execute(f"SELECT {_FIELDS} FROM messages WHERE sub = ? AND number > ? AND "
                                "deleted = 0 ORDER BY number LIMIT ?", (sub, int(after), int(limit)))
            return [Message(*row) for row in rows]
        return await self.db.run(select)

    async def numbers(self, sub: str) -> list[int]:
        """Every live message number of ``sub``, ascending (for next/prev)."""
        def select(conn: sqlite3.Connection) -> list[int]:
            return [r[0] for r in conn.execute("SELECT number FROM messages WHERE sub = ? AND deleted = 0 "
                                               "ORDER BY number", (sub,))]
        return await self.db.run(select)

    async def stats(self, sub: str, user_number: int = 0) -> tuple[int, int, int]:
        """(messages, highest number, new for ``user_number``) of ``sub``."""
        def select(conn: sqlite3.Connection) -> tuple[int, int, int]:
            count, high = conn.execute("SELECT COUNT(*), COALESCE(MAX(number), 0) FROM messages "
                                       "WHERE sub = ? AND deleted = 0", (sub,)).fetchone()
            pointer = _pointer(conn, user_number, sub)
            new = conn.execute("SELECT COUNT(*) FROM messages WHERE sub = ? AND deleted = 0 AND number > ?",
                               (sub, pointer)).fetchone()[0]
            return count, high, new
        return await self.db.run(select)

    async def thread(self, sub: str, number: int) -> list[Message]:
        """Every message of the thread ``number`` belongs to, in order."""
        first = await self.get(sub, number)

        def select(conn: sqlite3.Connection) -> list[Message]:
            rows = conn.execute(f"SELECT {_FIELDS} FROM messages WHERE sub = ? AND thread = ? AND deleted = 0 "
                                "ORDER BY number", (sub, first.thread or first.number))
            return [Message(*row) for row in rows]
        return await self.db.run(select)

    async def search(self, sub: str, text: str, *, limit: int = 200) -> list[Message]:
        """Messages of ``sub`` whose subject, sender or body contains ``text``
        (case-insensitive), oldest first."""
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"

        def select(conn: sqlite3.Connection) -> list[Message]:
            rows = conn.execute(f"SELECT {_FIELDS} FROM messages WHERE sub = ? AND deleted = 0 AND "
                                "(subject LIKE ? ESCAPE '\\' OR body LIKE ? ESCAPE '\\' OR "
                                "from_name LIKE ? ESCAPE '\\') ORDER BY number LIMIT ?",
                                (sub, pattern, pattern, pattern, int(limit)))
            return [Message(*row) for row in rows]
        return await self.db.run(select)

    async def delete(self, sub: str, number: int) -> None:
        """Mark a message deleted (its number is not reused); raises ``NOT_FOUND``."""
        def update(conn: sqlite3.Connection) -> None:
            if conn.execute("UPDATE messages SET deleted = 1 WHERE sub = ? AND number = ? AND deleted = 0",
                            (sub, int(number))).rowcount == 0:
                raise BBSError(Reason.NOT_FOUND, f"no message {number} in {sub}")
        await self.db.run(update)

    async def last_read(self, user_number: int, sub: str) -> int:
        """The user's last-read pointer in ``sub`` (0 = nothing read)."""
        return await self.db.run(_pointer, user_number, sub)

    async def set_last_read(self, user_number: int, sub: str, number: int, *, only_forward: bool = True) -> None:
        """Move the user's pointer in ``sub`` to ``number`` (by default only
        forward, so reading an old message does not make later ones new again)."""
        def update(conn: sqlite3.Connection) -> None:
            current = _pointer(conn, user_number, sub)
            if only_forward and number <= current:
                return
            conn.execute("INSERT INTO last_read (user_number, sub, number) VALUES (?, ?, ?) "
                         "ON CONFLICT (user_number, sub) DO UPDATE SET number = excluded.number",
                         (int(user_number), sub, int(number)))
        await self.db.run(update)



    async def by_msgid(self, msgid: str) -> Message:
        """The message whose Message-ID is ``msgid`` (NNTP ARTICLE <id>, References);
        raises ``NOT_FOUND``."""
        def select(conn: sqlite3.Connection) -> Message:
            row = conn.execute(f"SELECT {_FIELDS} FROM messages WHERE msgid = ? AND deleted = 0",
                               (msgid,)).fetchone()
            if row is None:
                raise BBSError(Reason.NOT_FOUND, f"no message {msgid}")
            return Message(*row)
        return await self.db.run(select)

    async def since(self, sub: str, when: float, *, limit: int = 5000) -> list[Message]:
        """Messages of ``sub`` posted at or after ``when`` (NNTP NEWNEWS), oldest first."""
        def select(conn: sqlite3.Connection) -> list[Message]:
            rows = conn.execute(f"SELECT {_FIELDS} FROM messages WHERE sub = ? AND posted >= ? AND "
                                "deleted = 0 ORDER BY number LIMIT ?", (sub, float(when), int(limit)))
            return [Message(*row) for row in rows]
        return await self.db.run(select)

def _pointer(conn: sqlite3.Connection, user_number: int, sub: str) -> int:
    row = conn.execute("SELECT number FROM last_read WHERE user_number = ? AND sub = ?",
                       (int(user_number), sub)).fetchone()
    return row[0] if row else 0
