"""Idle telnet connections: accept rate and memory per connection, side by side.

Run from the repository root:

    .venv/bin/python bench/idle_connections.py -n 1000 --rounds 3

``-n`` defaults to 1000 (every telnet caller holds a node; the instance gets
N + 1 nodes, up to our ceiling MAX_NODES). Other options: ``--rounds R``
(default 1; ours then the peer, R times, ratios are medians), ``--concurrency
C`` (connection attempts in flight at once, default 100, which keeps both
listen queues from overflowing; 0 = all at once), ``--timeout S`` (default 30),
``--keep`` (keep the temporary BBS instance and the servers' stderr).

Servers compared, each started as its own subprocess:

* ours: ``python -m bbs run DIR`` on a fresh instance in a temporary directory
  (loopback only, telnet on a free port, Mail/FTP/Services off, nodes 1 to
  min(N + 1, MAX_NODES), no login throttle, MaxLoginInactivity 1h). Each telnet
  caller takes a node and gets the answer banner, then is held until a key.
* the peer: a bare telnetlib3 server (this file run with ``--peer-server``)
  whose shell writes a one-line banner and then waits for input forever.

For each server: RSS (VmRSS) once it is ready and idle; a separate client
process (this file with ``--client``) opens N TCP connections, refuses any
telnet option the server asks for (so telnetlib3 starts its shell at once
instead of waiting ``connect_maxwait``) and waits for the first banner byte
that is not telnet negotiation; the time until all N have their banner gives
the accept rate (also: p50/p99 time from connect to banner, the server's CPU
time per connection from /proc/PID/stat, the client's own CPU use). With all
N held open, about 1 s later the server's RSS is read again: KB per connection
= (RSS with N - RSS idle) / connections still open. Then the client hangs up,
the server gets SIGTERM and must exit (ours with status 0).

RLIMIT_NOFILE: the soft limit is raised to the hard limit (when below N + 256)
before anything is spawned, so both servers and the client inherit it; the
client and the peer raise it again themselves (`bbs run` raises its own too).

Exit status: 0 when every connection got its banner and stayed open, and our
server exited 0 with nothing logged at ERROR or above; 1 otherwise.
Loopback (127.0.0.1) only.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
PEER_BANNER = b"\r\nbare telnetlib3 server: press a key\r\n"


def max_nodes() -> int:
    """Our node ceiling (Synchronet's MAX_NODES): main.ini refuses a higher LastNode."""
    sys.path.insert(0, str(REPO))
    try:
        from bbs.boardconf import MAX_NODES
    except ImportError:
        return 250
    finally:
        sys.path.remove(str(REPO))
    return MAX_NODES

# Telnet bytes (RFC 854).
IAC, SE, SB, WILL, WONT, DO, DONT = 255, 240, 250, 251, 252, 253, 254


# -- shared helpers ------------------------------------------------------------

def raise_nofile(needed: int = 0) -> tuple[int, int, int]:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit when below ``needed``
    (any amount when ``needed`` is 0). Returns (old soft, new soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new = soft
    if soft != hard and (not needed or soft < needed):
        new = hard if hard != resource.RLIM_INFINITY else max(soft, needed, 65536)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return soft, new, hard


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (clock-tick resolution)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_line(stream, timeout: float) -> str:
    """One line from a child's pipe, or '' on EOF/timeout."""
    ready, _, _ = select.select([stream], [], [], timeout)
    if not ready:
        return ""
    return stream.readline().decode("utf-8", "replace")


# -- the peer: a bare telnetlib3 server -----------------------------------------

def peer_server() -> int:
    import telnetlib3

    raise_nofile()

    async def shell(reader, writer) -> None:
        writer.write(PEER_BANNER)
        while await reader.read(1024):  # wait for input forever; '' = hung up
            pass
        writer.close()

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        server = await telnetlib3.create_server(host=HOST, port=0, shell=shell, encoding=False, timeout=0)
        print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
        await stop.wait()
        server.close()
        await asyncio.wait_for(server.wait_closed(), 10)
        return 0

    return asyncio.run(main())


# -- the client: N idle telnet connections --------------------------------------

class _Caller(asyncio.Protocol):
    """One idle caller: refuses every telnet option, notes the first banner byte."""

    def __init__(self, banner: asyncio.Future) -> None:
        self.banner = banner
        self.transport: asyncio.Transport | None = None
        self.state = "data"
        self.command = 0
        self.closed_by_server = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        replies = bytearray()
        for b in data:
            if self.state == "data":
                if b == IAC:
                    self.state = "iac"
                elif not self.banner.done():
                    self.banner.set_result(time.perf_counter())
            elif self.state == "iac":
                if b in (WILL, WONT, DO, DONT):
                    self.command, self.state = b, "option"
                elif b == SB:
                    self.state = "sb"
                else:
                    self.state = "data"
                    if b == IAC and not self.banner.done():  # escaped 255: data
                        self.banner.set_result(time.perf_counter())
            elif self.state == "option":
                if self.command == DO:
                    replies += bytes((IAC, WONT, b))
                elif self.command == WILL:
                    replies += bytes((IAC, DONT, b))
                self.state = "data"
            elif self.state == "sb":
                if b == IAC:
                    self.state = "sb-iac"
            elif self.state == "sb-iac":
                self.state = "data" if b == SE else "sb"
        if replies and self.transport is not None:
            self.transport.write(bytes(replies))

    def connection_lost(self, exc) -> None:
        self.closed_by_server = True
        if not self.banner.done():
            self.banner.set_exception(ConnectionError("closed before the banner"))


def client(host: str, port: int, count: int, concurrency: int, timeout: float) -> int:
    """Open ``count`` connections, print a JSON line when all have their banner
    (or ``timeout`` passed), hold them until 'close' arrives on stdin, print a
    second JSON line, hang up."""
    raise_nofile(count + 64)

    async def main() -> int:
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(concurrency) if concurrency else None
        callers: list[_Caller] = []
        errors: Counter[str] = Counter()
        waits: list[float] = []
        finished: list[float] = []

        async def call() -> None:
            banner = loop.create_future()
            start = time.perf_counter()
            _, caller = await loop.create_connection(lambda: _Caller(banner), host, port)
            callers.append(caller)
            finished.append(await banner)
            waits.append(finished[-1] - start)

        async def gated() -> None:
            try:
                if gate is None:
                    await call()
                else:
                    async with gate:
                        await call()
            except Exception as exc:  # counted, reported
                errors[f"{type(exc).__name__}: {exc}"] += 1

        t0, cpu0 = time.perf_counter(), time.process_time()
        tasks = [asyncio.create_task(gated()) for _ in range(count)]
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            errors[f"no banner within {timeout:g} s"] += len(pending)
            await asyncio.wait(pending)
        elapsed = (max(finished) - t0) if finished else 0.0
        cpu = time.process_time() - cpu0
        wall = time.perf_counter() - t0
        waits.sort()
        print(json.dumps({
            "ok": len(finished), "errors": dict(errors), "elapsed": elapsed,
            "cpu_pct": 100 * cpu / wall if wall else None,
            "p50_ms": 1000 * waits[len(waits) // 2] if waits else None,
            "p99_ms": 1000 * waits[min(len(waits) - 1, int(len(waits) * 0.99))] if waits else None,
        }), flush=True)

        await loop.run_in_executor(None, sys.stdin.readline)  # 'close' (or EOF)
        dropped = sum(c.closed_by_server for c in callers
                      if c.banner.done() and not c.banner.cancelled() and c.banner.exception() is None)
        print(json.dumps({"dropped_while_held": dropped}), flush=True)
        for c in callers:
            if c.transport is not None:
                c.transport.close()
        await asyncio.sleep(0.1)
        return 0

    return asyncio.run(main())


# -- the orchestrator ------------------------------------------------------------

def set_ini(path: Path, section: str, key: str, value: str) -> None:
    """Set ``key`` in ``[section]``, replacing its line (the loader refuses duplicates)."""
    lines = path.read_text().splitlines()
    current, header_at, done = None, None, False
    for i, line in enumerate(lines):
        m = re.match(r"\s*\[([^\]]+)\]", line)
        if m:
            current = m.group(1).strip().lower()
            if current == section.lower():
                header_at = i
            continue
        m = re.match(r"\s*([A-Za-z0-9_]+)\s*=", line)
        if m and current == section.lower() and m.group(1).lower() == key.lower():
            lines[i] = f"{key} = {value}"
            done = True
            break
    if not done:
        if header_at is None:
            lines += ["", f"[{section}]", f"{key} = {value}"]
        else:
            lines.insert(header_at + 1, f"{key} = {value}")
    path.write_text("\n".join(lines) + "\n")


def make_instance(home: Path, nodes: int) -> None:
    subprocess.run([sys.executable, "-m", "bbs", "init", str(home)], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL)
    sbbs, main_ini = home / "ctrl" / "sbbs.ini", home / "ctrl" / "main.ini"
    for section, key, value in (("Global", "Interface", HOST), ("Global", "LoginAttemptThrottle", "0"),
                                ("BBS", "TelnetPort", "0"), ("BBS", "MaxLoginInactivity", "1h"),
                                ("Mail", "AutoStart", "false"), ("FTP", "AutoStart", "false"),
                                ("Services", "AutoStart", "false")):
        set_ini(sbbs, section, key, value)
    set_ini(main_ini, "Nodes", "FirstNode", "1")
    set_ini(main_ini, "Nodes", "LastNode", str(nodes))


class Server:
    """A server under test: a subprocess, its telnet port, its stderr log."""

    def __init__(self, name: str, log: Path) -> None:
        self.name, self.log = name, log
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.ready_s = 0.0

    def start(self, home: Path) -> None:
        raise NotImplementedError

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self, timeout: float = 30.0) -> tuple[int | None, float]:
        """SIGTERM; returns (exit status or None if it had to be killed, seconds)."""
        assert self.proc is not None
        t0 = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            status = None
        return status, time.perf_counter() - t0


class Ours(Server):
    def start(self, home: Path) -> None:
        ports = home / "data" / "listeners.json"
        ports.unlink(missing_ok=True)
        t0 = time.perf_counter()
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "bbs", "run", str(home)], cwd=REPO,
                                         stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        deadline = t0 + 60
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bbs run exited {self.proc.returncode} before it was ready; see {self.log}")
            try:
                info = json.loads(ports.read_text())
            except (OSError, ValueError):
                time.sleep(0.05)
                continue
            if info.get("pid") == self.proc.pid:
                self.port = next(row["port"] for row in info["listeners"]
                                 if row["service"] == "telnet" and row.get("tls", "off") == "off")
                self.ready_s = time.perf_counter() - t0
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"bbs run not ready within 60 s; see {self.log}")


class Peer(Server):
    def start(self, home: Path) -> None:
        t0 = time.perf_counter()
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen([sys.executable, __file__, "--peer-server"], cwd=REPO,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        line = read_line(self.proc.stdout, 30)
        if not line.startswith("PORT "):
            self.kill()
            raise RuntimeError(f"peer server did not report its port ({line!r}); see {self.log}")
        self.port = int(line.split()[1])
        self.ready_s = time.perf_counter() - t0


def hold_clients(script: str, port: int, n: int, args, pid: int, grace: float) -> tuple[dict, float, int, int | None]:
    """Run ``script --client`` (N callers against ``port``) in a child
    process and wait ``args.timeout + grace`` for its JSON result; then, with
    every caller still connected, the server's (``pid``) CPU seconds at that
    moment and its RSS one second later; then tell the client to close and
    read how many callers the server dropped while held (None: no answer).
    Returns (result, cpu_s, rss_kb, dropped)."""
    client_proc = subprocess.Popen(
        [sys.executable, script, "--client", "--port", str(port), "-n", str(n),
         "--concurrency", str(args.concurrency), "--timeout", str(args.timeout)],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        line = read_line(client_proc.stdout, args.timeout + grace)
        if not line:
            raise RuntimeError(f"client gave no result (exit {client_proc.poll()})")
        result = json.loads(line)
        cpu = cpu_s(pid)
        time.sleep(1.0)
        loaded = rss_kb(pid)
        client_proc.stdin.write(b"close\n")
        client_proc.stdin.flush()
        line = read_line(client_proc.stdout, 30)
        dropped = json.loads(line)["dropped_while_held"] if line else None
        client_proc.wait(30)
    finally:
        if client_proc.poll() is None:
            client_proc.kill()
            client_proc.wait()
    return result, cpu, loaded, dropped


def measure(server: Server, home: Path, args) -> dict:
    """One run of one server: start, idle RSS, N callers, RSS with N, stop."""
    server.start(home)
    try:
        pid = server.proc.pid
        time.sleep(0.5)  # let start-up settle: "ready and idle"
        idle = rss_kb(pid)
        cpu0 = cpu_s(pid)
        opened, cpu_at_result, loaded, dropped = hold_clients(__file__, server.port, args.n, args, pid, 30)
        cpu = cpu_at_result - cpu0
    except BaseException:  # never leave a server running
        server.kill()
        raise
    status, stop_s = server.stop()
    ok = opened["ok"]
    held = ok - (dropped or 0)
    return {
        "server": server.name, "n": args.n, "ok": ok, "errors": opened["errors"],
        "dropped": dropped,
        "rate": ok / opened["elapsed"] if opened["elapsed"] else 0.0,
        "p50_ms": opened["p50_ms"], "p99_ms": opened["p99_ms"], "client_cpu": opened["cpu_pct"],
        "cpu_us": 1e6 * cpu / args.n,
        "idle_kb": idle, "loaded_kb": loaded, "held": held,
        "per_conn_kb": (loaded - idle) / held if held else float("nan"),
        "status": status, "ready_s": server.ready_s, "stop_s": stop_s,
    }


def log_problems(log: Path) -> list[str]:
    """Lines of our server's stderr logged at WARNING or above, or tracebacks."""
    if not log.exists():
        return []
    pattern = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback|Errno|Too many open files")
    return [line for line in log.read_text(errors="replace").splitlines() if pattern.search(line)]


def orchestrate(args) -> int:
    old, soft, hard = raise_nofile(args.n + 256)  # inherited by both servers and the client
    nofile = f"RLIMIT_NOFILE soft {soft}, hard {hard}" + (f" (raised from {old})" if soft != old else "")
    if soft < args.n + 64:
        print(f"warning: {nofile} is too low for {args.n} connections", file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="bench-idle-"))
    home = work / "bbs"
    results: list[dict] = []
    failed = False
    try:
        print(f"setting up a BBS instance in {home} ...", file=sys.stderr, flush=True)
        nodes = max_nodes()
        if args.n > nodes:
            print(f"warning: our BBS holds at most {nodes} telnet callers (one node each, LastNode <= "
                  f"{nodes}); the other {args.n - nodes} are told all nodes are busy and count as failed",
                  file=sys.stderr)
        make_instance(home, min(args.n + 1, nodes))
        for r in range(1, args.rounds + 1):
            for server in (Ours("ours", work / "ours.stderr"), Peer("telnetlib3", work / "peer.stderr")):
                print(f"round {r}/{args.rounds}: {server.name}, {args.n} connections ...",
                      file=sys.stderr, flush=True)
                row = measure(server, home, args)
                row["round"] = r
                results.append(row)
                if row["ok"] != args.n or row["errors"] or row["dropped"]:
                    failed = True
                if server.name == "ours" and row["status"] != 0:
                    failed = True
        report(results, args, nofile)
        problems = log_problems(work / "ours.stderr")
        if problems:
            print(f"\nour server's stderr: {len(problems)} line(s) at WARNING or above, or tracebacks:")
            kinds = Counter(re.sub(r"^\S+ \S+ ", "", line) for line in problems)  # drop the timestamp
            for line, count in kinds.most_common(10):
                print(f"  {count:>6} x {line}")
            if any(re.search(r"ERROR|CRITICAL|Traceback|Too many open files", p) for p in problems):
                failed = True
        else:
            print("\nour server's stderr: nothing at WARNING or above, no tracebacks.")
    finally:
        if args.keep:
            print(f"kept {work} (ours.stderr, peer.stderr, bbs/)", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


def report(results: list[dict], args, nofile: str) -> None:
    print(f"\nIdle telnet connections on {HOST}: {args.n} per run, {args.rounds} round(s), "
          f"{args.concurrency or 'all'} connection attempts in flight; {nofile}")
    head = (f"{'round':>5}  {'server':<10} {'conns':>11} {'accept/s':>9} {'p50 ms':>7} {'p99 ms':>7} "
            f"{'CPU us/conn':>11} {'client CPU':>10} "
            f"{'RSS idle MB':>11} {'RSS w/N MB':>10} {'KB/conn':>8} {'ready s':>7} {'stop s':>6} {'exit':>4}")
    print(head)
    print("-" * len(head))
    for row in results:
        conns = f"{row['ok']}/{row['n']}"
        p50 = f"{row['p50_ms']:.1f}" if row["p50_ms"] is not None else "-"
        p99 = f"{row['p99_ms']:.1f}" if row["p99_ms"] is not None else "-"
        status = "kill" if row["status"] is None else str(row["status"])
        client_cpu = f"{row['client_cpu']:.0f}%" if row["client_cpu"] is not None else "-"
        print(f"{row['round']:>5}  {row['server']:<10} {conns:>11} {row['rate']:>9.0f} {p50:>7} {p99:>7} "
              f"{row['cpu_us']:>11.0f} {client_cpu:>10} "
              f"{row['idle_kb'] / 1024:>11.1f} {row['loaded_kb'] / 1024:>10.1f} {row['per_conn_kb']:>8.1f} "
              f"{row['ready_s']:>7.2f} {row['stop_s']:>6.2f} {status:>4}")
        for error, count in row["errors"].items():
            print(f"       {row['server']}: {count} x {error}")
        if row["dropped"]:
            print(f"       {row['server']}: {row['dropped']} connection(s) closed by the server while held")
    ours = [r for r in results if r["server"] == "ours"]
    peer = [r for r in results if r["server"] != "ours"]
    med = lambda rows, key: statistics.median(r[key] for r in rows)  # noqa: E731
    if med(peer, "per_conn_kb") > 0 and med(peer, "rate") > 0:
        what = "medians over rounds" if args.rounds > 1 else "one round"
        print(f"\nours/peer ({what}): KB per connection {med(ours, 'per_conn_kb') / med(peer, 'per_conn_kb'):.2f}x, "
              f"accept rate {med(ours, 'rate') / med(peer, 'rate'):.2f}x"
              + (f", server CPU per connection {med(ours, 'cpu_us') / med(peer, 'cpu_us'):.2f}x"
                 if med(peer, "cpu_us") > 0 else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=1000, help="idle connections per server (default 1000)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds (default 1)")
    parser.add_argument("--concurrency", type=int, default=100,
                        help="connection attempts in flight at once (default 100; 0 = all)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds for all banners (default 30)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary instance and logs")
    parser.add_argument("--peer-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peer_server:
        return peer_server()
    if args.client:
        return client(HOST, args.port, args.n, args.concurrency, args.timeout)
    if args.n < 1 or args.rounds < 1:
        parser.error("-n and --rounds must be at least 1")
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
