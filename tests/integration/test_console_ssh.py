"""The live console over the BBS's own SSH server: `ssh -tt ... console`
against `bbs run --headless`; quitting it leaves the BBS serving."""
from __future__ import annotations

import io
import os
import re
import time
from pathlib import Path

import pexpect
import pytest

from tests.integration.test_terminal_server import SSH_OPTIONS, add_user, telnet
from tests.support import BBSProcess, set_ini

ROWS, COLS = 30, 120
LOGIN = "Login: "
NODES_TAB = "1 Nodes"
NODE1_WAITING = r"   1  waiting "
NODE1_LOGGING_ON = r"   1  logging on\s+-\s+logging on\s+telnet\s+127\.0\.0\.1"
QUIT_QUESTION = r"Close this remote console\? \(the BBS keeps running\) \[y/N\]"
REFUSED = "only a sysop (security level 90+) or a console user ([BBS] ConsoleUsers) may open the remote console"
#: urwid moving to the first column of the last row (the footer) of a 20-row window.
FOOTER_AT_ROW_20 = "\x1b[20;1H"
PASSWORD_LINE = re.compile(r"Sysop account 'Sysop' created\. Password: (\S+)")


@pytest.fixture
def board(instance: Path):
    sbbs = instance / "ctrl" / "sbbs.ini"
    for key, value in (("Options", "ALLOW_SSH"), ("SSHPort", "0")):
        set_ini(sbbs, "BBS", key, value)
    process = BBSProcess(instance).start()
    add_user(instance, "Alice", "alicepw1")
    yield process
    if process.proc and process.proc.poll() is None:
        assert process.stop() == 0
    assert "Traceback" not in process.stderr()


def sysop_password(board: BBSProcess) -> str:
    match = PASSWORD_LINE.search(board.stderr())
    assert match, board.stderr()
    return match.group(1)


def ssh_console(port: int, user: str, password: str) -> pexpect.spawn:
    session = pexpect.spawn("ssh", ["-tt", *SSH_OPTIONS, "-p", str(port), f"{user}@127.0.0.1", "console"],
                            timeout=15, encoding="utf-8", codec_errors="replace", dimensions=(ROWS, COLS),
                            env={**os.environ, "TERM": "xterm"})
    session.expect("assword:")
    session.sendline(password)
    return session


def test_sysop_opens_the_console_over_ssh_and_quitting_leaves_the_bbs_running(board: BBSProcess):
    console = ssh_console(board.ports["ssh"], "Sysop", sysop_password(board))
    console.logfile_read = transcript = io.StringIO()
    second = caller = None
    try:
        console.expect(NODES_TAB)
        console.expect(NODE1_WAITING)
        second = ssh_console(board.ports["ssh"], "Sysop", sysop_password(board))   # two at once
        second.expect(NODES_TAB)
        caller = telnet(board.ports["telnet"])
        caller.expect(LOGIN)
        console.expect(NODE1_LOGGING_ON)                 # the remote console is live
        second.expect(NODE1_LOGGING_ON)
        second.close(force=True)                         # dropping one SSH session ends only that console
        console.setwinsize(20, COLS)                     # SSH window-change: redrawn at the new size
        console.expect_exact(FOOTER_AT_ROW_20)
        console.send("q")
        console.expect(QUIT_QUESTION)
        console.send("y")
        console.expect(pexpect.EOF)
        console.close()
        assert console.exitstatus == 0, transcript.getvalue()[-2000:]
        assert "stopping the BBS" not in transcript.getvalue()
        # The BBS keeps serving: the caller's session goes on, and a new caller gets the logon screen.
        caller.sendline("Alice")
        caller.expect("Password: ")
        another = telnet(board.ports["telnet"])
        another.expect(LOGIN)
        another.close(force=True)
        assert board.proc.poll() is None
    finally:
        for session in (console, second, caller):
            if session is not None and session.isalive():
                session.close(force=True)
    log = (board.root / "data" / "logs" / "bbs.log").read_text()
    assert "Sysop opened the remote console" in log
    assert log.count("Sysop closed the remote console") == 2
    assert "shutting down" not in log


def test_a_caller_who_is_not_a_sysop_is_refused_the_console(board: BBSProcess):
    session = ssh_console(board.ports["ssh"], "Alice", "alicepw1")
    session.expect_exact(REFUSED)
    session.expect(pexpect.EOF)
    session.close()
    assert session.exitstatus == 1
    assert NODES_TAB not in session.before
    assert board.proc.poll() is None
    log = (board.root / "data" / "logs" / "bbs.log").read_text()
    assert "remote console refused to 'Alice' (not a sysop or console user)" in log


def wait_for_log(board: BBSProcess, text: str, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = (board.root / "data" / "logs" / "bbs.log").read_text()
        if text in log:
            return log
        time.sleep(0.1)
    raise AssertionError(f"not logged: {text}")


def test_a_console_user_below_the_sysop_level_opens_the_console(board: BBSProcess):
    add_user(board.root, "Bob", "bobpw123")
    set_ini(board.root / "ctrl" / "sbbs.ini", "BBS", "ConsoleUsers", "alice")   # any case
    (board.root / "ctrl" / "recycle.term").touch()                               # applied by a recycle
    wait_for_log(board, "Terminal Server recycled")
    console = ssh_console(board.ports["ssh"], "Alice", "alicepw1")
    try:
        console.expect(NODES_TAB)
        console.send("q")
        console.expect(QUIT_QUESTION)
        console.send("y")
        console.expect(pexpect.EOF)
    finally:
        console.close(force=True)
    assert console.exitstatus == 0
    refused = ssh_console(board.ports["ssh"], "Bob", "bobpw123")
    refused.expect_exact(REFUSED)
    refused.expect(pexpect.EOF)
    refused.close()
    assert refused.exitstatus == 1
    log = wait_for_log(board, "remote console refused to 'Bob'")
    assert "Alice opened the remote console (console user, level 10)" in log


def test_stopping_the_bbs_closes_the_remote_console(board: BBSProcess):
    console = ssh_console(board.ports["ssh"], "Sysop", sysop_password(board))
    try:
        console.expect(NODES_TAB)
        assert board.stop() == 0
        console.expect(pexpect.EOF)
    finally:
        console.close(force=True)
    assert "BBS stopped" in board.stderr()
