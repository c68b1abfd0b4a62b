"""`bbs config check` and `bbs run` on broken instances: status 2, one located line, nothing started."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bbs.instance import init_instance

REPO = Path(__file__).resolve().parents[2]
EXIT_CONFIG = 2


def bbs(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "BBS_HOME"}
    return subprocess.run([sys.executable, "-m", "bbs", *args], cwd=REPO, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "bbs"
    init_instance(root)
    return root


def edit(path: Path, old: str, new: str) -> int:
    """Replace ``old`` (once) in ``path``; return the 1-based line of the change."""
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))
    return text[:text.index(old)].count("\n") + 1


def break_telnet_port(root: Path) -> str:
    path = root / "ctrl" / "sbbs.ini"
    line = edit(path, "TelnetPort = 2023", "TelnetPort = 99999")
    return f"{path}:{line}: [BBS] TelnetPort: 99999 is above the maximum 65535"


def break_sub_ars(root: Path) -> str:
    path = root / "ctrl" / "msgs.ini"
    line = edit(path, "post_ars = SYSOP", "post_ars = SYSOP OR WIZARD")
    return (f"{path}:{line}: [sub:Local:SYSOP] post_ars: unknown keyword 'WIZARD' "
            "in requirement 'SYSOP OR WIZARD'")


def break_nodes(root: Path) -> str:
    path = root / "ctrl" / "main.ini"
    line = edit(path, "LastNode = 4", "LastNode = 0")
    return f"{path}:{line}: [Nodes] LastNode: 0 is below the minimum 1"


def break_port_conflict(root: Path) -> str:
    path = root / "ctrl" / "sbbs.ini"
    line = edit(path, "Port = 2021", "Port = 2023")
    telnet = path.read_text().splitlines().index("TelnetPort = 2023") + 1
    return f"{path}:{line}: ftp port 2023 is already used by telnet ({path}:{telnet})"


def break_file_dir(root: Path) -> str:
    path = root / "ctrl" / "file.ini"
    line = edit(path, "[dir:Main:TEXT]", "[dir:Books:TEXT]")
    return (f"{path}:{line}: dir TEXT names unknown library 'Books' "
            "(declare [lib:...] before its dirs)")


BREAKERS = [break_telnet_port, break_sub_ars, break_nodes, break_port_conflict, break_file_dir]


@pytest.mark.parametrize("breaker", BREAKERS, ids=[b.__name__ for b in BREAKERS])
def test_config_check_reports_one_located_line(root, breaker):
    expected = breaker(root)
    result = bbs("config", "check", str(root))
    assert result.returncode == EXIT_CONFIG, result
    assert result.stderr == expected + "\n"
    assert "OK" not in result.stdout


@pytest.mark.parametrize("breaker", [break_telnet_port, break_sub_ars, break_port_conflict],
                         ids=["sbbs.ini", "msgs.ini", "conflict"])
def test_run_refuses_to_start(root, breaker):
    expected = breaker(root)
    result = bbs("run", str(root), "--headless")
    assert result.returncode == EXIT_CONFIG, result
    assert result.stderr == expected + "\n"
    data = root / "data"
    assert not (data / "listeners.json").exists()
    assert not (data / "user.db").exists()                 # no sysop account created
    assert not (data / "tls").exists()                     # no certificate generated
    assert result.stdout == ""


def test_good_instance_passes_config_check(root):
    result = bbs("config", "check", str(root))
    assert result.returncode == 0, result
    assert result.stderr == ""
    assert f"{root / 'ctrl'}: OK (17 listener socket(s), 4 message sub(s), 3 file dir(s), nodes 1-4)" in result.stdout
    assert "telnet     *:2023 tls=off" in result.stdout
    assert not (root / "data" / "user.db").exists()


def test_unknown_key_is_a_warning_not_an_error(root):
    path = root / "ctrl" / "sbbs.ini"
    line = edit(path, "TelnetPort = 2023", "TelnetPort = 2023\nTelnetPrt = 23")
    result = bbs("config", "check", str(root))
    assert result.returncode == 0, result
    assert f"warning: {path}:{line + 1}: unknown key TelnetPrt in [BBS] (ignored)" in result.stdout
