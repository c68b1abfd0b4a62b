"""FTP downloads with curl: our server against vsftpd and pyftpdlib, side by side.

Run from the repository root:

    .venv/bin/python bench/ftp_download.py

Options: ``--size-mb N`` (the big file, default 500), ``--rounds R``
(default 5; the three servers are interleaved, ours then vsftpd then
pyftpdlib, R times, and the median is reported), ``--small N`` (files in the
concurrency test, default 200, 10 KB each, fetched by one
``curl --parallel --parallel-max N``), ``--keep`` (keep the temporary
directory and the servers' logs).

Servers, each its own process on 127.0.0.1, serving the same bytes (hard
links of one file) at the same path, ``/Main/TEXT/``, to anonymous curl:

* ours: ``python -m bbs run DIR`` on a fresh instance (only the FTP server,
  a Guest account, the files recorded in the file base of dir Main/TEXT);
* vsftpd 3.0 with ../shared/peers/vsftpd.conf.in (sendfile, anonymous
  read-only), on a free port instead of 2121, when the binary is installed;
* pyftpdlib (``python -m pyftpdlib``, sendfile) when the module is importable.

For each: the big file's download rate (MB/s = 10^6 bytes per second of
curl's total time, connect and login included), the wall time of the
parallel small downloads (a round slower than 10 s is not repeated) and
the server's CPU time per small download (all its threads, from /proc); then
ours/peer ratios. Every download is checked
for its size; exit status 1 when one failed or our server logged an error.
Loopback only. Takes well under a minute plus writing the big file.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bbs.filebase import FileBase  # noqa: E402

from common import START_TIMEOUT, free_port, wait_port  # noqa: E402  (bench/common.py)

PEERS = REPO.parent / "shared" / "peers"
BIG = "big.bin"
#: Where every server has the files: ours in library Main, dir TEXT, and the
#: peers at that path too, so curl sends all the same commands (PWD, CWD Main,
#: CWD TEXT ...).
FILES_AT = "Main/TEXT"
SMALL_SIZE = 10 * 1024
#: A parallel round slower than this (seconds) is not repeated: vsftpd's
#: listen backlog of 32 drops SYNs of 200 simultaneous connects, and the
#: kernel's SYN retries (1+2+4+...+32 s) make one round last about a minute.
SLOW_PARALLEL = 10.0


def make_files(folder: Path, source: Path, small: list[tuple[str, bytes]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    os.link(source, folder / BIG)
    for name, data in small:
        (folder / name).write_bytes(data)


def set_ini(path: Path, section: str, key: str, value: str) -> None:
    from tests.support import set_ini as set_key
    set_key(path, section, key, value)


class Server:
    def __init__(self, name: str, port: int, proc: subprocess.Popen, prefix: str) -> None:
        self.name, self.port, self.proc, self.prefix = name, port, proc, prefix
        self.rates: list[float] = []
        self.parallel: list[float] = []
        self.setup: list[float] = []  # curl time_pretransfer: connect, login, PASV, RETR sent
        self.cpu: list[float] = []    # server CPU seconds per small download (parallel rounds)
        self.retries = 0

    def url(self, name: str) -> str:
        return f"ftp://127.0.0.1:{self.port}{self.prefix}{name}"

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def start_ours(work: Path, source: Path, small: list[tuple[str, bytes]], log) -> Server:
    root = work / "bbs"
    python = sys.executable
    subprocess.run([python, "-m", "bbs", "init", str(root)], cwd=REPO, check=True, capture_output=True)
    sbbs = root / "ctrl" / "sbbs.ini"
    for section, key, value in [("Global", "Interface", "127.0.0.1"), ("Global", "LoginAttemptThrottle", "0"),
                                ("BBS", "AutoStart", "false"), ("Mail", "AutoStart", "false"),
                                ("Services", "AutoStart", "false"), ("FTP", "Port", "0"),
                                ("FTP", "MaxClients", "0")]:
        set_ini(sbbs, section, key, value)
    subprocess.run([python, "-m", "bbs", "user", "add", "Guest", "--password", "guestpass", "--force",
                    "-d", str(root)], cwd=REPO, check=True, capture_output=True)
    folder = root / "files" / "main" / "text"
    make_files(folder, source, small)

    async def record() -> None:
        base = FileBase(root / "data" / "file.db")
        await base.open()
        for path in folder.iterdir():
            await base.add("TEXT", path.name, path.stat().st_size, uploader="Sysop")
        await base.close()
    asyncio.run(record())
    proc = subprocess.Popen([python, "-m", "bbs", "run", str(root), "--headless"], cwd=REPO,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
    listeners = root / "data" / "listeners.json"
    deadline = time.monotonic() + START_TIMEOUT
    while not listeners.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("our server did not start")
        time.sleep(0.05)
    port = next(r["port"] for r in json.loads(listeners.read_text())["listeners"] if r["service"] == "ftp")
    return Server("ours", port, proc, f"/{FILES_AT}/")


def start_vsftpd(work: Path, source: Path, small: list[tuple[str, bytes]], log) -> Server | None:
    binary = shutil.which("vsftpd") or ("/usr/sbin/vsftpd" if os.path.exists("/usr/sbin/vsftpd") else None)
    template = PEERS / "vsftpd.conf.in"
    if binary is None or not template.exists():
        print("vsftpd: not installed (apt-get install vsftpd); skipped")
        return None
    top = work / "vsftpd"
    (top / "vsftpd" / "empty").mkdir(parents=True)
    make_files(top / "ftproot" / FILES_AT, source, small)
    for folder in (top / "ftproot", top / "ftproot" / "Main", top / "ftproot" / FILES_AT):
        os.chmod(folder, 0o755)
    port = free_port()
    conf = template.read_text().replace("@DIR@", str(top)).replace("listen_port=2121", f"listen_port={port}")
    (top / "vsftpd.conf").write_text(conf)
    proc = subprocess.Popen([binary, str(top / "vsftpd.conf")], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=log)
    wait_port(port, proc, "vsftpd")
    return Server("vsftpd", port, proc, f"/{FILES_AT}/")


def start_pyftpdlib(work: Path, source: Path, small: list[tuple[str, bytes]], log) -> Server | None:
    try:
        import pyftpdlib  # noqa: F401
    except ImportError:
        print("pyftpdlib: not installed (pip install -e '.[test]'); skipped")
        return None
    top = work / "pyftpdlib"
    make_files(top / FILES_AT, source, small)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pyftpdlib", "-i", "127.0.0.1", "-p", str(port),
                             "-d", str(top)], stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    wait_port(port, proc, "pyftpdlib")
    return Server("pyftpdlib", port, proc, f"/{FILES_AT}/")


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its reaped children (vsftpd forks a process
    per session), from /proc; 0.0 where there is no /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def download_big(server: Server, size: int) -> float:
    """One curl download of the big file; returns MB/s."""
    result = subprocess.run(["curl", "-sS", "-o", "/dev/null",
                             "-w", "%{size_download} %{time_total} %{time_pretransfer}", server.url(BIG)], capture_output=True, text=True, timeout=300)
    got, seconds, pretransfer = result.stdout.split()
    server.setup.append(float(pretransfer))
    if result.returncode != 0 or int(got) != size:
        raise RuntimeError(f"{server.name}: download failed ({result.returncode}, {got} bytes): {result.stderr}")
    return size / float(seconds) / 1e6


def download_small(server: Server, names: list[str], config: Path) -> float:
    """All small files at once with one curl --parallel; returns seconds.

    A transfer the server resets is retried (``--retry-all-errors``, curl's
    back-off from 1 s): vsftpd's listen backlog of 32 overflows with 200
    connections at once; the retries are counted in ``server.retries``."""
    lines = [f'url = "{server.url(name)}"\noutput = "/dev/null"\n' for name in names]
    config.write_text("".join(lines))
    cpu = cpu_seconds(server.proc.pid)
    started = time.perf_counter()
    result = subprocess.run(["curl", "-sS", "--parallel", "--parallel-max", str(len(names)),
                             "--retry", "10", "--retry-all-errors",
                             "-w", "%{size_download}\n", "-K", str(config)],
                            capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - started
    time.sleep(0.2)  # the server's last bookkeeping (statistics after the 226) counts too
    server.cpu.append((cpu_seconds(server.proc.pid) - cpu) / len(names))
    server.retries += result.stderr.count("Will retry")
    sizes = [int(s) for s in result.stdout.split()]
    if result.returncode != 0 or sizes[-len(names):] != [SMALL_SIZE] * len(names):
        raise RuntimeError(f"{server.name}: parallel downloads failed ({result.returncode}): {result.stderr[-500:]}")
    return elapsed


def noop_latency(server: Server, login: tuple[str, str]) -> tuple[int, float, float]:
    """NOOPs on a second control connection while curl downloads the big file:
    (count, median ms, max ms). Shows whether one fast download holds up the
    server's other sessions."""
    import ftplib
    control = ftplib.FTP()
    control.connect("127.0.0.1", server.port, timeout=30)
    control.login(*login)
    curl = subprocess.Popen(["curl", "-sS", "-o", "/dev/null", server.url(BIG)])
    times = []
    while curl.poll() is None:
        started = time.perf_counter()
        control.voidcmd("NOOP")
        times.append((time.perf_counter() - started) * 1000)
    control.quit()
    return len(times), statistics.median(times or [0.0]), max(times or [0.0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    if shutil.which("curl") is None:
        raise SystemExit("curl is needed")
    work = Path(tempfile.mkdtemp(prefix="ftpbench-"))
    size = args.size_mb * 1000 * 1000
    source = work / "source.bin"
    block = os.urandom(1_000_000)
    with open(source, "wb") as out:
        for _ in range(args.size_mb):
            out.write(block)
    small = [(f"small{i:04d}.bin", os.urandom(SMALL_SIZE)) for i in range(args.small)]
    names = [name for name, _ in small]
    logs = {name: open(work / f"{name}.log", "w") for name in ("ours", "vsftpd", "pyftpdlib")}
    servers: list[Server] = []
    status = 0
    try:
        servers.append(start_ours(work, source, small, logs["ours"]))
        for start in (start_vsftpd, start_pyftpdlib):
            peer = start(work, source, small, logs[start.__name__.split("_")[1]])
            if peer is not None:
                servers.append(peer)
        print(f"{args.size_mb} MB download with curl, {args.small} x 10 KB with curl --parallel, "
              f"{args.rounds} interleaved rounds, loopback")
        for server in servers:          # warm-up: page cache, first logins
            download_big(server, size)
        for _ in range(args.rounds):
            for server in servers:
                server.rates.append(download_big(server, size))
            for server in servers:
                if server.parallel and server.parallel[0] > SLOW_PARALLEL:
                    continue  # measured once: repeating costs minutes (vsftpd: SYN retries)
                server.parallel.append(download_small(server, names, work / f"{server.name}.curl"))
        print(f"{'server':<10} {'MB/s (median)':>14} {'min..max':>19} {'parallel s (median)':>20} {'min..max':>15}")
        for s in servers:
            print(f"{s.name:<10} {statistics.median(s.rates):>14.0f} {min(s.rates):>9.0f}..{max(s.rates):<9.0f}"
                  f"{statistics.median(s.parallel):>20.3f} {min(s.parallel):>7.3f}..{max(s.parallel):<7.3f}"
                  + (f"  ({s.retries} transfers reset and retried)" if s.retries else "")
                  + (f"  (1 round only: slower than {SLOW_PARALLEL:g} s)" if len(s.parallel) < args.rounds else ""))
        print("server CPU per small download (median of the parallel rounds, ms): "
              + ", ".join(f"{s.name} {statistics.median(s.cpu) * 1000:.2f}" for s in servers))
        print("login-to-first-byte setup (curl time_pretransfer, median ms): "
              + ", ".join(f"{s.name} {statistics.median(s.setup) * 1000:.1f}" for s in servers))
        print("NOOP on a second connection during one big download (count, median ms, max ms): " + ", ".join(
            "{} {} {:.2f} {:.1f}".format(s.name, *noop_latency(s, ("anonymous", "bench@example.com")))
            for s in servers))
        ours = servers[0]
        for peer in servers[1:]:
            print(f"ours/{peer.name}: download rate x{statistics.median(ours.rates) / statistics.median(peer.rates):.2f}, "
                  f"parallel time x{statistics.median(ours.parallel) / statistics.median(peer.parallel):.2f} "
                  f"(rate: higher is better; time: lower is better)")
    except RuntimeError as exc:
        print(f"FAILED: {exc}")
        status = 1
    finally:
        for server in servers:
            code = server.stop()
            if server.name == "ours" and code != 0:
                print(f"our server exited {code}")
                status = 1
        for log in logs.values():
            log.close()
        errors = [line for line in (work / "ours.log").read_text().splitlines()
                  if " ERROR " in line or "CRITICAL" in line or "Traceback" in line]
        if errors:
            print("our server logged errors:\n" + "\n".join(errors[:10]))
            status = 1
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
