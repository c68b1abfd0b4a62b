"""The FTP commands that use files and the data connection.

A mixin of :class:`ftp.session.Session` (which provides ``reply``,
``service``, ``vfs``, ``ctx``, ``user``, ``conn`` ...): PASV/EPSV/PORT/EPRT
set up the next data connection; LIST/NLST/MLSD, RETR, STOR/STOU/APPE run
as a task (:meth:`TransferCommands._start`) that replies 150, opens the data
connection, transfers and replies 226 (or 425/426/451/552). SIZE, MDTM,
MLST, DELE and RNFR/RNTO answer on the control connection.

Uploads are written to a hidden temporary file (``.NAME.XXXX.part``, never
listed nor served) and renamed into place only when complete, then recorded
in the file base and credited to the uploader; an aborted or failed upload
leaves nothing listed. APPE and REST+STOR continue an existing file in place
(that is what resuming needs).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import ssl
import stat
import zipfile
from pathlib import Path
from typing import Any, Awaitable, BinaryIO, Callable

from bbs.errors import BBSError, Reason
from bbs.filebase import MAX_DESCRIPTION, check_name
from bbs.filters import normalize_ip
from ftp import commands as proto
from ftp.commands import Command
from ftp.data import DataError, DataStream, PassiveListener, connect_active
from ftp.server import reply_for
from ftp.vfs import Kind, Listed, Node, real_file

log = logging.getLogger(__name__)

#: Privileged ports: PORT/EPRT may not name them unless ALLOW_BOUNCE (RFC 2577 section 3).
FIRST_UNPRIVILEGED_PORT = 1024
#: Largest FILE_ID.DIZ read from an uploaded .zip for its description.
MAX_DIZ = MAX_DESCRIPTION
#: STOU tries this many numbered names before giving up.
MAX_UNIQUE_TRIES = 1000


def _on_disk(folder: Path, name: str) -> str | None:
    """The spelling on disk of ``name`` (any case) in ``folder``, or None (thread)."""
    try:
        return next((n for n in os.listdir(folder) if n.lower() == name.lower()), None)
    except OSError:
        return None


def _open_write(path: Path, *, create: bool, offset: int | None) -> BinaryIO:
    """A new temp file (``create``) or an existing file positioned at
    ``offset`` (None: its end) with the rest cut off (thread)."""
    flags = os.O_WRONLY | os.O_NOFOLLOW | (os.O_CREAT | os.O_EXCL if create else 0)
    fd = os.open(path, flags, 0o644)
    file = os.fdopen(fd, "wb")
    if not create:
        size = os.fstat(fd).st_size
        start = size if offset is None else offset
        file.truncate(start)
        file.seek(start)
    return file


def _finish(file: BinaryIO) -> int:
    """Flush, fsync and close an upload; return its size (thread)."""
    file.flush()
    os.fsync(file.fileno())
    size = os.fstat(file.fileno()).st_size
    file.close()
    return size


def _diz(path: Path) -> str:
    """FILE_ID.DIZ of a .zip, as a description ("" if none; thread)."""
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.filename.lower() in ("file_id.diz", "desc.sdi") and info.file_size <= MAX_DIZ:
                    return archive.read(info).decode("cp437", "replace").strip()
    except (OSError, zipfile.BadZipFile, ValueError, RuntimeError):
        pass
    return ""


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class TransferCommands:
    """Data-connection and file commands of a session (a mixin)."""

    # -- state -------------------------------------------------------------
    def _reset_transfer_state(self) -> None:
        self.type = "A"
        self.rest = 0
        self.pasv: PassiveListener | None = None
        self.active: tuple[str, int] | None = None
        self.epsv_all = False
        self.transfer: asyncio.Task | None = None
        self.stream: DataStream | None = None
        self.sized: tuple[str, Listed, BinaryIO] | None = None  # see _drop_sized

    def _close_data_setup(self) -> None:
        if self.pasv is not None:
            self.pasv.close()
            self.pasv = None
        self.active = None

    def transfer_bytes(self) -> int:
        return self.stream.bytes if self.stream is not None else 0

    async def _end_transfer(self) -> None:
        """Cancel a running transfer (session end) and wait for its clean-up."""
        if self.transfer is not None and not self.transfer.done():
            self.transfer.cancel()
            await asyncio.wait([self.transfer])
        self.transfer = None

    def _data_log(self, message: str, *args: Any) -> None:
        if self.debug_data:
            log.info("%s data: " + message, self.prefix, *args)

    # -- opening the data connection ----------------------------------------
    def _can_transfer(self) -> bool:
        return self.pasv is not None or self.active is not None

    async def _open_stream(self) -> DataStream:
        tls = self.service.data_tls_context() if self.prot_p else None
        if self.pasv is not None:
            listener, self.pasv = self.pasv, None
            try:
                sock = await listener.accept(self.conn.address)
            finally:
                listener.close()
            self._data_log("passive connection on port %d accepted%s", listener.port, " (TLS)" if tls else "")
        elif self.active is not None:
            (address, port), self.active = self.active, None
            sock = await connect_active(address, port, self.conn.local_address)
            self._data_log("connected to %s port %d%s", address, port, " (TLS)" if tls else "")
        else:
            raise DataError("no PORT or PASV")
        self.stream = await DataStream.open(sock, tls)
        return self.stream

    def _start(self, work: Callable[[], Awaitable[None]], what: str) -> bool:
        """Run a transfer as a task; 425 at once (and False) when no PASV/PORT came first."""
        if not self._can_transfer():
            self.reply(425, "Use PORT, EPRT, PASV or EPSV first.")
            return False
        self.transfer = asyncio.get_running_loop().create_task(self._guard(work, what))
        return True

    async def _guard(self, work: Callable[[], Awaitable[None]], what: str) -> None:
        try:
            await work()
        except asyncio.CancelledError:
            if self.stream is not None:
                self.stream.abort()
            self._data_log("%s aborted after %d bytes", what, self.transfer_bytes())
            self.reply(426, "Transfer aborted.")
        except DataError as exc:
            log.info("%s %s: %s", self.prefix, what, exc)
            self.reply(425, "Can't open data connection.")
        except BBSError as exc:
            self.reply(*reply_for(exc))
        except OverflowError:
            self.reply(552, "Exceeded storage allocation (MaxFileSize).")
        except (ConnectionError, OSError, ssl.SSLError) as exc:
            log.info("%s %s failed: %s", self.prefix, what, exc)
            self.reply(426, "Connection closed; transfer aborted.")
        finally:
            stream, self.stream = self.stream, None
            if stream is not None:
                await stream.close()

    async def _close_stream(self) -> int:
        stream, self.stream = self.stream, None
        assert stream is not None
        await stream.close()
        return stream.bytes

    # -- PASV / EPSV / PORT / EPRT -----------------------------------------
    async def ftp_PASV(self, cmd: Command) -> None:
        await self._passive("PASV", 227, proto.pasv_reply, ipv4_only=True)

    async def ftp_LPSV(self, cmd: Command) -> None:
        await self._passive("LPSV", 228, proto.lpsv_reply)

    async def _passive(self, verb: str, code: int, reply_text: Callable[[str, int], str], *,
                       ipv4_only: bool = False) -> None:
        """PASV and LPSV: listen, then advertise the (NAT) address and port."""
        local = self.conn.local_address
        if self.epsv_all:
            self.reply(501, "EPSV ALL was given; use EPSV.")
            return
        if ipv4_only and ":" in local:
            self.reply(425, "PASV is for IPv4; use EPSV.")
            return
        listener = self._listen(local)
        if listener is None:
            self.reply(425, "Can't open a passive port.")
            return
        address = await self.service.pasv_address(local)
        self._data_log("%s: listening on %s port %d, advertising %s", verb, local, listener.port, address)
        self.reply(code, reply_text(address, listener.port))

    def ftp_EPSV(self, cmd: Command) -> None:
        arg = cmd.arg.strip().upper()
        local = self.conn.local_address
        family = "2" if ":" in local else "1"
        if arg == "ALL":
            self.epsv_all = True
            self.reply(200, "EPSV ALL ok.")
            return
        if arg and arg != family:
            self.reply(522, f"Network protocol not supported, use ({family}).")
            return
        listener = self._listen(local)
        if listener is None:
            self.reply(425, "Can't open a passive port.")
            return
        self._data_log("EPSV: listening on %s port %d", local, listener.port)
        self.reply(229, proto.epsv_reply(listener.port))

    def _listen(self, local: str) -> PassiveListener | None:
        self._close_data_setup()
        cfg = self.service.cfg
        try:
            self.pasv = PassiveListener.open(local, cfg.pasv_port_low, cfg.pasv_port_high)
        except DataError as exc:
            log.warning("%s %s", self.prefix, exc)
            return None
        return self.pasv

    def ftp_PORT(self, cmd: Command) -> None:
        try:
            address, port = proto.parse_port(cmd.arg)
        except ValueError:
            self.reply(501, "Syntax error in PORT (h1,h2,h3,h4,p1,p2).")
            return
        self._set_active(address, port)

    def ftp_EPRT(self, cmd: Command) -> None:
        try:
            address, port = proto.parse_eprt(cmd.arg)
        except ValueError:
            self.reply(522, "Bad EPRT; network protocol supported: (1,2).")
            return
        self._set_active(address, port)

    def _set_active(self, address: str, port: int) -> None:
        if self.epsv_all:
            self.reply(501, "EPSV ALL was given; use EPSV.")
            return
        third_party = normalize_ip(address) != normalize_ip(self.conn.address)
        if (third_party or port < FIRST_UNPRIVILEGED_PORT) and "ALLOW_BOUNCE" not in self.service.options:
            log.warning("%s !BOUNCE attempt refused: data connection to %s port %d", self.prefix, address, port)
            self.reply(504, "Data connections only to your own address and ports 1024 and up.")
            return
        self._close_data_setup()
        self.active = (address, port)
        self._data_log("active mode: will connect to %s port %d", address, port)
        self.reply(200, "PORT command successful.")

    # -- listings ----------------------------------------------------------
    async def ftp_LIST(self, cmd: Command) -> None:
        await self._listing(cmd, lambda listing: [proto.list_line(item.entry) for item in listing])

    async def ftp_NLST(self, cmd: Command) -> None:
        await self._listing(cmd, lambda listing: [item.entry.name for item in listing])

    async def ftp_MLSD(self, cmd: Command) -> None:
        node = self.vfs.resolve(self.cwd, cmd.arg, self.ctx)
        if node.kind is Kind.FILE:
            self.reply(501, "MLSD needs a directory.")
            return
        await self._listing(cmd, lambda listing: [proto.mlst_facts(item.entry) for item in listing], node)

    async def _listing(self, cmd: Command, render: Callable[[list[Listed]], list[str]],
                       node: Node | None = None) -> None:
        node = node or self.vfs.resolve(self.cwd, self._path_arg(cmd.arg), self.ctx)
        listing = await self.vfs.entries(node, self.ctx)
        lines = render(listing)
        data = "".join(f"{line}\r\n" for line in lines).encode("utf-8", "surrogateescape")

        async def work() -> None:
            self.reply(150, f"Opening data connection for the listing of {node.path}.")
            stream = await self._open_stream()
            await stream.send_bytes(data)
            await self._close_stream()
            self.reply(226, f"Listing sent ({len(lines)} entries).")

        self._start(work, cmd.verb)

    async def ftp_MLST(self, cmd: Command) -> None:
        node = self.vfs.resolve(self.cwd, cmd.arg, self.ctx)
        if node.kind is Kind.FILE:
            entry = (await self.vfs.find(node, self.ctx)).entry
        else:
            perm = self.vfs.perm(node.dir, self.ctx)[0] if node.dir is not None else "el"
            entry = proto.Entry(node.parts[-1] if node.parts else "/", True, perm=perm)
        facts = proto.mlst_facts(entry).split(" ", 1)[0]
        self.reply(250, [f"Listing {node.path}", f"{facts} {node.path}", "End."])

    def _file_node(self, arg: str) -> Node:
        """The file a command names (not a library or a dir); raises NOT_FOUND."""
        node = self.vfs.resolve(self.cwd, arg, self.ctx)
        if node.kind is not Kind.FILE:
            raise BBSError(Reason.NOT_FOUND, "not a plain file")
        return node

    async def _file(self, arg: str) -> tuple[Node, Listed]:
        node = self._file_node(arg)
        return node, await self.vfs.find(node, self.ctx)

    async def ftp_SIZE(self, cmd: Command) -> None:
        node = self._file_node(cmd.arg)
        listed, file = await self.vfs.open_file(node, self.ctx)
        self._drop_sized()
        if file is not None:
            self.sized = (node.path, listed, file)
        self.reply(213, str(listed.entry.size))

    def _drop_sized(self) -> None:
        """Close the file the last SIZE opened (SIZE opens it: clients such as
        curl, lftp and browsers send RETR of it next, which then takes it
        without another look-up)."""
        if self.sized is not None:
            self.sized[2].close()
            self.sized = None

    async def ftp_MDTM(self, cmd: Command) -> None:
        _, listed = await self._file(cmd.arg)
        self.reply(213, proto.mdtm(listed.entry.mtime))

    # -- downloads ---------------------------------------------------------
    def ftp_REST(self, cmd: Command) -> None:
        text = cmd.arg.strip()
        if not text.isdigit() or len(text) > 18:
            self.reply(501, "REST needs a byte offset.")
            return
        self.rest = int(text)
        self.reply(350, f"Restarting at {self.rest}. Send RETR, STOR or APPE.")

    def ftp_RETR(self, cmd: Command) -> Awaitable[None] | None:
        node = self._file_node(cmd.arg)
        assert node.dir is not None
        if not self.vfs.can_download(node.dir, self.ctx):
            raise BBSError(Reason.ACCESS_DENIED, "download_ars")
        offset, self.rest = self.rest, 0
        sized, self.sized = self.sized, None
        if sized is not None:
            if sized[0] == node.path:  # opened by the SIZE just before
                self._send(node, offset, sized[1], sized[2], b"")
                return None
            sized[2].close()
        return self._open_and_send(node, offset)

    async def _open_and_send(self, node: Node, offset: int) -> None:
        assert node.dir is not None
        listed, file = await self.vfs.open_file(node, self.ctx)
        data = b"" if file is not None else self.vfs.index_bytes(await self.vfs.files_of(node.dir, self.ctx))
        self._send(node, offset, listed, file, data)

    def _send(self, node: Node, offset: int, listed: Listed, file: BinaryIO | None, data: bytes) -> None:
        """Start sending ``file`` (or ``data``, the generated index) from ``offset``."""
        assert node.dir is not None and self.user is not None
        size = len(data) if file is None else listed.entry.size
        if offset > size:
            if file is not None:
                file.close()
            self.reply(554, f"Restart offset {offset} is beyond the end of the file ({size}).")
            return
        name, user, d = listed.entry.name, self.user, node.dir

        async def work() -> None:
            try:
                self.reply(150, f"Opening BINARY mode data connection for {name} ({size} bytes).")
                stream = await self._open_stream()
                if file is None:
                    await stream.send_bytes(data[offset:])
                else:
                    await stream.send_file(file, offset, size - offset)
                sent = await self._close_stream()
            finally:
                if file is not None:
                    file.close()
            self._data_log("sent %s: %d bytes from offset %d", name, sent, offset)
            log.info("%s downloaded %s/%s (%d bytes)", self.prefix, d.code, name, sent)
            self.reply(226, "Transfer complete.")
            self.stored(self.service.ledger.download(user.number, sent, d.code,
                                                     listed.record.name if listed.record else None))

        if not self._start(work, "RETR") and file is not None:
            file.close()

    # -- uploads -----------------------------------------------------------
    async def ftp_STOR(self, cmd: Command) -> None:
        await self._upload(self.vfs.resolve(self.cwd, cmd.arg, self.ctx), "STOR")

    async def ftp_APPE(self, cmd: Command) -> None:
        await self._upload(self.vfs.resolve(self.cwd, cmd.arg, self.ctx), "APPE")

    async def ftp_STOU(self, cmd: Command) -> None:
        node = self.vfs.resolve(self.cwd, cmd.arg.strip() or ".", self.ctx)
        if node.kind is Kind.DIR:
            node = self.vfs.resolve(node.path, "upload", self.ctx)
        if node.kind is not Kind.FILE:
            raise BBSError(Reason.BAD_NAME, "STOU needs a file directory")
        assert node.dir is not None
        for number in range(MAX_UNIQUE_TRIES):
            name = node.name if number == 0 else f"{node.name}.{number}"
            if await asyncio.to_thread(_on_disk, node.dir.path, name) is None:
                await self._upload(Node(Kind.FILE, (*node.parts[:2], name), node.lib, node.dir, name), "STOU")
                return
        raise BBSError(Reason.EXISTS, "no unique name left")

    async def _upload(self, node: Node, mode: str) -> None:
        self._drop_sized()  # a file changes: a RETR after this opens it again
        if node.kind is not Kind.FILE:
            raise BBSError(Reason.BAD_NAME, "uploads go into a file directory")
        d = node.dir
        assert d is not None and self.user is not None
        if not self.vfs.can_upload(d, self.ctx):
            raise BBSError(Reason.ACCESS_DENIED, "upload_ars")
        name = check_name(node.name)
        if self.vfs.index_name and name.lower() == self.vfs.index_name.lower():
            raise BBSError(Reason.BAD_NAME, "the index file name is reserved")
        real_file(d.path, name)
        offset, self.rest = self.rest, 0
        existing = await asyncio.to_thread(_on_disk, d.path, name)
        record = await self.service.files.get(d.code, name)
        resume = mode == "APPE" or offset > 0
        if existing is not None:
            own = record is not None and record.uploader_number == self.user.number and not self.guest
            if not (own or self.vfs.is_sysop(self.ctx)):
                raise BBSError(Reason.EXISTS, "file exists")
            target = real_file(d.path, existing)
            st = await asyncio.to_thread(os.lstat, target)
            if not stat.S_ISREG(st.st_mode):
                raise BBSError(Reason.EXISTS, "not a regular file")
            if offset > st.st_size:
                self.reply(554, f"Restart offset {offset} is beyond the end of the file ({st.st_size}).")
                return
        else:
            if offset > 0:
                self.reply(554, "Restart offset given for a file that does not exist.")
                return
            resume = False
            target = real_file(d.path, name)
            if d.max_files and len(await self.service.files.list(d.code)) >= d.max_files:
                raise BBSError(Reason.LIMIT, "max_files")
        cfg = self.service.cfg
        description, self.next_desc = self.next_desc, ""
        temp = None if resume else d.path / f".{name}.{secrets.token_hex(4)}.part"

        async def work() -> None:
            note = f" (unique name {name})" if mode == "STOU" else ""
            opening = asyncio.ensure_future(asyncio.to_thread(
                _open_write, temp or target, create=temp is not None,
                offset=(None if mode == "APPE" else offset) if resume else None))
            try:
                file = await asyncio.shield(opening)
            except asyncio.CancelledError:  # ABOR while the thread opens it: undo
                with contextlib.suppress(OSError):
                    (await opening).close()
                if temp is not None:
                    await asyncio.to_thread(_unlink, temp)
                raise
            try:
                self.reply(150, f"FILE: {name}" if mode == "STOU" else f"Ready to receive {name}{note}.")
                stream = await self._open_stream()
                start = await asyncio.to_thread(file.tell)
                limit = max(0, cfg.max_file_size - start) if cfg.max_file_size else 0
                await stream.receive_to(file, limit)
                received = await self._close_stream()
                size = await asyncio.to_thread(_finish, file)
                if cfg.min_file_size and size < cfg.min_file_size:
                    raise BBSError(Reason.BAD_VALUE, "MinFileSize")
                if temp is not None:
                    if existing is not None and existing != name:
                        await asyncio.to_thread(_unlink, target)
                    await asyncio.to_thread(os.replace, temp, d.path / name)
            except BaseException:
                if not file.closed:
                    file.close()
                if temp is not None:
                    await asyncio.to_thread(_unlink, temp)
                raise
            final = name if temp is not None else (existing or name)
            desc = description
            if not desc and final.lower().endswith(".zip"):
                desc = await asyncio.to_thread(_diz, d.path / final)
            if resume and record is not None:
                await self.service.files.set_size(d.code, record.name, size)
                if desc:
                    await self.service.files.set_description(d.code, record.name, desc)
            else:
                await self.service.files.add(d.code, final, size, uploader=self.user.alias,
                                             uploader_number=self.user.number, description=desc)
            self.stored(self.service.ledger.credit(self.user.number, uploads=1, upload_bytes=received))
            log.info("%s uploaded %s/%s (%d bytes%s)", self.prefix, d.code, final, received,
                     ", appended" if resume else "")
            self._data_log("received %s: %d bytes", final, received)
            self.reply(226, f"Transfer complete{note}.")

        self._start(work, mode)

    async def ftp_ABOR(self, cmd: Command) -> None:
        if self.transfer is not None and not self.transfer.done():
            self.transfer.cancel()
            await asyncio.wait([self.transfer])
            self.reply(226, "ABOR successful.")
            return
        self._close_data_setup()
        self.reply(225, "No transfer to abort.")

    # -- sysop file management --------------------------------------------
    async def ftp_DELE(self, cmd: Command) -> None:
        self._drop_sized()  # a file changes: a RETR after this opens it again
        node, listed = await self._file(cmd.arg)
        assert node.dir is not None
        if listed.index:
            raise BBSError(Reason.ACCESS_DENIED, "the index file is generated")
        await asyncio.to_thread(_unlink, self.vfs.path_of(node, listed))
        if listed.record is not None:
            await self.service.files.remove(node.dir.code, listed.record.name)
        log.info("%s deleted %s/%s", self.prefix, node.dir.code, listed.entry.name)
        self.reply(250, "File deleted.")

    async def ftp_RNFR(self, cmd: Command) -> None:
        node, listed = await self._file(cmd.arg)
        if listed.index:
            raise BBSError(Reason.ACCESS_DENIED, "the index file is generated")
        self.rnfr = (node, listed)
        self.reply(350, "Ready for RNTO.")

    async def ftp_RNTO(self, cmd: Command) -> None:
        self._drop_sized()  # a file changes: a RETR after this opens it again
        if self.rnfr is None:
            self.reply(503, "Send RNFR first.")
            return
        (old, listed), self.rnfr = self.rnfr, None
        new = self.vfs.resolve(self.cwd, cmd.arg, self.ctx)
        if new.kind is Kind.DIR:
            new = Node(Kind.FILE, (*new.parts, listed.entry.name), new.lib, new.dir, listed.entry.name)
        if new.kind is not Kind.FILE:
            raise BBSError(Reason.BAD_NAME, "rename into a file directory")
        assert old.dir is not None and new.dir is not None
        source = self.vfs.path_of(old, listed)
        target = real_file(new.dir.path, new.name)
        clash = await asyncio.to_thread(_on_disk, new.dir.path, new.name)
        if clash is not None and not (new.dir.code == old.dir.code and clash == listed.entry.name):
            raise BBSError(Reason.EXISTS, "target exists")
        await asyncio.to_thread(os.rename, source, target)
        record = listed.record
        if record is not None:
            if new.dir.code == old.dir.code:
                await self.service.files.rename(old.dir.code, record.name, new.name)
            else:
                await self.service.files.remove(old.dir.code, record.name)
                await self.service.files.add(new.dir.code, new.name, record.size, uploader=record.uploader,
                                             uploader_number=record.uploader_number,
                                             description=record.description, when=record.uploaded)
        log.info("%s renamed %s to %s", self.prefix, old.path, new.path)
        self.reply(250, "Rename successful.")
