"""The statistics the FTP sessions write, stored in batches.

A login counts a logon of the user, a download credits the user and counts
the file, an upload credits the user. Each session hands these to the
service's :class:`Ledger` and gets a future that is done once they are on
disk (QUIT waits for it: the caller's statistics are stored when it sees
221). The ledger stores whatever all sessions handed in while its previous
batch was being stored in one job per database
(:meth:`bbs.users.UserBase.record_activity`,
:meth:`bbs.filebase.FileBase.count_downloads`): under load one job covers
many sessions, and a lone session's write starts at once.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

log = logging.getLogger(__name__)


class Ledger:
    """Pending statistics of every FTP session, and the task storing them.

    Every write of one batch gets the same future (done once the batch is
    stored); a write while a batch is being stored starts the next one."""

    def __init__(self, users: Any, files: Any) -> None:
        self.users, self.files = users, files
        self._logons: list[tuple[int, float]] = []
        self._stats: list[tuple[int, dict[str, int]]] = []
        self._downloads: list[tuple[str, str]] = []
        self._writes = 0
        self._batch: asyncio.Future | None = None  # the next batch's future, while it has writes
        self._task: asyncio.Task | None = None

    def logon(self, number: int) -> asyncio.Future:
        """Count a logon of user ``number`` now."""
        self._logons.append((number, time.time()))
        return self._stored()

    def credit(self, number: int, **deltas: int) -> asyncio.Future:
        """Add to user ``number``'s counters (as ``UserBase.add_stats``)."""
        self._stats.append((number, deltas))
        return self._stored()

    def download(self, number: int, sent: int, dir_code: str, name: str | None) -> asyncio.Future:
        """A completed download: credit the user, count the file (when the
        file base lists it; ``name`` None when it does not)."""
        self._stats.append((number, {"downloads": 1, "download_bytes": sent}))
        if name is not None:
            self._downloads.append((dir_code, name))
        return self._stored()

    def _stored(self) -> asyncio.Future:
        self._writes += 1
        if self._batch is None:
            loop = asyncio.get_running_loop()
            self._batch = loop.create_future()
            if self._task is None:
                self._task = loop.create_task(self._store())
        return self._batch

    async def _store(self) -> None:
        try:
            while self._batch is not None:
                logons, stats, downloads, writes, batch = \
                    self._logons, self._stats, self._downloads, self._writes, self._batch
                self._logons, self._stats, self._downloads, self._writes, self._batch = [], [], [], 0, None
                jobs = []
                if logons or stats:
                    jobs.append(self.users.record_activity(logons, stats))
                if downloads:
                    jobs.append(self.files.count_downloads(downloads))
                try:
                    for result in await asyncio.gather(*jobs, return_exceptions=True):
                        if isinstance(result, BaseException):
                            log.error("FTP statistics of %d writes could not be stored: %s",
                                      writes, result, exc_info=result)
                        elif result:
                            log.warning("FTP statistics skipped for what no longer exists: %s", result)
                finally:
                    batch.set_result(None)
        finally:
            self._task = None
            if self._batch is not None:  # cancelled (shutdown): nobody waits for ever
                self._batch.set_result(None)
                self._batch = None
