"""SQLite storage for the core: one file under ``data/``, one worker thread.

Every database of the BBS (users, message bases, mail queue ...) is a
:class:`Database`: a single :mod:`sqlite3` connection that lives in one
dedicated worker thread, so the event loop never blocks on disk and the
connection is never shared between threads (``check_same_thread`` stays on and
enforces it).  Coroutines hand work to that thread with :meth:`Database.run`;
CLI commands that run without an event loop use the ``*_sync`` twins, which
submit to the same thread and wait.

Durability: the journal is WAL with ``synchronous=FULL``, so a transaction
that :meth:`Database.run` has returned from survives ``kill -9`` and power
loss (https://www.sqlite.org/pragma.html#pragma_synchronous).

Schema versions live in ``PRAGMA user_version``.  Migration *i* (0-based) of
the sequence given to the constructor brings the file to version *i + 1*;
each one runs in its own transaction, together with the version bump, so a
crash mid-migration leaves the previous version intact.  A file whose version
is newer than the code knows is refused rather than guessed at.

Errors: :class:`sqlite3.Error` surfaces as ``BBSError(Reason.STORAGE)`` with
the original exception chained; a :class:`BBSError` (or any other exception)
raised by the work function itself passes through unchanged, after rollback.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from bbs.errors import BBSError, Reason

__all__ = ["BUSY_TIMEOUT_MS", "Database", "Migration"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: A schema step: a function given the connection (inside a transaction), or
#: an SQL script.  A script is split into statements and run inside the same
#: transaction as the version bump (``executescript`` would commit early).
Migration = Callable[[sqlite3.Connection], None] | str

#: How long a writer waits for another process's lock before failing with
#: "database is locked" (``PRAGMA busy_timeout``, milliseconds).  Another
#: process is typically a ``bbs user ...`` CLI command next to the server.
BUSY_TIMEOUT_MS = 5000


class Database:
    """One SQLite file, its worker thread and its schema migrations.

    Created by whoever owns the file (e.g. the user base wiring in the
    composition root); :meth:`open` must be awaited (or :meth:`open_sync`
    called) before :meth:`run`.  Not thread-safe for concurrent open/close;
    :meth:`run` may be awaited from many tasks at once (work is queued to the
    single worker thread and runs one transaction at a time).
    """

    def __init__(
        self,
        path: Path,
        migrations: Sequence[Migration],
        *,
        name: str = "",
    ) -> None:
        """Describe the database; nothing is touched until :meth:`open`.

        ``path`` is the SQLite file (its parent directory is created on open);
        ``migrations`` is the full ordered schema history; ``name`` labels log
        lines and error details (defaults to the file name).
        """
        self.path = Path(path)
        self.name = name or self.path.name
        self._migrations: tuple[Migration, ...] = tuple(migrations)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        # Work waiting for the worker thread: (fn, args, future, loop, read_only). One thread
        # pass takes all of it into one transaction (group commit: one fsync)
        # and resolves the futures with one call into each loop.
        self._pending: collections.deque = collections.deque()
        self._pending_lock = threading.Lock()
        # True while a _group_commit pass is submitted and has not yet taken
        # the pending work: later jobs join it instead of submitting another
        # (an empty pass per job woke the thread for nothing).
        self._scheduled = False
        # Only ever read or written from inside the worker thread.
        self._conn: sqlite3.Connection | None = None
        self._version = 0

    # ------------------------------------------------------------ properties

    @property
    def version(self) -> int:
        """The schema version of the open file (``PRAGMA user_version``).

        Returns 0 before the first successful open.
        """
        return self._version

    @property
    def latest_version(self) -> int:
        """The schema version this program's migrations lead to."""
        return len(self._migrations)

    @property
    def is_open(self) -> bool:
        """True between a successful open and close."""
        return self._executor is not None

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return f"<Database {self.name} {state} v{self._version}>"

    # ------------------------------------------------------------- async API

    async def open(self) -> None:
        """Open the file in the worker thread and bring its schema up to date.

        Called once at start-up, before any :meth:`run`.  Creates the parent
        directory, sets the pragmas (WAL, ``synchronous=FULL``, foreign keys,
        busy timeout) and applies pending migrations.  Opening an open
        database does nothing.

        Raises ``BBSError(STORAGE)`` when the file cannot be opened, a
        migration fails, or the file's schema is newer than this program.
        """
        if self._executor is not None:
            return
        executor = self._new_executor()
        try:
            await asyncio.wrap_future(executor.submit(self._open_in_worker))
        except BaseException:
            await asyncio.to_thread(self._abandon, executor)
            raise
        self._executor = executor

    async def run(self, fn: Callable[..., T], /, *args: object) -> T:
        """Run ``fn(conn, *args)`` in the worker thread inside a transaction.

        Called by core services for every read and write.  The transaction is
        ``BEGIN IMMEDIATE`` (the write lock is taken up front, so a
        read-then-write never fails half-way on a lock upgrade); it commits
        when ``fn`` returns and rolls back when it raises.  ``fn`` must return
        plain data (not a cursor) and must not commit itself.

        Returns what ``fn`` returns.  Raises what ``fn`` raises (after
        rollback), ``BBSError(STORAGE)`` for SQLite errors or when the
        database is not open.  Cancelling the awaiting task drops work still
        queued; work the thread has started still commits or rolls back.
        """
        return await self._submit(fn, args, False)

    async def read(self, fn: Callable[..., T], /, *args: object) -> T:
        """Like :meth:`run`, for ``fn`` that only reads. A pass of the worker
        thread that holds only reads runs them in one plain ``BEGIN`` (a
        snapshot, no write lock, no savepoints); in a pass with writes they
        run like writes."""
        return await self._submit(fn, args, True)

    def _submit(self, fn: Callable[..., T], args: tuple, read_only: bool) -> asyncio.Future:
        executor = self._require_open()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._pending_lock:
            self._pending.append((fn, args, future, loop, read_only))
            scheduled, self._scheduled = self._scheduled, True
        if not scheduled:
            try:
                executor.submit(self._group_commit)
            except BaseException:
                with self._pending_lock:
                    self._scheduled = False
                raise
        return future

    async def close(self) -> None:
        """Finish queued work, close the connection and stop the thread.

        Called at shutdown.  Closing a closed database does nothing.
        Raises ``BBSError(STORAGE)`` if SQLite fails to close the file.
        """
        executor = self._executor
        if executor is None:
            return
        self._executor = None
        try:
            await asyncio.wrap_future(executor.submit(self._close_in_worker))
        finally:
            await asyncio.to_thread(executor.shutdown, wait=True)

    # -------------------------------------------------------------- sync API

    def open_sync(self) -> None:
        """Like :meth:`open`, for CLI commands without an event loop.

        Blocks the calling thread; never call it from the event loop.
        """
        if self._executor is not None:
            return
        executor = self._new_executor()
        try:
            executor.submit(self._open_in_worker).result()
        except BaseException:
            self._abandon(executor)
            raise
        self._executor = executor

    def run_sync(self, fn: Callable[..., T], /, *args: object) -> T:
        """Like :meth:`run`, for CLI commands without an event loop.

        Blocks the calling thread until the transaction is done; never call
        it from the event loop.  Returns and raises as :meth:`run`.
        """
        executor = self._require_open()
        return executor.submit(self._transaction, fn, args).result()

    def close_sync(self) -> None:
        """Like :meth:`close`, for CLI commands without an event loop."""
        executor = self._executor
        if executor is None:
            return
        self._executor = None
        try:
            executor.submit(self._close_in_worker).result()
        finally:
            executor.shutdown(wait=True)

    # ------------------------------------------------------------- internals

    def _new_executor(self) -> concurrent.futures.ThreadPoolExecutor:
        return concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"db-{self.name}"
        )

    def _require_open(self) -> concurrent.futures.ThreadPoolExecutor:
        executor = self._executor
        if executor is None:
            raise BBSError(Reason.STORAGE, f"{self.name}: database is not open")
        return executor

    def _abandon(self, executor: concurrent.futures.ThreadPoolExecutor) -> None:
        """Close a half-opened connection and stop its thread (after a failed open)."""
        try:
            executor.submit(self._close_in_worker).result()
        except BBSError:
            log.exception("%s: close after failed open", self.name)
        finally:
            executor.shutdown(wait=True)

    def _storage_error(self, what: str, exc: sqlite3.Error) -> BBSError:
        return BBSError(Reason.STORAGE, f"{self.name}: {what}: {exc}")

    # The methods below run only in the worker thread.

    def _open_in_worker(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BBSError(
                Reason.STORAGE, f"{self.name}: cannot create {self.path.parent}: {exc}"
            ) from exc
        try:
            # isolation_level=None: no implicit transactions; _transaction and
            # _migrate issue BEGIN/COMMIT themselves.
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise self._storage_error(f"cannot open {self.path}", exc) from exc
        self._conn = conn
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.warning("%s: journal_mode is %s, not WAL", self.name, mode)
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_MS)}")
            self._version = self._read_version(conn)
            self._check_not_newer(self._version)
        except sqlite3.Error as exc:
            raise self._storage_error("cannot set up", exc) from exc
        self._migrate(conn)

    def _close_in_worker(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.close()
        except sqlite3.Error as exc:
            raise self._storage_error("close failed", exc) from exc

    @staticmethod
    def _read_version(conn: sqlite3.Connection) -> int:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])

    def _check_not_newer(self, version: int) -> None:
        if version > self.latest_version:
            raise BBSError(
                Reason.STORAGE,
                f"{self.name}: schema version {version} is newer than this "
                f"program ({self.latest_version})",
            )

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Apply every pending migration, each in its own transaction.

        The version is re-read after ``BEGIN IMMEDIATE`` so two processes
        opening a fresh file at once do not both apply the same step.
        """
        for index, migration in enumerate(self._migrations):
            target = index + 1
            if self._version >= target:
                continue
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    current = self._read_version(conn)
                    self._check_not_newer(current)
                    if current < target:
                        if isinstance(migration, str):
                            _execute_script(conn, migration)
                        else:
                            migration(conn)
                        conn.execute(f"PRAGMA user_version={target}")
                        conn.execute("COMMIT")
                        log.info("%s: schema migrated to version %d", self.name, target)
                    else:
                        conn.execute("ROLLBACK")
                    self._version = max(current, target)
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise self._storage_error(f"migration to version {target} failed", exc) from exc

    def _group_commit(self) -> None:
        """Run every waiting :meth:`run` job in ONE transaction, each inside
        its own SAVEPOINT (a job that raises is rolled back alone), then
        COMMIT once: one fsync for the group, and no caller's future resolves
        before that commit is durable. Concurrent writers (SMTP deliveries,
        FTP download counts ...) thus share fsyncs instead of queueing for one
        each."""
        with self._pending_lock:
            jobs = list(self._pending)
            self._pending.clear()
            self._scheduled = False
        jobs = [job for job in jobs if not job[2].cancelled()]  # the waiter gave up
        if not jobs:
            return
        conn = self._conn
        if conn is None:
            error = BBSError(Reason.STORAGE, f"{self.name}: database is not open")
            _deliver([(loop, future, None, error) for _, _, future, loop, _ in jobs])
            return
        outcomes: list[tuple[asyncio.AbstractEventLoop, asyncio.Future, object, BaseException | None]] = []
        writing = not all(job[4] for job in jobs)
        try:
            conn.execute("BEGIN IMMEDIATE" if writing else "BEGIN")
            for fn, args, future, loop, _ in jobs:
                if writing:
                    conn.execute("SAVEPOINT job")
                try:
                    result = fn(conn, *args)
                except BaseException as exc:  # this job alone is undone
                    if writing:
                        conn.execute("ROLLBACK TO job")
                        conn.execute("RELEASE job")
                    if isinstance(exc, sqlite3.Error):
                        failure: BaseException = self._storage_error("query failed", exc)
                        failure.__cause__ = exc
                        exc = failure
                    outcomes.append((loop, future, None, exc))
                    continue
                if writing:
                    conn.execute("RELEASE job")
                outcomes.append((loop, future, result, None))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            error = self._storage_error("query failed", exc)
            _deliver([(loop, future, None, error) for _, _, future, loop, _ in jobs])
            return
        _deliver(outcomes)

    def _transaction(self, fn: Callable[..., T], args: tuple[object, ...]) -> T:
        conn = self._conn
        if conn is None:
            raise BBSError(Reason.STORAGE, f"{self.name}: database is not open")
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn, *args)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise self._storage_error("query failed", exc) from exc
        return result


def _execute_script(conn: sqlite3.Connection, script: str) -> None:
    """Execute an SQL script statement by statement in the open transaction.

    :func:`sqlite3.complete_statement` finds the statement ends, so semicolons
    inside strings, comments and ``CREATE TRIGGER ... BEGIN ... END`` bodies
    do not split a statement.
    """
    buffer = ""
    for char in script:
        buffer += char
        if char == ";" and sqlite3.complete_statement(buffer):
            conn.execute(buffer)
            buffer = ""
    if buffer.strip():
        conn.execute(buffer)


def _deliver(outcomes: list[tuple[asyncio.AbstractEventLoop, asyncio.Future, object, BaseException | None]]) -> None:
    """Hand a pass's results to the waiting loops (worker thread): one
    wake-up of each loop per pass, not one per job."""
    by_loop: dict[asyncio.AbstractEventLoop, list] = {}
    for loop, future, result, exc in outcomes:
        by_loop.setdefault(loop, []).append((future, result, exc))
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, items)
        except RuntimeError:  # that loop is closed: nobody waits any more
            pass


def _resolve(items: list[tuple[asyncio.Future, object, BaseException | None]]) -> None:
    """Set each future (on its loop); one cancelled meanwhile is skipped."""
    for future, result, exc in items:
        if future.done():
            continue
        if exc is None:
            future.set_result(result)
        else:
            future.set_exception(exc)
