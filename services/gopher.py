"""Gopher (RFC 1436): a read-only view of the board.

Selectors::

    ""                              root menu
    /msgs, /msgs/GROUP, /msgs/GROUP/CODE, /msgs/GROUP/CODE/N    message areas
    /files, /files/LIB, /files/LIB/CODE, /files/LIB/CODE/NAME   file libraries
    /who                            who is online

Everything is seen as the Guest account (main.ini GuestName) when it exists,
else as an anonymous level-0 caller: only areas whose requirements allow
that are listed or served. A file is served only when its name is listed in
its directory's folder (no path from the client is ever joined blindly).
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

from bbs.app import App
from bbs.ars import AccessContext
from bbs.boardconf import FileDir, MsgSub
from bbs.errors import BBSError
from bbs.filebase import check_name
from bbs.listeners import Connection
from services.common import BadQuery, callers, decode_query, read_query

log = logging.getLogger(__name__)

#: Messages listed per sub (newest first).
MAX_LISTED = 200
#: Bytes read from disk per write when sending a file.
CHUNK = 64 * 1024


class NotFound(Exception):
    pass


def _field(text: str) -> str:
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


class Gopher:
    """Answers one selector; built once per connection."""

    def __init__(self, app: App, conn: Connection, ctx: AccessContext) -> None:
        self.app, self.conn, self.ctx = app, conn, ctx
        self.host = app.config.server.global_.hostname
        self.port = conn.local_port

    def item(self, kind: str, text: str, selector: str = "") -> str:
        host, port = (self.host, self.port) if selector or kind != "i" else ("error.host", 1)
        return f"{kind}{_field(text)}\t{_field(selector)}\t{host}\t{port}\r\n"

    def menu(self, items: list[str]) -> bytes:
        return ("".join(items) + ".\r\n").encode("utf-8", "replace")

    def text(self, body: str) -> bytes:
        lines = body.replace("\r\n", "\n").split("\n")
        return ("".join(("." + l if l.startswith(".") else l) + "\r\n" for l in lines) + ".\r\n").encode(
            "utf-8", "replace")

    def error(self, message: str) -> bytes:
        return self.menu([f"3{_field(message)}\t\terror.host\t1\r\n"])

    # -- access --------------------------------------------------------
    def subs(self, group: str | None = None) -> list[MsgSub]:
        msgs = self.app.config.msgs
        allowed_groups = {g.name.lower() for g in msgs.groups if g.ars.allows(self.ctx)}
        return [s for s in msgs.subs if s.group.lower() in allowed_groups and s.ars.allows(self.ctx)
                and s.read_ars.allows(self.ctx) and (group is None or s.group.lower() == group.lower())]

    def dirs(self, lib: str | None = None) -> list[FileDir]:
        files = self.app.config.files
        allowed = {l.name.lower() for l in files.libs if l.ars.allows(self.ctx)}
        return [d for d in files.dirs if d.lib.lower() in allowed and d.ars.allows(self.ctx)
                and (lib is None or d.lib.lower() == lib.lower())]

    # -- selectors -----------------------------------------------------
    async def answer(self, selector: str) -> bytes | Path:
        parts = [p for p in selector.strip().split("/") if p]
        if not parts:
            return self.root()
        head, rest = parts[0].lower(), parts[1:]
        if head == "msgs" and len(rest) <= 3:
            return await self.msgs(rest)
        if head == "files" and len(rest) <= 3:
            return await self.files(rest)
        if head == "who" and not rest:
            return self.who()
        raise NotFound(selector)

    def root(self) -> bytes:
        system = self.app.config.system
        return self.menu([self.item("i", system.name), self.item("i", f"Sysop: {system.operator}"),
                          self.item("i", ""), self.item("1", "Message areas", "/msgs"),
                          self.item("1", "File libraries", "/files"), self.item("0", "Who is online", "/who")])

    async def msgs(self, rest: list[str]) -> bytes:
        if not rest:
            groups = {s.group for s in self.subs()}
            return self.menu([self.item("1", g.description, f"/msgs/{g.name}")
                              for g in self.app.config.msgs.groups if g.name in groups])
        subs = self.subs(rest[0])
        if not subs:
            raise NotFound(rest[0])
        if len(rest) == 1:
            return self.menu([self.item("1", f"{s.name} - {s.description}", f"/msgs/{s.group}/{s.code}")
                              for s in subs])
        sub = next((s for s in subs if s.code.lower() == rest[1].lower()), None)
        if sub is None:
            raise NotFound(rest[1])
        if len(rest) == 2:
            numbers = (await self.app.msgs.numbers(sub.code))[-MAX_LISTED:]
            messages = await self.app.msgs.list(sub.code, after=numbers[0] - 1) if numbers else []
            return self.menu([self.item("i", f"{sub.name}: {len(numbers)} message(s)")] + [
                self.item("0", f"{m.subject} ({m.from_name}, {time.strftime('%Y-%m-%d', time.localtime(m.posted))})",
                          f"/msgs/{sub.group}/{sub.code}/{m.number}") for m in reversed(messages)])
        if not rest[2].isdigit():
            raise NotFound(rest[2])
        try:
            message = await self.app.msgs.get(sub.code, int(rest[2]))
        except BBSError:
            raise NotFound(rest[2]) from None
        when = time.strftime("%a %b %d %Y %H:%M", time.localtime(message.posted))
        return self.text(f"Subject: {message.subject}\nFrom: {message.from_name}\nTo: {message.to_name}\n"
                         f"Date: {when}\n\n{message.body}")

    async def files(self, rest: list[str]) -> bytes | Path:
        if not rest:
            libs = {d.lib for d in self.dirs()}
            return self.menu([self.item("1", l.description, f"/files/{l.name}")
                              for l in self.app.config.files.libs if l.name in libs])
        dirs = self.dirs(rest[0])
        if not dirs:
            raise NotFound(rest[0])
        if len(rest) == 1:
            return self.menu([self.item("1", f"{d.name} - {d.description}", f"/files/{d.lib}/{d.code}")
                              for d in dirs])
        folder = next((d for d in dirs if d.code.lower() == rest[1].lower()), None)
        if folder is None:
            raise NotFound(rest[1])
        names = await asyncio.to_thread(_listing, folder.path)
        if len(rest) == 2:
            records = {r.name.lower(): r for r in await self.app.files.list(folder.code)}
            items = [self.item("i", f"{folder.name}: {len(names)} file(s)")]
            for name, size in names:
                record = records.get(name.lower())
                about = f" - {record.description}" if record and record.description else ""
                items.append(self.item("9", f"{name} ({size} bytes){about}", f"/files/{folder.lib}/{folder.code}/{name}"))
            return self.menu(items)
        try:
            name = check_name(rest[2])
        except BBSError:
            raise NotFound(rest[2]) from None
        if name not in {n for n, _ in names}:
            raise NotFound(name)
        if not folder.download_ars.allows(self.ctx):
            raise PermissionError(name)
        return folder.path / name

    def who(self) -> bytes:
        online = callers(self.app)
        if not online:
            return self.text("Nobody is online.")
        return self.text("\n".join(f"Node {c.node}: {c.user} ({c.connection}) {c.activity}" for c in online))


def _listing(folder: Path) -> list[tuple[str, int]]:
    """(name, size) of the regular, non-hidden files of ``folder`` (no symlinks)."""
    result = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
            continue
        result.append((entry.name, entry.stat(follow_symlinks=False).st_size))
    return sorted(result, key=lambda item: item[0].lower())


async def _context(app: App) -> AccessContext:
    try:
        guest = await app.users.find(app.config.system.guest_name)
    except BBSError:
        return AccessContext(level=0, guest=True, protocol="gopher")
    return AccessContext(level=guest.level, flags=guest.flags, exempt=guest.exempt, restrict=guest.restrict,
                         user=guest.number, protocol="gopher", guest=True)


def handler(app: App):
    timeout = app.config.server.services.common.max_inactivity

    async def gopher(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: Connection) -> None:
        server = Gopher(app, conn, await _context(app))
        try:
            selector = decode_query(await read_query(reader, timeout))
            answer = await server.answer(selector)
        except asyncio.TimeoutError:
            return
        except BadQuery:
            answer = server.error("Invalid selector")
        except NotFound:
            answer = server.error("Not found")
        except PermissionError:
            answer = server.error("Access denied")
        else:
            log.info("gopher %s: %r", conn.address, selector[:80])
        if isinstance(answer, Path):
            await _send_file(writer, answer)
            folder = answer.parent
            code = next((d.code for d in app.config.files.dirs if d.path == folder), "")
            try:
                await app.files.count_download(code, answer.name)
            except BBSError:
                pass  # a file the sysop put there without a file base record
            return
        writer.write(answer)
        await writer.drain()

    return gopher


async def _send_file(writer: asyncio.StreamWriter, path: Path) -> None:
    handle = await asyncio.to_thread(open, path, "rb")
    try:
        while chunk := await asyncio.to_thread(handle.read, CHUNK):
            writer.write(chunk)
            await writer.drain()
    finally:
        await asyncio.to_thread(handle.close)
