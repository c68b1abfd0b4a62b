"""The caller's BBS over real clients: `telnet` and OpenSSH `ssh` under
pexpect, and a small RLogin client, against `bbs run`."""
from __future__ import annotations

import asyncio
import os
import random
import re
import socket
from pathlib import Path

import pexpect
import pytest

from bbs.db import Database
from bbs.users import USER_MIGRATIONS, UserBase
from tests.support import BBSProcess, set_ini

LOGIN = "Login: "
PASSWORD = "Password: "
MAIN_MENU = "Main menu"
BAD_LOGON = "Invalid log-on"
GOODBYE = "Thanks for calling"
SSH_OPTIONS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
               "-o", "PubkeyAuthentication=no", "-o", "NumberOfPasswordPrompts=1", "-o", "LogLevel=ERROR"]


def add_user(root: Path, alias: str, password: str, **fields) -> None:
    async def main():
        db = Database(root / "data" / "user.db", USER_MIGRATIONS)
        await db.open()
        await UserBase(db).add(alias, password, **fields)
        await db.close()
    asyncio.run(main())


@pytest.fixture
def board(instance: Path):
    sbbs = instance / "ctrl" / "sbbs.ini"
    for key, value in (("Options", "ALLOW_SSH | ALLOW_RLOGIN"), ("SSHPort", "0"), ("RLoginPort", "0")):
        set_ini(sbbs, "BBS", key, value)
    process = BBSProcess(instance).start()   # creates data/ and the sysop first
    add_user(instance, "Alice", "alicepw1", real_name="Alice A", location="Paris")
    add_user(instance, "Bob", "bobpw123", location="Berlin")
    yield process
    if process.proc and process.proc.poll() is None:
        assert process.stop() == 0
    assert "Traceback" not in process.stderr()


def telnet(port: int, term: str = "xterm") -> pexpect.spawn:
    return pexpect.spawn("telnet", ["127.0.0.1", str(port)], timeout=15, encoding="utf-8",
                         codec_errors="replace", env={**os.environ, "TERM": term})


def ssh(port: int, user: str, term: str = "xterm") -> pexpect.spawn:
    return pexpect.spawn("ssh", [*SSH_OPTIONS, "-p", str(port), f"{user}@127.0.0.1"], timeout=15,
                         encoding="utf-8", codec_errors="replace", env={**os.environ, "TERM": term})


def logon(session: pexpect.spawn, name: str, password: str) -> None:
    session.expect(LOGIN)
    session.sendline(name)
    session.expect(PASSWORD)
    session.sendline(password)
    session.expect("Welcome back")
    session.expect(MAIN_MENU)


def logoff(session: pexpect.spawn) -> None:
    session.send("g")
    session.expect("Log off now")
    session.send("y")
    session.expect(GOODBYE)
    session.expect(pexpect.EOF)


def test_telnet_logon_bad_password_then_logoff(board: BBSProcess):
    caller = telnet(board.ports["telnet"])
    caller.expect("New Python BBS")
    caller.expect(LOGIN)
    caller.sendline("Alice")
    caller.expect(PASSWORD)
    caller.sendline("wrong")
    caller.expect(BAD_LOGON)
    caller.expect(LOGIN)
    caller.sendline("nosuchuser")
    caller.expect(PASSWORD)                     # unknown names are asked for a password too
    caller.sendline("x")
    caller.expect(BAD_LOGON)
    caller.expect(LOGIN)
    caller.sendline("alice")
    caller.expect(PASSWORD)
    caller.sendline("alicepw1")
    caller.expect("Welcome back")
    caller.expect("Last callers")
    caller.expect(MAIN_MENU)
    logoff(caller)
    log = (board.root / "data" / "logs" / "bbs.log").read_text()
    assert "failed log-on as 'Alice'" in log and "failed log-on as 'nosuchuser'" in log
    assert "Alice (#2) logged on" in log and "alicepw1" not in log and "wrong" not in log
    assert "Alice" in (board.root / "data" / "logon.lst").read_text()


def test_new_user_posts_and_another_caller_reads_and_replies(board: BBSProcess):
    caller = telnet(board.ports["telnet"])
    caller.expect(LOGIN)
    caller.sendline("new")
    caller.expect("alias")
    caller.sendline("alice")                    # taken (any case)
    caller.expect("that name is taken")
    caller.sendline("Sysop")                    # text/name.can
    caller.expect("that name cannot be used")
    caller.sendline("Dave Doe")
    caller.expect("real name")
    caller.sendline("David Doe")
    caller.expect("calling from")
    caller.sendline("Oslo, Norway")
    caller.expect("e-mail")
    caller.sendline("dave@example.org")
    caller.expect("Choose a password")
    caller.sendline("davepw12")
    caller.expect("again")
    caller.sendline("different")
    caller.expect("passwords differ")
    caller.expect("Choose a password")
    caller.sendline("davepw12")
    caller.expect("again")
    caller.sendline("davepw12")
    caller.expect("ANSI colour")
    caller.send("y")
    caller.expect("Character set")
    caller.send("1")
    caller.expect(r"Welcome, Dave Doe! You are user #4")
    caller.expect(MAIN_MENU)
    caller.send("m")
    caller.expect("Messages ")
    caller.send("p")
    caller.expect("To: ")
    caller.sendline("")
    caller.expect("Subject: ")
    caller.sendline("Greetings from Oslo")
    caller.expect("saves")
    caller.sendline("Hello everybody, this is Dave.")
    caller.sendline("/s")
    caller.expect("Posted as message #1 in General")
    caller.send("q")
    caller.expect(MAIN_MENU)
    logoff(caller)

    reader = ssh(board.ports["ssh"], "Bob")
    reader.expect("assword:")
    reader.sendline("bobpw123")
    reader.expect(MAIN_MENU)
    reader.send("m")
    reader.expect("Messages ")
    reader.send("n")                            # scan for new messages
    reader.expect("1 new in General")
    reader.expect("Greetings from Oslo")
    reader.expect("Dave Doe")
    reader.expect("Hello everybody, this is Dave.")
    reader.expect("eply")
    reader.send("r")
    reader.expect("To: ")
    reader.sendline("")                         # default: the author
    reader.expect("Subject: ")
    reader.sendline("")                         # default: Re: ...
    reader.expect("Quote the message")
    reader.send("y")
    reader.expect("DD> Hello everybody")
    reader.sendline("Welcome, Dave!")
    reader.sendline("/s")
    reader.expect("Posted as message #2 in General")
    reader.expect("No more new messages")
    reader.send("q")
    reader.expect(MAIN_MENU)
    logoff(reader)

    import sqlite3
    with sqlite3.connect(board.root / "data" / "msgs.db") as db:
        rows = db.execute("SELECT number, from_name, to_name, subject, reply_to, body FROM messages ORDER BY number").fetchall()
    assert rows[0][:5] == (1, "Dave Doe", "All", "Greetings from Oslo", 0)
    assert rows[1][:5] == (2, "Bob", "Dave Doe", "Re: Greetings from Oslo", 1)
    assert rows[1][5] == " DD> Hello everybody, this is Dave.\nWelcome, Dave!"


def test_whos_online_and_telegrams_between_two_nodes(board: BBSProcess):
    alice = telnet(board.ports["telnet"])
    logon(alice, "Alice", "alicepw1")
    bob = ssh(board.ports["ssh"], "Bob")
    bob.expect("assword:")
    bob.sendline("bobpw123")
    bob.expect(MAIN_MENU)
    bob.send("w")
    bob.expect(r"1  .*Alice")
    bob.expect(r"2  .*Bob")
    bob.expect(MAIN_MENU)
    bob.send("n")
    bob.expect("Send a message to node: ")
    bob.sendline("1")
    bob.expect("Message: ")
    bob.sendline("Lunch at noon?")
    bob.expect("Telegram sent to Alice")
    alice.expect(r"Telegram from Bob")
    alice.expect("Lunch at noon\\?")
    alice.expect(MAIN_MENU)                      # the prompt is drawn again
    alice.send("t")
    alice.expect("Send a telegram to")
    alice.sendline("bob")
    alice.expect("Message: ")
    alice.sendline("Sure!")
    alice.expect("Telegram sent to Bob")
    bob.expect("Telegram from Alice")
    bob.expect("Sure!")
    logoff(bob)
    alice.send("t")
    alice.expect("Send a telegram to")
    alice.sendline("Bob")
    alice.expect("Message: ")
    alice.sendline("See you later")
    alice.expect("shown at their next logon")
    logoff(alice)
    later = telnet(board.ports["telnet"])
    logon_keep = later
    logon_keep.expect(LOGIN)
    later.sendline("Bob")
    later.expect(PASSWORD)
    later.sendline("bobpw123")
    later.expect("Telegram from Alice")
    later.expect("See you later")
    later.expect(MAIN_MENU)
    logoff(later)


def test_ssh_password_new_user_name_and_resize(board: BBSProcess):
    port = board.ports["ssh"]
    refused = ssh(port, "Alice")
    while refused.expect(["assword:", "Permission denied"]) == 0:
        refused.sendline("wrong")
    refused.expect(pexpect.EOF)
    caller = ssh(port, "Alice")
    caller.expect("assword:")
    caller.sendline("alicepw1")
    caller.expect("Welcome back")               # no second log-on prompt
    caller.expect(MAIN_MENU)
    caller.send("i")
    caller.expect("Screen")
    caller.expect("80x24")
    caller.expect(MAIN_MENU)
    caller.setwinsize(40, 100)
    caller.send("i")
    caller.expect("Screen")
    caller.expect("100x40")
    caller.expect(MAIN_MENU)
    logoff(caller)
    newbie = ssh(port, "new")
    newbie.expect("alias")
    newbie.sendline("Erin")
    newbie.expect("real name")
    newbie.sendline("Erin E")
    newbie.expect("calling from")
    newbie.sendline("Lyon")
    newbie.expect("e-mail")
    newbie.sendline("")
    newbie.expect("Choose a password")
    newbie.sendline("erinpw12")
    newbie.expect("again")
    newbie.sendline("erinpw12")
    newbie.expect("ANSI colour")
    newbie.send("y")
    newbie.expect("Character set")
    newbie.send("1")
    newbie.expect("Welcome, Erin!")
    newbie.expect(MAIN_MENU)
    logoff(newbie)
    key = board.root / "data" / "ssh" / "ssh_host_ed25519_key"
    assert key.stat().st_mode & 0o777 == 0o600
    log = (board.root / "data" / "logs" / "bbs.log").read_text()
    assert "ssh 127.0.0.1: failed log-on as 'Alice'" in log and "new user #4 Erin created" in log


def test_telnet_resize_is_followed(board: BBSProcess):
    caller = telnet(board.ports["telnet"])
    logon(caller, "Alice", "alicepw1")
    caller.setwinsize(30, 90)
    caller.send("i")
    caller.expect("Screen")
    caller.expect("90x30")
    caller.expect(MAIN_MENU)
    logoff(caller)


def rlogin(port: int, handshake: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    sock.sendall(handshake)
    return sock


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before {marker!r}: {data[-300:]!r}"
        data += chunk
    return data


def test_rlogin_quick_login_and_prompt(board: BBSProcess):
    with rlogin(board.ports["rlogin"], b"\0alicepw1\0Alice\0ansi-bbs/38400\0") as sock:
        data = read_until(sock, MAIN_MENU.encode())
        assert data[:1] == b"\0" and b"Welcome back" in data
        assert "┌──".encode("cp437") in data        # ansi-bbs: CP437 output
    with rlogin(board.ports["rlogin"], b"\0localuser\0Bob\0vt100/9600\0") as sock:
        read_until(sock, LOGIN.encode())            # name filled in, password asked
        sock.sendall(b"\r")
        read_until(sock, PASSWORD.encode())
        sock.sendall(b"bobpw123\r")
        read_until(sock, MAIN_MENU.encode())


def test_dumb_terminal_gets_plain_ascii(board: BBSProcess):
    caller = telnet(board.ports["telnet"], term="dumb")
    logon(caller, "Bob", "bobpw123")
    caller.send("w")
    caller.expect(MAIN_MENU)
    text = caller.before
    assert "\x1b" not in text and text.isascii()
    assert "------" in text                       # box drawing falls back to ASCII
    logoff(caller)


def test_inactivity_warning_then_hang_up(instance: Path):
    set_ini(instance / "ctrl" / "sbbs.ini", "BBS", "MaxLoginInactivity", "4")
    process = BBSProcess(instance).start()
    try:
        caller = telnet(process.ports["telnet"])
        caller.expect(LOGIN)
        caller.expect("Are you still there")
        caller.expect("Inactive too long")
        caller.expect("Connection closed by foreign host")
    finally:
        assert process.stop() == 0


def test_junk_bytes_leave_other_callers_unaffected(board: BBSProcess):
    alice = telnet(board.ports["telnet"])
    logon(alice, "Alice", "alicepw1")
    rng = random.Random(1282)
    with socket.create_connection(("127.0.0.1", board.ports["telnet"]), timeout=15) as junk:
        junk.sendall(bytes(rng.randrange(256) for _ in range(20000)))
        junk.sendall(b"x" * 100000 + b"\r\n")
    with socket.create_connection(("127.0.0.1", board.ports["rlogin"]), timeout=15) as junk:
        junk.sendall(bytes(rng.randrange(256) for _ in range(5000)))
    alice.send("w")
    alice.expect(r"1  .*Alice")
    alice.expect(MAIN_MENU)
    logoff(alice)
    assert board.proc.poll() is None
    assert not re.search(r"session crashed", board.stderr())
