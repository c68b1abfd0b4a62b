"""What spying on a flooding node costs the servers' loop.

Run from the repository root:

    .venv/bin/python bench/console_spy.py --seconds 3

One process, one asyncio loop, a fresh temporary instance (``App`` without
servers or databases). A node's real :class:`nodes.io.Terminal` (CP437, ANSI)
writes coloured listing lines (Ctrl-A codes, box characters) as fast as it can
into an in-memory link, yielding to the loop every 10 lines, while a probe task
measures the lag of a 10 ms ``asyncio.sleep``. Scenarios, each ``--seconds``:

* ``nospy``: nobody spies (the terminal's send is the link's own write);
* ``spy``: the real console (``console.live.SysopConsole``, no screen attached,
  so urwid's drawing is not included: see bench/console_frames.py) spies on
  the node through ``console.spy.SpyView``: the tap, the CP437 conversion and
  urwid's VT emulator, which is bounded by ``SPY_BACKLOG`` per flush and by
  ``SPY_DUTY``.

Printed per scenario: the node's output rate, the loop lag p50/p99/max and,
while spying, the flushes, their time per flush (p50/max) and their share of
the wall time.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bbs.app import App  # noqa: E402
from bbs.instance import init_instance, load_config  # noqa: E402
from bbs.nodetable import NodeStatus  # noqa: E402
from bbs.spy import NodeAccess  # noqa: E402
from console import spy  # noqa: E402
from console.live import SysopConsole  # noqa: E402
from console.model import ConsoleModel  # noqa: E402
from nodes.io import QueueLink, Terminal  # noqa: E402

LINE = "\x01h\x01cline of a long listing \x01y\u2550\u2550\u2550\u2550\u2550\u2550\u2550\u2550 \x01n\x01gmore text here\r\n"


class NullLink(QueueLink):
    """The caller's connection: counts what the BBS wrote."""

    protocol = "telnet"

    def __init__(self) -> None:
        super().__init__()
        self.cols, self.rows, self.sent = 80, 24, 0

    def write(self, data: bytes) -> None:
        self.sent += len(data)

    def close(self) -> None:
        self.feed_eof()


class TermAccess(NodeAccess):
    def __init__(self, term: Terminal) -> None:
        super().__init__()
        self.node, self.term = 1, term

    charset = property(lambda self: self.term.charset)
    size = property(lambda self: (self.term.cols, self.term.rows))
    caller = property(lambda self: "Zaphod")

    def tap(self, sink):
        return self.term.add_tap(sink)

    def inject(self, data: bytes) -> None:
        self.term.inject(data)

    def chat(self, chat) -> None:
        raise NotImplementedError

    def interrupt(self) -> None:
        raise NotImplementedError


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else 0.0


async def scenario(app: App, seconds: float, spying: bool) -> dict:
    loop = asyncio.get_running_loop()
    link = NullLink()
    term = Terminal(link, asyncio.Event())
    term.ansi = True
    term.set_charset("cp437")
    access = TermAccess(term)
    unregister = app.spy.register(access)
    model = ConsoleModel(nodes=app.nodes.records(), connections={}, schedule=loop.call_later)
    ui = SysopConsole(app, asyncio.Event(), model=model)
    flushes: list[float] = []
    original = spy.SpyView.flush

    def timed(view) -> None:
        started = time.perf_counter()
        original(view)
        flushes.append(time.perf_counter() - started)

    spy.SpyView.flush = timed
    lags: list[float] = []
    stop = False

    async def probe() -> None:
        while not stop:
            started = loop.time()
            await asyncio.sleep(0.01)
            lags.append(loop.time() - started - 0.01)

    prober = asyncio.ensure_future(probe())
    try:
        if spying:
            spy.spy_on(ui, 1)
            await asyncio.sleep(0)
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            for _ in range(10):
                await term.write(LINE)
            await asyncio.sleep(0)
        wall = time.perf_counter() - started
    finally:
        stop = True
        await prober
        ui.close()
        await asyncio.sleep(0.01)
        spy.SpyView.flush = original
        unregister()
        term.close()
    return {"MB/s": link.sent / wall / 1e6, "lag": lags, "flushes": flushes, "wall": wall}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        init_instance(root)
        app = App(load_config(root))
        app.nodes.update(1, status=NodeStatus.INUSE, user="Zaphod", connection="telnet", address="192.0.2.7")
        for name, spying in (("nospy", False), ("spy", True)):
            result = await scenario(app, args.seconds, spying)
            lag = [x * 1000 for x in result["lag"]]
            line = (f"{name:<6} node output {result['MB/s']:5.2f} MB/s   loop lag ms p50 {pct(lag, 0.5):5.1f} "
                    f"p99 {pct(lag, 0.99):5.1f} max {max(lag, default=0):5.1f}")
            if result["flushes"]:
                ms = [x * 1000 for x in result["flushes"]]
                line += (f"   {len(ms)} flushes, ms p50 {statistics.median(ms):.1f} max {max(ms):.1f}, "
                         f"{sum(ms) / 1000 / result['wall'] * 100:.0f}% of the time")
            print(line)


if __name__ == "__main__":
    asyncio.run(main())
