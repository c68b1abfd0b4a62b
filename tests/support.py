"""Helpers for tests that run the real `bbs` command on a temp instance."""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: How long a test waits for the BBS to come up (a loaded CI box is slow).
START_TIMEOUT = 30.0


def bbs_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "bbs", *args]


def run_bbs(*args: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(bbs_command(*args), cwd=REPO, input=input, capture_output=True,
                          text=True, timeout=timeout)


def set_ini(path: Path, section: str, key: str, value: str) -> None:
    """Set ``key = value`` in ``[section]`` of an ini file, replacing the key's
    line when present (the loader refuses duplicates), adding it otherwise;
    the section is appended when missing."""
    lines = path.read_text().splitlines()
    out, in_section, done, seen_section = [], False, False, False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("["):
            if in_section and not done:
                out.append(f"{key} = {value}")
                done = True
            in_section = stripped[1:-1].strip().lower() == section.lower()
            seen_section = seen_section or in_section
        elif in_section and not done and re.match(rf"\s*{re.escape(key)}\s*=", line, re.IGNORECASE):
            out.append(f"{key} = {value}")
            done = True
            continue
        out.append(line)
    if not done:
        if not seen_section:
            out.append(f"[{section}]")
        out.append(f"{key} = {value}")
    path.write_text("\n".join(out) + "\n")


def make_instance(root: Path) -> Path:
    """A fresh instance on loopback with OS-chosen ports and quick login rules."""
    result = run_bbs("init", str(root))
    assert result.returncode == 0, result.stderr
    sbbs = root / "ctrl" / "sbbs.ini"
    for section, key, value in [
        ("Global", "Interface", "127.0.0.1"), ("Global", "BindRetryCount", "0"),
        ("Global", "LoginAttemptDelay", "0"), ("Global", "LoginAttemptThrottle", "0"),
        ("Global", "ShutdownGrace", "2"),
        ("BBS", "TelnetPort", "0"), ("BBS", "SSHPort", "0"), ("BBS", "RLoginPort", "0"),
        ("Mail", "SMTPPort", "0"), ("Mail", "SubmissionPort", "0"),
        ("Mail", "TLSSubmissionPort", "0"), ("Mail", "POP3Port", "0"), ("Mail", "TLSPOP3Port", "0"),
        ("FTP", "Port", "0"),
        # SendMail asks only a closed loopback port for DNS: no test reaches outside loopback.
        ("Mail", "DNSServer", "127.0.0.1:9"),
    ]:
        set_ini(sbbs, section, key, value)
    services = root / "ctrl" / "services.ini"
    for section in ("Finger", "ActiveUser", "MSP", "NNTP", "NNTPS", "Gopher"):
        set_ini(services, section, "Port", "0")
    return root


class BBSProcess:
    """`bbs run DIR` as a child process; ``ports`` maps service -> port once ready."""

    started: list["BBSProcess"] = []
    """The processes the running test uses: started by it or still running
    from a wider fixture (tests/conftest.py shows their stderr when the
    test fails)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ports: dict[str, int] = {}
        self.udp_ports: dict[str, int] = {}
        self.stderr_path = root / "run.stderr"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "BBSProcess":
        listeners = self.root / "data" / "listeners.json"
        if listeners.exists():
            listeners.unlink()
        self._err = open(self.stderr_path, "w")
        BBSProcess.started.append(self)
        self.proc = subprocess.Popen(bbs_command("run", str(self.root), "--headless"), cwd=REPO,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._err)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"bbs run exited {self.proc.returncode}: {self.stderr()}")
            if listeners.exists():
                data = json.loads(listeners.read_text())
                if data["pid"] == self.proc.pid:
                    self.ports = {row["service"]: row["port"] for row in data["listeners"]
                                  if row.get("transport", "tcp") == "tcp"}
                    self.udp_ports = {row["service"]: row["port"] for row in data["listeners"]
                                      if row.get("transport") == "udp"}
                    return self
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"bbs run did not become ready: {self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._err.close()
        return code


async def until(predicate, timeout: float = 15.0, poll: float = 0.01) -> None:
    """Wait (polling the running loop every ``poll`` seconds) until
    ``predicate()`` holds; fail after ``timeout`` seconds. A deadline, not a
    count of polls: under CPU load a poll takes longer than ``poll``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not reached in {timeout:g} s")
        await asyncio.sleep(poll)


def run_async(coro, timeout: float = 30.0):
    """asyncio.run(coro) that fails when the test leaves tasks running.

    ``asyncio.run`` would silently cancel them; a leaked task is a session or
    timer that shutdown code forgot.
    """
    import asyncio

    async def main():
        result = await asyncio.wait_for(coro, timeout)
        await asyncio.sleep(0)
        leaked = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
        for task in leaked:
            task.cancel()
        assert not leaked, f"test leaked tasks: {leaked}"
        return result

    return asyncio.run(main())


def open_sockets() -> set[str]:
    """The socket inodes this process holds open (from /proc/self/fd)."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found
