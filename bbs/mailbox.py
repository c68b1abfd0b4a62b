"""E-mail boxes and the outbound Internet mail queue (``data/mail.db``).

One :class:`MailStore` per instance holds

* **mailboxes**: messages per user number, stored as raw RFC 5322 bytes with
  the envelope (``sender``, ``recipient``) and the header fields readers show
  (``from_``, ``to``, ``subject``) copied into columns, and the flags
  ``read``, ``deleted`` and ``spam``. The SMTP server, the POP3 server and the
  terminal server's e-mail reader all use it;
* **the outbound queue**: Internet mail waiting for the SendMail task, with
  its recipients, attempt count, last error, next try time and the
  ``in_transit`` flag (Synchronet's protection against two senders
  delivering one message).

Durability: every call is one SQLite transaction in WAL mode with
``synchronous=FULL`` (see :mod:`bbs.db`); when a storing coroutine returns,
the message is on disk and fsynced. A crash (``kill -9``) before the commit
leaves nothing visible: a message is either wholly there or absent. Protocols
may therefore acknowledge a message (SMTP ``250``) as soon as
:meth:`MailStore.deliver` or :meth:`MailStore.enqueue` has returned.

API (all ``async``; each raises ``BBSError(STORAGE)`` on disk errors)::

    store = MailStore(instance.data / "mail.db")
    await store.open()                                     # once; idempotent
    ids = await store.deliver([3, 7], raw, sender="a@b", recipient="sysop")
    done = await store.accept(raw, sender="a@b", users=[3], remote=["x@example.org"],
                              network=["qwk:rob@VERT"])        # Accepted(ids, queued, network)
    await store.count(3)                                   # live messages
    for info in await store.list(3, include_spam=False):   # MessageInfo, oldest first
        raw = await store.read(3, info.id)                 # bytes; marks nothing
    raws = await store.read_many(3, [1, 2])                # {id: bytes}, one query
    await store.mark_read(3, [info.id])
    await store.delete(3, [info.id])                       # sets the deleted flag
    qid = await store.enqueue("a@b", ["x@example.org"], raw, from_user=3)
    for item in await store.due(now):                      # QueuedMail ready to try
        if await store.claim(item.id): ...                 # in_transit = 1
        await store.retry_later(item.id, "451 busy", next_try)  # or .sent(item.id)
    await store.close()

Errors: ``NOT_FOUND`` for a message that is not the user's (or is deleted),
``BAD_VALUE`` for empty recipient lists or a non-positive user number.
"""
from __future__ import annotations

import asyncio
import dataclasses
import email.header
import email.parser
import email.policy
import json
import logging
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from bbs.db import Database, Migration
from bbs.errors import BBSError, Reason

__all__ = ["MAIL_MIGRATIONS", "Accepted", "MailStore", "MessageInfo", "QueuedMail", "header_block",
           "header_fields"]

log = logging.getLogger(__name__)

#: Most ids one :meth:`MailStore.read_many` takes (SQLite's default limit of
#: host parameters in a statement is 999 on older builds; one is the user).
READ_MANY_LIMIT = 500
#: Longest header value copied into the ``from_``/``to``/``subject`` columns
#: (Synchronet's smb ``LEN_TITLE`` is 70; we keep more and let screens cut).
HEADER_COLUMN_LIMIT = 256

_SCHEMA_1 = """
CREATE TABLE messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user        INTEGER NOT NULL,
    received    REAL    NOT NULL,
    sender      TEXT    NOT NULL DEFAULT '',
    recipient   TEXT    NOT NULL DEFAULT '',
    from_       TEXT    NOT NULL DEFAULT '',
    to_         TEXT    NOT NULL DEFAULT '',
    subject     TEXT    NOT NULL DEFAULT '',
    size        INTEGER NOT NULL,
    raw         BLOB    NOT NULL,
    read        INTEGER NOT NULL DEFAULT 0 CHECK (read IN (0, 1)),
    deleted     INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
    spam        INTEGER NOT NULL DEFAULT 0 CHECK (spam IN (0, 1)),
    from_user   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX messages_user ON messages (user, deleted, id);
CREATE TABLE outbound (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    created     REAL    NOT NULL,
    sender      TEXT    NOT NULL,
    recipients  TEXT    NOT NULL,
    raw         BLOB    NOT NULL,
    from_user   INTEGER NOT NULL DEFAULT 0,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT    NOT NULL DEFAULT '',
    next_try    REAL    NOT NULL,
    in_transit  INTEGER NOT NULL DEFAULT 0 CHECK (in_transit IN (0, 1))
);
CREATE INDEX outbound_next ON outbound (next_try);
"""

#: Schema history of ``data/mail.db``; pass to :class:`bbs.db.Database`.
MAIL_MIGRATIONS: tuple[Migration, ...] = (_SCHEMA_1,)


@dataclasses.dataclass(frozen=True)
class MessageInfo:
    """One mailbox message without its bytes (for lists and POP3 STAT/LIST)."""

    id: int
    user: int
    received: float
    sender: str
    recipient: str
    from_: str
    to: str
    subject: str
    size: int
    read: bool
    spam: bool
    from_user: int


@dataclasses.dataclass(frozen=True)
class Accepted:
    """What :meth:`MailStore.accept` stored: mailbox message ids (one per
    user), the Internet queue id (``remote``) and the queue id of the
    network mail (``qwk:``/``fidonet:`` recipients that wait for a hub);
    a queue id is None when there were no such recipients."""

    ids: list[int]
    queued: int | None = None
    network: int | None = None


@dataclasses.dataclass(frozen=True)
class QueuedMail:
    """One outbound message waiting for SendMail (raw bytes included)."""

    id: int
    created: float
    sender: str
    recipients: tuple[str, ...]
    raw: bytes
    from_user: int
    attempts: int
    last_error: str
    next_try: float
    in_transit: bool


_HEADER_PARSER = email.parser.BytesHeaderParser(policy=email.policy.compat32)


def _clean(value: object) -> str:
    text = str(value or "")
    text = " ".join(text.split())  # unfold, drop control white-space
    return "".join(c for c in text if c >= " ")[:HEADER_COLUMN_LIMIT]


def header_block(raw: bytes) -> bytes:
    """The header section of message ``raw``, up to and including the empty
    line that ends it (all of ``raw`` when there is none). Header parsers get
    only this: ``email``'s parsers read the whole body even for headers."""
    ends = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    if not ends:
        return raw
    end = min(ends)
    return raw[:end + (4 if raw.startswith(b"\r\n\r\n", end) else 2)]


def header_fields(raw: bytes) -> tuple[str, str, str]:
    """Return (From, To, Subject) of a raw message, decoded (RFC 2047) and
    cleaned for display; missing fields are ''. Never raises."""
    try:
        headers = _HEADER_PARSER.parsebytes(header_block(raw))
    except Exception:  # a malformed message is still stored
        return "", "", ""
    result = []
    for name in ("From", "To", "Subject"):
        value = headers.get(name, "")
        try:
            parts = email.header.decode_header(str(value))
            value = str(email.header.make_header(parts))
        except Exception:
            pass
        result.append(_clean(value))
    return result[0], result[1], result[2]


_INFO_COLUMNS = "id, user, received, sender, recipient, from_, to_, subject, size, read, spam, from_user"
_QUEUE_COLUMNS = ("id, created, sender, recipients, raw, from_user, attempts, last_error, "
                  "next_try, in_transit")


def _info(row: tuple) -> MessageInfo:
    (mid, user, received, sender, recipient, from_, to, subject, size, read, spam, from_user) = row
    return MessageInfo(mid, user, received, sender, recipient, from_, to, subject, size,
                       bool(read), bool(spam), from_user)


def _queued(row: tuple) -> QueuedMail:
    (qid, created, sender, recipients, raw, from_user, attempts, last_error, next_try,
     in_transit) = row
    return QueuedMail(qid, created, sender, tuple(json.loads(recipients)), bytes(raw), from_user,
                      attempts, last_error, next_try, bool(in_transit))


def _check_user(number: object) -> int:
    if isinstance(number, bool) or not isinstance(number, int) or number <= 0:
        raise BBSError(Reason.BAD_VALUE, f"invalid user number {number!r}")
    return number


# ---------------------------------------------------------------- queries
# Each runs in the database worker thread inside one transaction.


def _q_deliver(conn: sqlite3.Connection, users: Sequence[int], raw: bytes, sender: str,
               recipient: str, spam: bool, from_user: int, now: float) -> list[int]:
    from_, to, subject = header_fields(raw)
    ids = []
    for user in users:
        cur = conn.execute(
            "INSERT INTO messages (user, received, sender, recipient, from_, to_, subject, size,"
            " raw, spam, from_user) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (user, now, sender, recipient, from_, to, subject, len(raw), raw, int(spam), from_user))
        ids.append(int(cur.lastrowid))
    return ids


def _q_accept(conn: sqlite3.Connection, raw: bytes, sender: str, users: Sequence[int],
              recipient: str, remote: list[str], network: list[str], spam: bool, from_user: int,
              now: float) -> Accepted:
    # One job, so one savepoint of one group-commit transaction: any failure
    # below undoes the mailbox rows and the queue rows together.
    ids = _q_deliver(conn, users, raw, sender, recipient, spam, from_user, now) if users else []
    queued = _q_enqueue(conn, sender, remote, raw, from_user, now) if remote else None
    held = _q_enqueue(conn, sender, network, raw, from_user, now) if network else None
    return Accepted(ids, queued, held)


def _q_list(conn: sqlite3.Connection, user: int, include_spam: bool) -> list[MessageInfo]:
    spam = "" if include_spam else " AND spam = 0"
    rows = conn.execute(f"SELECT {_INFO_COLUMNS} FROM messages WHERE user = ? AND deleted = 0"
                        f"{spam} ORDER BY id", (user,)).fetchall()
    return [_info(r) for r in rows]


def _q_count(conn: sqlite3.Connection, user: int) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM messages WHERE user = ? AND deleted = 0",
                            (user,)).fetchone()[0])


def _q_read(conn: sqlite3.Connection, user: int, mid: int) -> bytes:
    row = conn.execute("SELECT raw FROM messages WHERE id = ? AND user = ? AND deleted = 0",
                       (mid, user)).fetchone()
    if row is None:
        raise BBSError(Reason.NOT_FOUND, f"no message {mid} for user #{user}")
    return bytes(row[0])


def _q_read_many(conn: sqlite3.Connection, user: int, ids: Sequence[int]) -> dict[int, bytes]:
    marks = ",".join("?" * len(ids))
    rows = conn.execute(f"SELECT id, raw FROM messages WHERE user = ? AND deleted = 0 AND id IN ({marks})",
                        (user, *ids)).fetchall()
    return {int(mid): bytes(raw) for mid, raw in rows}


def _q_set_flag(conn: sqlite3.Connection, user: int, ids: Sequence[int], column: str) -> int:
    changed = 0
    for mid in ids:
        if column == "deleted":  # the bytes go at once; the row keeps the flag
            cur = conn.execute("UPDATE messages SET deleted = 1, raw = x'' WHERE id = ? AND user = ?"
                               " AND deleted = 0", (mid, user))
        else:
            cur = conn.execute(f"UPDATE messages SET {column} = 1 WHERE id = ? AND user = ?",
                               (mid, user))
        changed += cur.rowcount
    return changed


def _q_enqueue(conn: sqlite3.Connection, sender: str, recipients: list[str], raw: bytes,
               from_user: int, now: float) -> int:
    cur = conn.execute("INSERT INTO outbound (created, sender, recipients, raw, from_user, next_try)"
                       " VALUES (?,?,?,?,?,?)", (now, sender, json.dumps(recipients), raw, from_user, now))
    return int(cur.lastrowid)


def _q_due(conn: sqlite3.Connection, now: float, include_in_transit: bool) -> list[QueuedMail]:
    transit = "" if include_in_transit else " AND in_transit = 0"
    rows = conn.execute(f"SELECT {_QUEUE_COLUMNS} FROM outbound WHERE next_try <= ?{transit}"
                        " ORDER BY next_try, id", (now,)).fetchall()
    return [_queued(r) for r in rows]


def _q_outbound(conn: sqlite3.Connection) -> list[QueuedMail]:
    rows = conn.execute(f"SELECT {_QUEUE_COLUMNS} FROM outbound ORDER BY id").fetchall()
    return [_queued(r) for r in rows]


def _q_claim(conn: sqlite3.Connection, qid: int, force: bool) -> bool:
    cond = "" if force else " AND in_transit = 0"
    return conn.execute(f"UPDATE outbound SET in_transit = 1 WHERE id = ?{cond}", (qid,)).rowcount == 1


def _q_retry(conn: sqlite3.Connection, qid: int, error: str, next_try: float,
             recipients: list[str] | None) -> int:
    if recipients is not None:
        conn.execute("UPDATE outbound SET recipients = ? WHERE id = ?", (json.dumps(recipients), qid))
    cur = conn.execute("UPDATE outbound SET attempts = attempts + 1, last_error = ?, next_try = ?,"
                       " in_transit = 0 WHERE id = ?", (error, next_try, qid))
    if cur.rowcount != 1:
        raise BBSError(Reason.NOT_FOUND, f"no queued message {qid}")
    return int(conn.execute("SELECT attempts FROM outbound WHERE id = ?", (qid,)).fetchone()[0])


def _q_remove(conn: sqlite3.Connection, qid: int) -> bool:
    return conn.execute("DELETE FROM outbound WHERE id = ?", (qid,)).rowcount == 1


def _q_clear_transit(conn: sqlite3.Connection) -> int:
    return conn.execute("UPDATE outbound SET in_transit = 0 WHERE in_transit = 1").rowcount


class MailStore:
    """The mailboxes and outbound queue of one instance (``data/mail.db``).

    Built by the composition root (or a server that owns it) and shared by
    every server. Safe to call from many tasks at once: work is serialised on
    the database's worker thread.
    """

    def __init__(self, path: Path) -> None:
        self.db = Database(path, MAIL_MIGRATIONS, name="mail")
        self._opening = asyncio.Lock()

    async def open(self) -> None:
        """Open (and migrate) the database; repeated calls do nothing.

        Every other method calls it first, so a server may use the store
        before anyone opened it explicitly.
        """
        if self.db.is_open:
            return
        async with self._opening:
            await self.db.open()

    async def close(self) -> None:
        """Finish queued work and close the file (at shutdown)."""
        await self.db.close()

    async def _run(self, fn, *args):
        if not self.db.is_open:
            await self.open()
        return await self.db.run(fn, *args)

    # ------------------------------------------------------------ mailboxes

    async def deliver(self, users: Iterable[int], raw: bytes, *, sender: str = "",
                      recipient: str = "", spam: bool = False, from_user: int = 0) -> list[int]:
        """Store ``raw`` in each of ``users``' mailboxes, all or none.

        Called by SMTP after DATA (once per message, with every local
        recipient) and by the terminal server when a caller sends e-mail.
        ``sender`` is the envelope sender (``MAIL FROM``, '' for bounces),
        ``recipient`` the address as given, ``spam`` tags the message (POP3
        ``#nospam`` hides it), ``from_user`` the sending user's number (0 for
        Internet mail). Returns the new message ids, one per user, after the
        transaction is durable. Raises ``BAD_VALUE`` for no users or a bad
        number, ``STORAGE``.
        """
        numbers = [_check_user(u) for u in users]
        if not numbers:
            raise BBSError(Reason.BAD_VALUE, "no recipients")
        return await self._run(_q_deliver, numbers, bytes(raw), sender, recipient, spam,
                               from_user, time.time())

    async def accept(self, raw: bytes, *, sender: str, users: Iterable[int] = (),
                     remote: Iterable[str] = (), network: Iterable[str] = (), recipient: str = "",
                     spam: bool = False, from_user: int = 0) -> Accepted:
        """Store one received message for local ``users``, queue it for
        ``remote`` Internet addresses and hold it for ``network`` recipients
        (``qwk:``/``fidonet:``, queued apart so SendMail skips them), all in
        ONE transaction: every part is stored or none, with one fsync.

        Called by SMTP after DATA: a 250 may follow as soon as this returns.
        Returns the :class:`Accepted` ids. Raises ``BAD_VALUE`` when every
        list is empty or a number is bad, ``STORAGE`` (nothing stored).
        """
        numbers = [_check_user(u) for u in users]
        targets = [str(r) for r in remote]
        held = [str(r) for r in network]
        if not numbers and not targets and not held:
            raise BBSError(Reason.BAD_VALUE, "no recipients")
        return await self._run(_q_accept, bytes(raw), sender, numbers, recipient, targets, held,
                               spam, from_user, time.time())

    async def list(self, user: int, *, include_spam: bool = True) -> list[MessageInfo]:
        """The live (not deleted) messages of ``user``, oldest first."""
        return await self._run(_q_list, _check_user(user), include_spam)

    async def count(self, user: int) -> int:
        """How many live messages ``user`` has (MaxMsgsWaiting checks)."""
        return await self._run(_q_count, _check_user(user))

    async def read(self, user: int, message_id: int) -> bytes:
        """The raw bytes of ``user``'s live message ``message_id``.

        Raises ``NOT_FOUND`` when it is not that user's or was deleted.
        """
        return await self._run(_q_read, _check_user(user), message_id)

    async def read_many(self, user: int, message_ids: Iterable[int]) -> dict[int, bytes]:
        """The raw bytes of several of ``user``'s live messages in one query
        (POP3 reads ahead with it), by id; ids that are not the user's or
        were deleted are left out. At most :data:`READ_MANY_LIMIT` ids."""
        ids = [int(m) for m in message_ids]
        if len(ids) > READ_MANY_LIMIT:
            raise BBSError(Reason.BAD_VALUE, f"{len(ids)} ids (at most {READ_MANY_LIMIT})")
        if not ids:
            return {}
        return await self._run(_q_read_many, _check_user(user), ids)

    async def mark_read(self, user: int, ids: Iterable[int]) -> int:
        """Set the read flag on ``user``'s messages; returns how many matched."""
        return await self._run(_q_set_flag, _check_user(user), list(ids), "read")

    async def delete(self, user: int, ids: Iterable[int]) -> int:
        """Mark ``user``'s messages deleted (their bytes are dropped at once).

        Called by POP3 at QUIT (RFC 1939 UPDATE state) and by the e-mail
        reader. Returns how many were deleted now (already deleted ones and
        other users' ids are skipped).
        """
        return await self._run(_q_set_flag, _check_user(user), list(ids), "deleted")

    # ------------------------------------------------------- outbound queue

    async def enqueue(self, sender: str, recipients: Iterable[str], raw: bytes, *,
                      from_user: int = 0) -> int:
        """Queue ``raw`` for Internet delivery to ``recipients`` by SendMail.

        Called by SMTP for relayed and forwarded mail and by the terminal
        server for Internet e-mail. Due at once. Returns the queue id once
        durable. Raises ``BAD_VALUE`` for no recipients, ``STORAGE``.
        """
        targets = [str(r) for r in recipients]
        if not targets:
            raise BBSError(Reason.BAD_VALUE, "no recipients")
        return await self._run(_q_enqueue, sender, targets, bytes(raw), from_user, time.time())

    async def outbound(self) -> list[QueuedMail]:
        """Every queued message (the console's mail queue view)."""
        return await self._run(_q_outbound)

    async def due(self, now: float | None = None, *, include_in_transit: bool = False) -> list[QueuedMail]:
        """Queued messages whose next try is due, not in transit unless
        ``include_in_transit`` (Synchronet ``SEND_INTRANSIT``)."""
        return await self._run(_q_due, time.time() if now is None else now, include_in_transit)

    async def claim(self, queue_id: int, *, force: bool = False) -> bool:
        """Set ``in_transit`` before a delivery attempt; False when another
        sender holds it (unless ``force``) or it is gone."""
        return await self._run(_q_claim, queue_id, force)

    async def retry_later(self, queue_id: int, error: str, next_try: float, *,
                          recipients: Iterable[str] | None = None) -> int:
        """Record a failed attempt: counts it, keeps ``error``, clears
        ``in_transit`` and sets the next try (optionally narrowing the
        recipients to those still pending). Returns the attempt count."""
        remaining = list(recipients) if recipients is not None else None
        return await self._run(_q_retry, queue_id, error, next_try, remaining)

    async def sent(self, queue_id: int) -> bool:
        """Remove a delivered (or bounced) message from the queue."""
        return await self._run(_q_remove, queue_id)

    async def clear_in_transit(self) -> int:
        """Clear every ``in_transit`` flag (a single SendMail at start-up)."""
        return await self._run(_q_clear_transit)
