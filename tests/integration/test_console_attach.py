"""`bbs console`: the live console of a running `bbs run --headless` in
another terminal, over data/console.sock; detaching or killing it leaves the
BBS and its callers going."""
from __future__ import annotations

import io
import os
import stat
import time
from pathlib import Path

import pexpect

from tests.integration.test_terminal_server import LOGIN, PASSWORD, telnet
from tests.support import REPO, BBSProcess, bbs_command, run_bbs

ROWS, COLS = 30, 120
NODE1_LOGGING_ON = r"   1  logging on\s+-\s+logging on\s+telnet\s+127\.0\.0\.1"
QUIT_QUESTION = r"Close this remote console\? \(the BBS keeps running\) \[y/N\]"
DETACHED = "bbs console: detached; the BBS keeps running."
#: urwid moving to the first column of the last row (the footer) of a 20-row window.
FOOTER_AT_ROW_20 = "\x1b[20;1H"


def attach(root: Path) -> pexpect.spawn:
    command = bbs_command("console", str(root))
    return pexpect.spawn(command[0], command[1:], cwd=REPO, dimensions=(ROWS, COLS), encoding="utf-8",
                         codec_errors="replace", timeout=15, env={**os.environ, "TERM": "xterm"})


def wait_for_log(root: Path, text: str, timeout: float = 15.0) -> str:
    path = root / "data" / "logs" / "bbs.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = path.read_text()
        if text in log:
            return log
        time.sleep(0.1)
    raise AssertionError(f"not logged: {text}")


def test_bbs_console_attaches_and_detaches_while_a_caller_keeps_working(instance: Path):
    bbs = BBSProcess(instance).start()
    sock = instance / "data" / "console.sock"
    caller = console = None
    try:
        assert stat.S_ISSOCK(os.stat(sock).st_mode) and stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        caller = telnet(bbs.ports["telnet"])
        caller.expect(LOGIN)
        console = attach(instance)
        console.logfile_read = transcript = io.StringIO()
        console.expect("1 Nodes")
        console.expect(NODE1_LOGGING_ON)                    # live: the caller's node row
        console.setwinsize(20, COLS)                         # SIGWINCH: redrawn at the new size
        console.expect_exact(FOOTER_AT_ROW_20)
        console.send("q")
        console.expect(QUIT_QUESTION)
        console.send("y")
        console.expect_exact(DETACHED)
        console.expect(pexpect.EOF)
        console.close()
        assert console.exitstatus == 0, transcript.getvalue()[-2000:]
        assert "stopping the BBS" not in transcript.getvalue()
        caller.sendline("Alice")                             # the caller never noticed
        caller.expect(PASSWORD)
        killed = attach(instance)                            # a console whose terminal goes away
        killed.expect("1 Nodes")
        killed.close(force=True)
        log = wait_for_log(instance, "local console detached", timeout=15)
        assert log.count("local console attached") == 2
        wait_for_log(instance, "local console detached (process %d)" % killed.pid)
        another = telnet(bbs.ports["telnet"])
        another.expect(LOGIN)
        another.close(force=True)
        assert bbs.proc.poll() is None
    finally:
        for session in (caller, console):
            if session is not None and session.isalive():
                session.close(force=True)
        assert bbs.stop() == 0
    assert not sock.exists()                                 # removed when the BBS stops
    assert "Traceback" not in bbs.stderr()
    refused = run_bbs("console", str(instance))
    assert refused.returncode == 1
    assert f"bbs console: no BBS is running on {instance} (nothing answers on {sock})" in refused.stderr
