"""How long a recycle takes, per server, and how long it holds the event loop.

Run from the repository root:

    .venv/bin/python bench/recycle_time.py          # 5 recycles of each server, then of all
    .venv/bin/python bench/recycle_time.py -n 20

A fresh instance in a temporary directory (``python -m bbs init``, then the
test settings: loopback, port 0 everywhere) runs under :func:`bbs.runner.serve`
in this process. Each server is recycled ``-n`` times with
:meth:`bbs.control.ServerControl.recycle` (configuration read again,
sockets closed and bound again, handlers and tasks made again), then every
server at once. Reported per kind: median and maximum wall time of the
recycle, and the longest gap a 1 ms ticker on the same loop saw meanwhile
(how long callers' sessions could not run).
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bbs.app import App  # noqa: E402
from bbs.instance import load_config  # noqa: E402
from bbs.runner import serve  # noqa: E402
from tests.support import make_instance  # noqa: E402


async def measure(root: Path, rounds: int) -> None:
    app = App(load_config(root))
    stop = asyncio.Event()
    task = asyncio.ensure_future(serve(app, stop=stop, announce_password=lambda alias, password: None))
    while app.servers is None or "ftp" not in app.servers.running:
        await asyncio.sleep(0.05)
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.ensure_future(ticker())
    print(f"{'recycle':<10} {'median ms':>10} {'max ms':>8} {'loop held ms':>13}")
    for server in ("bbs", "mail", "ftp", "services", None):
        times = []
        gaps.clear()
        for _ in range(rounds):
            start = time.perf_counter()
            await app.servers.recycle(server)
            times.append((time.perf_counter() - start) * 1000)
        print(f"{server or 'all':<10} {statistics.median(times):>10.1f} {max(times):>8.1f} "
              f"{max(gaps) * 1000:>13.1f}")
    tick.cancel()
    stop.set()
    await task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5, help="recycles of each kind")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="bench-recycle-") as tmp:
        root = make_instance(Path(tmp) / "bbs")
        asyncio.run(measure(root, args.n))


if __name__ == "__main__":
    main()
