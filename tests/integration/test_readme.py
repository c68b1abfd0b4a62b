"""The README's run command, exactly as written, on a copy of this tree:
it installs into a fresh venv and starts the BBS, which answers telnet.

(The README's test command is `.ci/run`, which CI itself runs.)
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.support import REPO, make_instance

#: pip install of the pinned packages into a new venv can take a while on CI.
INSTALL_TIMEOUT = 400


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    head = text.split("\n## ", 1)[0]
    return [line.strip() for line in head.splitlines() if line.startswith("    ")]


def test_readme_has_exactly_two_commands_near_the_top():
    commands = readme_commands()
    assert len(commands) == 2
    assert commands[1] == "bash .ci/run"
    assert "bbs run" in commands[0] and "sudo" not in commands[0]


def test_readme_run_command_installs_and_starts_the_bbs(tmp_path: Path):
    tree = tmp_path / "tree"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, tree / name)
    home = make_instance(tmp_path / "home")           # port 0 on loopback, via BBS_HOME
    env = dict(os.environ, BBS_HOME=str(home), HOME=str(tmp_path))
    env.pop("VIRTUAL_ENV", None)
    command = readme_commands()[0]
    proc = subprocess.Popen(["bash", "-c", command], cwd=tree, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        listeners = home / "data" / "listeners.json"
        deadline = time.monotonic() + INSTALL_TIMEOUT
        while not listeners.exists():
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace")
            assert time.monotonic() < deadline, "the README command did not bring the BBS up"
            time.sleep(0.2)
        port = next(r["port"] for r in json.loads(listeners.read_text())["listeners"] if r["service"] == "telnet")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            banner = b""
            while b"Node 1" not in banner:
                chunk = sock.recv(1024)
                assert chunk, banner
                banner += chunk
        assert (tree / ".venv" / "bin" / "bbs").exists()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        output = proc.communicate(timeout=60)[0].decode(errors="replace")
    assert proc.returncode == 0, output
    assert re.search(r"Sysop account 'Sysop' created\. Password: \S+", output)
    assert "BBS stopped" in output
