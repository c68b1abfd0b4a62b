"""`bbs run` on a terminal opens the sysop console; a telnet caller shows on its Nodes pane."""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import time
from pathlib import Path
from typing import Iterator

import pexpect

from tests.support import REPO, START_TIMEOUT, bbs_command

ROWS, COLS = 30, 120


def console(*args: str) -> pexpect.spawn:
    command = bbs_command(*args)
    env = {**os.environ, "TERM": "xterm"}
    return pexpect.spawn(command[0], command[1:], cwd=REPO, env=env, dimensions=(ROWS, COLS),
                         encoding="utf-8", timeout=START_TIMEOUT)


def telnet_port(bbs: pexpect.spawn, root: Path) -> int:
    """The telnet port once this process has written data/listeners.json
    (reading the console's output meanwhile so its terminal never blocks)."""
    path = root / "data" / "listeners.json"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if path.exists():
            data = json.loads(path.read_text())
            if data["pid"] == bbs.pid:
                return next(row["port"] for row in data["listeners"] if row["service"] == "telnet")
        bbs.expect([pexpect.TIMEOUT, pexpect.EOF], timeout=0.05)
        assert bbs.isalive(), "bbs run exited"
    raise AssertionError("bbs run did not become ready")


@contextlib.contextmanager
def ends_cleanly(child: pexpect.spawn, *quit_steps: tuple[str, object]) -> Iterator[pexpect.spawn]:
    """Yield ``child``; when the block ends, each (keys, expected) of
    ``quit_steps`` is sent and awaited, then the program must exit 0. A
    program still running after a failure is killed."""
    try:
        yield child
        for keys, expected in quit_steps:
            child.send(keys)
            child.expect(expected)
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
    finally:
        if child.isalive():
            child.terminate(force=True)


#: q and y: the console's way to stop the BBS.
STOP_BBS = (("q", r"Stop the BBS and quit the console\? \[y/N\]"), ("y", pexpect.EOF))


@contextlib.contextmanager
def bbs_console(instance: Path) -> Iterator[pexpect.spawn]:
    """`bbs run` with its console on a pty, past the first start's password
    notice, its output kept in ``logfile_read`` (a StringIO); when the block
    ends, q and y stop the BBS, which must exit 0."""
    bbs = console("run", str(instance))
    bbs.logfile_read = io.StringIO()
    with ends_cleanly(bbs, *STOP_BBS):
        bbs.expect("press any key")
        bbs.send(" ")
        yield bbs


@contextlib.contextmanager
def scfg_menus(instance: Path) -> Iterator[pexpect.spawn]:
    """`bbs scfg` on a pty, at its top menu; the block must end there too:
    then q quits and the exit status must be 0."""
    scfg = console("scfg", str(instance))
    with ends_cleanly(scfg, ("q", pexpect.EOF)):
        scfg.expect("System ...")
        yield scfg


def test_console_shows_a_caller_and_quitting_stops_the_bbs(instance: Path):
    bbs = console("run", str(instance))
    bbs.logfile_read = transcript = io.StringIO()
    try:
        bbs.expect("1 Nodes")
        bbs.expect(r"Password: (\S+)")                     # first start: shown in the console, not logged
        password = bbs.match.group(1)
        bbs.expect("press any key")
        bbs.send(" ")
        bbs.expect("   1  waiting")
        caller = pexpect.spawn("telnet", ["127.0.0.1", str(telnet_port(bbs, instance))],
                               timeout=15, encoding="utf-8")
        caller.expect("Login: ")
        bbs.expect(r"   1  logging on\s+-\s+logging on\s+telnet\s+127\.0\.0\.1")
        for _ in range(3):                                  # three failed log-ons: the BBS hangs up
            caller.sendline("x")
            caller.expect("Password: ")
            caller.sendline("wrong")
        caller.expect("Connection closed by foreign host")
        caller.close()
        bbs.expect(r"   1  waiting ")
        bbs.send("q")
        bbs.expect(r"Stop the BBS and quit the console\? \[y/N\]")
        bbs.send("y")
        bbs.expect("stopping the BBS")
        bbs.expect(pexpect.EOF)
        tail = bbs.before
        bbs.close()
        assert bbs.exitstatus == 0, tail
        assert "BBS stopped (exit status 0)" in tail
    finally:
        if bbs.isalive():
            bbs.terminate(force=True)
    log = (instance / "data" / "logs" / "bbs.log").read_text()
    assert "Node 1 telnet connection accepted from 127.0.0.1" in log and "BBS stopped" in log
    assert password not in log
    # Nothing was logged onto the console's screen: log lines went to the file (and the Logs pane).
    assert "telnet listening" in log and "telnet listening" not in transcript.getvalue()
    assert not re.search(r"\d\d:\d\d:\d\d (bbs|term)\s+INFO ", transcript.getvalue())


DOWN, ENTER, BACKSPACE, ESC = "\x1b[B", "\r", "\x7f", "\x1b"


def test_scfg_changes_a_setting_through_the_menus(instance: Path):
    sbbs = instance / "ctrl" / "sbbs.ini"
    before = sbbs.read_text()
    with scfg_menus(instance) as scfg:
        scfg.expect("Servers ...")
        scfg.send(DOWN * 2 + ENTER)
        scfg.expect("Mail Server ...")
        scfg.send(DOWN * 2 + ENTER)                     # Mail Server
        scfg.expect("SMTPPort")
        scfg.send(ENTER)
        scfg.expect(r"\[Mail\] SMTPPort = ")
        scfg.send(BACKSPACE + "2525" + ENTER)
        scfg.expect(r"saved ctrl/sbbs.ini: SMTPPort = 2525; applies at the next bbs run \(no BBS runs")
        scfg.send(ESC)
        scfg.expect("Terminal Server ...")
        scfg.send(ESC)
        scfg.expect("System ...")
    after = sbbs.read_text()
    assert after == before.replace("SMTPPort = 0", "SMTPPort = 2525")   # one line changed, comments kept
    assert not (instance / "data" / "listeners.json").exists()          # no server was started


def test_console_bind_failure_is_shown_after_the_screen_closes(instance: Path):
    import socket

    from tests.support import set_ini

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    try:
        set_ini(instance / "ctrl" / "sbbs.ini", "BBS", "TelnetPort", str(port))
        bbs = console("run", str(instance))
        bbs.expect(pexpect.EOF)
        bbs.close()
    finally:
        blocker.close()
    assert bbs.exitstatus == 1
    assert f"cannot bind telnet port {port} on 127.0.0.1: address already in use" in bbs.before
    assert "BBS stopped (exit status 1)" in bbs.before
    assert "Sysop account 'Sysop' created. Password: " in bbs.before   # the notice was never dismissed
