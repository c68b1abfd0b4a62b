"""The FTP control connection on a raw socket: commands sent together are
answered in order (also across one that waits for the database), an
overlong line is refused once and the rest of it dropped, a flood of bad
lines is cut off, and MaxInactivity does not count a running transfer."""
from __future__ import annotations

import ftplib
import socket
import time

import pytest

from tests.integration.ftpsupport import LIBRARY, PASSWORD, USER, add_user, ftp_instance, seed, start


#: More than the socket buffers of both ends hold, so the server is still
#: sending while the client reads slowly.
BIG = bytes(range(256)) * (128 * 1024)  # 32 MB


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = ftp_instance(tmp_path_factory.mktemp("ftpctl") / "bbs", MaxInactivity="2")
    add_user(root, "Guest", "guestpass1", "--force")
    seed(root, "files/main/text", "TEXT", {"big.bin": BIG})
    process = start(root)
    yield process
    process.stop()


def binary_session(server) -> ftplib.FTP:
    """alice logged in with ftplib, TYPE I."""
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", server.ports["ftp"], timeout=15)
    ftp.login(USER, PASSWORD)
    ftp.voidcmd("TYPE I")
    return ftp


class Control:
    """A control connection read reply by reply."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.file = self.sock.makefile("rb")
        assert self.line().startswith("220 ")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> str:
        return self.file.readline().decode().rstrip("\r\n")

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def test_commands_sent_together_are_answered_in_order(server):
    ctl = Control(server.ports["ftp"])
    # USER anonymous looks the Guest account up (it waits); the lines after it wait their turn
    ctl.send(b"NOOP\r\nUSER anonymous\r\nPASS me@example.org\r\nPWD\r\nSYST\r\nCWD /Main/TEXT\r\n"
             b"SIZE big.bin\r\nTYPE I\r\nPWD\r\nQUIT\r\n")
    replies = [ctl.line() for _ in range(10)]
    assert [r[:4] for r in replies] == ["200 ", "331 ", "230 ", "257 ", "215 ", "250 ", "213 ", "200 ",
                                        "257 ", "221 "]
    assert replies[6] == f"213 {len(BIG)}" and replies[8].startswith('257 "/Main/TEXT"')
    assert ctl.file.read() == b""          # closed after QUIT
    ctl.close()


def test_a_script_that_sends_everything_then_ends_gets_every_reply(server):
    ctl = Control(server.ports["ftp"])                  # printf '...' | nc host port
    ctl.send(b"USER anonymous\r\nPASS me@example.org\r\nPWD\r\nSIZE /Main/TEXT/big.bin\r\n")
    ctl.sock.shutdown(socket.SHUT_WR)
    replies = []
    while line := ctl.line():
        replies.append(line)
    assert [r[:4] for r in replies] == ["331 ", "230 ", "257 ", "213 "]
    ctl.close()


def test_an_overlong_line_is_refused_once_and_the_session_goes_on(server):
    ctl = Control(server.ports["ftp"])
    ctl.send(b"NOOP " + b"x" * 200_000)   # no end of line yet: more than the 64 KB buffered
    ctl.send(b"y" * 1000 + b"\r\nNOOP\r\n")
    assert ctl.line().startswith("500 ")
    assert ctl.line() == "200 NOOP ok."  # the rest of the long line was dropped, not parsed
    ctl.send(b"QUIT\r\n")
    assert ctl.line().startswith("221 ")
    ctl.close()


def test_a_flood_of_bad_lines_is_cut_off(server):
    ctl = Control(server.ports["ftp"])
    ctl.send(b"\x01\x02 junk\r\n" * 30)
    replies = []
    while line := ctl.line():
        replies.append(line)
    assert replies[-1] == "421 Too many bad commands; closing the connection."
    assert len(replies) == 22 and all(r.startswith("5") for r in replies[:-1])
    ctl.close()
    assert "Traceback" not in server.stderr()


def test_max_inactivity_does_not_count_a_running_transfer(server):
    ftp = binary_session(server)
    data = ftp.transfercmd("RETR /Main/TEXT/big.bin")
    got = 0
    started = time.monotonic()
    while time.monotonic() - started < 3.5:        # longer than MaxInactivity = 2 s
        chunk = data.recv(4096)
        assert chunk, "the transfer ended early"
        got += len(chunk)
        time.sleep(0.02)
    while chunk := data.recv(1 << 16):
        got += len(chunk)
    data.close()
    assert got == len(BIG)
    assert ftp.voidresp().startswith("226 ")   # a time-out during the transfer would be a 421 here
    assert ftp.getline().startswith("421 Inactivity time-out")  # idle now: MaxInactivity applies
    ftp.close()


def test_retr_after_size_sends_the_file_asked_for(server):
    ftp = binary_session(server)

    def retr(path: str, rest: int | None = None) -> bytes:
        chunks: list[bytes] = []
        ftp.retrbinary(f"RETR {path}", chunks.append, rest=rest)
        return b"".join(chunks)

    assert ftp.size("/Main/TEXT/big.bin") == len(BIG)      # SIZE opens big.bin ...
    assert retr("/Main/TEXT/readme.txt") == LIBRARY["readme.txt"]  # ... a RETR of another file is not it
    assert ftp.size("/Main/TEXT/readme.txt") == len(LIBRARY["readme.txt"])
    assert retr("/Main/TEXT/readme.txt", rest=3) == LIBRARY["readme.txt"][3:]
    with pytest.raises(ftplib.error_perm, match="550"):
        ftp.size("readme.txt")                               # not in / : nothing is kept
    assert retr("/Main/TEXT/readme.txt") == LIBRARY["readme.txt"]
    ftp.cwd("/Main/TEXT")
    assert ftp.size("readme.txt") == len(LIBRARY["readme.txt"])
    assert retr("readme.txt") == LIBRARY["readme.txt"]      # the same file by a relative name
    ftp.quit()


def test_lines_behind_a_waiting_command_are_not_read_without_bound(server):
    ftp = binary_session(server)
    data = ftp.transfercmd("RETR /Main/TEXT/big.bin")      # not read yet: the transfer stays busy
    ftp.sock.sendall(b"PWD\r\n")                           # waits for the transfer (RFC 959)
    ftp.sock.settimeout(3)
    sent = 0
    with pytest.raises(socket.timeout):                    # the server stops reading us ...
        while sent < 256 * 1024 * 1024:
            sent += ftp.sock.send(b"NOOP\r\n" * 10000)
    assert sent < 64 * 1024 * 1024                         # ... long before 256 MB
    ftp.sock.settimeout(15)
    got = 0
    while chunk := data.recv(1 << 16):
        got += len(chunk)
    data.close()
    assert got == len(BIG)
    assert ftp.getline().startswith("226 ")
    assert ftp.getline().startswith('257 "/"')            # the waiting command, then the rest
    assert ftp.getline() == "200 NOOP ok."
    ftp.close()
