"""External programs for callers: real `telnet` under pexpect runs script
doors from tests/integration/doors (stdio and pty), telnetlib3's client
checks that every byte value passes both ways, and a caller who hangs up or
runs out of time ends the door's whole process group."""
from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from pathlib import Path

import pexpect
import pytest
import telnetlib3

from console.cfgfile import atomic_write, ini_set
from nodes.terminal import strip_codes
from tests.integration.ftpsupport import add_user
from tests.integration.test_terminal_server import LOGIN, MAIN_MENU, PASSWORD, logoff, logon, telnet
from tests.support import BBSProcess, run_async, set_ini

DOORS = Path(__file__).parent / "doors"
PROGRAM_PROMPT = r"Program \(1-\d+, Enter to quit\): "
SECTION_PROMPT = r"Section \(1-\d+, Enter to quit\): "
NOT_AVAILABLE = "is not available right now; please tell the sysop."
TIME_UP = "Your time in Sleepy door is up."

XTRN_INI = f"""; the tests' doors
[sec:Games]
name = Test games

[prog:Games:ECHO]
name = Echo door
cmd = {sys.executable} echo_door.py %GDOOR32.SYS
startup_dir = xtrn
dropfile = DOOR32.SYS

[prog:Games:SHELL]
name = Shell door
cmd = ./doorsys_door.sh %G
startup_dir = xtrn
dropfile = door.sys

[prog:Games:PTY]
name = Terminal door
cmd = {sys.executable} pty_door.py
startup_dir = xtrn
io = pty

[prog:Games:HANG]
name = Hanging door
cmd = {sys.executable} hang_door.py hang.pid
startup_dir = xtrn

[prog:Games:SLEEPY]
name = Sleepy door
cmd = {sys.executable} hang_door.py sleepy.pid
startup_dir = xtrn
max_time = 2s

[prog:Games:STUBBORN]
name = Stubborn door
cmd = {sys.executable} hang_door.py stubborn.pid --ignore-hup
startup_dir = xtrn

[prog:Games:LOCKED]
name = Locked door
cmd = {sys.executable} echo_door.py
startup_dir = xtrn
execution_ars = LEVEL 90

[prog:Games:GONE]
name = Missing door
cmd = ./no-such-door
startup_dir = xtrn

[sec:Sysop]
name = Sysop tools
ars = SYSOP

[prog:Sysop:SECRET]
name = Secret tool
cmd = true
"""
#: The programs Alice (level 10) sees, in order.
ALICE_SEES = ["Echo door", "Shell door", "Terminal door", "Hanging door", "Sleepy door", "Stubborn door",
              "Locked door", "Missing door"]


def with_doors(instance: Path) -> Path:
    """Alice and Bob, the test doors in xtrn/ and XTRN_INI."""
    add_user(instance, "Alice", "alicepw1", "--real-name", "Alice A")
    add_user(instance, "Bob", "bobpw123")
    shutil.copytree(DOORS, instance / "xtrn")
    (instance / "ctrl" / "xtrn.ini").write_text(XTRN_INI)
    return instance


@pytest.fixture
def board(instance: Path):
    process = BBSProcess(with_doors(instance)).start()
    yield process
    if process.proc and process.proc.poll() is None:
        assert process.stop() == 0
    assert "Traceback" not in process.stderr()


def choose(caller: pexpect.spawn, name: str) -> None:
    """At the program list: pick ``name`` by its number."""
    caller.expect(PROGRAM_PROMPT)
    number = next(line.split(")")[0].strip() for line in strip_codes(caller.before).splitlines()
                  if f") {name}" in line)
    caller.sendline(number)


def open_doors(caller: pexpect.spawn) -> None:
    caller.send("x")
    caller.expect("Test games")


def bbs_log(root: Path) -> str:
    return (root / "data" / "logs" / "bbs.log").read_text(errors="replace")


def gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def read_pids(path: Path, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().endswith("\n"):
            return [int(p) for p in path.read_text().split()]
        time.sleep(0.05)
    raise AssertionError(f"{path} was not written")


def into_hanging_door(port: int, root: Path, name: str, pidfile: str) -> tuple[pexpect.spawn, int, int]:
    """Alice logs on and starts door ``name`` (hang_door.py): her caller
    and the pids of the door and of its child."""
    alice = telnet(port)
    logon(alice, "Alice", "alicepw1")
    open_doors(alice)
    choose(alice, name)
    alice.expect("Hanging around")
    return (alice, *read_pids(root / "xtrn" / pidfile))


def test_echo_door_round_trip_and_node_activity(board: BBSProcess):
    alice = telnet(board.ports["telnet"])
    logon(alice, "Alice", "alicepw1")                       # node 1
    open_doors(alice)
    alice.expect(PROGRAM_PROMPT)
    shown = [line.split(")", 1)[1].strip() for line in strip_codes(alice.before).splitlines() if ")" in line]
    assert shown == ALICE_SEES                              # no Sysop section, no Secret tool
    alice.sendline("1")
    alice.expect(r"Hello Alice on node 1! TERM=xterm size=80x24 cwd=xtrn SBBSNNUM=1 SBBSNODE=node1")
    alice.expect("Say something: ")

    bob = telnet(board.ports["telnet"])
    logon(bob, "Bob", "bobpw123")                           # node 2 sees what node 1 does
    bob.send("w")
    bob.expect(r"1  .*Alice.*running Echo door")
    bob.expect(MAIN_MENU)
    logoff(bob)

    alice.send("hi there, @USER@")
    alice.expect_exact("hi there, @USER@")                   # the door's own echo
    alice.send("\r")
    alice.expect_exact("Alice said: hi there, @USER@")
    alice.expect(PROGRAM_PROMPT)                             # back at the list when it exits
    alice.sendline("")
    alice.expect(MAIN_MENU)
    logoff(alice)
    log = bbs_log(board.root)
    assert "Alice running external program ECHO (Echo door): " in log
    assert "external program ECHO ended (exited, status 0)" in log


def test_pty_door_has_a_terminal_of_the_callers_size(board: BBSProcess):
    alice = telnet(board.ports["telnet"])
    alice.setwinsize(30, 100)
    logon(alice, "Alice", "alicepw1")
    open_doors(alice)
    choose(alice, "Terminal door")
    alice.expect("tty=True size=100x30 ctty=yes")
    alice.expect("Name a colour: ")
    alice.send("blux")
    alice.setwinsize(40, 120)                                # NAWS: the pty is resized with the window
    alice.send("\x7fe\r")                                    # the pty's line editing: DEL erases
    alice.expect("You said blue; size now 120x40")
    alice.expect(PROGRAM_PROMPT)
    alice.sendline("")
    alice.expect(MAIN_MENU)
    logoff(alice)


async def _shell_door_bytes(port: int) -> tuple[bytes, bytes]:
    reader, writer = await telnetlib3.open_connection("127.0.0.1", port, encoding=False, term="xterm",
                                                      connect_maxwait=1.0)
    seen = b""

    async def until(marker: bytes) -> bytes:
        nonlocal seen
        while marker not in seen:
            chunk = await asyncio.wait_for(reader.read(65536), 15)
            assert chunk, seen[-300:]
            seen += chunk
        head, _, seen = seen.partition(marker)
        return head

    try:
        await until(LOGIN.encode())
        writer.write(b"Alice\r")
        await until(PASSWORD.encode())
        writer.write(b"alicepw1\r")
        await until(MAIN_MENU.encode())
        writer.write(b"x")
        listing = await until(b"Program (1-")
        number = next(line.split(")")[0].strip() for line in strip_codes(listing.decode()).splitlines()
                      if ") Shell door" in line).encode()
        await until(b": ")
        writer.write(number + b"\r")
        said = await until(b"BYTES<")
        payload = await until(b">END\r\n")
        writer.write(b"ok \xff\xfe done\n")                  # IAC in the input too
        await until(b"bye ok \xff\xfe done")
        await until(b"Program (1-")
        return said, payload
    finally:
        writer.close()


def test_shell_door_reads_door_sys_and_passes_every_byte(board: BBSProcess):
    said, payload = run_async(_shell_door_bytes(board.ports["telnet"]), timeout=60)
    assert b"DOOR.SYS says Alice, level 10" in said
    assert payload == bytes(range(256))


def test_hang_up_ends_the_door_and_its_children(board: BBSProcess):
    alice, door, child = into_hanging_door(board.ports["telnet"], board.root, "Hanging door", "hang.pid")
    alice.close(force=True)                                   # the caller drops
    assert gone(door) and gone(child)
    wait_for_log(board.root, "session ends: disconnected")
    assert "external program HANG ended (disconnected, status -1)" in bbs_log(board.root)  # SIGHUP


def test_time_limit_ends_the_door_and_returns_to_the_list(board: BBSProcess):
    alice, door, child = into_hanging_door(board.ports["telnet"], board.root, "Sleepy door", "sleepy.pid")
    alice.expect_exact(TIME_UP, timeout=10)
    alice.expect(PROGRAM_PROMPT)
    assert gone(door) and gone(child)
    alice.sendline("")
    alice.expect(MAIN_MENU)
    logoff(alice)


def test_requirements_and_missing_programs(board: BBSProcess):
    alice = telnet(board.ports["telnet"])
    logon(alice, "Alice", "alicepw1")
    open_doors(alice)
    choose(alice, "Locked door")
    alice.expect_exact("You may not run Locked door.")
    choose(alice, "Missing door")
    alice.expect_exact(f"Missing door {NOT_AVAILABLE}")
    alice.expect(PROGRAM_PROMPT)
    alice.sendline("")
    alice.expect(MAIN_MENU)
    logoff(alice)
    assert "external program GONE cannot run: './no-such-door' not found" in bbs_log(board.root)


def test_xtrn_ini_edits_apply_to_the_next_caller(board: BBSProcess):
    path = board.root / "ctrl" / "xtrn.ini"
    atomic_write(path, ini_set(path.read_text(), "prog:Games:ECHO", "name", "Parrot door"))
    alice = telnet(board.ports["telnet"])
    logon(alice, "Alice", "alicepw1")
    open_doors(alice)
    alice.expect(PROGRAM_PROMPT)
    listing = strip_codes(alice.before)
    assert ") Parrot door" in listing and "Echo door" not in listing
    alice.sendline("")
    alice.expect(MAIN_MENU)
    logoff(alice)
    path.write_text(path.read_text() + "[prog:Nowhere:X]\ncmd = true\n")   # broken by hand
    alice = telnet(board.ports["telnet"])
    logon(alice, "Alice", "alicepw1")
    open_doors(alice)
    alice.expect(PROGRAM_PROMPT)
    assert ") Parrot door" in strip_codes(alice.before)       # the last good settings stay
    alice.sendline("")
    alice.expect(MAIN_MENU)
    logoff(alice)
    assert f"{path}:" in bbs_log(board.root) and "the previous settings stay in force" in bbs_log(board.root)


def wait_for_log(root: Path, text: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in bbs_log(root):
        assert time.monotonic() < deadline, f"{text!r} not logged"
        time.sleep(0.05)


def test_an_idle_caller_is_hung_up_and_a_door_ignoring_sighup_is_killed(instance: Path):
    set_ini(with_doors(instance) / "ctrl" / "sbbs.ini", "BBS", "MaxSessionInactivity", "3")
    board = BBSProcess(instance).start()
    try:
        alice, door, child = into_hanging_door(board.ports["telnet"], instance, "Stubborn door", "stubborn.pid")
        alice.expect_exact("Inactive too long. Goodbye.", timeout=15)   # 3 s without a key from her
        alice.expect(pexpect.EOF)
        assert gone(door) and gone(child)
        wait_for_log(instance, "external program STUBBORN ended (inactive, status -9)")  # SIGHUP ignored
    finally:
        assert board.stop() == 0
    assert "Traceback" not in board.stderr()


def test_stopping_the_bbs_ends_the_door(board: BBSProcess):
    alice, door, child = into_hanging_door(board.ports["telnet"], board.root, "Hanging door", "hang.pid")
    assert board.stop() == 0                                  # SIGTERM
    alice.expect_exact("The BBS is shutting down.")
    alice.expect(pexpect.EOF)
    assert gone(door) and gone(child)
    assert "external program HANG ended (shutdown, status -1)" in bbs_log(board.root)
