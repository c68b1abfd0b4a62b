"""External programs (doors): output rate and keystroke echo time through the BBS.

Run from the repository root:

    .venv/bin/python bench/door_io.py                 # 32 MB of output, 300 keystrokes
    .venv/bin/python bench/door_io.py --mb 64 --keys 1000

A fresh instance (tests.support.make_instance: loopback, port 0) gets three
programs in ctrl/xtrn.ini, started with ``python -m bbs run DIR --headless``:

* ``FIRE`` (io = stdio) writes ``--mb`` MB of every byte value (0xFF, which
  the telnet link doubles, is 1/256 of it) and then an end marker;
* ``FIREPTY``: the same on a pseudo-terminal (io = pty; its line discipline
  turns LF into CR LF, so a little more arrives);
* ``CAT`` (io = stdio) copies its input to its output byte by byte.

One caller on a raw TCP connection to the telnet port (it answers no
option, so the BBS starts the session after its negotiation wait and takes
it for a dumb terminal; it only looks for markers, so IAC doubling needs no
decoding and costs the client nothing) logs on, presses X and runs each
program: the output rate is the bytes received after the program was chosen
until the marker, divided by that time (program start-up included); the echo
time is, for each of ``--keys`` keystrokes sent one at a time, the time until
it comes back. Baselines run the same programs on this machine without the
BBS: the output read from a pipe, the keystrokes through stdin/stdout pipes.
Loopback only; the figures depend on the machine (2 shared cores here).
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
from tests.support import BBSProcess, make_instance, run_bbs  # noqa: E402

MARKER = b"<<DOOR-END>>"
FIRE = f"""import sys
out = sys.stdout.buffer
block = bytes(range(256)) * 256
for _ in range(int(sys.argv[1]) * 16):
    out.write(block)
out.write({MARKER!r})
out.flush()
"""
CAT = """import os
while True:
    data = os.read(0, 1)
    if not data or data == b"q":
        break
    os.write(1, data)
"""


def xtrn_ini(mb: int) -> str:
    return f"""[sec:Bench]
[prog:Bench:FIRE]
name = Firehose
cmd = {sys.executable} fire.py {mb}
startup_dir = xtrn
[prog:Bench:FIREPTY]
name = Firehose on a pty
cmd = {sys.executable} fire.py {mb}
startup_dir = xtrn
io = pty
[prog:Bench:CAT]
name = Cat
cmd = {sys.executable} -u cat.py
startup_dir = xtrn
"""


class Caller:
    def __init__(self, reader, writer) -> None:
        self.reader, self.writer, self.seen = reader, writer, b""

    async def until(self, marker: bytes, timeout: float = 120) -> int:
        """Read until ``marker``; returns the bytes read for it."""
        count = 0
        while marker not in self.seen:
            chunk = await asyncio.wait_for(self.reader.read(1 << 16), timeout)
            if not chunk:
                raise EOFError("the BBS hung up")
            count += len(chunk)
            self.seen = (self.seen + chunk)[-4096:]
        self.seen = self.seen.split(marker, 1)[1]
        return count

    async def run(self, name: bytes) -> None:
        """At the program list: choose ``name``."""
        await self.until(b"Program (1-")
        self.writer.write(b"1\r" if name == b"Firehose" else b"2\r" if name == b"Firehose on a pty" else b"3\r")


async def measure(port: int, keys: int) -> dict[str, object]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    caller = Caller(reader, writer)
    await caller.until(b"Login: ")
    writer.write(b"Bench\r")
    await caller.until(b"Password: ")
    writer.write(b"benchpw1\r")
    await caller.until(b"Main menu")
    writer.write(b"x")
    results: dict[str, object] = {}
    for name in (b"Firehose", b"Firehose on a pty"):
        await caller.run(name)
        started = time.perf_counter()
        received = await caller.until(MARKER)
        results[name.decode()] = (received, time.perf_counter() - started)
    await caller.run(b"Cat")
    await caller.until(b"\r\n")            # the BBS's newline before the program starts
    times = []
    for i in range(keys):
        key = bytes([97 + i % 16])           # a-p; q ends the program
        started = time.perf_counter()
        writer.write(key)
        await writer.drain()
        await caller.until(key)
        times.append(time.perf_counter() - started)
    writer.write(b"q")
    await caller.until(b"Program (1-")
    writer.close()
    results["echo"] = times
    return results


async def baseline(folder: Path, mb: int, keys: int) -> tuple[float, list[float]]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "fire.py", str(mb), cwd=folder,
                                                stdout=asyncio.subprocess.PIPE)
    started, total = time.perf_counter(), 0
    while data := await proc.stdout.read(1 << 16):
        total += len(data)
    rate = total / (time.perf_counter() - started)
    await proc.wait()
    proc = await asyncio.create_subprocess_exec(sys.executable, "-u", "cat.py", cwd=folder,
                                                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    times = []
    for i in range(keys):
        key = bytes([97 + i % 16])
        started = time.perf_counter()
        proc.stdin.write(key)
        await proc.stdin.drain()
        await proc.stdout.readexactly(1)
        times.append(time.perf_counter() - started)
    proc.stdin.write(b"q")
    await proc.wait()
    return rate, times


def ms(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mb", type=int, default=32)
    parser.add_argument("--keys", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="door-io-") as tmp:
        root = make_instance(Path(tmp) / "bbs")
        xtrn = root / "xtrn"
        xtrn.mkdir()
        (xtrn / "fire.py").write_text(FIRE)
        (xtrn / "cat.py").write_text(CAT)
        (root / "ctrl" / "xtrn.ini").write_text(xtrn_ini(args.mb))
        result = run_bbs("user", "add", "Bench", "--password", "benchpw1", "-d", str(root))
        assert result.returncode == 0, result.stderr
        local_rate, local_echo = asyncio.run(baseline(xtrn, args.mb, args.keys))
        bbs = BBSProcess(root).start()
        try:
            results = asyncio.run(measure(bbs.ports["telnet"], args.keys))
        finally:
            code = bbs.stop()
        mb = 1 << 20
        for name in ("Firehose", "Firehose on a pty"):
            received, seconds = results[name]
            print(f"{name:<18} {args.mb} MB in {seconds:.2f} s: {received / seconds / mb:.0f} MB/s over telnet "
                  f"({received / mb:.1f} MB received)")
        print(f"{'pipe, no BBS':<18} {local_rate / mb:.0f} MB/s")
        print(f"echo through CAT   {ms(results['echo'])} ({args.keys} keystrokes over telnet)")
        print(f"echo, no BBS       {ms(local_echo)} (pipes)")
        if code != 0 or "Traceback" in bbs.stderr():
            print(f"the BBS exited {code} or logged a traceback", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
