"""Concurrent telnet logins: N callers log on, open the message menu and read a message.

Run from the repository root:

    .venv/bin/python bench/node_logins.py                 # N = 100, then N = 500
    .venv/bin/python bench/node_logins.py -n 100 -n 500   # the same, explicitly

For each N: a fresh BBS instance in a temporary directory (``python -m bbs
init``; loopback only, telnet on a free port, SSH/RLogin/Mail/FTP/Services
off, nodes 1 to N + 1 so LastNode exceeds N, LoginAttemptDelay and
LoginAttemptThrottle 0, MaxLoginInactivity 1h) is started with ``python -m
bbs run DIR`` as a subprocess. Once it is up, N users (``bench1`` ...
``benchN``, one per caller: every caller has its own last-read pointer and
logon record; the BBS would also let one user log on at several nodes) are
added with :class:`bbs.users.UserBase` and one message is posted in the first
sub (GENERAL) with :class:`bbs.msgbase.MessageBase`. After 1 s the server's
idle RSS is read.

A separate client process (this file with ``--client``) then opens N telnet
connections at once (``--concurrency``, default 100, caps the connection
attempts in flight so the listen queue never overflows; each caller's clock
starts when its attempt starts). Each caller speaks minimal telnet on a raw
asyncio socket: it refuses every option except NAWS (80x200, so nothing is
paged with [Hit a key]) and answers the server's cursor-position probes
(ESC[6n) so it is taken for an ANSI terminal at once. It types its name at
``Login:``, its password at ``Password:``, and when the main menu prompt
appears presses ``M`` (message menu), then ``R`` (read): the message is shown
when its body text arrives. Reported: p50/p99 (and max) of connect -> main
menu prompt and connect -> message shown (and connect -> ``Login:``), and the wall time for all N. With
every caller still on line at the reader's prompt, about 1 s later the
server's RSS is read again: RSS per logged-in node = (RSS with N - RSS idle) /
N. Then the callers hang up and the server gets SIGTERM.

Logons are dominated by the password check (scrypt, n=2**14, r=8: about
16 MiB and tens of milliseconds of CPU each, in worker threads).

Options: ``-n N`` (repeatable; default 100 and 500), ``--concurrency C``,
``--timeout S`` (per N, default 300), ``--keep`` (keep the instances).
Exit status 0 when every caller reached the message and the server exited 0
without logging an ERROR or a traceback; 1 otherwise. Loopback only.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from idle_connections import (  # noqa: E402  (shared helpers of our benchmarks)
    DO, DONT, HOST, IAC, REPO, SB, SE, WILL, WONT, Ours, hold_clients, log_problems, raise_nofile,
    rss_kb, set_ini)

NAWS = 31
ROWS, COLS = 200, 80
PASSWORD = "benchpw1"
SUBJECT = "Benchmark message"
BODY = "This is the benchmark message body: read me."
MARK_BODY = b"the benchmark message body"
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


# -- the client ------------------------------------------------------------------

class _Caller(asyncio.Protocol):
    """One scripted caller: minimal telnet, CPR answers, screen text in ``self.text``."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.state = "data"
        self.command = 0
        self.raw = bytearray()          # data bytes (telnet removed), ANSI included
        self.text = bytearray()         # data with ANSI sequences removed
        self.changed = asyncio.Event()
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        replies = bytearray()
        plain = bytearray()
        for b in data:
            if self.state == "data":
                if b == IAC:
                    self.state = "iac"
                else:
                    plain.append(b)
            elif self.state == "iac":
                if b in (WILL, WONT, DO, DONT):
                    self.command, self.state = b, "option"
                elif b == SB:
                    self.state = "sb"
                else:
                    self.state = "data"
                    if b == IAC:
                        plain.append(b)
            elif self.state == "option":
                if self.command == DO and b == NAWS:
                    replies += bytes((IAC, WILL, NAWS, IAC, SB, NAWS, 0, COLS, 0, ROWS, IAC, SE))
                elif self.command == DO:
                    replies += bytes((IAC, WONT, b))
                elif self.command == WILL:
                    replies += bytes((IAC, DONT, b))
                self.state = "data"
            elif self.state == "sb":
                if b == IAC:
                    self.state = "sb-iac"
            elif self.state == "sb-iac":
                self.state = "data" if b == SE else "sb"
        if plain:
            start = max(0, len(self.raw) - 8)
            self.raw += plain
            # cursor-position probes (ESC[6n) get an answer: an ANSI terminal, ROWSxCOLS
            replies += b"\x1b[%d;%dR" % (ROWS, COLS) * self.raw[start:].count(b"\x1b[6n")
            self.raw = self.raw[-16:]
            self.text += ANSI.sub(b"", bytes(plain))
            self.changed.set()
        if replies and self.transport is not None and not self.transport.is_closing():
            self.transport.write(bytes(replies))

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.changed.set()

    async def expect(self, marker: bytes, since: int) -> int:
        """Wait until ``marker`` appears in the text after ``since``; returns the index after it."""
        while True:
            at = self.text.find(marker, since)
            if at >= 0:
                return at + len(marker)
            if self.closed:
                tail = bytes(self.text[-200:]).decode("latin-1")
                raise ConnectionError(f"closed while waiting for {marker!r}: ...{tail!r}")
            self.changed.clear()
            await self.changed.wait()

    def send(self, text: str) -> None:
        assert self.transport is not None
        self.transport.write(text.encode("ascii"))


def client(port: int, count: int, concurrency: int, timeout: float) -> int:
    raise_nofile(count + 64)

    async def main() -> int:
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(concurrency) if concurrency else None
        callers: list[_Caller] = []
        errors: Counter[str] = Counter()
        to_login: list[float] = []
        to_menu: list[float] = []
        to_msg: list[float] = []

        async def call(i: int) -> None:
            if gate is not None:
                await gate.acquire()
            try:
                start = time.perf_counter()
                _, caller = await loop.create_connection(_Caller, HOST, port)
                callers.append(caller)
                at = await caller.expect(b"Login: ", 0)
                to_login.append(time.perf_counter() - start)
            finally:
                if gate is not None:
                    gate.release()
            caller.send(f"bench{i}\r")
            at = await caller.expect(b"Password: ", at)
            caller.send(PASSWORD + "\r")
            at = await caller.expect(b"Main menu", at)
            at = await caller.expect(b": ", at)
            to_menu.append(time.perf_counter() - start)
            caller.send("m")
            at = await caller.expect(b"Messages (", at)
            at = await caller.expect(b": ", at)
            caller.send("r")
            at = await caller.expect(MARK_BODY, at)
            to_msg.append(time.perf_counter() - start)
            await caller.expect(b"uit: ", at)           # the reader's prompt: stay there

        async def guarded(i: int) -> None:
            try:
                await call(i)
            except Exception as exc:  # counted, reported
                errors[f"{type(exc).__name__}: {str(exc).split(': ...')[0][:160]}"] += 1

        t0, cpu0 = time.perf_counter(), time.process_time()
        tasks = [asyncio.create_task(guarded(i)) for i in range(1, count + 1)]
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            errors[f"not at the message within {timeout:g} s"] += len(pending)
            await asyncio.wait(pending)
        wall = time.perf_counter() - t0

        def pct(values: list[float], q: float) -> float | None:
            values = sorted(values)
            return 1000 * values[min(len(values) - 1, int(len(values) * q))] if values else None

        print(json.dumps({
            "login_p50": pct(to_login, 0.5), "login_p99": pct(to_login, 0.99),
            "menu": len(to_menu), "msg": len(to_msg), "errors": dict(errors), "wall": wall,
            "client_cpu_pct": 100 * (time.process_time() - cpu0) / wall if wall else None,
            "menu_p50": pct(to_menu, 0.5), "menu_p99": pct(to_menu, 0.99), "menu_max": pct(to_menu, 1.0),
            "msg_p50": pct(to_msg, 0.5), "msg_p99": pct(to_msg, 0.99), "msg_max": pct(to_msg, 1.0),
        }), flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)  # 'close' (or EOF)
        dropped = sum(c.closed for c in callers)
        print(json.dumps({"dropped_while_held": dropped}), flush=True)
        for c in callers:
            if c.transport is not None:
                c.transport.close()
        await asyncio.sleep(0.2)
        return 0

    return asyncio.run(main())


# -- the orchestrator ------------------------------------------------------------

def make_instance(home: Path, nodes: int) -> None:
    subprocess.run([sys.executable, "-m", "bbs", "init", str(home)], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL)
    sbbs, main_ini = home / "ctrl" / "sbbs.ini", home / "ctrl" / "main.ini"
    for section, key, value in (("Global", "Interface", HOST), ("Global", "LoginAttemptDelay", "0"),
                                ("Global", "LoginAttemptThrottle", "0"),
                                ("BBS", "TelnetPort", "0"), ("BBS", "SSHPort", "0"), ("BBS", "RLoginPort", "0"),
                                ("BBS", "MaxLoginInactivity", "1h"),
                                ("Mail", "AutoStart", "false"), ("FTP", "AutoStart", "false"),
                                ("Services", "AutoStart", "false")):
        set_ini(sbbs, section, key, value)
    set_ini(main_ini, "Nodes", "FirstNode", "1")
    set_ini(main_ini, "Nodes", "LastNode", str(nodes))


def populate(home: Path, count: int) -> None:
    """N users and one message in GENERAL (the server is running: data/ exists)."""
    sys.path.insert(0, str(REPO))
    from bbs.db import Database
    from bbs.msgbase import MSG_MIGRATIONS, MessageBase
    from bbs.users import USER_MIGRATIONS, UserBase

    async def main() -> None:
        db = Database(home / "data" / "user.db", USER_MIGRATIONS)
        await db.open()
        users = UserBase(db)
        try:
            for first in range(1, count + 1, 50):  # scrypt in worker threads, 50 at a time
                await asyncio.gather(*(users.add(f"bench{i}", PASSWORD, location="Loopback")
                                       for i in range(first, min(first + 50, count + 1))))
        finally:
            await db.close()
        mdb = Database(home / "data" / "msgs.db", MSG_MIGRATIONS)
        await mdb.open()
        try:
            await MessageBase(mdb).post("GENERAL", "Sysop", SUBJECT, BODY)
        finally:
            await mdb.close()

    asyncio.run(main())


def measure(n: int, work: Path, args) -> dict:
    home = work / f"bbs-{n}"
    make_instance(home, n + 1)
    server = Ours("ours", work / f"ours-{n}.stderr")
    server.start(home)
    try:
        t0 = time.perf_counter()
        populate(home, n)
        setup_s = time.perf_counter() - t0
        time.sleep(1.0)
        pid = server.proc.pid
        idle = rss_kb(pid)
        result, _, loaded, dropped = hold_clients(__file__, server.port, n, args, pid, 60)
    except BaseException:
        server.kill()
        raise
    status, _ = server.stop()
    held = result["msg"] - (dropped or 0)
    return {**result, "n": n, "setup_s": setup_s, "idle_kb": idle, "loaded_kb": loaded,
            "held": held, "dropped": dropped, "status": status,
            "per_node_kb": (loaded - idle) / held if held else float("nan"),
            "problems": log_problems(server.log)}


def report(rows: list[dict], args, nofile: str) -> None:
    print(f"\nConcurrent telnet logons on {HOST}: log on, main menu, message menu, read a message; "
          f"{args.concurrency or 'all'} connection attempts in flight; {nofile}")
    head = (f"{'N':>5} {'at menu':>9} {'at msg':>9} {'Login: p50/p99 ms':>17} {'menu p50 ms':>11} {'menu p99 ms':>11} "
            f"{'msg p50 ms':>10} {'msg p99 ms':>10} {'msg max ms':>10} {'all N s':>7} "
            f"{'RSS idle MB':>11} {'RSS w/N MB':>10} {'KB/node':>8} {'exit':>4}")
    print(head)
    print("-" * len(head))
    fmt = lambda v: "-" if v is None else f"{v:.0f}"  # noqa: E731
    for r in rows:
        print(f"{r['n']:>5} {r['menu']:>4}/{r['n']:<4} {r['msg']:>4}/{r['n']:<4} "
              f"{fmt(r['login_p50']) + '/' + fmt(r['login_p99']):>17} {fmt(r['menu_p50']):>11} "
              f"{fmt(r['menu_p99']):>11} {fmt(r['msg_p50']):>10} {fmt(r['msg_p99']):>10} "
              f"{fmt(r['msg_max']):>10} {r['wall']:>7.1f} {r['idle_kb'] / 1024:>11.1f} "
              f"{r['loaded_kb'] / 1024:>10.1f} {r['per_node_kb']:>8.0f} "
              f"{'kill' if r['status'] is None else r['status']:>4}")
        for error, count in r["errors"].items():
            print(f"      {count} x {error}")
        if r["dropped"]:
            print(f"      {r['dropped']} caller(s) closed by the server while held")
        kinds = Counter(re.sub(r"^\S+ \S+ |Node \d+ ", "", p) for p in r["problems"])
        for line, count in kinds.most_common(5):
            print(f"      server stderr: {count} x {line[:150]}")
    print("\n(setup, not timed: " + ", ".join(f"N={r['n']}: {r['setup_s']:.0f} s to add users" for r in rows)
          + "; client CPU " + ", ".join(f"{r['client_cpu_pct']:.0f}%" for r in rows) + ")")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, action="append", help="callers (repeatable; default 100 and 500)")
    parser.add_argument("--concurrency", type=int, default=100,
                        help="connection attempts in flight at once (default 100; 0 = all)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds for all N (default 300)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary instances and logs")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        return client(args.port, args.n[0], args.concurrency, args.timeout)
    counts = args.n or [100, 500]
    if min(counts) < 1:
        parser.error("-n must be at least 1")
    old, soft, hard = raise_nofile(max(counts) + 256)
    nofile = f"RLIMIT_NOFILE soft {soft}, hard {hard}" + (f" (raised from {old})" if soft != old else "")
    work = Path(tempfile.mkdtemp(prefix="bench-logins-"))
    rows: list[dict] = []
    try:
        for n in counts:
            print(f"N = {n}: instance, {n} users, callers ...", file=sys.stderr, flush=True)
            rows.append(measure(n, work, args))
        report(rows, args, nofile)
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    failed = any(r["msg"] != r["n"] or r["errors"] or r["dropped"] or r["status"] != 0
                 or any(re.search(r"ERROR|CRITICAL|Traceback", p) for p in r["problems"]) for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
