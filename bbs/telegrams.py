"""Telegrams: short messages to a user, shown at once on the user's node(s)
and kept until read (Synchronet's telegrams / node messages).

Anything may send one (a caller on another node, an MSP message from another
BBS, the mail server's new-mail notice); each send is stored in
``data/telegram.db`` and published as :class:`~bbs.events.TelegramSent`.
"""
from __future__ import annotations

import dataclasses
import sqlite3
import time

from bbs.db import Database
from bbs.errors import BBSError, Reason
from bbs.events import EventBus, TelegramSent

#: Longest telegram text kept (Synchronet limits node messages to a screenful).
MAX_TELEGRAM = 1024

TELEGRAM_MIGRATIONS = (
    """
    CREATE TABLE telegrams (
        id INTEGER PRIMARY KEY,
        to_number INTEGER NOT NULL,
        sender TEXT NOT NULL,
        text TEXT NOT NULL,
        sent REAL NOT NULL,
        read REAL
    );
    CREATE INDEX telegrams_unread ON telegrams (to_number) WHERE read IS NULL;
    """,
)


@dataclasses.dataclass(frozen=True)
class Telegram:
    id: int
    to_number: int
    sender: str
    text: str
    sent: float


class TelegramStore:
    """Stores telegrams and announces them on the bus."""

    def __init__(self, db: Database, bus: EventBus) -> None:
        self.db = db
        self.bus = bus

    async def send(self, to_number: int, to_alias: str, sender: str, text: str) -> Telegram:
        """Store a telegram for user ``to_number`` and publish it.

        Control characters other than CR/LF are dropped; raises BBSError
        BAD_VALUE for an empty or over-long text (MAX_TELEGRAM).
        """
        text = "".join(ch for ch in text if ch in "\r\n" or ch.isprintable())
        if not text.strip():
            raise BBSError(Reason.BAD_VALUE, "empty telegram")
        if len(text) > MAX_TELEGRAM:
            raise BBSError(Reason.BAD_VALUE, f"telegram longer than {MAX_TELEGRAM} characters")
        now = time.time()

        def insert(conn: sqlite3.Connection) -> int:
            return conn.execute("INSERT INTO telegrams (to_number, sender, text, sent) VALUES (?, ?, ?, ?)",
                                (to_number, sender, text, now)).lastrowid

        telegram = Telegram(await self.db.run(insert), to_number, sender, text, now)
        self.bus.publish(TelegramSent(telegram.id, to_number, to_alias, sender, text))
        return telegram

    async def unread(self, to_number: int) -> list[Telegram]:
        """Telegrams of ``to_number`` not yet marked read, oldest first."""
        def select(conn: sqlite3.Connection) -> list[Telegram]:
            rows = conn.execute("SELECT id, to_number, sender, text, sent FROM telegrams "
                                "WHERE to_number = ? AND read IS NULL ORDER BY id", (to_number,))
            return [Telegram(*row) for row in rows]
        return await self.db.run(select)

    async def mark_read(self, ids: list[int]) -> None:
        """Mark telegrams read (shown to the user)."""
        now = time.time()
        await self.db.run(lambda conn: conn.executemany(
            "UPDATE telegrams SET read = ? WHERE id = ?", [(now, i) for i in ids]))
