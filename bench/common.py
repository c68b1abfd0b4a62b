"""Helpers shared by the benchmarks that start peers (run as scripts from
the repository root: this folder is then on ``sys.path``)."""
from __future__ import annotations

import socket
import subprocess
import time

#: Seconds a server may take to accept connections after it was started.
START_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on just now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, name: str, timeout: float = START_TIMEOUT) -> None:
    """Wait until ``port`` on 127.0.0.1 accepts; exit the benchmark when
    ``proc`` ends first or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited with {proc.returncode} at start")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"{name} did not start")
