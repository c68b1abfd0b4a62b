"""`bbs mail queue` and `bbs mail clear-transit` on a real queue."""
from __future__ import annotations

import asyncio
import re
from pathlib import Path

from bbs.mailbox import MailStore
from tests.support import run_bbs


def queue_two(root: Path) -> None:
    async def main():
        store = MailStore(root / "data" / "mail.db")
        await store.open()
        first = await store.enqueue("alice@bbs.test", ["bob@example.org"], b"Subject: a\r\n\r\nx\r\n")
        await store.enqueue("carol@bbs.test", ["dave@example.net", "erin@example.net"], b"Subject: b\r\n\r\ny\r\n")
        assert await store.claim(first)                      # as if a crash left it in transit
        await store.close()
    asyncio.run(main())


def test_queue_listing_and_clearing_in_transit(instance: Path):
    assert run_bbs("mail", "queue", "-d", str(instance)).stdout == "The outbound mail queue is empty.\n"
    queue_two(instance)
    listing = run_bbs("mail", "queue", "-d", str(instance))
    assert listing.returncode == 0
    lines = listing.stdout.splitlines()
    assert re.match(r"\s+1\s+alice@bbs.test\s+bob@example.org\s+0\s+\S+ \S+\s+in transit", lines[1])
    assert re.match(r"\s+2\s+carol@bbs.test\s+dave@example.net, erin@exam", lines[2])
    assert "in transit" not in lines[2] and lines[-1] == "2 message(s) queued."
    cleared = run_bbs("mail", "clear-transit", "-d", str(instance))
    assert cleared.stdout == "cleared the in-transit flag of 1 message(s)\n"
    assert "in transit" not in run_bbs("mail", "queue", "-d", str(instance)).stdout
