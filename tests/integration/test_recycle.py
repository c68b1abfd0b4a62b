"""Recycling a server of a running `bbs run`: by a semaphore file (headless)
and from the console (the Config pane's save, the Servers pane), seen by
real telnet callers; a bad edit leaves the server serving with the error
shown."""
from __future__ import annotations

import io
import re
import socket
import time
from pathlib import Path

import pexpect

from tests.integration.test_console_run import bbs_console, telnet_port
from tests.integration.test_terminal_server import LOGIN, MAIN_MENU, add_user, logon, telnet
from tests.support import BBSProcess, set_ini

RECYCLED = "Terminal Server recycled"
DOWN, ENTER, BACKSPACE = "\x1b[B", "\r", "\x7f"
NEW_SUB = "\n[sub:Local:FRESH]\nname = Fresh Area\ndescription = Added while the BBS runs\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def wait_for_log(root: Path, text: str, after: int = 0, timeout: float = 20.0) -> str:
    """The log from offset ``after`` once it holds ``text``."""
    path = root / "data" / "logs" / "bbs.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = path.read_text()[after:]
        if text in log:
            return log
        time.sleep(0.1)
    raise AssertionError(f"not logged within {timeout} s: {text}\n{path.read_text()[after:][-3000:]}")


def log_size(root: Path) -> int:
    return len((root / "data" / "logs" / "bbs.log").read_text())


def test_semaphore_recycle_moves_the_port_keeps_callers_and_a_bad_edit_keeps_serving(instance: Path):
    sbbs = instance / "ctrl" / "sbbs.ini"
    set_ini(sbbs, "Global", "SemFileCheckFrequency", "0.3")
    bbs = BBSProcess(instance).start()
    caller = None
    try:
        add_user(instance, "Alice", "alicepw1")
        caller = telnet(bbs.ports["telnet"])
        logon(caller, "Alice", "alicepw1")
        old_port, new_port = bbs.ports["telnet"], free_port()
        set_ini(sbbs, "BBS", "TelnetPort", str(new_port))
        with open(instance / "ctrl" / "msgs.ini", "a") as fh:
            fh.write(NEW_SUB)
        semaphore = instance / "ctrl" / "recycle.term"
        semaphore.touch()
        log = wait_for_log(instance, RECYCLED)
        assert f"Recycle semaphore file ({semaphore}) detected" in log
        assert not semaphore.exists()
        newcomer = telnet(new_port)
        newcomer.expect(LOGIN)                          # new callers: the new port
        newcomer.close(force=True)
        assert refused(old_port)
        caller.send("m")                                # the caller connected before goes on
        caller.expect("Messages ")
        caller.send("a")
        caller.expect("Group number: ")
        caller.sendline("1")
        caller.expect("Fresh Area")                     # and sees the sub added to msgs.ini
        caller.expect("Area number: ")
        caller.sendline("")
        time.sleep(1.5)                                 # longer than a check for callers of the old parts
        caller.send("q")
        caller.expect(MAIN_MENU)
        mark = log_size(instance)
        set_ini(sbbs, "BBS", "TelnetPort", "banana")
        (instance / "ctrl" / "recycle").touch()
        line = next(n for n, text in enumerate(sbbs.read_text().splitlines(), 1) if "banana" in text)
        wait_for_log(instance, f"!Recycle failed, the running configuration is kept: {sbbs}:{line}: "
                               "[BBS] TelnetPort: invalid number 'banana'", after=mark)
        assert not (instance / "ctrl" / "recycle").exists()
        again = telnet(new_port)                        # still serving as before
        again.expect(LOGIN)
        again.close(force=True)
        caller.send("w")
        caller.expect("Alice")
        assert bbs.proc.poll() is None
    finally:
        if caller is not None:
            caller.close(force=True)
        assert bbs.stop() == 0
    assert "Traceback" not in bbs.stderr()


def pane_key(transcript: io.StringIO, title: str) -> str:
    """The number key of the console pane called ``title`` (from its tab)."""
    return re.findall(rf" (\d) {title} ", transcript.getvalue())[-1]


def test_console_applies_a_saved_port_by_recycling_and_shows_a_bad_edit(instance: Path):
    sbbs = instance / "ctrl" / "sbbs.ini"
    with bbs_console(instance) as bbs:
        transcript = bbs.logfile_read
        old_port = telnet_port(bbs, instance)
        bbs.send(pane_key(transcript, "Config"))
        bbs.expect("Servers ...")
        bbs.send(DOWN * 2 + ENTER)                      # Servers
        bbs.expect("Terminal Server ...")
        bbs.send(DOWN + ENTER)                          # Terminal Server
        bbs.expect("TelnetPort")
        bbs.send(ENTER)
        bbs.expect(r"\[BBS\] TelnetPort = ")
        new_port = free_port()
        bbs.send(BACKSPACE + str(new_port) + ENTER)
        bbs.expect(r"Saved\. Recycle the Terminal Server now to apply it\? \[y/N\]")
        bbs.send("y")
        bbs.expect(rf"TelnetPort = {new_port}; Terminal Server recycled \(telnet {new_port}")
        caller = telnet(new_port)
        try:
            caller.expect(LOGIN)
            assert refused(old_port)
            set_ini(sbbs, "BBS", "TelnetPort", "banana")    # a bad edit by hand, then a recycle
            line = next(n for n, text in enumerate(sbbs.read_text().splitlines(), 1) if "banana" in text)
            bbs.send(pane_key(transcript, "Servers"))
            bbs.expect("Terminal Server +running")
            bbs.send("r")
            bbs.expect(r"Recycle the Terminal Server\?")
            bbs.send("y")
            bbs.expect(rf"ctrl/sbbs\.ini:{line}: \[BBS\] TelnetPort: invalid number 'banana' \(not recycled")
            caller.sendline("Alice")                        # the caller and the port go on
            caller.expect("Password: ")
        finally:
            caller.close(force=True)
        another = telnet(new_port)
        another.expect(LOGIN)
        another.close(force=True)
    log = (instance / "data" / "logs" / "bbs.log").read_text()
    assert f"{sbbs}:{line}: [BBS] TelnetPort: invalid number 'banana'" in log
    assert "sysop: recycle term" in log and RECYCLED in log
