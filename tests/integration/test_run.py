"""`bbs run` end to end: first start, telnet answer screen, nodes, shutdown, bind errors."""
from __future__ import annotations

import re
import signal
import socket
import time
from pathlib import Path

import pexpect

from tests.integration.test_terminal_server import telnet as terminal_telnet
from tests.support import BBSProcess, run_bbs, set_ini

PASSWORD_RE = re.compile(r"Sysop account 'Sysop' created\. Password: (\S+)")


LOGIN = "Login: "


def telnet(port: int) -> pexpect.spawn:
    """A dumb-terminal caller: the answer screen comes as plain ASCII."""
    return terminal_telnet(port, term="dumb")


def hang_up_by_failing(session: pexpect.spawn) -> None:
    """Three wrong log-ons: the BBS hangs up (the node is free after that)."""
    for _ in range(3):
        session.expect(LOGIN)
        session.sendline("x")
        session.expect("Password: ")
        session.sendline("wrong")
        session.expect("Invalid log-on")
    session.expect("Too many failed log-on attempts")
    session.expect("Connection closed by foreign host")


def test_first_start_creates_sysop_and_answers_telnet(bbs: BBSProcess):
    stderr = bbs.stderr()
    passwords = PASSWORD_RE.findall(stderr)
    assert len(passwords) == 1
    session = telnet(bbs.ports["telnet"])
    session.expect("New Python BBS")
    session.expect(r"Sysop Sysop .* Node 1 of 1-4")
    session.expect(LOGIN)
    session.sendline("Sysop")
    session.expect("Password: ")
    session.sendline(passwords[0])                      # the printed password logs on
    session.expect("Welcome back")
    session.expect("Main menu")
    session.send("g")
    session.expect("Log off now")
    session.send("y")
    session.expect("Thanks for calling")
    session.expect("Connection closed by foreign host")
    session.close()
    assert bbs.stop() == 0
    log = (bbs.root / "data" / "logs" / "bbs.log").read_text()
    assert passwords[0] not in log                      # printed once, never logged
    assert "telnet listening on 127.0.0.1 port" in log and "BBS stopped" in log
    assert "Node 1 telnet connection accepted from 127.0.0.1" in log
    # The printed password is the sysop's; a restart does not print another.
    again = BBSProcess(bbs.root).start()
    assert not PASSWORD_RE.search(again.stderr())
    assert again.stop() == 0
    result = run_bbs("user", "show", "Sysop", "-d", str(bbs.root))
    assert result.returncode == 0 and re.search(r"Level:\s+99", result.stdout)


def test_sigterm_closes_listeners_and_sessions_cleanly(bbs: BBSProcess):
    port = bbs.ports["telnet"]
    session = telnet(port)
    session.expect(LOGIN)
    started = time.monotonic()
    assert bbs.stop(signal.SIGTERM) == 0
    session.expect("The BBS is shutting down")
    session.expect("Connection closed by foreign host")
    assert time.monotonic() - started < 10             # grace is 2 s in the test config
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    stderr = bbs.stderr()
    assert "received SIGTERM" in stderr and "BBS stopped" in stderr
    assert "Traceback" not in stderr


def test_sigint_stops_too(bbs: BBSProcess):
    assert bbs.stop(signal.SIGINT) == 0
    assert "received SIGINT" in bbs.stderr()


def test_all_nodes_busy_is_told_politely(instance: Path):
    set_ini(instance / "ctrl" / "main.ini", "Nodes", "LastNode", "1")
    process = BBSProcess(instance).start()
    try:
        first = telnet(process.ports["telnet"])
        first.expect("Node 1 of 1-1")
        second = telnet(process.ports["telnet"])
        second.expect("all nodes are busy right now")
        second.expect("Connection closed by foreign host")
        hang_up_by_failing(first)
        third = telnet(process.ports["telnet"])      # node 1 is free again
        third.expect("Node 1 of 1-1")
        third.expect(LOGIN)
        third.close()
    finally:
        assert process.stop() == 0


def test_bind_failure_stops_start_with_clear_message(instance: Path):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    try:
        set_ini(instance / "ctrl" / "sbbs.ini", "BBS", "TelnetPort", str(port))
        result = run_bbs("run", str(instance), "--headless", timeout=60)
    finally:
        blocker.close()
    assert result.returncode == 1
    assert f"!ERROR 98 binding telnet socket to port {port}" in result.stderr
    assert f"cannot bind telnet port {port} on 127.0.0.1: address already in use" in result.stderr
    assert not (instance / "data" / "listeners.json").exists()


def test_config_error_stops_run_with_exit_2(instance: Path):
    sbbs = instance / "ctrl" / "sbbs.ini"
    set_ini(sbbs, "BBS", "TelnetPort", "99999")
    line = next(i for i, text in enumerate(sbbs.read_text().splitlines(), 1) if "99999" in text)
    result = run_bbs("run", str(instance), "--headless")
    assert result.returncode == 2
    assert result.stderr.strip() == f"{sbbs}:{line}: [BBS] TelnetPort: 99999 is above the maximum 65535"


def test_init_creates_instance_and_never_overwrites(tmp_path: Path):
    root = tmp_path / "new"
    result = run_bbs("config", "check", str(root))
    assert result.returncode == 2 and "create the instance with `bbs init` first" in result.stderr
    assert run_bbs("init", str(root)).returncode == 0
    assert (root / "ctrl" / "sbbs.ini").is_file() and (root / "text" / "name.can").is_file()
    assert (root / "files" / "main" / "uploads").is_dir()
    shipped = (Path(__file__).resolve().parents[2] / "ctrl" / "sbbs.ini").read_text()
    assert (root / "ctrl" / "sbbs.ini").read_text() == shipped
    (root / "ctrl" / "sbbs.ini").write_text(shipped.replace("Hostname = localhost", "Hostname = bbs.test"))
    assert run_bbs("init", str(root)).returncode == 0           # never overwrites the sysop's edits
    assert "Hostname = bbs.test" in (root / "ctrl" / "sbbs.ini").read_text()
