"""Bad input against the terminal server (`bbs run`): a caller who drops the
line mid-edit, a flood of connections from one address, junk at the log-on
prompt. The server must stay up and other callers must not notice.

(Junk right after connecting, before the prompt, is in test_terminal_server.py.)
"""
from __future__ import annotations

import asyncio
import random
import re
import socket
import time
from pathlib import Path

import pytest

from bbs.db import Database
from bbs.msgbase import MSG_MIGRATIONS, MessageBase
from tests.integration.test_terminal_server import (
    LOGIN, MAIN_MENU, PASSWORD, add_user, logoff, logon, read_until, telnet)
from tests.support import BBSProcess, set_ini

#: Bounds the waits for the server's log (not a timing check: they end as soon as the line is there).
WAIT = 20.0


def messages_in(root: Path, sub: str) -> list[int]:
    async def main():
        db = Database(root / "data" / "msgs.db", MSG_MIGRATIONS)
        await db.open()
        try:
            return await MessageBase(db).numbers(sub)
        finally:
            await db.close()
    return asyncio.run(main())


def wait_for_log(root: Path, pattern: str, count: int = 1) -> str:
    """Wait until data/logs/bbs.log has ``count`` lines matching ``pattern``."""
    log = root / "data" / "logs" / "bbs.log"
    deadline = time.monotonic() + WAIT
    while True:
        text = log.read_text(errors="replace") if log.exists() else ""
        if len(re.findall(pattern, text)) >= count:
            return text
        assert time.monotonic() < deadline, f"no {count} x {pattern!r} in bbs.log:\n{text[-3000:]}"
        time.sleep(0.05)


@pytest.fixture
def board(instance: Path):
    set_ini(instance / "ctrl" / "main.ini", "Nodes", "LastNode", "10")
    set_ini(instance / "ctrl" / "sbbs.ini", "Listener:telnet", "MaxConcurrentConnections", "5")
    process = BBSProcess(instance).start()
    add_user(instance, "Alice", "alicepw1")
    add_user(instance, "Bob", "bobpw123")
    yield process
    if process.proc and process.proc.poll() is None:
        assert process.stop() == 0
    assert "Traceback" not in process.stderr()
    assert "session crashed" not in process.stderr()


def test_hang_up_mid_edit_saves_nothing_and_frees_the_node(board: BBSProcess):
    caller = telnet(board.ports["telnet"])
    logon(caller, "Alice", "alicepw1")
    caller.send("m")
    caller.expect("Messages ")
    caller.send("p")
    caller.expect("To: ")
    caller.sendline("")
    caller.expect("Subject: ")
    caller.sendline("Half a thought")
    caller.expect("saves")
    caller.sendline("The first line is typed,")
    caller.sendline("and the second one too,")
    caller.send("but the third is cut off")
    caller.expect("cut off")
    wait_for_log(board.root, r"Node 1 telnet connection accepted")
    caller.close(force=True)                     # the telnet client dies: the socket closes before /S
    wait_for_log(board.root, r"Node 1 telnet \S+ disconnected")
    assert messages_in(board.root, "GENERAL") == []

    bob = telnet(board.ports["telnet"])          # node 1 is waiting again: the next caller gets it
    logon(bob, "Bob", "bobpw123")
    wait_for_log(board.root, r"Node 1 telnet connection accepted", count=2)
    bob.send("w")
    bob.expect(r"1  .*Bob")
    bob.expect(MAIN_MENU)
    assert "Alice" not in bob.before
    bob.send("m")
    bob.expect("Messages ")
    bob.send("r")
    bob.expect("no messages in")
    bob.send("q")
    bob.expect(MAIN_MENU)
    logoff(bob)
    assert messages_in(board.root, "GENERAL") == []


def got_logon_screen(sock: socket.socket) -> bool:
    """True when the server shows the log-on prompt; False when it closes or resets the connection."""
    data = b""
    try:
        while LOGIN.encode() not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return False
            data += chunk
    except ConnectionResetError:
        return False
    return True


def test_flood_from_one_address_is_capped_and_others_still_log_on(board: BBSProcess):
    port = board.ports["telnet"]
    flood = [socket.create_connection(("127.0.0.1", port), timeout=15) for _ in range(50)]
    try:
        screens = [got_logon_screen(sock) for sock in flood]
        assert screens.count(True) == 5, screens
        log = wait_for_log(board.root, r"telnet connection from 127\.0\.0\.1 refused: too many connections "
                                       r"from this address \(MaxConcurrentConnections 5\)", count=45)
        assert len(re.findall(r"telnet connection accepted from 127\.0\.0\.1", log)) == 5

        other = socket.socket()                  # another address is not counted against 127.0.0.1
        other.settimeout(15)
        with other:
            other.bind(("127.0.0.2", 0))
            other.connect(("127.0.0.1", port))
            read_until(other, LOGIN.encode())
            other.sendall(b"Bob\r")
            read_until(other, PASSWORD.encode())
            other.sendall(b"bobpw123\r")
            read_until(other, MAIN_MENU.encode())

        admitted = flood[screens.index(True)]    # one of the five flood connections still works
        admitted.sendall(b"Alice\r")
        read_until(admitted, PASSWORD.encode())
        admitted.sendall(b"alicepw1\r")
        read_until(admitted, MAIN_MENU.encode())
    finally:
        for sock in flood:
            sock.close()
    assert board.proc.poll() is None
    wait_for_log(board.root, r"Node \d+ telnet connection accepted from 127\.0\.0\.2")


def test_junk_and_a_huge_line_at_the_login_prompt(board: BBSProcess):
    alice = telnet(board.ports["telnet"])
    logon(alice, "Alice", "alicepw1")
    rng = random.Random(3)
    with socket.create_connection(("127.0.0.1", board.ports["telnet"]), timeout=15) as junk:
        read_until(junk, LOGIN.encode())         # at the prompt now
        junk.sendall(bytes(rng.randrange(256) for _ in range(20000)))
        junk.sendall(b"y" * 200000)              # one huge line ...
        junk.sendall(b"\r\n")                    # ... ended
        alice.send("w")                          # meanwhile Alice's node answers as before
        alice.expect(r"1  .*Alice")
        alice.expect(MAIN_MENU)
    logoff(alice)
    assert board.proc.poll() is None

    bob = telnet(board.ports["telnet"])          # a new caller still gets a working log-on
    logon(bob, "Bob", "bobpw123")
    logoff(bob)
