"""Unit tests for bbs.db: real SQLite files in tmp_path, no event-loop plugin."""
from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from bbs.db import Database
from bbs.errors import BBSError, Reason

SCHEMA_1 = "CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL);"


def add_column(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE t ADD COLUMN extra TEXT NOT NULL DEFAULT ''")


MIGRATIONS = (SCHEMA_1, add_column)


def db_path(tmp_path: Path) -> Path:
    return tmp_path / "instance" / "data" / "test.db"


def insert(conn: sqlite3.Connection, key: str, value: int) -> None:
    conn.execute("INSERT INTO t (k, v) VALUES (?, ?)", (key, value))


def read_all(conn: sqlite3.Connection) -> list[tuple[str, int]]:
    return conn.execute("SELECT k, v FROM t ORDER BY k").fetchall()


def raw_rows(path: Path) -> list[tuple[str, int]]:
    """Read the table with a separate plain connection (as another process would)."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT k, v FROM t ORDER BY k").fetchall()
    finally:
        conn.close()


def test_open_from_empty_data_dir_migrates_and_sets_pragmas(tmp_path: Path) -> None:
    async def go() -> tuple[object, ...]:
        db = Database(db_path(tmp_path), MIGRATIONS, name="test")
        assert db.version == 0
        await db.open()
        try:
            pragmas = await db.run(lambda c: tuple(
                c.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("journal_mode", "synchronous", "foreign_keys",
                             "busy_timeout", "user_version")))
            columns = await db.run(lambda c: [r[1] for r in c.execute("PRAGMA table_info(t)")])
            return (db.version, pragmas, columns)
        finally:
            await db.close()

    version, pragmas, columns = asyncio.run(go())
    assert db_path(tmp_path).is_file()
    assert version == 2
    assert pragmas == ("wal", 2, 1, 5000, 2)  # synchronous 2 = FULL
    assert columns == ["k", "v", "extra"]


def test_reopen_does_not_rerun_migrations_and_applies_new_ones(tmp_path: Path) -> None:
    calls: list[str] = []

    def step_one(conn: sqlite3.Connection) -> None:
        calls.append("one")
        conn.execute(SCHEMA_1)

    def step_two(conn: sqlite3.Connection) -> None:
        calls.append("two")
        add_column(conn)

    path = db_path(tmp_path)
    db = Database(path, [step_one])
    db.open_sync()
    db.run_sync(insert, "a", 1)
    db.close_sync()
    db = Database(path, [step_one])
    db.open_sync()
    db.close_sync()
    assert calls == ["one"]

    db = Database(path, [step_one, step_two])
    db.open_sync()
    try:
        assert db.version == 2
        assert db.run_sync(read_all) == [("a", 1)]
    finally:
        db.close_sync()
    assert calls == ["one", "two"]


def test_concurrent_first_open_migrates_once(tmp_path: Path) -> None:
    """A CLI command and the server opening a fresh file at the same time."""
    path = db_path(tmp_path)
    started = threading.Event()
    calls: list[int] = []

    def slow_schema(conn: sqlite3.Connection) -> None:
        calls.append(threading.get_ident())
        started.set()
        time.sleep(0.3)  # the other process reads version 0 meanwhile
        conn.execute(SCHEMA_1)

    first = Database(path, [slow_schema], name="first")
    second = Database(path, [slow_schema], name="second")
    opener = threading.Thread(target=first.open_sync)
    opener.start()
    try:
        assert started.wait(5)
        second.open_sync()  # waits for the first one's transaction, then skips
    finally:
        opener.join()
    try:
        assert len(calls) == 1
        assert first.version == second.version == 1
    finally:
        first.close_sync()
        second.close_sync()


def test_newer_schema_on_disk_is_refused(tmp_path: Path) -> None:
    path = db_path(tmp_path)
    path.parent.mkdir(parents=True)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 5")
    conn.close()
    threads_before = threading.active_count()

    async def go() -> None:
        db = Database(path, MIGRATIONS, name="test")
        with pytest.raises(BBSError) as info:
            await db.open()
        assert info.value.reason is Reason.STORAGE
        assert "schema version 5 is newer than this program (2)" in str(info.value)
        assert not db.is_open
        with pytest.raises(BBSError) as info:
            await db.run(read_all)
        assert info.value.reason is Reason.STORAGE

    asyncio.run(go())
    assert threading.active_count() == threads_before  # worker thread stopped
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 5  # untouched
    conn.close()


def test_run_commits_and_data_survives_reopen(tmp_path: Path) -> None:
    path = db_path(tmp_path)

    async def write() -> int:
        db = Database(path, MIGRATIONS)
        await db.open()
        try:
            await db.run(insert, "a", 1)
            return await db.run(lambda c: c.execute("SELECT v FROM t WHERE k='a'").fetchone()[0])
        finally:
            await db.close()

    assert asyncio.run(write()) == 1
    assert raw_rows(path) == [("a", 1)]

    async def read() -> list[tuple[str, int]]:
        db = Database(path, MIGRATIONS)
        await db.open()
        try:
            return await db.run(read_all)
        finally:
            await db.close()

    assert asyncio.run(read()) == [("a", 1)]


def test_run_rolls_back_when_fn_raises(tmp_path: Path) -> None:
    path = db_path(tmp_path)

    def insert_then_fail(conn: sqlite3.Connection) -> None:
        insert(conn, "lost", 1)
        raise ValueError("boom")

    def insert_then_refuse(conn: sqlite3.Connection) -> None:
        insert(conn, "lost2", 2)
        raise BBSError(Reason.LIMIT, "quota")

    async def go() -> list[tuple[str, int]]:
        db = Database(path, MIGRATIONS)
        await db.open()
        try:
            await db.run(insert, "kept", 0)
            with pytest.raises(ValueError, match="boom"):
                await db.run(insert_then_fail)
            with pytest.raises(BBSError) as info:
                await db.run(insert_then_refuse)
            assert info.value.reason is Reason.LIMIT  # passes through unchanged
            return await db.run(read_all)
        finally:
            await db.close()

    assert asyncio.run(go()) == [("kept", 0)]
    assert raw_rows(path) == [("kept", 0)]


def test_sqlite_errors_become_storage_errors(tmp_path: Path) -> None:
    async def go() -> None:
        db = Database(db_path(tmp_path), MIGRATIONS, name="test")
        await db.open()
        try:
            with pytest.raises(BBSError) as info:
                await db.run(lambda c: c.execute("SELECT * FROM missing").fetchall())
            assert info.value.reason is Reason.STORAGE
            assert "missing" in info.value.detail
            assert isinstance(info.value.__cause__, sqlite3.OperationalError)
            await db.run(insert, "a", 1)
            with pytest.raises(BBSError) as info:
                await db.run(insert, "a", 2)  # primary key
            assert isinstance(info.value.__cause__, sqlite3.IntegrityError)
            assert await db.run(read_all) == [("a", 1)]
        finally:
            await db.close()

    asyncio.run(go())


def test_failed_migration_leaves_previous_version(tmp_path: Path) -> None:
    path = db_path(tmp_path)
    broken = "CREATE TABLE half (x); INSERT INTO nowhere VALUES (1);"
    db = Database(path, [SCHEMA_1, broken])
    with pytest.raises(BBSError) as info:
        db.open_sync()
    assert info.value.reason is Reason.STORAGE
    assert "migration to version 2" in info.value.detail
    assert not db.is_open
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert tables == {"t"}  # "half" rolled back with the failed step
    finally:
        conn.close()


def test_script_migration_keeps_semicolons_in_strings_and_triggers(tmp_path: Path) -> None:
    script = """
        CREATE TABLE log (msg TEXT);  -- comment; with a semicolon
        CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
        CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN
            INSERT INTO log VALUES ('added; ' || NEW.k);
            INSERT INTO log VALUES ('second');
        END;
        INSERT INTO log VALUES ('a;b')
    """
    db = Database(db_path(tmp_path), [script])
    db.open_sync()
    try:
        db.run_sync(insert, "x", 1)
        rows = db.run_sync(lambda c: [r[0] for r in c.execute("SELECT msg FROM log ORDER BY rowid")])
    finally:
        db.close_sync()
    assert rows == ["a;b", "added; x", "second"]


def test_all_work_runs_in_one_worker_thread(tmp_path: Path) -> None:
    async def go() -> set[int]:
        db = Database(db_path(tmp_path), MIGRATIONS)
        await db.open()
        try:
            idents = await asyncio.gather(
                *(db.run(lambda c: threading.get_ident()) for _ in range(20)))
            return set(idents)
        finally:
            await db.close()

    idents = asyncio.run(go())
    assert len(idents) == 1
    assert threading.get_ident() not in idents


def test_run_before_open_and_after_close_is_refused(tmp_path: Path) -> None:
    async def go() -> None:
        db = Database(db_path(tmp_path), MIGRATIONS)
        with pytest.raises(BBSError) as info:
            await db.run(read_all)
        assert info.value.reason is Reason.STORAGE
        await db.open()
        await db.open()  # idempotent
        await db.close()
        await db.close()  # idempotent
        with pytest.raises(BBSError):
            await db.run(read_all)
        await db.open()  # reopen after close
        assert await db.run(read_all) == []
        await db.close()

    asyncio.run(go())


def test_sync_twins_work_without_an_event_loop(tmp_path: Path) -> None:
    path = db_path(tmp_path)
    db = Database(path, MIGRATIONS)
    db.open_sync()
    try:
        assert db.version == 2
        db.run_sync(insert, "cli", 7)
        assert db.run_sync(read_all) == [("cli", 7)]
        with pytest.raises(BBSError) as info:
            db.run_sync(lambda c: c.execute("SELEKT 1"))
        assert info.value.reason is Reason.STORAGE
    finally:
        db.close_sync()
    assert not db.is_open
    assert raw_rows(path) == [("cli", 7)]


def test_concurrent_runs_share_a_commit_but_fail_alone(tmp_path):
    """Group commit: jobs waiting together run in one transaction, each in its
    own savepoint, so one job's failure undoes only that job."""
    async def main():
        db = Database(tmp_path / "group.db", ["CREATE TABLE t (v INTEGER UNIQUE)"])
        await db.open()

        def insert(conn, value):
            conn.execute("INSERT INTO t (v) VALUES (?)", (value,))
            return value

        def insert_then_fail(conn, value):
            conn.execute("INSERT INTO t (v) VALUES (?)", (value,))
            raise ValueError("no")

        jobs = [db.run(insert, n) for n in range(20)]
        jobs.insert(5, db.run(insert_then_fail, 100))
        jobs.insert(9, db.run(insert, 3))                   # duplicate: an sqlite error
        results = await asyncio.gather(*jobs, return_exceptions=True)
        assert isinstance(results[5], ValueError)
        assert isinstance(results[9], BBSError) and results[9].reason is Reason.STORAGE
        assert [r for i, r in enumerate(results) if i not in (5, 9)] == list(range(20))
        rows = await db.run(lambda conn: [r[0] for r in conn.execute("SELECT v FROM t ORDER BY v")])
        assert rows == list(range(20))
        await db.close()

    asyncio.run(main())


def test_reads_take_no_write_lock_and_fail_alone(tmp_path):
    """A pass of only read() jobs runs in a plain BEGIN: another process's
    write transaction does not hold it up (WAL), as it would hold a run()
    (BEGIN IMMEDIATE waits for the write lock). A read that raises fails alone."""
    async def main():
        path = tmp_path / "reads.db"
        db = Database(path, ["CREATE TABLE t (v INTEGER)"])
        await db.open()
        await db.run(lambda conn: conn.execute("INSERT INTO t (v) VALUES (1), (2)"))
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")                  # another process writes ...
        other.execute("INSERT INTO t (v) VALUES (3)")    # ... and has not committed

        def total(conn):
            return conn.execute("SELECT sum(v) FROM t").fetchone()[0]

        def broken(conn):
            conn.execute("SELECT nothing FROM t")

        started = time.monotonic()
        results = await asyncio.wait_for(asyncio.gather(db.read(total), db.read(broken), db.read(total),
                                                        return_exceptions=True), 4.5)
        assert time.monotonic() - started < 4.0        # a run() would wait out the 5 s busy timeout
        assert results[0] == results[2] == 3           # the committed rows only
        assert isinstance(results[1], BBSError) and results[1].reason is Reason.STORAGE
        other.execute("COMMIT")
        other.close()
        assert await db.read(total) == 6
        await db.close()

    asyncio.run(main())
