"""File-area screens: choose a library and directory, list files (paged),
search by name or description, file information, the new-file scan, and
downloads and uploads over the caller's connection with ZMODEM, XMODEM
(CRC and 1K) or YMODEM.

Areas are ``app.config.files`` (``ctrl/file.ini``); what is known about each
file is the App's :class:`bbs.filebase.FileBase` (``app.files``), shared with
the FTP server, so an FTP upload is listed here at once and the other way
round. Transfers run the Debian ``lrzsz`` programs named by the protocol
table :data:`nodes.transfer.PROTOCOLS` as child processes whose stdin/stdout
are piped to the caller's connection (:func:`nodes.transfer.run_transfer`;
telnet's IAC escaping is done by the link, RFC 854). A caller names a file;
the name is checked with :func:`bbs.filebase.check_name` and must be a file
the base lists in the caller's directory (a download) or a new name (an
XMODEM upload): no caller text is ever joined to a path unchecked. Uploads
land in a fresh temporary folder inside the directory and are linked into
place only once the receiving program reports success.
"""
from __future__ import annotations

import asyncio
import fnmatch
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bbs.boardconf import FileDir
from bbs.errors import BBSError, Reason
from bbs.filebase import FileRecord, check_name
from nodes import terminal as t
from nodes.transfer import Protocol, available, find, run_transfer

if TYPE_CHECKING:
    from nodes.session import Session

log = logging.getLogger(__name__)

#: The user setting that remembers the caller's current file directory.
DIR_SETTING = "file_dir"
#: The user setting with the time of the caller's last new-file scan
#: (Synchronet keeps this per user as "new file scan since").
NEW_SINCE_SETTING = "files_new_since"
#: Longest description a caller may type for an upload (Synchronet LEN_FDESC).
LEN_FDESC = 58
#: Longest search text (Synchronet's file search prompt allows 40).
LEN_SEARCH = 40
#: The user setting with the caller's preferred transfer protocol (its
#: hotkey; Synchronet's "default download protocol").
PROTOCOL_SETTING = "file_protocol"
#: Prefix of the temporary folder an upload lands in (hidden from listings).
UPLOAD_TEMP_PREFIX = ".rz-"

NO_LRZSZ = ("\x01n\x01h\x01rFile transfers are not available: lrzsz's transfer programs (sz/rz, sx/rx, sb/rb) "
            "are not installed on this BBS.\x01n\r\n")


# -- pure helpers ----------------------------------------------------------------
def human_size(size: int) -> str:
    """``999``, ``12.3K``, ``4.5M``, ``1.2G`` (at most 6 characters)."""
    value = float(size)
    for unit in ("", "K", "M", "G", "T"):
        if value < 1000 or unit == "T":
            return f"{int(value)}" if not unit else f"{value:.1f}{unit}"
        value /= 1024
    return str(size)


def matches(record: FileRecord, text: str) -> bool:
    """Whether a record matches a caller's search: a wildcard pattern
    (``*``/``?``) against the name, else a case-insensitive substring of
    the name or the description."""
    text = text.strip().lower()
    if not text:
        return False
    if any(c in text for c in "*?["):
        return fnmatch.fnmatchcase(record.name.lower(), text)
    return text in record.name.lower() or text in record.description.lower()


def list_lines(records: list[FileRecord], width: int) -> str:
    """The listing: name, size, date, uploader, downloads, then the
    description (wrapped under the columns). Ctrl-A codes from the caller's
    text are removed."""
    out = []
    desc_width = max(20, width - 2 - 9)
    for rec in records:
        when = time.strftime("%Y-%m-%d", time.localtime(rec.uploaded))
        name = t.printable(rec.name).replace("\x01", "")
        head = f"\x01n\x01h\x01w{name[:24]:<24}" if len(name) <= 24 else f"\x01n\x01h\x01w{name}\r\n{'':<24}"
        out.append(f"{head}\x01n\x01c {human_size(rec.size):>6} \x01g{when} \x01y{rec.uploader[:16]:<16}"
                   f" \x01m{rec.downloads:>4}\x01n")
        description = t.printable(rec.description).replace("\x01", "") or "(no description)"
        for line in t.wrap_lines(description, desc_width)[:3]:
            out.append(f"\x01n\x01c         {line}")
    return "\r\n".join(out) + "\r\n"


# -- areas -----------------------------------------------------------------------
def visible_dirs(session: "Session") -> list[FileDir]:
    """The dirs the caller may see (library and dir requirements)."""
    ctx = session.access()
    libs = {lib.name for lib in session.app.config.files.libs if lib.ars.allows(ctx)}
    return [d for d in session.app.config.files.dirs if d.lib in libs and d.ars.allows(ctx)]


def current_dir(session: "Session") -> FileDir | None:
    dirs = visible_dirs(session)
    wanted = str((session.user.settings or {}).get(DIR_SETTING, ""))
    return next((d for d in dirs if d.code.lower() == wanted.lower()), dirs[0] if dirs else None)


async def _need_dir(session: "Session") -> FileDir | None:
    directory = current_dir(session)
    if directory is None:
        await session.print("\x01n\x01h\x01rThere are no file directories you can see.\x01n\r\n")
    return directory


async def _save_setting(session: "Session", key: str, value) -> None:
    session.user = await session.app.users.update(session.user.number,
                                                  settings={**(session.user.settings or {}), key: value})


async def choose_area(session: "Session", args: tuple[str, ...]) -> None:
    """Pick a library, then a directory; remembered in the user's settings."""
    session.set_activity("choosing a file area")
    dirs = visible_dirs(session)
    if not dirs:
        await session.print("\x01n\x01h\x01rThere are no file directories you can see.\x01n\r\n")
        return
    ctx = session.access()
    libs = [lib for lib in session.app.config.files.libs if lib.ars.allows(ctx) and any(d.lib == lib.name for d in dirs)]
    lib = libs[0]
    if len(libs) > 1:
        await session.print("\r\n\x01n\x01h\x01wFile libraries\x01n\r\n")
        for index, item in enumerate(libs, 1):
            await session.print(f"\x01n\x01h\x01c{index:>3}\x01n\x01c) {item.description or item.name}\r\n")
        text = (await session.term.getline("\x01n\x01cLibrary number: \x01h", maxlen=3)).strip()
        if not text.isdigit() or not 1 <= int(text) <= len(libs):
            return
        lib = libs[int(text) - 1]
    in_lib = [d for d in dirs if d.lib == lib.name]
    await session.print(f"\r\n\x01n\x01h\x01w{lib.description or lib.name}\x01n\r\n"
                        "\x01n\x01c  #  Directory                  Files\r\n")
    for index, item in enumerate(in_lib, 1):
        count = len(await session.app.files.list(item.code))
        await session.print(f"\x01n\x01h\x01c{index:>3}\x01n\x01c) \x01h{item.name[:25]:<25}\x01n\x01c {count:>5}"
                            f"  {item.description[:40]}\r\n")
    text = (await session.term.getline("\x01n\x01cDirectory number: \x01h", maxlen=3)).strip()
    if not text.isdigit() or not 1 <= int(text) <= len(in_lib):
        return
    chosen = in_lib[int(text) - 1]
    await _save_setting(session, DIR_SETTING, chosen.code)
    await session.print(f"\x01n\x01cNow in \x01h{chosen.name}\x01n\x01c.\r\n")


async def list_files(session: "Session", args: tuple[str, ...]) -> None:
    """List the current directory's files, paged."""
    directory = await _need_dir(session)
    if directory is None:
        return
    session.set_activity(f"listing files in {directory.name}")
    records = await session.app.files.list(directory.code)
    await session.print(f"\r\n\x01n\x01h\x01w{directory.name}\x01n\x01c: {len(records)} "
                        f"file{'s' if len(records) != 1 else ''}\r\n")
    if records:
        await session.term.page(list_lines(records, session.term.cols))


async def search_files(session: "Session", args: tuple[str, ...]) -> None:
    """Search names and descriptions in every dir the caller may see."""
    session.set_activity("searching for files")
    text = t.printable(await session.term.getline(
        "\x01n\x01cSearch for (text, or a name pattern like *.zip): \x01h", maxlen=LEN_SEARCH)).strip()
    if not text:
        return
    found = 0
    out = []
    for directory in visible_dirs(session):
        hits = [r for r in await session.app.files.list(directory.code) if matches(r, text)]
        if hits:
            found += len(hits)
            out.append(f"\x01n\x01h\x01b{directory.name}\x01n\r\n" + list_lines(hits, session.term.cols))
    if not found:
        await session.print("\x01n\x01cNo files match.\r\n")
        return
    await session.print(f"\x01n\x01c{found} file{'s' if found != 1 else ''} found.\r\n")
    await session.term.page("".join(out))


async def new_files(session: "Session", args: tuple[str, ...]) -> None:
    """Files uploaded since the caller's last new-file scan, in every dir
    they may see; the scan time is then saved in the user's settings."""
    session.set_activity("scanning for new files")
    started = time.time()
    try:
        since = float((session.user.settings or {}).get(NEW_SINCE_SETTING, 0.0))
    except (TypeError, ValueError):
        since = 0.0
    shown = time.strftime("%Y-%m-%d %H:%M", time.localtime(since)) if since else "the beginning"
    await session.print(f"\r\n\x01n\x01cNew files since \x01h{shown}\x01n\x01c:\r\n")
    found = 0
    out = []
    for directory in visible_dirs(session):
        hits = [r for r in await session.app.files.list(directory.code) if r.uploaded > since]
        if hits:
            found += len(hits)
            out.append(f"\x01n\x01h\x01b{directory.name}\x01n\r\n" + list_lines(hits, session.term.cols))
    if found:
        await session.print(f"\x01n\x01c{found} new file{'s' if found != 1 else ''}.\r\n")
        await session.term.page("".join(out))
    else:
        await session.print("\x01n\x01cNo new files.\r\n")
    await _save_setting(session, NEW_SINCE_SETTING, started)


async def _ask_file(session: "Session", directory: FileDir, what: str) -> FileRecord | None:
    """Ask a file name and return the current dir's record of it (None and
    a message when the name is bad or not listed)."""
    name = t.printable(await session.term.getline(f"\x01n\x01c{what}: \x01h", maxlen=80)).strip()
    if not name:
        return None
    try:
        check_name(name)
        record = await session.app.files.get(directory.code, name)
    except BBSError as exc:
        if exc.reason is not Reason.BAD_NAME:
            raise
        record = None
    if record is None:
        await session.print(f"\x01n\x01h\x01rNo file by that name in {directory.name}.\x01n\r\n")
    return record


async def file_info(session: "Session", args: tuple[str, ...]) -> None:
    """Everything the file base knows about one file of the current dir."""
    directory = await _need_dir(session)
    if directory is None:
        return
    rec = await _ask_file(session, directory, "File information for")
    if rec is None:
        return
    when = time.strftime("%a %b %d %Y %H:%M", time.localtime(rec.uploaded))
    last = time.strftime("%a %b %d %Y %H:%M", time.localtime(rec.last_download)) if rec.last_download else "never"
    description = "\n".join(t.wrap_lines(t.printable(rec.description).replace("\x01", "") or "(none)",
                                         max(20, session.term.cols - 14)))
    description = description.replace("\n", "\r\n              ")
    await session.term.page(
        f"\r\n\x01n\x01cFile        : \x01h\x01w{t.printable(rec.name)}\x01n\r\n"
        f"\x01n\x01cDirectory   : \x01h{directory.name}\x01n\r\n"
        f"\x01n\x01cSize        : \x01h{rec.size:,} bytes\x01n\r\n"
        f"\x01n\x01cUploaded    : \x01h{when}\x01n\x01c by \x01h\x01y{rec.uploader or 'the sysop'}\x01n\r\n"
        f"\x01n\x01cDownloads   : \x01h{rec.downloads}\x01n\x01c (last: {last})\r\n"
        f"\x01n\x01cDescription : \x01h{description}\x01n\r\n")


# -- transfers -------------------------------------------------------------------
def protocol_menu(protocols: list[Protocol]) -> str:
    """The protocol list shown before the prompt (Synchronet-style)."""
    items = [f"\x01h\x01b[\x01w{p.key}\x01b]\x01n\x01c {p.name}{' (batch)' if p.batch else ''}" for p in protocols]
    return "\r\n\x01n" + "  ".join(items) + "\x01n\r\n"


def preferred(session: "Session", protocols: list[Protocol]) -> Protocol:
    """The caller's saved preferred protocol when it is offered, else the
    first of ``protocols`` (ZMODEM)."""
    return find(protocols, str((session.user.settings or {}).get(PROTOCOL_SETTING, ""))) or protocols[0]


async def choose_protocol(session: "Session", protocols: list[Protocol]) -> Protocol | None:
    """Ask which protocol (Enter gives the preferred one); None for Q."""
    default = preferred(session, protocols)
    keys = ",".join(p.key for p in protocols)
    await session.print(protocol_menu(protocols))
    key = await session.term.hotkey(f"\x01n\x01cProtocol ({keys} or Q=Quit) [{default.key}]: \x01h",
                                    "".join(p.key for p in protocols) + "Q", default.key)
    return find(protocols, key)


async def set_protocol(session: "Session", args: tuple[str, ...]) -> None:
    """Choose the preferred protocol, saved in the user's settings: the
    default at every transfer prompt."""
    session.set_activity("choosing a transfer protocol")
    protocols = available()
    if not protocols:
        await session.print(NO_LRZSZ)
        return
    chosen = await choose_protocol(session, protocols)
    if chosen is None:
        return
    await _save_setting(session, PROTOCOL_SETTING, chosen.key)
    await session.print(f"\x01n\x01cYour preferred protocol is now {chosen.name}.\r\n")


def _start_text(protocol: Protocol, verb: str) -> str:
    """What the caller is told just before the program starts."""
    return f"Start your {protocol.name} {verb} now (Ctrl-X five times aborts).\x01n\r\n"


async def download(session: "Session", args: tuple[str, ...]) -> None:
    """Send one file of the current dir with the protocol the caller picks
    (download_ars); the download is counted in the file base and the
    caller's statistics."""
    directory = await _need_dir(session)
    if directory is None:
        return
    if not directory.download_ars.allows(session.access()):
        await session.print(f"\x01n\x01h\x01rYou may not download from {directory.name}.\x01n\r\n")
        return
    protocols = available()
    if not protocols:
        await session.print(NO_LRZSZ)
        return
    rec = await _ask_file(session, directory, "Download which file")
    if rec is None:
        return
    path = directory.path / check_name(rec.name)
    if not await asyncio.to_thread(path.is_file):
        session.log.warning("file %s of %s is listed but missing from %s", rec.name, directory.code, directory.path)
        await session.print("\x01n\x01h\x01rThat file is missing from the disk; please tell the sysop.\x01n\r\n")
        return
    protocol = await choose_protocol(session, protocols)
    if protocol is None:
        return
    session.set_activity(f"downloading {rec.name} with {protocol.name}")
    await session.print(f"\x01n\x01cSending \x01h{t.printable(rec.name)}\x01n\x01c ({rec.size:,} bytes). "
                        f"{_start_text(protocol, 'download')}")
    code = await run_transfer(session, protocol.download_argv(rec.name), directory.path)
    if code != 0:
        await session.print("\r\n\x01n\x01h\x01rThe download failed or was aborted.\x01n\r\n")
        return
    size = (await asyncio.to_thread(path.stat)).st_size
    try:
        await session.app.files.count_download(directory.code, rec.name)
    except BBSError as exc:
        if exc.reason is not Reason.NOT_FOUND:  # removed meanwhile; the caller has the bytes
            raise
    session.user = await session.app.users.add_stats(session.user.number, downloads=1, download_bytes=size)
    session.log.info("%s downloaded %s/%s (%d bytes, %s)", session.user.alias, directory.code, rec.name, size,
                     protocol.name)
    await session.print(f"\r\n\x01n\x01h\x01gDownloaded {t.printable(rec.name)}.\x01n\r\n")


def name_problem(name: str) -> str:
    """Why ``name`` may not name an uploaded file ("" when it may)."""
    try:
        check_name(name)
    except BBSError:
        return "not a valid file name"
    if name.startswith(UPLOAD_TEMP_PREFIX):
        return "not a valid file name"
    return ""


def _place(temp: Path, target: Path) -> list[tuple[str, int, str]]:
    """Move the received files from ``temp`` into ``target`` (worker thread).

    Returns ``(name, size, problem)`` per file: ``problem`` is empty when
    the file was placed. A link is made, never an overwrite, so a name
    that appeared meanwhile (an FTP upload, say) is refused, not replaced.
    """
    results = []
    for entry in sorted(temp.iterdir()):
        if not entry.is_file() or entry.is_symlink():
            continue
        problem = name_problem(entry.name)
        if problem:
            results.append((entry.name, 0, problem))
            continue
        size = entry.stat().st_size
        try:
            os.link(entry, target / entry.name)
        except FileExistsError:
            results.append((entry.name, size, "a file by that name exists"))
            continue
        entry.unlink()
        results.append((entry.name, size, ""))
    return results


async def _ask_upload_name(session: "Session", directory: FileDir) -> str | None:
    """The name of a file to receive with a protocol that carries none
    (XMODEM): checked like every upload's name, and new in the dir."""
    name = t.printable(await session.term.getline("\x01n\x01cFile name to upload: \x01h", maxlen=64)).strip()
    if not name:
        return None
    problem = name_problem(name)
    if not problem and (await session.app.files.get(directory.code, name) is not None
                        or await asyncio.to_thread(os.path.lexists, directory.path / name)):
        problem = "a file by that name exists"
    if problem:
        await session.print(f"\x01n\x01h\x01r{t.printable(name)}: {problem}.\x01n\r\n")
        return None
    return name


async def upload(session: "Session", args: tuple[str, ...]) -> None:
    """Receive files into the current dir with the protocol the caller
    picks (upload_ars): they land in a temporary folder, are moved in when
    the program succeeds, and are recorded with the caller's description
    and credited to the caller."""
    directory = await _need_dir(session)
    if directory is None:
        return
    if not directory.upload_ars.allows(session.access()):
        await session.print(f"\x01n\x01h\x01rYou may not upload to {directory.name}.\x01n\r\n")
        return
    protocols = available()
    if not protocols:
        await session.print(NO_LRZSZ)
        return
    files = session.app.files
    if directory.max_files and len(await files.list(directory.code)) >= directory.max_files:
        await session.print(f"\x01n\x01h\x01r{directory.name} is full.\x01n\r\n")
        return
    protocol = await choose_protocol(session, protocols)
    if protocol is None:
        return
    name = None if protocol.batch else await _ask_upload_name(session, directory)
    if not protocol.batch and name is None:
        return
    await asyncio.to_thread(directory.path.mkdir, parents=True, exist_ok=True)
    temp = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix=UPLOAD_TEMP_PREFIX, dir=directory.path))
    try:
        session.set_activity(f"uploading to {directory.name} with {protocol.name}")
        await session.print(f"\x01n\x01cUploading to \x01h{directory.name}\x01n\x01c. "
                            f"{_start_text(protocol, 'upload')}")
        code = await run_transfer(session, protocol.upload_argv(name), temp)
        if code != 0:
            await session.print("\r\n\x01n\x01h\x01rThe upload failed or was aborted; nothing was kept.\x01n\r\n")
            return
        placed = await asyncio.to_thread(_place, temp, directory.path)
    finally:
        await asyncio.to_thread(shutil.rmtree, temp, True)
    if not placed:
        await session.print("\r\n\x01n\x01cNo file was received.\r\n")
        return
    for name, size, problem in placed:
        shown = t.printable(name)
        if problem or await files.get(directory.code, name) is not None:
            if not problem:  # listed (an FTP record without the file): keep the record, drop ours
                await asyncio.to_thread((directory.path / name).unlink, True)
            await session.print(f"\r\n\x01n\x01h\x01r{shown}: not kept ({problem or 'a file by that name exists'})."
                                "\x01n\r\n")
            continue
        await session.print(f"\r\n\x01n\x01cReceived \x01h{shown}\x01n\x01c ({size:,} bytes).\r\n")
        description = t.printable(await session.term.getline("\x01n\x01cDescription: \x01h",
                                                             maxlen=LEN_FDESC)).strip()
        await files.add(directory.code, name, size, uploader=session.user.alias,
                        uploader_number=session.user.number, description=description)
        session.user = await session.app.users.add_stats(session.user.number, uploads=1, upload_bytes=size)
        session.log.info("%s uploaded %s/%s (%d bytes, %s)", session.user.alias, directory.code, name, size,
                         protocol.name)
        await session.print(f"\x01n\x01h\x01gThank you! {shown} is in {directory.name}.\x01n\r\n")


SCREENS = {
    "file_area": choose_area,
    "file_list": list_files,
    "file_search": search_files,
    "file_new": new_files,
    "file_info": file_info,
    "file_download": download,
    "file_upload": upload,
    "file_protocol": set_protocol,
}
