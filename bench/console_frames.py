"""Sysop console frame time under load: 500 busy nodes and 1,000 log lines/s.

Run from the repository root:

    .venv/bin/python bench/console_frames.py --seconds 10

There is no external peer for our console, so the ratios printed are against
a baseline measured in the same run: the same console on an instance with the
shipped 4 nodes, all idle, and no log traffic (its frames come from the
one-second tick that moves "time on" along).

Each scenario runs in its own child process (this file with ``--child NAME``)
on a fresh instance in a temporary directory (``bbs.instance.init_instance``,
``[Nodes] LastNode`` rewritten in ctrl/main.ini, ``bbs.app.App``; databases
are not opened and no server listens). The console is the real one:
``console.live.open_console`` (its ``ConsoleModel`` subscribed to the App's
bus, urwid ``MainLoop.start()`` on the running asyncio loop, the one-second
tick) drawing on an urwid ``raw_display.Screen`` whose input and output are
the slave side of a pty from ``os.openpty()`` sized ``--rows`` x ``--cols``
(default 50 x 160), so escape-sequence generation and the terminal writes are
included. A thread drains the master side (counting the bytes) as a terminal
would.

Scenarios:

* ``baseline``: LastNode = 4, nodes idle, no log lines, Nodes pane shown.
* ``nodes``: LastNode = ``-n`` (500); every node is first made an active
  caller (in use, user, telnet, address, time on) through ``App.nodes.update``,
  then the load runs: ``--node-rate`` activity changes per node per second
  (default 5: every node changes in every 0.2 s batch, the worst case for the
  Nodes pane) through ``App.nodes.update`` (which publishes ``NodeChanged``),
  and ``--log-rate`` (1,000) log lines/s through the real logging path
  (``bbs.logsetup.configure`` with the bus handler; logger ``nodes.server``,
  1 in 20 at WARNING). The Nodes pane is shown.
* ``logs``: the same load with the Logs pane shown (following the tail).
* ``noconsole``: the same load and the same instance, no console: the load
  generator's own CPU (logging, node records, the bus), to subtract.

The load is published from an asyncio task every 10 ms (what is due since the
start, so a late wake-up publishes more); a probe task measures event-loop lag
(how late ``asyncio.sleep(0.01)`` wakes up). After ``--warmup`` seconds
(default 1) the window of ``--seconds`` (default 10) is measured:

* frame time: wall time (and CPU time, less sensitive to other work on the
  machine) of ``SysopConsole.refresh`` (what each batch of the
  ``ConsoleModel`` triggers: every pane's refresh, then ``MainLoop.draw_screen``)
  and separately of ``draw_screen`` alone (render + terminal output);
  p50 / p99 / max;
* frames/s actually drawn; log lines and node changes per frame;
* loop lag p50 / p99 / max;
* CPU of the child process over the window (``getrusage``, % of one core) and
  CPU inside the refreshes (``time.thread_time``);
* bytes/s written to the terminal.

Exit status 0 when every scenario ran and the load kept up (at least 95 % of
the log lines and node changes due were published in the window), 1 otherwise.
"""
from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import logging
import os
import re
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SCENARIOS = ("baseline", "nodes", "logs", "noconsole")
ACTIVITIES = ("reading messages", "posting a message", "in the file area", "downloading",
              "uploading", "in chat", "in a door game", "reading e-mail", "at the main menu",
              "sending e-mail", "listing users", "in the QWK menu")
LOAD_TICK = 0.01
LAG_SLEEP = 0.01


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[index]


# --------------------------------------------------------------------------
# child: one scenario


def make_instance(root: Path, last_node: int) -> None:
    from bbs.instance import init_instance
    init_instance(root)
    main_ini = root / "ctrl" / "main.ini"
    text = main_ini.read_text(encoding="utf-8")
    text, count = re.subn(r"(?m)^LastNode\s*=.*$", f"LastNode = {last_node}", text)
    if count != 1:
        raise SystemExit("ctrl/main.ini: no LastNode line to rewrite")
    main_ini.write_text(text, encoding="utf-8")


def open_pty(rows: int, cols: int) -> tuple[int, int]:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    return master, slave


class Drain(threading.Thread):
    """Reads and discards what the console writes to the pty (a terminal)."""

    def __init__(self, fd: int) -> None:
        super().__init__(daemon=True)
        self.fd = fd
        self.bytes = 0

    def run(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 65536)
            except OSError:  # EIO once the slave side is closed
                return
            if not data:
                return
            self.bytes += len(data)


async def run_child(name: str, args: argparse.Namespace) -> dict:
    sys.path.insert(0, str(REPO))
    import urwid
    from bbs import logsetup
    from bbs.app import App
    from bbs.instance import load_config
    from bbs.nodetable import NodeStatus
    from console import live

    loaded = name != "baseline"
    last_node = args.nodes if loaded else 4
    tmp = tempfile.TemporaryDirectory(prefix="console-frames-")
    root = Path(tmp.name)
    make_instance(root, last_node)
    app = App(load_config(root))
    loop = asyncio.get_running_loop()
    handlers = logsetup.configure(logging.INFO, None, app.bus, None)

    numbers = [r.number for r in app.nodes.records()]
    if loaded:
        now = time.time()
        for n in numbers:
            app.nodes.update(n, status=NodeStatus.INUSE, user=f"caller{n:04d}", user_number=n,
                             activity=ACTIVITIES[n % len(ACTIVITIES)], connection="telnet",
                             address=f"10.{n // 65536}.{n // 256 % 256}.{n % 256}",
                             since=now - 60 * (n % 90), conn_id=n)

    frames: list[float] = []      # refresh wall time (s)
    draws: list[float] = []       # draw_screen wall time (s)
    frame_cpu = [0.0]
    frames_cpu: list[float] = []  # refresh CPU time (s)
    frame_logs: list[int] = []
    frame_nodes: list[int] = []
    measuring = [False]

    class TimedConsole(live.SysopConsole):
        def refresh(self, changes) -> None:
            t0, c0 = time.perf_counter(), time.thread_time()
            super().refresh(changes)
            t1, c1 = time.perf_counter(), time.thread_time()
            if measuring[0]:
                frames.append(t1 - t0)
                frame_cpu[0] += c1 - c0
                frames_cpu.append(c1 - c0)
                frame_logs.append(len(changes.logs) + changes.logs_dropped)
                frame_nodes.append(len(changes.nodes))

        def draw(self) -> None:
            t0 = time.perf_counter()
            super().draw()
            if measuring[0] and self.main_loop is not None:
                draws.append(time.perf_counter() - t0)

    # -- load and probe tasks
    sent = {"logs": 0, "nodes": 0}
    due = {"logs": 0.0, "nodes": 0.0}
    node_rate = args.node_rate * len(numbers) if loaded else 0.0
    log_rate = args.log_rate if loaded else 0.0
    logger = logging.getLogger("nodes.server")
    lags: list[float] = []
    stop = asyncio.Event()

    async def load() -> None:
        start = time.perf_counter()
        logs_done = nodes_done = 0
        turn = 0
        while not stop.is_set():
            elapsed = time.perf_counter() - start
            want_logs = int(elapsed * log_rate)
            want_nodes = int(elapsed * node_rate)
            while logs_done < want_logs:
                logs_done += 1
                if logs_done % 20 == 0:
                    logger.warning("node %d: slow client, %d bytes queued", numbers[logs_done % len(numbers)],
                                   logs_done)
                else:
                    logger.info("node %d: caller%04d %s (line %d)", numbers[logs_done % len(numbers)],
                                logs_done % 1000, ACTIVITIES[logs_done % len(ACTIVITIES)], logs_done)
                if measuring[0]:
                    sent["logs"] += 1
            while nodes_done < want_nodes:
                nodes_done += 1
                n = numbers[nodes_done % len(numbers)]
                turn += 1
                app.nodes.update(n, activity=f"{ACTIVITIES[turn % len(ACTIVITIES)]} {turn % 1000}")
                if measuring[0]:
                    sent["nodes"] += 1
            await asyncio.sleep(LOAD_TICK)

    async def probe() -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            await asyncio.sleep(LAG_SLEEP)
            if measuring[0]:
                lags.append(time.perf_counter() - t0 - LAG_SLEEP)

    master = slave = -1
    drain: Drain | None = None
    screen = None
    if name != "noconsole":
        master, slave = open_pty(args.rows, args.cols)
        drain = Drain(master)
        drain.start()
        term_in = os.fdopen(os.dup(slave), "rb", buffering=0)
        term_out = os.fdopen(os.dup(slave), "w", encoding="utf-8")
        screen = urwid.raw_display.Screen(input=term_in, output=term_out)

    async def measure(console) -> dict:
        tasks = [asyncio.ensure_future(load()), asyncio.ensure_future(probe())]
        await asyncio.sleep(args.warmup)
        bytes0 = drain.bytes if drain else 0
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        measuring[0] = True
        await asyncio.sleep(args.seconds)
        measuring[0] = False
        wall = time.perf_counter() - t0
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        bytes1 = drain.bytes if drain else 0
        stop.set()
        await asyncio.gather(*tasks)
        cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        return {"wall": wall, "cpu": cpu, "term_bytes": bytes1 - bytes0,
                "size": screen.get_cols_rows() if screen is not None else None,
                "pane": console.pane.title if console is not None else None}

    try:
        if name == "noconsole":
            result = await measure(None)
        else:
            async with live.open_console(app, asyncio.Event(), screen=screen,
                                         console_class=TimedConsole) as console:
                if name == "logs":
                    console.select(next(i for i, p in enumerate(console.panes) if p.title == "Logs"))
                await asyncio.sleep(0.5)  # the first batch (500 node rows) and the first full draw
                result = await measure(console)
    finally:
        logsetup.remove(handlers)
        for fd in (slave,):
            if fd >= 0:
                os.close(fd)
        tmp.cleanup()

    wall = result["wall"]
    result.update({
        "scenario": name, "nodes": len(numbers), "active": len(numbers) if loaded else 0,
        "frames": len(frames), "fps": len(frames) / wall,
        "frame_ms": [x * 1000 for x in frames], "draw_ms": [x * 1000 for x in draws],
        "frame_cpu": frame_cpu[0], "frame_cpu_ms": [x * 1000 for x in frames_cpu],
        "lag_ms": [x * 1000 for x in lags],
        "logs_per_frame": statistics.mean(frame_logs) if frame_logs else 0.0,
        "nodes_per_frame": statistics.mean(frame_nodes) if frame_nodes else 0.0,
        "logs_sent": sent["logs"], "nodes_sent": sent["nodes"],
        "logs_due": log_rate * wall, "nodes_due": node_rate * wall,
    })
    return result


# --------------------------------------------------------------------------
# parent: run the scenarios, print the table


def run_scenario(name: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", name, "-n", str(args.nodes), "--seconds", str(args.seconds),
           "--warmup", str(args.warmup), "--log-rate", str(args.log_rate), "--node-rate", str(args.node_rate),
           "--rows", str(args.rows), "--cols", str(args.cols)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                          timeout=args.seconds + args.warmup + 120)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"scenario {name} failed (exit {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fmt(value: float, digits: int = 2) -> str:
    if value != value:  # NaN
        return "-"
    return f"{value:,.{digits}f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--nodes", type=int, default=500, help="LastNode of the loaded scenarios (500)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window per scenario (10)")
    parser.add_argument("--warmup", type=float, default=1.0, help="load before the window (1)")
    parser.add_argument("--log-rate", type=float, default=1000.0, help="log lines per second (1000)")
    parser.add_argument("--node-rate", type=float, default=5.0,
                        help="activity changes per node per second (5)")
    parser.add_argument("--rows", type=int, default=50)
    parser.add_argument("--cols", type=int, default=160)
    parser.add_argument("--only", choices=SCENARIOS, action="append", help="run only these scenarios")
    parser.add_argument("--json", action="store_true", help="also print the raw results as JSON")
    parser.add_argument("--child", choices=SCENARIOS, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        result = asyncio.run(run_child(args.child, args))
        print(json.dumps(result))
        return 0

    names = args.only or list(SCENARIOS)
    results = {}
    for name in names:
        print(f"running {name} ({args.warmup:g} s warm-up + {args.seconds:g} s) ...", file=sys.stderr, flush=True)
        results[name] = run_scenario(name, args)

    print()
    print(f"Console frames: {args.rows}x{args.cols} pty, {args.seconds:g} s per scenario; load = "
          f"{args.nodes} active nodes x {args.node_rate:g} activity changes/s + {args.log_rate:,.0f} log lines/s")
    print("Ratios are against the baseline of this run (4 idle nodes, no log traffic): "
          "there is no external peer.")
    print()
    cols = [n for n in names]
    rows = []

    def row(label: str, fn) -> None:
        rows.append([label] + [fn(results[n]) for n in cols])

    row("nodes (active)", lambda r: f"{r['nodes']} ({r['active']})")
    row("pane shown", lambda r: r["pane"] or "-")
    row("log lines/s published", lambda r: fmt(r["logs_sent"] / r["wall"], 0))
    row("node changes/s published", lambda r: fmt(r["nodes_sent"] / r["wall"], 0))
    row("frames drawn/s", lambda r: fmt(r["fps"]) if r["pane"] else "-")
    row("log lines / node rows per frame",
        lambda r: f"{fmt(r['logs_per_frame'], 0)} / {fmt(r['nodes_per_frame'], 0)}" if r["pane"] else "-")
    for key, label in (("frame_ms", "frame (refresh+draw) ms"), ("frame_cpu_ms", "  its CPU time ms"),
                       ("draw_ms", "  draw_screen alone ms")):
        row(f"{label} p50", lambda r, k=key: fmt(pct(r[k], 50)))
        row(f"{label} p99", lambda r, k=key: fmt(pct(r[k], 99)))
        row(f"{label} max", lambda r, k=key: fmt(max(r[k]) if r[k] else float("nan")))
    row("loop lag ms p50", lambda r: fmt(pct(r["lag_ms"], 50)))
    row("loop lag ms p99", lambda r: fmt(pct(r["lag_ms"], 99)))
    row("loop lag ms max", lambda r: fmt(max(r["lag_ms"]) if r["lag_ms"] else float("nan")))
    row("process CPU, % of a core", lambda r: fmt(100 * r["cpu"] / r["wall"], 1))
    row("  of which in refreshes", lambda r: fmt(100 * r["frame_cpu"] / r["wall"], 1) if r["pane"] else "-")
    row("terminal output KB/s", lambda r: fmt(r["term_bytes"] / r["wall"] / 1024, 1) if r["pane"] else "-")

    header = ["", *cols]
    widths = [max(len(str(x[i])) for x in rows + [header]) for i in range(len(header))]
    line = lambda cells: "  ".join(str(c).ljust(widths[0]) if i == 0 else str(c).rjust(widths[i])  # noqa: E731
                                   for i, c in enumerate(cells))
    print(line(header))
    print(line(["-" * w for w in widths]))
    for r in rows:
        print(line(r))

    base = results.get("baseline")
    if base:
        print()
        print("Ratios against the baseline (same run):")
        for name in cols:
            r = results[name]
            if name == "baseline" or not r["pane"]:
                continue
            parts = [f"frame p50 x{pct(r['frame_ms'], 50) / pct(base['frame_ms'], 50):,.1f}",
                     f"frame CPU p50 x{pct(r['frame_cpu_ms'], 50) / pct(base['frame_cpu_ms'], 50):,.1f}",
                     f"frame p99 x{pct(r['frame_ms'], 99) / pct(base['frame_ms'], 99):,.1f}",
                     f"draw_screen p50 x{pct(r['draw_ms'], 50) / pct(base['draw_ms'], 50):,.1f}",
                     f"loop lag p99 x{pct(r['lag_ms'], 99) / pct(base['lag_ms'], 99):,.1f}",
                     f"CPU x{(r['cpu'] / r['wall']) / max(base['cpu'] / base['wall'], 1e-9):,.1f}"]
            print(f"  {name}: " + ", ".join(parts))
        nocon = results.get("noconsole")
        if nocon:
            gen = 100 * nocon["cpu"] / nocon["wall"]
            for name in ("nodes", "logs"):
                if name in results:
                    own = 100 * results[name]["cpu"] / results[name]["wall"] - gen
                    print(f"  console's own CPU under load ({name} minus noconsole): {own:,.1f} % of a core")

    if args.json:
        print(json.dumps(results))
    ok = all(r["logs_sent"] >= 0.95 * r["logs_due"] and r["nodes_sent"] >= 0.95 * r["nodes_due"]
             for r in results.values())
    if not ok:
        print("\nthe load did not keep up (fewer events published than due)", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
