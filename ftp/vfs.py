"""The virtual tree an FTP client sees: ``/LIB/DIR/file``.

``/`` lists the file libraries of ``ctrl/file.ini`` the user may reach,
``/LIB`` its directories (by code), ``/LIB/DIR`` the files of that dir:
those the file base (:mod:`bbs.filebase`) lists and whose bytes are in the
dir's folder, plus, with the ``DIR_FILES`` option, files in the folder that
the base does not list (Synchronet's "files not in database").

Nothing outside a dir's folder is reachable: paths are resolved in the
virtual tree only (``..`` stops at ``/``), a file name is one path component
that :func:`bbs.filebase.check_name` accepts (no separator, NUL or control
character), names starting with ``.`` are hidden and refused (in-progress
uploads use them), symlinks are neither listed nor followed (lstat and
``O_NOFOLLOW``), and only regular files are served.

Access (Synchronet ARS, fail closed): a library needs its ``ars``; a dir
needs its library's and its own ``ars`` to be seen and listed,
``download_ars`` to download and ``upload_ars`` to upload. What the user may
not see is reported as not found. Every failure is a
:class:`~bbs.errors.BBSError`; :mod:`ftp.server` maps reasons to replies.
"""
from __future__ import annotations

import asyncio
import dataclasses
import enum
import os
import stat
from pathlib import Path
from typing import BinaryIO, Callable

from bbs.ars import SYSOP_LEVEL, AccessContext
from bbs.boardconf import FileAreas, FileDir, FileLib
from bbs.errors import BBSError, Reason
from bbs.filebase import FileBase, FileRecord, check_name
from ftp.commands import Entry, index_text


class Kind(enum.Enum):
    ROOT = "root"
    LIB = "lib"
    DIR = "dir"
    FILE = "file"


@dataclasses.dataclass(frozen=True)
class Node:
    """A resolved virtual path: root, a library, a dir, or a name in a dir
    (which may not exist yet: STOR targets)."""

    kind: Kind
    parts: tuple[str, ...]
    lib: FileLib | None = None
    dir: FileDir | None = None
    name: str = ""

    @property
    def path(self) -> str:
        """The canonical virtual path ("/" or "/Main/UPLOADS/a.zip")."""
        return "/" + "/".join(self.parts)


def normalize(cwd: str, arg: str) -> tuple[str, ...]:
    """Resolve ``arg`` against ``cwd`` in the virtual tree; pure.

    An absolute ``arg`` starts from ``/``. Empty and ``.`` components are
    skipped, ``..`` goes up and never above ``/``. Raises ``BAD_NAME`` for a
    backslash (a Windows separator we do not translate) or NUL.
    """
    if "\0" in arg or "\\" in arg:
        raise BBSError(Reason.BAD_NAME, "bad character in path")
    parts: list[str] = [] if arg.startswith("/") else [p for p in cwd.split("/") if p]
    for piece in arg.split("/"):
        if piece in ("", "."):
            continue
        if piece == "..":
            if parts:
                parts.pop()
            continue
        parts.append(piece)
    return tuple(parts)


def real_file(folder: Path, name: str) -> Path:
    """The path of ``name`` in a dir's ``folder``, checked; pure.

    Raises ``BAD_NAME`` for names :func:`check_name` refuses (separators,
    ``..``, NUL ...) or that start with ``.``. A name that passes is one
    component, so the path's parent is the folder itself; a symlink in the
    name's place is refused where the file is opened (``O_NOFOLLOW``, lstat).
    """
    check_name(name)
    if name.startswith("."):
        raise BBSError(Reason.BAD_NAME, "hidden file names are not served")
    return folder / name


def _lstat_regular(path: Path) -> os.stat_result | None:
    """lstat ``path``; None unless it is a regular file (not a symlink). Thread."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def open_regular(path: Path) -> tuple[BinaryIO, os.stat_result] | None:
    """Open a regular file for reading without following a symlink, with its
    fstat; None when that is not possible. Thread."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, "rb"), st


def _mtime(folder: Path) -> float:
    try:
        return os.stat(folder).st_mtime
    except OSError:
        return 0.0


def _scan(folder: Path) -> dict[str, tuple[str, os.stat_result]]:
    """Regular, non-hidden files of ``folder``: lower-cased name -> (name, stat).
    Runs in a thread."""
    found: dict[str, tuple[str, os.stat_result]] = {}
    try:
        with os.scandir(folder) as it:
            for item in it:
                if item.name.startswith(".") or not item.is_file(follow_symlinks=False):
                    continue
                try:
                    found[item.name.lower()] = (item.name, item.stat(follow_symlinks=False))
                except OSError:
                    continue
    except FileNotFoundError:
        pass
    return found


@dataclasses.dataclass(frozen=True)
class Listed:
    """One file of a dir: its entry (name as on disk), its record (or None)."""

    entry: Entry
    record: FileRecord | None
    index: bool = False  #: the generated 00index file


class VFS:
    """The tree of one BBS (shared by every session; holds no session state)."""

    def __init__(self, areas: FileAreas | Callable[[], FileAreas], files: FileBase, *,
                 dir_files: bool = False, index_name: str = "") -> None:
        # A callable gives the areas in force now: the running BBS re-reads
        # file.ini when the sysop saves it (bbs.control reload_board).
        self._areas = areas if callable(areas) else (lambda: areas)
        self.files = files
        self.dir_files = dir_files
        self.index_name = index_name

    @property
    def areas(self) -> FileAreas:
        return self._areas()

    # -- access ------------------------------------------------------------
    @staticmethod
    def is_sysop(ctx: AccessContext) -> bool:
        return ctx.level >= SYSOP_LEVEL and not ctx.guest

    def libs(self, ctx: AccessContext) -> list[FileLib]:
        return [lib for lib in self.areas.libs if lib.ars.allows(ctx)]

    def dirs(self, lib: FileLib, ctx: AccessContext) -> list[FileDir]:
        return [d for d in self.areas.dirs if d.lib == lib.name and d.ars.allows(ctx)]

    def can_download(self, d: FileDir, ctx: AccessContext) -> bool:
        return d.download_ars.allows(ctx)

    def can_upload(self, d: FileDir, ctx: AccessContext) -> bool:
        return d.upload_ars.allows(ctx)

    def perm(self, d: FileDir, ctx: AccessContext) -> tuple[str, str]:
        """MLST ``perm`` letters of (the dir, a file in it) for ``ctx``."""
        up, down, sysop = self.can_upload(d, ctx), self.can_download(d, ctx), self.is_sysop(ctx)
        dir_perm = "el" + ("c" if up else "")
        file_perm = ("r" if down else "") + ("a" if up else "") + ("df" if sysop else "")
        return dir_perm, file_perm

    # -- resolving ---------------------------------------------------------
    def resolve(self, cwd: str, arg: str, ctx: AccessContext) -> Node:
        """Resolve a client path to a :class:`Node` the user may see.

        Raises ``NOT_FOUND`` for libraries and dirs that do not exist or that
        the user may not reach, ``BAD_NAME`` for unusable names and for paths
        deeper than a file in a dir.
        """
        parts = normalize(cwd, arg)
        if not parts:
            return Node(Kind.ROOT, ())
        lib = next((lib for lib in self.libs(ctx) if lib.name.lower() == parts[0].lower()), None)
        if lib is None:
            raise BBSError(Reason.NOT_FOUND, "no such library")
        if len(parts) == 1:
            return Node(Kind.LIB, (lib.name,), lib)
        d = next((d for d in self.dirs(lib, ctx) if d.code.lower() == parts[1].lower()), None)
        if d is None:
            raise BBSError(Reason.NOT_FOUND, "no such directory")
        if len(parts) == 2:
            return Node(Kind.DIR, (lib.name, d.code), lib, d)
        if len(parts) > 3:
            raise BBSError(Reason.NOT_FOUND, "no such directory")
        name = parts[2]
        check_name(name)
        if name.startswith("."):
            raise BBSError(Reason.BAD_NAME, "hidden file names are not served")
        return Node(Kind.FILE, (lib.name, d.code, name), lib, d, name)

    # -- listings ----------------------------------------------------------
    async def files_of(self, d: FileDir, ctx: AccessContext) -> list[Listed]:
        """The files of dir ``d`` (names as on disk), sorted by name."""
        disk = await asyncio.to_thread(_scan, d.path)
        records = {r.name.lower(): r for r in await self.files.list(d.code)}
        _, file_perm = self.perm(d, ctx)
        result = []
        for key, (name, st) in disk.items():
            record = records.get(key)
            if record is None and not self.dir_files:
                continue
            result.append(Listed(Entry(
                name=name, is_dir=False, size=st.st_size,
                mtime=st.st_mtime, perm=file_perm,
                owner=record.uploader if record and record.uploader else "bbs",
                description=record.description if record else ""), record))
        result.sort(key=lambda item: item.entry.name.lower())
        if self.index_name and self.index_name.lower() not in disk:
            entries = [item.entry for item in result]
            size = len(index_text(entries))
            result.insert(0, Listed(Entry(self.index_name, False, size,
                                          max((e.mtime for e in entries), default=0.0),
                                          "r" if self.can_download(d, ctx) else ""), None, index=True))
        return result

    async def entries(self, node: Node, ctx: AccessContext) -> list[Listed]:
        """What a listing of ``node`` shows (a file lists itself)."""
        if node.kind is Kind.ROOT:
            libs = self.libs(ctx)
            times = await asyncio.to_thread(
                lambda: [max((_mtime(d.path) for d in self.dirs(lib, ctx)), default=0.0) for lib in libs])
            return [Listed(Entry(lib.name, True, mtime=t, perm="el", description=lib.description), None)
                    for lib, t in zip(libs, times)]
        if node.kind is Kind.LIB:
            assert node.lib is not None
            dirs = self.dirs(node.lib, ctx)
            times = await asyncio.to_thread(lambda: [_mtime(d.path) for d in dirs])
            return [Listed(Entry(d.code, True, mtime=t, perm=self.perm(d, ctx)[0],
                                 description=d.description), None) for d, t in zip(dirs, times)]
        assert node.dir is not None
        if node.kind is Kind.DIR:
            return await self.files_of(node.dir, ctx)
        return [await self.find(node, ctx)]

    async def find(self, node: Node, ctx: AccessContext) -> Listed:
        """The existing file ``node`` names (case-insensitive); raises NOT_FOUND."""
        if node.kind is not Kind.FILE:
            raise BBSError(Reason.NOT_FOUND, "not a file")
        assert node.dir is not None
        exact = await self._find_exact(node.dir, node.name, ctx)
        if exact is not None:
            return exact
        for item in await self.files_of(node.dir, ctx):  # another case, or the index file
            if item.entry.name.lower() == node.name.lower():
                return item
        raise BBSError(Reason.NOT_FOUND, "no such file")

    async def _find_exact(self, d: FileDir, name: str, ctx: AccessContext) -> Listed | None:
        """The file spelt exactly ``name`` on disk, without scanning the whole
        dir (one lstat and one file-base row, in one worker-thread pass:
        SIZE/RETR/MDTM stay cheap in big dirs); None when it is not there as
        a listed regular file."""
        if name.startswith("."):
            return None
        st, record = await self.files.get_beside(d.code, name, lambda: _lstat_regular(d.path / name))
        if st is None or (record is None and not self.dir_files):
            return None
        return self._listed(d, name, st, record, ctx)

    def _listed(self, d: FileDir, name: str, st: os.stat_result, record: FileRecord | None,
                ctx: AccessContext) -> Listed:
        _, file_perm = self.perm(d, ctx)
        return Listed(Entry(
            name=name, is_dir=False, size=st.st_size, mtime=st.st_mtime, perm=file_perm,
            owner=record.uploader if record and record.uploader else "bbs",
            description=record.description if record else ""), record)

    async def open_file(self, node: Node, ctx: AccessContext) -> tuple[Listed, BinaryIO | None]:
        """The file ``node`` names, found as :meth:`find` finds it, opened for
        reading (None for the generated index file); raises NOT_FOUND. A name
        spelt as on disk takes one worker-thread pass for the open, the
        fstat and the file-base row."""
        d = node.dir
        if node.kind is Kind.FILE and d is not None:
            path = self.path_of(node)  # BAD_NAME for a hidden name
            opened, record = await self.files.get_beside(d.code, node.name, lambda: open_regular(path))
            if opened is not None:
                file, st = opened
                if record is not None or self.dir_files:
                    return self._listed(d, node.name, st, record, ctx), file
                file.close()
        listed = await self.find(node, ctx)
        if listed.index:
            return listed, None
        opened = await asyncio.to_thread(open_regular, self.path_of(node, listed))
        if opened is None:
            raise BBSError(Reason.NOT_FOUND, "cannot open file")
        return listed, opened[0]

    def path_of(self, node: Node, listed: Listed | None = None) -> Path:
        """The checked real path of a file node (``listed`` gives the disk spelling)."""
        assert node.dir is not None
        name = listed.entry.name if listed is not None else node.name
        return real_file(node.dir.path, name)

    def index_bytes(self, listing: list[Listed]) -> bytes:
        """The generated index file of a dir listing."""
        return index_text([item.entry for item in listing if not item.index])
