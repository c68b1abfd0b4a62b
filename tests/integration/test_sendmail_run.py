"""SendMail inside `bbs run`: a queue left by an earlier run is delivered at
start, and mail relayed by an authenticated user goes out through MX, all on
loopback (fake DNS, aiosmtpd sink)."""
from __future__ import annotations

import asyncio
import smtplib

import pytest

from bbs.mailbox import MailStore
from tests.integration.sendmail_support import FakeDNS, Sink, message, sendmail_instance
from tests.integration.test_services import add_user
from tests.support import BBSProcess, run_async, until


@pytest.fixture
def dns():
    server = FakeDNS().start()
    yield server
    server.stop()


def test_bbs_run_delivers_the_waiting_queue_and_relayed_mail(tmp_path, dns):
    async def main():
        sink = await Sink("127.0.0.5").start()
        dns.add("far.test", ("MX", "10 mx.far.test."))
        dns.add("mx.far.test", ("A", "127.0.0.5"))
        root = sendmail_instance(tmp_path / "bbs", dns, "ALLOW_POP3 | USE_SUBMISSION_PORT | ALLOW_RELAY",
                                 DeliveryPort=str(sink.port), AuthWithoutTLS="true")
        (root / "data").mkdir(exist_ok=True)
        store = MailStore(root / "data" / "mail.db")     # queued while the BBS was down
        await store.open()
        await store.enqueue("alice@bbs.test", ["bob@far.test"], message("Left over"))
        await store.close()
        await asyncio.to_thread(add_user, root, "Carol")
        process = await asyncio.to_thread(BBSProcess(root).start)
        try:
            await until(lambda: len(sink.handler.received) == 1, timeout=30)
            assert sink.handler.received[0].recipients == ["bob@far.test"]

            def relay() -> None:
                with smtplib.SMTP("127.0.0.1", process.ports["submission"], timeout=15) as client:
                    client.login("Carol", "password1")
                    client.sendmail("carol@bbs.test", ["dave@far.test"], message("Relayed"))
            await asyncio.to_thread(relay)
            await until(lambda: len(sink.handler.received) == 2, timeout=30)
            assert sink.handler.received[1].recipients == ["dave@far.test"]
        finally:
            status = await asyncio.to_thread(process.stop)
            await sink.stop()
        assert status == 0
        assert "SendMail thread started" in process.stderr()
        store = MailStore(root / "data" / "mail.db")
        await store.open()
        assert await store.outbound() == []                # both delivered and removed
        await store.close()

    run_async(main(), timeout=90)
