"""ftp.ledger against real user and file bases on temporary SQLite files:
every write is stored, the sessions' futures are done only after that, and
writes handed in together share one job per database."""
from __future__ import annotations

import asyncio

from bbs.db import Database
from bbs.filebase import FileBase
from bbs.users import USER_MIGRATIONS, UserBase
from ftp.ledger import Ledger

SECRET = "Sw0rdf1sh-Qx7"


class Counting:
    """A base whose batch calls are counted (the calls go to the real base)."""

    def __init__(self, base, method: str) -> None:
        self.base, self.method, self.calls = base, method, 0

    def __getattr__(self, name):
        if name == self.method:
            self.calls += 1
        return getattr(self.base, name)


def test_writes_of_many_sessions_are_stored_in_few_jobs(tmp_path):
    async def main() -> None:
        db = Database(tmp_path / "user.db", USER_MIGRATIONS, name="user")
        await db.open()
        files = FileBase(tmp_path / "file.db")
        await files.open()
        try:
            users = UserBase(db)
            for name in ("Alice", "Bob"):
                await users.add(name, SECRET)
            await files.add("TEXT", "a.txt", 10)
            counted_users = Counting(users, "record_activity")
            counted_files = Counting(files, "count_downloads")
            ledger = Ledger(counted_users, counted_files)
            writes = []
            for i in range(100):                        # 100 sessions at once
                number = 1 + i % 2
                writes.append(ledger.logon(number))
                writes.append(ledger.download(number, 10, "TEXT", "a.txt"))
            writes.append(ledger.credit(2, uploads=1, upload_bytes=5))
            writes.append(ledger.download(1, 7, "TEXT", None))   # a file the base does not list
            assert not any(w.done() for w in writes)
            await asyncio.wait_for(asyncio.gather(*writes), 10)
            assert counted_users.calls <= 2 and counted_files.calls <= 2
            alice, bob = await users.get(1), await users.get(2)
            assert (alice.logons, alice.downloads, alice.download_bytes) == (50, 51, 507)
            assert (bob.logons, bob.downloads, bob.uploads, bob.upload_bytes) == (50, 50, 1, 5)
            assert (await files.get("TEXT", "a.txt")).downloads == 100
            # a lone write later is stored at once, in its own job
            await asyncio.wait_for(ledger.logon(1), 10)
            assert (await users.get(1)).logons == 51
        finally:
            await files.close()
            await db.close()
    asyncio.run(main())


def test_a_failed_job_is_logged_and_releases_its_waiters(tmp_path, caplog):
    async def main() -> None:
        db = Database(tmp_path / "user.db", USER_MIGRATIONS, name="user")
        await db.open()
        files = FileBase(tmp_path / "file.db")
        await files.open()
        await files.close()                                  # the file base is closed: its job fails
        try:
            users = UserBase(db)
            await users.add("Alice", SECRET)
            ledger = Ledger(users, files)
            await asyncio.wait_for(ledger.download(1, 10, "TEXT", "a.txt"), 10)
            assert (await users.get(1)).downloads == 1       # the user part was stored
        finally:
            await db.close()
    asyncio.run(main())
    assert "FTP statistics of 1 writes could not be stored" in caplog.text
