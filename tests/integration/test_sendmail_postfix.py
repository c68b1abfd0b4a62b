"""SendMail into Postfix's smtp-sink (Debian package ``postfix``, installed by
.ci/run) on loopback: direct delivery via the fake DNS, and relaying with
RELAY_AUTH_LOGIN (smtp-sink offers AUTH PLAIN LOGIN and accepts any)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.integration.sendmail_support import FakeDNS, message, sendmail_instance
from tests.integration.test_sendmail_direct import SENDER, Harness
from tests.support import run_async, until

SMTP_SINK = shutil.which("smtp-sink") or ("/usr/sbin/smtp-sink" if os.path.exists("/usr/sbin/smtp-sink") else None)
pytestmark = pytest.mark.skipif(SMTP_SINK is None, reason="Postfix smtp-sink not installed (bash .ci/run installs it)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_sink():
    # smtp-sink drops to nobody when run as root, and pytest's tmp_path is 0700:
    # the dump folder lives in a world-writable temp folder of its own.
    dump = Path(tempfile.mkdtemp(prefix="smtp-sink-"))
    dump.chmod(0o777)
    port = free_port()
    args = [SMTP_SINK, "-d", f"{dump}/%H", f"127.0.0.1:{port}", "16"]
    if os.geteuid() == 0:
        args[1:1] = ["-u", "nobody"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"smtp-sink did not start: {proc.stderr.read()!r}")
            time.sleep(0.05)
    yield port, dump
    proc.terminate()
    proc.wait(10)
    proc.stderr.close()
    shutil.rmtree(dump, ignore_errors=True)


def dumped(dump) -> list[str]:
    return [p.read_text() for p in sorted(dump.iterdir())]


def test_direct_delivery_into_postfix_smtp_sink(tmp_path, smtp_sink):
    port, dump = smtp_sink
    dns = FakeDNS().start()
    dns.add("pf.test", ("MX", "10 mail.pf.test."))
    dns.add("mail.pf.test", ("A", "127.0.0.1"))
    root = sendmail_instance(tmp_path / "bbs", dns, DeliveryPort=str(port))

    async def main():
        async with Harness(root) as h:
            h.start()
            await h.queue(["one@pf.test", "two@pf.test"], message("Via Postfix"))
            await until(h.finished(1))
            assert await h.store.outbound() == []
        await until(lambda: len(dumped(dump)) == 1)

    try:
        run_async(main())
    finally:
        dns.stop()
    [text] = dumped(dump)
    assert f"X-Mail-Args: <{SENDER}>" in text
    assert "X-Rcpt-Args: <one@pf.test>" in text and "X-Rcpt-Args: <two@pf.test>" in text
    assert "Subject: Via Postfix" in text and "\n.leading dot\n" in text.replace("\r\n", "\n")


def test_relay_with_auth_login_into_postfix_smtp_sink(tmp_path, smtp_sink):
    port, dump = smtp_sink
    root = sendmail_instance(tmp_path / "bbs", None, "ALLOW_POP3 | RELAY_TX | RELAY_AUTH_LOGIN",
                             RelayServer="127.0.0.1", RelayPort=str(port), RelayUsername="bbs",
                             RelayPassword="secret")

    async def main():
        async with Harness(root) as h:
            h.start()
            await h.queue(["far@away.example"])
            await until(h.finished(1))
            assert await h.store.outbound() == []
        await until(lambda: len(dumped(dump)) == 1)

    run_async(main())
    [text] = dumped(dump)
    assert "X-Rcpt-Args: <far@away.example>" in text
