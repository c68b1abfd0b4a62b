"""File areas for callers: `telnet` under pexpect lists, searches and scans
the file base; an `ftplib` upload is listed at once. Transfers run the real
lrzsz programs on the client side: through the real `telnet -8 -E` and
OpenSSH `ssh` clients under pexpect (ZMODEM both ways over both; XMODEM-CRC
and XMODEM-1K over telnet; YMODEM batch over ssh; tests/integration/
ptysupport.py relays the program to the client's pty), and ZMODEM over a raw
TCP connection to the telnet port that refuses every telnet option (a small
filter in the test escapes/un-escapes IAC, RFC 854)."""
from __future__ import annotations

import asyncio
import ftplib
import io
import json
import re
import shutil
import socket
import sqlite3
from pathlib import Path

import pexpect
import pytest

from tests.integration.ftpsupport import add_user, seed
from tests.integration.ptysupport import ZMODEM_START, expect_line, run_program, spawn_ssh, spawn_telnet
from tests.integration.test_terminal_server import MAIN_MENU, logoff, logon, telnet
from tests.support import BBSProcess, run_async

FILE_MENU = "Files "
TEXT_DIR_CHOSEN = "Now in Text Files."
UPLOADS_DIR_CHOSEN = "Now in Uploads."
ONE_FOUND = "1 file found."
ALL_NEW = "3 new files."
NO_NEW = "No new files."
DOWNLOAD_DENIED = "You may not download from Uploads."
START_DOWNLOAD = "Start your Zmodem download now"
START_UPLOAD = "Start your Zmodem upload now"
PROTOCOL_PROMPT = "Protocol (Z,X,1,Y or Q=Quit) [{}]: "
NO_LRZSZ = ("File transfers are not available: lrzsz's transfer programs (sz/rz, sx/rx, sb/rb) are not "
            "installed on this BBS.")
#: XMODEM's block padding (CP/M end-of-file, Ctrl-Z): XMODEM carries no length.
SUB = b"\x1a"

#: Files the sysop placed in Main/TEXT (name -> bytes).
LIBRARY = {
    "readme.txt": b"Welcome to the file library.\r\n" * 10,
    "faq.txt": b"Q: What?\nA: This.\n" * 100,
    "art.ans": bytes(range(256)) * 40,  # every byte value, 0xFF included
}
#: Bytes a transfer path can mangle: CR NUL and CR LF (telnet's NVT newlines),
#: XON/XOFF, telnet's escape character (Ctrl-]), IAC (0xFF) and CAN/ZDLE (0x18).
TRICKY = b"\r\x00\r\n\x11\x13\x1d\xff\xff\x18\x18"
#: A download with every byte value, telnet's IAC and ZMODEM's ZDLE many times.
PAYLOAD = bytes(range(256)) * 300 + TRICKY * 50
#: An upload with CR LF, NUL, IAC and CAN (ZDLE) runs.
UPLOAD = bytes((i * 7) % 256 for i in range(50_000)) + b"\xff\xff\r\n\x00\x18\x18" * 100 + TRICKY * 50



@pytest.fixture
def board(instance: Path):
    add_user(instance, "Alice", "alicepw1")                 # level 10 (new-user level)
    add_user(instance, "Carol", "carolpw1", "--level", "5")  # below Uploads' download_ars (LEVEL 10)
    add_user(instance, "Bob", "bobpw123")
    seed(instance, "files/main/text", "TEXT", LIBRARY)
    seed(instance, "files/main/uploads", "UPLOADS", {"payload.bin": PAYLOAD}, uploader="Bob")
    process = BBSProcess(instance).start()
    yield process
    if process.proc and process.proc.poll() is None:
        assert process.stop() == 0
    assert "Traceback" not in process.stderr()


def choose_dir(caller, number: int, chosen: str) -> None:
    caller.send("a")
    caller.expect("Directory number: ")
    caller.sendline(str(number))
    caller.expect_exact(chosen)


def file_row(root: Path, dir_code: str, name: str):
    with sqlite3.connect(root / "data" / "file.db") as db:
        return db.execute("SELECT size, uploader, description, downloads FROM files WHERE dir = ? AND name = ?",
                          (dir_code, name)).fetchone()


def user_stats(root: Path, alias: str):
    with sqlite3.connect(root / "data" / "user.db") as db:
        return db.execute("SELECT uploads, upload_bytes, downloads, download_bytes FROM users WHERE alias = ?",
                          (alias,)).fetchone()


def test_list_search_info_and_new_file_scan(board: BBSProcess):
    alice = telnet(board.ports["telnet"], term="dumb")
    logon(alice, "Alice", "alicepw1")
    alice.send("f")
    alice.expect(FILE_MENU)
    choose_dir(alice, 3, TEXT_DIR_CHOSEN)
    alice.send("l")
    alice.expect("Text Files.*3 files")
    for name in ("art.ans", "faq.txt", "readme.txt"):  # listed by name
        alice.expect(re.escape(name) + r" +\S+ +\d{4}-\d\d-\d\d +Sysop +0")
        alice.expect_exact(f"about {name}")
    alice.send("s")
    alice.expect("Search for")
    alice.sendline("ABOUT FAQ")                           # descriptions, any case
    alice.expect_exact(ONE_FOUND)
    alice.expect_exact("faq.txt")
    alice.send("s")
    alice.expect("Search for")
    alice.sendline("*.ans")                               # a name pattern
    alice.expect_exact(ONE_FOUND)
    alice.expect_exact("art.ans")
    alice.send("i")
    alice.expect("File information for: ")
    alice.sendline("FAQ.TXT")
    alice.expect_exact("1,800 bytes")
    alice.expect_exact("about faq.txt")
    alice.send("i")
    alice.expect("File information for: ")
    alice.sendline("../../../ctrl/sbbs.ini")
    alice.expect_exact("No file by that name in Text Files.")
    alice.send("n")
    alice.expect_exact("New files since the beginning")
    alice.expect_exact("4 new files.")                    # TEXT's three and Uploads' one
    alice.send("n")
    alice.expect_exact(NO_NEW)
    alice.send("q")
    alice.expect(MAIN_MENU)
    logoff(alice)


def test_ftp_upload_is_listed_at_once(board: BBSProcess):
    alice = telnet(board.ports["telnet"], term="dumb")
    logon(alice, "Alice", "alicepw1")
    alice.send("f")
    alice.expect(FILE_MENU)
    alice.send("n")
    alice.expect_exact("4 new files.")
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", board.ports["ftp"], timeout=15)
    ftp.login("Bob", "bobpw123")
    ftp.storbinary("STOR /Main/UPLOADS/fresh.txt", io.BytesIO(b"fresh bytes\n"))
    ftp.quit()
    alice.send("l")                                       # Uploads is the first dir
    alice.expect("Uploads.*2 files")
    alice.expect(r"fresh\.txt +12 +\d{4}-\d\d-\d\d +Bob +0")
    alice.send("n")
    alice.expect_exact("1 new file.")
    alice.expect_exact("fresh.txt")
    alice.send("q")
    logoff(alice)


def test_download_needs_download_ars(board: BBSProcess):
    carol = telnet(board.ports["telnet"], term="dumb")
    logon(carol, "Carol", "carolpw1")
    carol.send("f")
    carol.expect(FILE_MENU)
    carol.send("l")
    carol.expect_exact("payload.bin")                     # she may see the dir
    carol.send("d")
    carol.expect_exact(DOWNLOAD_DENIED)
    carol.expect(FILE_MENU)
    assert "Download which file" not in carol.before
    carol.send("q")
    logoff(carol)
    assert file_row(board.root, "UPLOADS", "payload.bin")[3] == 0


# -- ZMODEM over a raw telnet connection ------------------------------------------
IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240
_ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


class RawTelnet:
    """A minimal telnet client: refuses every option, answers the BBS's
    cursor-position probe, un-escapes IAC IAC in and escapes 0xFF out."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.state = "data"
        self.pending = b""   # decoded data not yet consumed
        self.text = b""      # decoded data since the last expect (escape sequences kept)

    @classmethod
    async def connect(cls, port: int) -> "RawTelnet":
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    def decode(self, chunk: bytes) -> bytes:
        out = bytearray()
        for byte in chunk:
            if self.state == "data":
                if byte == IAC:
                    self.state = "iac"
                else:
                    out.append(byte)
            elif self.state == "iac":
                if byte == IAC:
                    out.append(IAC)
                    self.state = "data"
                elif byte in (DO, DONT, WILL, WONT):
                    self.state = byte
                elif byte == SB:
                    self.state = "sb"
                else:
                    self.state = "data"
            elif self.state in (DO, DONT, WILL, WONT):
                if self.state == DO:
                    self.writer.write(bytes((IAC, WONT, byte)))
                elif self.state == WILL:
                    self.writer.write(bytes((IAC, DONT, byte)))
                self.state = "data"
            elif self.state == "sb":
                self.state = "sb-iac" if byte == IAC else "sb"
            elif self.state == "sb-iac":
                self.state = "data" if byte == SE else "sb"
        return bytes(out)

    async def read(self) -> bytes:
        chunk = await self.reader.read(65536)
        if not chunk:
            raise EOFError("the BBS hung up")
        return self.decode(chunk)

    def send(self, data: bytes) -> None:
        self.writer.write(data.replace(b"\xff", b"\xff\xff"))

    async def expect(self, marker: str) -> None:
        """Read until ``marker`` (escape sequences removed) has been shown;
        the bytes after it stay pending."""
        needle = marker.encode()
        while True:
            plain = _ANSI.sub(b"", self.pending)
            if needle in plain:
                self.pending = self.pending[_raw_end(self.pending, needle):]  # what follows stays
                return
            data = await self.read()
            if b"\x1b[6n" in data:
                self.send(b"\x1b[1;2R")   # ANSI, and the UTF-8 probe moved one column
            self.pending += data

    async def run_program(self, argv: list[str], cwd: Path) -> int:
        """Run a transfer program wired to the connection until it exits."""
        proc = await asyncio.create_subprocess_exec(*argv, cwd=cwd, stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.DEVNULL)
        assert proc.stdin and proc.stdout
        # Like a terminal's ZMODEM auto-start: the program sees the stream
        # from the first header on (ZPAD ZPAD ZDLE), not the text before it
        # (a 'C' in that text would make sz fall back to YMODEM).
        start = self.pending.find(b"**\x18")
        transcript = bytearray(self.pending[start:] if start >= 0 else b"")
        proc.stdin.write(bytes(transcript))
        self.pending = b""

        async def inbound() -> None:
            while True:
                data = await self.read()
                transcript.extend(data)
                try:
                    proc.stdin.write(data)
                    await proc.stdin.drain()
                except (BrokenPipeError, ConnectionResetError):
                    return

        async def outbound() -> None:
            while data := await proc.stdout.read(65536):
                self.send(data)
                await self.writer.drain()

        feeder = asyncio.ensure_future(inbound())
        await outbound()
        code = await proc.wait()
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
        # What the BBS wrote after the ZMODEM session (the program may have
        # been fed it before it exited) is the caller's text again.
        self.pending = bytes(transcript[_zmodem_end(bytes(transcript)):])
        return code

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def _zmodem_end(stream: bytes) -> int:
    """Where a ZMODEM session's bytes end in what the BBS sent: after the
    sender's "OO" (over and out) or the receiver's last hex header (ZFIN),
    whichever is later."""
    over = stream.rfind(b"OO")
    cut = over + 2 if over >= 0 else 0
    header = stream.rfind(b"**\x18B")
    if header >= 0:
        ends = [i for i in (stream.find(b"\n", header), stream.find(b"\x8a", header)) if i >= 0]
        cut = max(cut, min(ends) + 1 if ends else len(stream))
    return cut


def _raw_end(raw: bytes, needle: bytes) -> int:
    """The index in ``raw`` just after ``needle`` when escape sequences are ignored."""
    for end in range(len(needle), len(raw) + 1):
        if _ANSI.sub(b"", raw[:end]).endswith(needle):
            return end
    raise AssertionError("marker not in buffer")


async def zmodem_session(port: int, workdir: Path) -> None:
    """ZMODEM both ways over a raw connection that refuses every telnet option."""
    bbs = await RawTelnet.connect(port)
    try:
        await bbs.expect("Login: ")
        bbs.send(b"Alice\r")
        await bbs.expect("Password: ")
        bbs.send(b"alicepw1\r")
        await bbs.expect(MAIN_MENU)
        bbs.send(b"f")
        await bbs.expect(FILE_MENU)
        # download payload.bin from Uploads (the first dir) with the client's rz
        bbs.send(b"d")
        await bbs.expect("Download which file: ")
        bbs.send(b"payload.bin\r")
        await bbs.expect(PROTOCOL_PROMPT.format("Z"))
        bbs.send(b"z")
        await bbs.expect(START_DOWNLOAD)
        received = workdir / "received"
        received.mkdir()
        assert await bbs.run_program(["rz", "-b", "-q"], received) == 0
        await bbs.expect("Downloaded payload.bin.")
        assert (received / "payload.bin").read_bytes() == PAYLOAD
        # upload with the client's sz (Enter at the prompt: ZMODEM, the default)
        source = workdir / "upload.bin"
        source.write_bytes(UPLOAD)
        await bbs.expect(FILE_MENU)
        bbs.send(b"u")
        await bbs.expect(PROTOCOL_PROMPT.format("Z"))
        bbs.send(b"\r")
        await bbs.expect(START_UPLOAD)
        assert await bbs.run_program(["sz", "-b", "-q", "upload.bin"], workdir) == 0
        await bbs.expect("Description: ")
        bbs.send(b"Bytes of every kind\r")
        await bbs.expect("Thank you! upload.bin is in Uploads.")
        await bbs.expect(FILE_MENU)
        bbs.send(b"q")
        await bbs.expect(MAIN_MENU)
    finally:
        await bbs.close()


def test_zmodem_over_a_telnet_client_that_negotiates_nothing(board: BBSProcess, tmp_path: Path):
    run_async(zmodem_session(board.ports["telnet"], tmp_path), timeout=60)
    uploads = board.root / "files" / "main" / "uploads"
    assert (uploads / "upload.bin").read_bytes() == UPLOAD
    assert not [p for p in uploads.iterdir() if p.name.startswith(".rz-")]  # the temp folder is gone
    assert file_row(board.root, "UPLOADS", "payload.bin")[3] == 1
    assert file_row(board.root, "UPLOADS", "upload.bin") == (len(UPLOAD), "Alice", "Bytes of every kind", 0)
    assert user_stats(board.root, "Alice") == (1, len(UPLOAD), 1, len(PAYLOAD))


# -- the real telnet and ssh clients ------------------------------------------------
def real_caller(board: BBSProcess, client: str) -> pexpect.spawn:
    """Alice at the file menu through the real `telnet` or `ssh` client."""
    if client == "ssh":
        child = spawn_ssh(board.ports["ssh"], "Alice", "alicepw1")   # logs straight in
    else:
        child = spawn_telnet(board.ports["telnet"])
        child.expect_exact(b"Login: ")
        child.sendline(b"Alice")
        child.expect_exact(b"Password: ")
        child.sendline(b"alicepw1")
    child.expect_exact(MAIN_MENU.encode())
    child.send(b"f")
    child.expect_exact(FILE_MENU.encode())
    return child


def leave(child: pexpect.spawn) -> None:
    child.send(b"q")
    child.expect_exact(MAIN_MENU.encode())
    child.send(b"g")
    child.expect_exact(b"Log off now")
    child.send(b"y")
    child.expect_exact(b"Thanks for calling")
    child.expect(pexpect.EOF)
    child.close()


def pick(child: pexpect.spawn, key: bytes, default: str) -> None:
    """Answer the protocol prompt (which shows ``default``)."""
    child.expect_exact(PROTOCOL_PROMPT.format(default).encode())
    child.send(key)


def real_download(child: pexpect.spawn, name: str, key: bytes, argv: list[str], cwd: Path, *,
                  default: str = "Z", during=None) -> None:
    """Download ``name`` with the protocol of ``key``, the client running ``argv``."""
    child.send(b"d")
    child.expect_exact(b"Download which file: ")
    child.send(name.encode() + b"\r")
    pick(child, key, default)
    expect_line(child, "download now (Ctrl-X five times aborts).")
    if during:
        during()
    assert run_program(child, argv, cwd, start=ZMODEM_START if argv[0] == "rz" else b"") == 0
    child.expect_exact(f"Downloaded {name}.".encode())
    child.expect_exact(FILE_MENU.encode())


def real_upload(child: pexpect.spawn, key: bytes, argv: list[str], cwd: Path, descriptions: dict[str, str], *,
                name: str = "", default: str = "Z", during=None) -> None:
    """Upload with the protocol of ``key``, the client running ``argv``;
    ``name`` answers XMODEM's file name prompt; each received file gets
    its description from ``descriptions``."""
    child.send(b"u")
    pick(child, key, default)
    if name:
        child.expect_exact(b"File name to upload: ")
        child.send(name.encode() + b"\r")
    expect_line(child, "upload now (Ctrl-X five times aborts).")
    if during:
        during()
    assert run_program(child, argv, cwd, start=ZMODEM_START if argv[0] == "sz" else b"") == 0
    for _ in descriptions:
        child.expect(rb"Received (?:\x1b\[[0-9;]*m)*([\w.]+)")
        stored = child.match.group(1).decode()
        child.expect_exact(b"Description: ")
        child.send(descriptions[stored].encode() + b"\r")
        child.expect_exact(f"Thank you! {stored} is in Uploads.".encode())
    child.expect_exact(FILE_MENU.encode())


def active_users(port: int) -> str:
    """What SYSTAT (RFC 866) says: every caller's node activity."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def zmodem_over(board: BBSProcess, client: str, workdir: Path) -> None:
    child = real_caller(board, client)
    real_download(child, "payload.bin", b"z", ["rz", "-b", "-q"], workdir)
    assert (workdir / "payload.bin").read_bytes() == PAYLOAD
    (workdir / "upload.bin").write_bytes(UPLOAD)
    real_upload(child, b"z", ["sz", "-b", "-q", "upload.bin"], workdir, {"upload.bin": "Bytes of every kind"})
    leave(child)
    uploads = board.root / "files" / "main" / "uploads"
    assert (uploads / "upload.bin").read_bytes() == UPLOAD
    assert not [p for p in uploads.iterdir() if p.name.startswith(".rz-")]
    assert file_row(board.root, "UPLOADS", "payload.bin")[3] == 1
    assert file_row(board.root, "UPLOADS", "upload.bin") == (len(UPLOAD), "Alice", "Bytes of every kind", 0)
    assert user_stats(board.root, "Alice") == (1, len(UPLOAD), 1, len(PAYLOAD))


def test_zmodem_download_and_upload_with_the_real_telnet_client(board: BBSProcess, tmp_path: Path):
    zmodem_over(board, "telnet", tmp_path)


def test_zmodem_download_and_upload_with_the_real_ssh_client(board: BBSProcess, tmp_path: Path):
    zmodem_over(board, "ssh", tmp_path)


def padded(data: bytes, block: int = 128) -> bytes:
    """``data`` as XMODEM delivers it: the last block filled up with Ctrl-Z."""
    return data + SUB * (-len(data) % block)


def test_xmodem_crc_download_and_1k_upload_with_the_real_telnet_client(board: BBSProcess, tmp_path: Path):
    child = real_caller(board, "telnet")
    seen = []
    real_download(child, "payload.bin", b"x", ["rx", "-b", "-c", "-q", "got.bin"], tmp_path,
                  during=lambda: seen.append(active_users(board.ports["systat"])))
    assert "downloading payload.bin with Xmodem-CRC" in seen[0]
    assert (tmp_path / "got.bin").read_bytes() == padded(PAYLOAD)
    # XMODEM carries no name: the caller gives one, checked like every upload's
    for bad, problem in (("../ctrl/sbbs.ini", "not a valid file name"), (".rz-x", "not a valid file name"),
                         ("payload.bin", "a file by that name exists")):
        child.send(b"u")
        pick(child, b"1", "Z")
        child.expect_exact(b"File name to upload: ")
        child.send(bad.encode() + b"\r")
        child.expect_exact(f"{bad}: {problem}.".encode())
        child.expect_exact(FILE_MENU.encode())
    (tmp_path / "local.bin").write_bytes(UPLOAD)
    real_upload(child, b"1", ["sx", "-k", "-b", "-q", "local.bin"], tmp_path, {"xm.bin": "By XMODEM-1K"},
                name="xm.bin", during=lambda: seen.append(active_users(board.ports["systat"])))
    assert "uploading to Uploads with Xmodem-1K" in seen[1]
    leave(child)
    stored = (board.root / "files" / "main" / "uploads" / "xm.bin").read_bytes()
    assert stored == padded(UPLOAD)
    assert file_row(board.root, "UPLOADS", "xm.bin") == (len(stored), "Alice", "By XMODEM-1K", 0)
    assert file_row(board.root, "UPLOADS", "payload.bin")[3] == 1
    assert user_stats(board.root, "Alice") == (1, len(stored), 1, len(PAYLOAD))


def test_ymodem_batch_with_the_real_ssh_client_and_a_preferred_protocol(board: BBSProcess, tmp_path: Path):
    child = real_caller(board, "ssh")
    child.send(b"p")                                       # preferred protocol, saved
    pick(child, b"y", "Z")
    child.expect_exact(b"Your preferred protocol is now Ymodem.")
    child.expect_exact(FILE_MENU.encode())
    real_download(child, "payload.bin", b"\r", ["rb", "-b", "-q"], tmp_path, default="Y")  # Enter: Ymodem
    assert (tmp_path / "payload.bin").read_bytes() == PAYLOAD  # YMODEM carries the length: no padding
    first, second = UPLOAD, bytes(reversed(PAYLOAD))[:1000]
    (tmp_path / "one.bin").write_bytes(first)
    (tmp_path / "two.bin").write_bytes(second)
    real_upload(child, b"\r", ["sb", "-k", "-b", "-q", "one.bin", "two.bin"], tmp_path,
                {"one.bin": "First of a batch", "two.bin": "Second of a batch"}, default="Y")
    leave(child)
    uploads = board.root / "files" / "main" / "uploads"
    assert (uploads / "one.bin").read_bytes() == first and (uploads / "two.bin").read_bytes() == second
    assert file_row(board.root, "UPLOADS", "one.bin") == (len(first), "Alice", "First of a batch", 0)
    assert file_row(board.root, "UPLOADS", "two.bin") == (len(second), "Alice", "Second of a batch", 0)
    assert file_row(board.root, "UPLOADS", "payload.bin")[3] == 1
    assert user_stats(board.root, "Alice") == (2, len(first) + len(second), 1, len(PAYLOAD))
    with sqlite3.connect(board.root / "data" / "user.db") as db:
        settings = db.execute("SELECT settings FROM users WHERE alias = 'Alice'").fetchone()[0]
    assert json.loads(settings)["file_protocol"] == "Y"


def test_transfers_say_so_when_lrzsz_is_missing(instance: Path, tmp_path: Path, monkeypatch):
    add_user(instance, "Alice", "alicepw1")
    seed(instance, "files/main/uploads", "UPLOADS", {"payload.bin": b"x"})
    empty = tmp_path / "no-programs"
    empty.mkdir()
    path = Path(shutil.which("telnet") or "/usr/bin/telnet").parent
    monkeypatch.setenv("PATH", str(empty))              # the BBS finds no sz/rz
    process = BBSProcess(instance).start()
    monkeypatch.setenv("PATH", f"{path}")
    try:
        alice = telnet(process.ports["telnet"], term="dumb")
        logon(alice, "Alice", "alicepw1")
        alice.send("f")
        alice.expect(FILE_MENU)
        alice.send("d")
        alice.expect_exact(NO_LRZSZ)
        alice.send("u")
        alice.expect_exact(NO_LRZSZ)
        assert "Download which file" not in alice.before
        alice.send("q")
        logoff(alice)
    finally:
        assert process.stop() == 0
    assert "Traceback" not in process.stderr()
