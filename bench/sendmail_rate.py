"""SendMail delivery rate: queue N messages to D destination domains and time
their delivery to a loopback sink, next to Postfix's smtp-source sending the
same number of messages into the same sink in the same run.

    .venv/bin/python bench/sendmail_rate.py [--messages 2000] [--domains 50]
        [--size 5120] [--concurrency 20] [--per-domain 2] [--sink smtp-sink|aiosmtpd]

* The sink is Postfix's ``smtp-sink`` (C, discards mail) on 127.0.0.1, or an
  aiosmtpd sink in a thread with ``--sink aiosmtpd``.
* DNS: the tests' fake DNS server on 127.0.0.1 (each domain's MX -> 127.0.0.1).
* Ours: a real instance (data/mail.db with synchronous=FULL: every claim and
  every removal is an fsynced transaction), SendMail with
  MaxConcurrentDeliveries=--concurrency and MaxDeliveriesPerDomain=--per-domain,
  one SMTP session per message (like Synchronet and like smtp-source without -d).
* Peer: ``smtp-source -s CONCURRENCY -m N -l SIZE`` (one message per
  connection, no queue, no disk): the raw SMTP client speed of this machine,
  an upper bound for any queue-backed MTA. The ratio ours/smtp-source is printed.

Only loopback addresses are used. Needs the ``postfix`` Debian package for
smtp-sink/smtp-source (bash .ci/run installs it).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bbs.mailbox import MailStore  # noqa: E402
from mail.sendmail import SendMail  # noqa: E402
from tests.integration.sendmail_support import FakeDNS, make_app, sendmail_instance  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
                raise SystemExit(f"sink on port {port} did not start")
            time.sleep(0.05)


def start_smtp_sink(port: int) -> subprocess.Popen:
    sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    args = [sink, f"127.0.0.1:{port}", "256"]
    if os.geteuid() == 0:
        args[1:1] = ["-u", "nobody"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    return proc


def start_aiosmtpd_sink(port: int) -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    from aiosmtpd.smtp import SMTP

    class Discard:
        async def handle_DATA(self, server, session, envelope):
            return "250 2.0.0 Ok"

    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(loop.create_server(lambda: SMTP(Discard(), hostname="sink"),
                                                            "127.0.0.1", port, backlog=256))
        ready.set()
        loop.run_forever()
        server.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    return loop, thread


def message(n: int, size: int) -> bytes:
    head = f"From: Alice <alice@bbs.test>\r\nTo: user@d{n % 50:02d}.bench.test\r\nSubject: bench {n}\r\n\r\n"
    line = b"x" * 74 + b"\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    return head.encode() + body


async def run_ours(root: Path, count: int, domains: int, size: int) -> tuple[float, float]:
    app = make_app(root)
    app.bus.bind_loop(asyncio.get_running_loop())
    store = MailStore(root / "data" / "mail.db")
    await store.open()
    start = time.perf_counter()
    for n in range(count):
        await store.enqueue("alice@bbs.test", [f"user@d{n % domains:02d}.bench.test"], message(n, size))
    enqueue_rate = count / (time.perf_counter() - start)
    sendmail = SendMail(app, store)
    start = time.perf_counter()
    task = asyncio.get_running_loop().create_task(sendmail.run())
    while sendmail.finished < count:
        if task.done():
            raise SystemExit(f"SendMail stopped: {task.exception()!r}")
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - start
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    left = await store.outbound()
    await store.close()
    if left:
        raise SystemExit(f"{len(left)} message(s) not delivered; first error: {left[0].last_error}")
    return count / elapsed, enqueue_rate


def run_smtp_source(port: int, count: int, size: int, sessions: int) -> float:
    source = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    start = time.perf_counter()
    subprocess.run([source, "-s", str(sessions), "-m", str(count), "-l", str(size),
                    "-f", "alice@bbs.test", "-t", "user@d00.bench.test", f"127.0.0.1:{port}"],
                   check=True, stdout=subprocess.DEVNULL)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--domains", type=int, default=50)
    parser.add_argument("--size", type=int, default=5120)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--per-domain", type=int, default=2)
    parser.add_argument("--sink", choices=["smtp-sink", "aiosmtpd"], default="smtp-sink")
    args = parser.parse_args()

    port = free_port()
    sink_proc = None
    sink_loop = None
    if args.sink == "smtp-sink":
        sink_proc = start_smtp_sink(port)
    else:
        sink_loop, _ = start_aiosmtpd_sink(port)
        wait_port(port)
    dns = FakeDNS().start()
    for n in range(args.domains):
        dns.add(f"d{n:02d}.bench.test", ("MX", f"10 mx.d{n:02d}.bench.test."))
        dns.add(f"mx.d{n:02d}.bench.test", ("A", "127.0.0.1"))
    work = Path(tempfile.mkdtemp(prefix="sendmail-bench-"))
    try:
        root = sendmail_instance(work / "bbs", dns, DeliveryPort=str(port),
                                 MaxConcurrentDeliveries=str(args.concurrency),
                                 MaxDeliveriesPerDomain=str(args.per_domain), LogLevel="Warning")
        import logging
        logging.basicConfig(level=logging.WARNING)
        ours, enqueue_rate = asyncio.run(run_ours(root, args.messages, args.domains, args.size))
        peer = run_smtp_source(port, args.messages, args.size, args.concurrency) if shutil.which(
            "smtp-source") or os.path.exists("/usr/sbin/smtp-source") else None
    finally:
        dns.stop()
        if sink_proc is not None:
            sink_proc.terminate()
            sink_proc.wait(10)
        if sink_loop is not None:
            sink_loop.call_soon_threadsafe(sink_loop.stop)
        shutil.rmtree(work, ignore_errors=True)
    print(f"sink: {args.sink} on 127.0.0.1:{port}; {args.messages} messages x {args.size} bytes, "
          f"{args.domains} domains, concurrency {args.concurrency}, per domain {args.per_domain}")
    print(f"enqueue (MailStore.enqueue, fsynced):  {enqueue_rate:8.0f} messages/s")
    print(f"SendMail (queue -> MX -> sink):        {ours:8.0f} messages/s")
    if peer is not None:
        print(f"Postfix smtp-source (no queue, no DNS): {peer:8.0f} messages/s")
        print(f"ratio SendMail / smtp-source:           {ours / peer:8.2f}")


if __name__ == "__main__":
    main()
