"""The file base: what is known about each file of each file directory (``data/file.db``).

One :class:`FileBase` per instance records, per file directory (the ``code``
of a ``[dir:LIB:CODE]`` section of ``ctrl/file.ini``) and file name: the size,
the uploader, the upload time, a description and a download count. The FTP
server records uploads and counts downloads here; the terminal server's file
areas read the same records, so an upload is listed to every caller as soon
as :meth:`FileBase.add` has returned (the row is committed and fsynced, see
:mod:`bbs.db`).

The bytes themselves live in the dir's folder (``FileDir.path``); this module
never touches them and knows no protocol. Names are compared without regard
to case (as Synchronet's file bases do) but stored as given.

API (all ``async``; each raises ``BBSError(STORAGE)`` on disk errors)::

    files = FileBase(instance.data / "file.db")
    await files.open()                                      # once; idempotent
    rec = await files.add("UPLOADS", "tool.zip", 1234, uploader="Bob",
                          uploader_number=3, description="A tool")
    await files.get("UPLOADS", "tool.zip")                  # FileRecord or None
    await files.list("UPLOADS")                             # FileRecords by name
    await files.set_description("UPLOADS", "tool.zip", "Better text")
    await files.count_download("UPLOADS", "tool.zip")       # returns the new count
    await files.rename("UPLOADS", "tool.zip", "tool2.zip")
    await files.remove("UPLOADS", "tool2.zip")
    await files.close()

Errors: ``NOT_FOUND`` for a file the base does not list, ``EXISTS`` when a
rename target is taken, ``BAD_NAME`` for names that cannot be file names
(empty, a path separator, NUL or another control character, ``.``/``..``,
longer than :data:`MAX_NAME`).
"""
from __future__ import annotations

import dataclasses
import re
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from bbs.db import Database, Migration
from bbs.errors import BBSError, Reason

T = TypeVar("T")

__all__ = ["FILE_MIGRATIONS", "MAX_DESCRIPTION", "MAX_NAME", "FileBase", "FileRecord", "check_name"]

#: Control characters (C0 and DEL), never part of a file name.
_CONTROL = re.compile("[\x00-\x1f\x7f]")
#: Longest file name accepted (bytes of UTF-8); Linux's NAME_MAX is 255.
MAX_NAME = 255
#: Longest description kept; Synchronet's extended descriptions are 4000 bytes
#: (sbbsdefs.h LEN_EXTDESC is 5000 in v3.19); longer ones are cut.
MAX_DESCRIPTION = 4000

_SCHEMA_1 = """
CREATE TABLE files (
    dir             TEXT    NOT NULL COLLATE NOCASE,
    name            TEXT    NOT NULL COLLATE NOCASE,
    size            INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0),
    uploader        TEXT    NOT NULL DEFAULT '',
    uploader_number INTEGER NOT NULL DEFAULT 0,
    uploaded        REAL    NOT NULL,
    description     TEXT    NOT NULL DEFAULT '',
    downloads       INTEGER NOT NULL DEFAULT 0,
    last_download   REAL,
    PRIMARY KEY (dir, name)
);
"""

#: The file base schema history; pass to :class:`bbs.db.Database`.
FILE_MIGRATIONS: tuple[Migration, ...] = (_SCHEMA_1,)


@dataclasses.dataclass(frozen=True)
class FileRecord:
    """One file of one directory as the file base knows it.

    ``uploaded`` and ``last_download`` are Unix times (``last_download`` is
    None until the first download); ``uploader_number`` is the user number
    (0 when the sysop placed the file, or for a guest).
    """

    dir: str
    name: str
    size: int
    uploader: str
    uploader_number: int
    uploaded: float
    description: str
    downloads: int
    last_download: float | None


_COLUMNS = tuple(f.name for f in dataclasses.fields(FileRecord))
_SELECT = "SELECT " + ", ".join(_COLUMNS) + " FROM files"


def check_name(name: str) -> str:
    """Return ``name`` when it may name a file in a directory folder.

    Called by :class:`FileBase` for every name, and by protocols before they
    touch the disk. Refuses (``BBSError(BAD_NAME)``) empty names, ``.`` and
    ``..``, path separators (``/`` and ``\\``), NUL and other control
    characters, undecodable bytes (lone surrogates) and names longer than
    :data:`MAX_NAME` bytes.
    """
    if not isinstance(name, str) or not name or name in (".", ".."):
        raise BBSError(Reason.BAD_NAME, "empty file name")
    if "/" in name or "\\" in name:
        raise BBSError(Reason.BAD_NAME, "file name contains a path separator")
    if _CONTROL.search(name):
        raise BBSError(Reason.BAD_NAME, "file name contains a control character")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise BBSError(Reason.BAD_NAME, "file name is not valid UTF-8") from None
    if len(encoded) > MAX_NAME:
        raise BBSError(Reason.BAD_NAME, f"file name longer than {MAX_NAME} bytes")
    return name


def _record(row: tuple) -> FileRecord:
    return FileRecord(*row)


def _q_get(conn: sqlite3.Connection, dir_code: str, name: str) -> FileRecord | None:
    row = conn.execute(f"{_SELECT} WHERE dir = ? AND name = ?", (dir_code, name)).fetchone()
    return _record(row) if row else None


def _q_get_beside(conn: sqlite3.Connection, dir_code: str, name: str, work: Callable[[], T | None]) \
        -> tuple[T | None, FileRecord | None]:
    found = work()
    return found, (_q_get(conn, dir_code, name) if found is not None else None)


def _q_add(conn: sqlite3.Connection, values: dict) -> FileRecord:
    conn.execute("DELETE FROM files WHERE dir = ? AND name = ?", (values["dir"], values["name"]))
    names = ", ".join(values)
    conn.execute(f"INSERT INTO files ({names}) VALUES ({', '.join('?' * len(values))})",
                 tuple(values.values()))
    found = _q_get(conn, values["dir"], values["name"])
    assert found is not None
    return found


def _q_list(conn: sqlite3.Connection, dir_code: str) -> list[FileRecord]:
    return [_record(r) for r in conn.execute(f"{_SELECT} WHERE dir = ? ORDER BY name", (dir_code,))]


def _q_update(conn: sqlite3.Connection, dir_code: str, name: str, sql: str, args: tuple) -> FileRecord:
    cursor = conn.execute(f"UPDATE files SET {sql} WHERE dir = ? AND name = ?", (*args, dir_code, name))
    if cursor.rowcount == 0:
        raise BBSError(Reason.NOT_FOUND, f"{dir_code}/{name} is not in the file base")
    found = _q_get(conn, dir_code, name)
    assert found is not None
    return found


#: What one completed download changes in a file's row (one parameter: the time).
_COUNT_DOWNLOAD = "downloads = downloads + 1, last_download = ?"


def _q_count_downloads(conn: sqlite3.Connection, files: list[tuple[str, str]], when: float) -> list[tuple[str, str]]:
    missing = []
    for dir_code, name in files:
        cursor = conn.execute(f"UPDATE files SET {_COUNT_DOWNLOAD} WHERE dir = ? AND name = ?", (when, dir_code, name))
        if cursor.rowcount == 0:
            missing.append((dir_code, name))
    return missing


def _q_rename(conn: sqlite3.Connection, dir_code: str, old: str, new: str) -> FileRecord:
    if old.lower() != new.lower() and _q_get(conn, dir_code, new) is not None:
        raise BBSError(Reason.EXISTS, f"{dir_code}/{new} is already in the file base")
    return _q_update(conn, dir_code, old, "name = ?", (new,))


def _q_remove(conn: sqlite3.Connection, dir_code: str, name: str) -> None:
    cursor = conn.execute("DELETE FROM files WHERE dir = ? AND name = ?", (dir_code, name))
    if cursor.rowcount == 0:
        raise BBSError(Reason.NOT_FOUND, f"{dir_code}/{name} is not in the file base")


class FileBase:
    """The file base service (one per instance, shared by every server).

    Created with the path of ``data/file.db``; :meth:`open` must be awaited
    before any other call. Safe to use from many tasks at once: every call is
    one transaction on the database's single worker thread.
    """

    def __init__(self, path: Path) -> None:
        self.db = Database(path, FILE_MIGRATIONS, name="file")

    async def open(self) -> None:
        """Open ``data/file.db`` (created on first use); idempotent."""
        await self.db.open()

    async def close(self) -> None:
        """Finish queued work and close the file."""
        await self.db.close()

    @property
    def is_open(self) -> bool:
        return self.db.is_open

    async def add(self, dir_code: str, name: str, size: int, *, uploader: str = "",
                  uploader_number: int = 0, description: str = "",
                  when: float | None = None) -> FileRecord:
        """Record a file (an upload, or a file the sysop placed) and return it.

        Called once the file's bytes are complete in the dir's folder. A
        record of the same name (any case) is replaced, download count
        included: the new file is a different file. ``description`` is cut
        to :data:`MAX_DESCRIPTION` characters. Raises ``BAD_NAME`` or
        ``BAD_VALUE`` (negative size).
        """
        check_name(name)
        if size < 0:
            raise BBSError(Reason.BAD_VALUE, "negative file size")
        values = dict(dir=dir_code, name=name, size=int(size), uploader=uploader,
                      uploader_number=int(uploader_number),
                      uploaded=time.time() if when is None else when,
                      description=description.strip()[:MAX_DESCRIPTION])
        return await self.db.run(_q_add, values)

    async def get(self, dir_code: str, name: str) -> FileRecord | None:
        """The record of ``name`` in ``dir_code`` (any case), or None."""
        return await self.db.read(_q_get, dir_code, name)

    async def get_beside(self, dir_code: str, name: str, work: Callable[[], T | None]) -> tuple[T | None, FileRecord | None]:
        """``(work(), get(dir_code, name))`` in one pass of the worker thread.

        ``work`` is a file-system call on the file (an lstat, an open) that
        returns None when the file is not there; the record is then not
        looked up. A protocol's SIZE or RETR thus costs one thread hop, not two.
        """
        return await self.db.read(_q_get_beside, dir_code, name, work)

    async def list(self, dir_code: str) -> list[FileRecord]:
        """Every record of ``dir_code``, ordered by name."""
        return await self.db.read(_q_list, dir_code)

    async def set_description(self, dir_code: str, name: str, description: str) -> FileRecord:
        """Replace a file's description; raises ``NOT_FOUND``."""
        return await self.db.run(_q_update, dir_code, name, "description = ?",
                                 (description.strip()[:MAX_DESCRIPTION],))

    async def set_size(self, dir_code: str, name: str, size: int) -> FileRecord:
        """Record a file's new size (after an append); raises ``NOT_FOUND``."""
        return await self.db.run(_q_update, dir_code, name, "size = ?", (int(size),))

    async def count_download(self, dir_code: str, name: str, when: float | None = None) -> FileRecord:
        """Count one completed download of a file; returns the updated record.

        Raises ``NOT_FOUND`` when the base does not list the file.
        """
        return await self.db.run(_q_update, dir_code, name, _COUNT_DOWNLOAD,
                                 (time.time() if when is None else when,))

    async def count_downloads(self, files: Sequence[tuple[str, str]], when: float | None = None) \
            -> list[tuple[str, str]]:
        """Count one completed download of each ``(dir_code, name)`` in one
        job (the FTP server stores its sessions' counts in batches); returns
        the files the base does not list (not counted)."""
        stamp = time.time() if when is None else when
        return await self.db.run(_q_count_downloads, list(files), stamp)

    async def rename(self, dir_code: str, old: str, new: str) -> FileRecord:
        """Rename a file's record (after the file was renamed on disk).

        Raises ``NOT_FOUND``, ``EXISTS`` (another record has the new name) or
        ``BAD_NAME``.
        """
        check_name(new)
        return await self.db.run(_q_rename, dir_code, old, new)

    async def remove(self, dir_code: str, name: str) -> None:
        """Forget a file (deleted by the sysop); raises ``NOT_FOUND``."""
        await self.db.run(_q_remove, dir_code, name)
