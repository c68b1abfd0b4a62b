"""SendMail through a RelayServer (RELAY_TX) with each RELAY_AUTH method, and
the in-transit flag, shutdown, concurrency limits and NO_SENDMAIL."""
from __future__ import annotations

import asyncio
import logging

import pytest

from tests.integration.sendmail_support import (RELAY_PASSWORD, RELAY_USER, FakeDNS, Sink, message,
                                                sendmail_instance)
from tests.integration.test_sendmail_direct import SENDER, Harness
from tests.support import run_async, until


@pytest.fixture
def dns():
    server = FakeDNS().start()
    yield server
    server.stop()


def relay_instance(tmp_path, sink, auth_option="", password=RELAY_PASSWORD, **keys):
    options = "ALLOW_POP3 | RELAY_TX" + (f" | {auth_option}" if auth_option else "")
    return sendmail_instance(tmp_path / "bbs", None, options, RelayServer="127.0.0.1",
                             RelayPort=str(sink.port), RelayUsername=RELAY_USER,
                             RelayPassword=password, **keys)


@pytest.mark.parametrize("option, mechanism", [("RELAY_AUTH_PLAIN", "PLAIN"), ("RELAY_AUTH_LOGIN", "LOGIN"),
                                               ("RELAY_AUTH_CRAM_MD5", "CRAM-MD5")])
def test_relay_authenticates_with_each_method(tmp_path, option, mechanism, caplog):
    caplog.set_level(logging.INFO)

    async def main():
        sink = await Sink(require_auth=True).start()
        root = relay_instance(tmp_path, sink, option)
        try:
            async with Harness(root) as h:
                h.start()
                # Two domains, one relay: still one transaction per destination (the relay).
                await h.queue(["x@far.example", "y@other.example"])
                await until(h.finished(1))
                assert await h.store.outbound() == []
                [got] = sink.handler.received
                assert got.recipients == ["x@far.example", "y@other.example"]
                assert sink.handler.auth_mechanisms == [mechanism]
        finally:
            await sink.stop()

    run_async(main())
    assert "SEND relaying all outbound mail through 127.0.0.1" in caplog.text
    assert RELAY_PASSWORD not in caplog.text


def test_relay_with_a_wrong_password_is_retried_not_bounced(tmp_path, caplog):
    caplog.set_level(logging.INFO)

    async def main():
        sink = await Sink(require_auth=True).start()
        root = relay_instance(tmp_path, sink, "RELAY_AUTH_PLAIN", password="wrong")
        try:
            async with Harness(root) as h:
                h.start()
                await h.queue(["x@far.example"], from_user=1)
                await until(h.finished(1))
                [item] = await h.store.outbound()
                assert item.attempts == 1 and item.last_error.startswith("535")
                assert await h.store.list(1) == []      # no bounce for the sysop's mistake
                assert sink.handler.received == []
        finally:
            await sink.stop()

    run_async(main())
    assert ('!Delivery attempt #1 FAILED (127.0.0.1 replied with: "535 5.7.8 Authentication credentials '
            'invalid" instead of the expected reply: "235 ...")') in caplog.text


def test_relay_that_requires_auth_when_none_is_configured_bounces(tmp_path, caplog):
    caplog.set_level(logging.INFO)

    async def main():
        sink = await Sink(require_auth=True).start()
        root = relay_instance(tmp_path, sink)          # no RELAY_AUTH_* option
        try:
            async with Harness(root) as h:
                h.start()
                await h.queue(["x@far.example"], from_user=1)
                await until(h.finished(1))
                assert await h.store.outbound() == []
                [info] = await h.store.list(1)
                return (await h.store.read(1, info.id)).decode()
        finally:
            await sink.stop()

    bounce = run_async(main())
    assert "530 5.7.0 Authentication required" in bounce
    assert '!Delivery attempt #1 FAILED (127.0.0.1 replied with: "530 5.7.0 Authentication required"' in caplog.text


def test_in_transit_message_left_by_a_crash_is_not_sent_unless_send_intransit(tmp_path, dns, caplog):
    caplog.set_level(logging.INFO)

    async def main():
        sink = await Sink().start()
        dns.add("t.test", ("A", "127.0.0.1"))
        root = sendmail_instance(tmp_path / "bbs", dns, DeliveryPort=str(sink.port))
        try:
            async with Harness(root) as h:
                qid = await h.store.enqueue(SENDER, ["una@t.test"], message())
                assert await h.store.claim(qid)             # a SendMail that died mid-delivery
                h.start()
                await until(lambda: "- in transit" in caplog.text)
                await h.sendmail.scan()                     # and any later scan: still not sent
                [item] = await h.store.outbound()
                assert item.in_transit and item.attempts == 0 and sink.handler.received == []
            # Restart with SEND_INTRANSIT: the single SendMail takes it over.
            root_options = root / "ctrl" / "sbbs.ini"
            text = root_options.read_text().replace("Options = ALLOW_POP3", "Options = ALLOW_POP3 | SEND_INTRANSIT")
            root_options.write_text(text)
            async with Harness(root) as h:
                h.start()
                await until(lambda: len(sink.handler.received) == 1)
                await until(h.finished(1))
                assert await h.store.outbound() == []
            return qid
        finally:
            await sink.stop()

    qid = run_async(main())
    assert f"SEND Message #{qid} from {SENDER} to una@t.test - in transit" in caplog.text


def test_clear_in_transit_lets_the_next_start_send_it(tmp_path, dns):
    async def main():
        sink = await Sink().start()
        dns.add("t.test", ("A", "127.0.0.1"))
        root = sendmail_instance(tmp_path / "bbs", dns, DeliveryPort=str(sink.port))
        try:
            async with Harness(root) as h:
                qid = await h.store.enqueue(SENDER, ["una@t.test"], message())
                await h.store.claim(qid)
                assert await h.store.clear_in_transit() == 1   # what `bbs mail clear-transit` does
                h.start()
                await until(lambda: len(sink.handler.received) == 1)
        finally:
            await sink.stop()

    run_async(main())


def test_shutdown_during_delivery_releases_the_claim(tmp_path, dns):
    async def main():
        sink = await Sink().start()
        sink.handler.hold = asyncio.Event()                  # DATA never finishes
        dns.add("s.test", ("A", "127.0.0.1"))
        root = sendmail_instance(tmp_path / "bbs", dns, DeliveryPort=str(sink.port))
        try:
            async with Harness(root) as h:
                h.start()
                qid = await h.queue(["vic@s.test"])
                await until(lambda: sink.handler.peak_total == 1)
                [item] = await h.store.outbound()
                assert item.in_transit
                h.task.cancel()                              # clean shutdown
                await asyncio.gather(h.task, return_exceptions=True)
                h.task = None
                [item] = await h.store.outbound()
                assert item.id == qid and not item.in_transit
                assert item.last_error == "delivery interrupted by shutdown"
        finally:
            sink.handler.hold.set()
            await sink.stop()

    run_async(main())


def test_concurrent_deliveries_respect_the_global_and_per_domain_limits(tmp_path, dns):
    async def main():
        sink = await Sink().start()
        sink.handler.hold = asyncio.Event()
        for domain in ("p1.test", "p2.test", "p3.test"):
            dns.add(domain, ("A", "127.0.0.1"))
        root = sendmail_instance(tmp_path / "bbs", dns, DeliveryPort=str(sink.port),
                                 MaxConcurrentDeliveries="4", MaxDeliveriesPerDomain="2")
        try:
            async with Harness(root) as h:
                for n in range(6):
                    await h.store.enqueue(SENDER, [f"u{n}@p1.test"], message())
                for n in range(3):
                    await h.store.enqueue(SENDER, [f"u{n}@p2.test"], message())
                await h.store.enqueue(SENDER, ["u0@p3.test"], message())
                h.start()
                await until(lambda: sink.handler.peak_total == 4)
                for _ in range(20):                          # let any excess session arrive
                    await asyncio.sleep(0.01)
                assert sum(sink.handler.active.values()) == 4
                assert sink.handler.active == {"p1.test": 2, "p2.test": 2}  # p3 waits behind the global limit
                sink.handler.hold.set()
                await until(h.finished(10))
                assert len(sink.handler.received) == 10
                assert sink.handler.peak_total == 4
                assert max(sink.handler.peak_domain.values()) == 2
        finally:
            sink.handler.hold.set()
            await sink.stop()

    run_async(main())


def test_no_sendmail_leaves_the_queue_alone(tmp_path, dns, caplog):
    caplog.set_level(logging.INFO)

    async def main():
        root = sendmail_instance(tmp_path / "bbs", dns, "ALLOW_POP3 | NO_SENDMAIL")
        async with Harness(root) as h:
            await h.store.enqueue(SENDER, ["w@x.test"], message())
            await h.sendmail.run()                            # returns at once
            [item] = await h.store.outbound()
            assert item.attempts == 0 and not item.in_transit

    run_async(main())
    assert "SendMail thread started" not in caplog.text and "NO_SENDMAIL" in caplog.text
    assert dns.queries == []


def test_mail_waiting_from_before_a_restart_goes_at_start_without_any_event(tmp_path, dns):
    async def main():
        sink = await Sink().start()
        dns.add("r.test", ("A", "127.0.0.1"))
        root = sendmail_instance(tmp_path / "bbs", dns, DeliveryPort=str(sink.port), RescanFrequency="1d")
        try:
            async with Harness(root) as h:                   # the previous run: queued, never sent
                for n in range(3):
                    await h.store.enqueue(SENDER, [f"m{n}@r.test"], message())
            async with Harness(root) as h:                   # the restart: no MailQueued is published
                h.start()
                await until(h.finished(3))
                assert sorted(r.recipients[0] for r in sink.handler.received) == ["m0@r.test", "m1@r.test",
                                                                                    "m2@r.test"]
                assert await h.store.outbound() == []
        finally:
            await sink.stop()

    run_async(main())
