"""SendMail direct delivery against a fake DNS server and aiosmtpd sinks on
loopback: MX preference and fallback, implicit MX, NXDOMAIN and DNS
time-outs, temporary and permanent failures, the retry schedule, bounces,
STARTTLS (and a broken one), auto-exempt, events, wake-up on MailQueued."""
from __future__ import annotations

import asyncio
import email
import email.policy
import logging

import pytest

from bbs.events import MailDelivered, MailFailed, MailQueued
from bbs.mailbox import MailStore
from mail.mx import MXResolver
from mail.sendmail import SendMail, retry_delay
from tests.integration.sendmail_support import (PERMFAIL, TEMPFAIL, Clock, FakeDNS, ScriptedPeer, Sink,
                                                make_app, message, sendmail_instance)
from tests.support import run_async, until

SENDER = "alice@bbs.test"


@pytest.fixture
def dns():
    server = FakeDNS().start()
    yield server
    server.stop()


class Harness:
    """One SendMail task on an instance, its store, bus events and clock."""

    def __init__(self, root, clock=None, resolver=None):
        self.app = make_app(root)
        self.store = MailStore(root / "data" / "mail.db")
        self.clock = clock or Clock()
        self.sendmail = SendMail(self.app, self.store, clock=self.clock, resolver=resolver)
        self.events = []
        self.app.bus.subscribe(self.events.append, MailDelivered, MailFailed, MailQueued)
        self.task = None

    async def __aenter__(self):
        self.app.bus.bind_loop(asyncio.get_running_loop())
        await self.store.open()
        return self

    def start(self):
        self.task = asyncio.get_running_loop().create_task(self.sendmail.run())
        return self

    async def __aexit__(self, *exc):
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await self.store.close()

    async def queue(self, recipients, raw=None, sender=SENDER, from_user=0):
        qid = await self.store.enqueue(sender, recipients, raw or message(), from_user=from_user)
        self.app.bus.publish(MailQueued(str(qid), sender, tuple(recipients)))
        return qid

    def finished(self, n):
        return lambda: self.sendmail.finished >= n


def test_mx_preference_order_falls_back_to_the_next_host_and_exempts_the_recipient(tmp_path, dns, caplog):
    caplog.set_level(logging.INFO)

    async def main():
        sink = await Sink("127.0.0.3").start()      # mx2 (preference 20) answers
        dns.add("a.test", ("MX", "20 mx2.a.test."), ("MX", "10 mx1.a.test."))
        dns.add("mx1.a.test", ("A", "127.0.0.2"))   # preferred, but nothing listens there
        dns.add("mx2.a.test", ("A", "127.0.0.3"))
        root = sendmail_instance(tmp_path / "bbs", dns, DeliveryPort=str(sink.port))
        try:
            async with Harness(root) as h:
                h.start()
                qid = await h.queue(["bob@a.test"])
                await until(h.finished(1))
                assert await h.store.outbound() == []
                [got] = sink.handler.received
                assert got.sender == SENDER and got.recipients == ["bob@a.test"]
                assert got.data.endswith(b"Hi there.\r\n.leading dot\r\n")
                assert [e for e in h.events if isinstance(e, MailDelivered)] == [
                    MailDelivered(str(qid), "bob@a.test", "mx2.a.test", when=h.events[1].when)]
        finally:
            await sink.stop()
        exempt = (root / "ctrl" / "dnsbl_exempt.cfg").read_text()
        assert "bob@a.test\t" in exempt
        return root

    run_async(main())
    assert "SendMail thread started" in caplog.text
    assert "!SEND ERROR 111 connecting to SMTP server: mx1.a.test [127.0.0.2]" in caplog.text
    mx_queries = [q for q in dns.queries if q[1] == "MX"]
    assert mx_queries == [("a.test.", "MX", "udp")]


def test_implicit_mx_uses_the_domains_address_and_use_tcp_dns_queries_over_tcp(tmp_path, dns):
    async def main():
        sink = await Sink("127.0.0.4").start()
        dns.add("b.test", ("A", "127.0.0.4"))        # no MX record at all
        root = sendmail_instance(tmp_path / "bbs", dns, "ALLOW_POP3 | USE_TCP_DNS",
                                 DeliveryPort=str(sink.port))
        try:
            async with Harness(root) as h:
                h.start()
                await h.queue(["carol@b.test"])
                await until(h.finished(1))
                assert [r.recipients for r in sink.handler.received] == [["carol@b.test"]]
        finally:
            await sink.stop()

    run_async(main())
    assert ("b.test.", "MX", "tcp") in dns.queries and ("b.test.", "A", "tcp") in dns.queries
    assert not [q for q in dns.queries if q[2] == "udp"]


def test_nxdomain_bounces_at_once_into_the_senders_bbs_mailbox(tmp_path, dns):
    async def main():
        root = sendmail_instance(tmp_path / "bbs", dns)
        async with Harness(root) as h:
            h.start()
            qid = await h.queue(["nobody@nowhere.test"], message("Lost"), from_user=1)
            await until(h.finished(1))
            assert await h.store.outbound() == []
            [info] = await h.store.list(1)
            raw = await h.store.read(1, info.id)
            assert info.sender == "" and info.subject == "Undeliverable mail: Lost"
            failed = [e for e in h.events if isinstance(e, MailFailed)]
            assert [(e.message_id, e.recipient, e.permanent) for e in failed] == [
                (str(qid), "nobody@nowhere.test", True)]
            return raw

    raw = run_async(main())
    report = email.message_from_bytes(raw, policy=email.policy.default)
    assert report.get_content_type() == "multipart/report"
    status = report.get_payload()[1]
    assert status.get_content_type() == "message/delivery-status"
    text = raw.decode()
    assert "Final-Recipient: rfc822; nobody@nowhere.test" in text and "Action: failed" in text
    assert "does not exist (NXDOMAIN)" in text and "Subject: Lost" in text


def test_dns_timeout_defers_with_the_first_retry_delay(tmp_path, dns, caplog):
    caplog.set_level(logging.INFO)

    async def main():
        dns.add("slow.test", ("A", "127.0.0.9"))
        dns.drop.add("slow.test.")
        root = sendmail_instance(tmp_path / "bbs", dns, RetryDelay="7m")
        resolver = MXResolver(dns.server, timeout=0.5)
        async with Harness(root, resolver=resolver) as h:
            h.start()
            qid = await h.queue(["dave@slow.test"])
            await until(h.finished(1))
            [item] = await h.store.outbound()
            assert item.id == qid and item.attempts == 1 and not item.in_transit
            assert item.next_try == h.clock.now + 7 * 60
            assert "timed out" in item.last_error
            assert [e.permanent for e in h.events if isinstance(e, MailFailed)] == [False]

    run_async(main())
    assert "!SEND ERROR obtaining MX records for slow.test from 127.0.0.1" in caplog.text


def test_tempfail_retries_on_schedule_then_bounces_after_max_delivery_attempts(tmp_path, dns, caplog):
    caplog.set_level(logging.INFO)

    async def main():
        sink = await Sink().start()
        sink.handler.rcpt_replies["erin@c.test"] = TEMPFAIL
        dns.add("c.test", ("MX", "10 mx.c.test."))
        dns.add("mx.c.test", ("A", "127.0.0.1"))
        dns.add("bbs.test", ("MX", "10 mx.c.test."))   # the bounce goes back to our sender's domain
        root = sendmail_instance(tmp_path / "bbs", dns, DeliveryPort=str(sink.port), RetryDelay="10m",
                                 RescanFrequency="30m", MaxDeliveryAttempts="4")
        try:
            async with Harness(root) as h:
                h.start()
                qid = await h.queue(["erin@c.test"], message("Retry me"))
                next_tries = []
                for attempt in range(1, 4):
                    await until(h.finished(attempt))
                    [item] = await h.store.outbound()
                    assert item.attempts == attempt and not item.in_transit
                    next_tries.append(item.next_try - h.clock.now)
                    h.clock.now = item.next_try          # time passes: the retry is due
                    h.sendmail.wake()
                assert next_tries == [600.0, 1200.0, 1800.0]   # doubling, capped at RescanFrequency
                await until(lambda: len(sink.handler.received) == 1)   # attempt 4 failed: bounce delivered
                await until(h.finished(5))   # ... and its 250 seen by SendMail, which then dequeues it
                assert await h.store.outbound() == []
                return qid, sink.handler.received[0]
        finally:
            await sink.stop()

    qid, bounce = run_async(main())
    assert bounce.sender == "<>" and bounce.recipients == [SENDER]   # aiosmtpd shows MAIL FROM:<> so
    text = bounce.data.decode()
    assert "Subject: Undeliverable mail: Retry me" in text
    assert "after 4 delivery attempt(s)" in text and TEMPFAIL in text
    assert "Status: 4.2.1" in text and f"X-Queue-ID: {qid}" in text
    assert ('!Delivery attempt #1 FAILED (mx.c.test replied with: "450 4.2.1 Mailbox busy, try again '
            'later" instead of the expected reply: "250 ...")') in caplog.text
    assert "!Delivery attempt #4 FAILED" in caplog.text


def test_permanent_and_temporary_recipients_of_one_message_are_sorted(tmp_path, dns, caplog):
    caplog.set_level(logging.INFO)

    async def main():
        sink = await Sink().start()
        sink.handler.rcpt_replies["gone@d.test"] = PERMFAIL
        sink.handler.rcpt_replies["busy@d.test"] = TEMPFAIL
        dns.add("d.test", ("MX", "10 mx.d.test."))
        dns.add("mx.d.test", ("A", "127.0.0.1"))
        root = sendmail_instance(tmp_path / "bbs", dns, DeliveryPort=str(sink.port))
        try:
            async with Harness(root) as h:
                h.start()
                qid = await h.queue(["ok@d.test", "gone@d.test", "busy@d.test"], from_user=1)
                await until(h.finished(1))
                assert [r.recipients for r in sink.handler.received] == [["ok@d.test"]]
                [item] = await h.store.outbound()
                assert item.id == qid and item.recipients == ("busy@d.test",) and item.attempts == 1
                [info] = await h.store.list(1)
                bounce = (await h.store.read(1, info.id)).decode()
                assert "gone@d.test" in bounce and "busy@d.test" not in bounce.split("--=_")[1]
                assert "<gone@d.test>: Recipient address rejected: User unknown" in bounce
                assert "Status: 5.1.1" in bounce and "Remote-MTA: dns; mx.d.test" in bounce
                kinds = sorted((e.recipient, e.permanent) for e in h.events if isinstance(e, MailFailed))
                assert kinds == [("busy@d.test", False), ("gone@d.test", True)]
        finally:
            await sink.stop()

    run_async(main())
    assert '!Delivery attempt #1 FAILED (mx.d.test replied with: "550 5.1.1 <gone@d.test>' in caplog.text


def test_a_bounce_of_a_bounce_is_never_sent(tmp_path, dns, caplog):
    caplog.set_level(logging.INFO)

    async def main():
        root = sendmail_instance(tmp_path / "bbs", dns)
        async with Harness(root) as h:
            h.start()
            await h.queue(["x@nowhere.test"], sender="")
            await until(h.finished(1))
            assert await h.store.outbound() == []

    run_async(main())
    assert "a bounce is never bounced" in caplog.text


def test_starttls_is_used_when_offered(tmp_path, dns, caplog):
    caplog.set_level(logging.INFO)

    async def main():
        sink = await Sink(tls=tmp_path / "tls").start()
        dns.add("e.test", ("MX", "10 mx.e.test."))
        dns.add("mx.e.test", ("A", "127.0.0.1"))
        root = sendmail_instance(tmp_path / "bbs", dns, DeliveryPort=str(sink.port))
        try:
            async with Harness(root) as h:
                h.start()
                await h.queue(["frank@e.test"])
                await until(h.finished(1))
                [got] = sink.handler.received
                assert got.tls
        finally:
            await sink.stop()

    run_async(main())
    assert "successfully delivered to frank@e.test via mx.e.test [127.0.0.1] (TLS)" in caplog.text


@pytest.mark.parametrize("mode", ["garbage", "refuse"])
def test_a_failed_or_refused_starttls_falls_back_to_clear_text(tmp_path, dns, caplog, mode):
    caplog.set_level(logging.INFO)

    async def main():
        peer = await ScriptedPeer(starttls=mode).start()
        dns.add("f.test", ("MX", "10 mx.f.test."))
        dns.add("mx.f.test", ("A", "127.0.0.1"))
        root = sendmail_instance(tmp_path / "bbs", dns, DeliveryPort=str(peer.port))
        try:
            async with Harness(root) as h:
                h.start()
                await h.queue(["gina@f.test"])
                await until(h.finished(1))
                assert await h.store.outbound() == []
                assert len(peer.received) == 1 and peer.received[0].endswith(b"..leading dot\r\n")
                return peer.sessions
        finally:
            await peer.stop()

    sessions = run_async(main())
    if mode == "garbage":
        assert len(sessions) == 2 and sessions[0][-1] == "STARTTLS"
        assert "STARTTLS" not in sessions[1]
        assert "retrying in clear text" in caplog.text
    else:
        assert len(sessions) == 1 and "STARTTLS" in sessions[0]
        assert "refused STARTTLS (454 4.7.0" in caplog.text


def test_mail_queued_event_wakes_sendmail_at_once_and_outbound_interface_is_used(tmp_path, dns):
    async def main():
        sink = await Sink().start()
        dns.add("g.test", ("A", "127.0.0.1"))
        root = sendmail_instance(tmp_path / "bbs", dns, DeliveryPort=str(sink.port),
                                 RescanFrequency="1d", OutboundInterface="127.0.0.7")
        try:
            async with Harness(root) as h:
                h.start()
                await until(lambda: h.sendmail.finished == 0 and h.task is not None)
                await asyncio.sleep(0)
                await h.queue(["hal@g.test"])        # no rescan for a day: only the event can wake it
                await until(lambda: len(sink.handler.received) == 1)
                assert sink.handler.received[0].peer == "127.0.0.7"
        finally:
            await sink.stop()

    run_async(main())


def test_connect_timeout_is_logged_like_synchronet(tmp_path, dns, caplog):
    caplog.set_level(logging.INFO)
    import socket

    async def main():
        # A listener that never accepts, its backlog full: further SYNs go unanswered.
        blocked = socket.socket()
        blocked.bind(("127.0.0.1", 0))
        blocked.listen(0)
        fillers = []
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            try:
                filler.connect(blocked.getsockname())
            except BlockingIOError:
                pass
            fillers.append(filler)
        dns.add("h.test", ("A", "127.0.0.1"))
        root = sendmail_instance(tmp_path / "bbs", dns, DeliveryPort=str(blocked.getsockname()[1]),
                                 ConnectTimeout="1")
        try:
            async with Harness(root) as h:
                h.start()
                await h.queue(["ian@h.test"])
                await until(h.finished(1))
                [item] = await h.store.outbound()
                assert item.attempts == 1
        finally:
            for sock in fillers + [blocked]:
                sock.close()

    run_async(main())
    assert "!SEND ERROR 110 connecting to SMTP server: h.test [127.0.0.1]" in caplog.text


def test_retry_delay_is_pure():
    assert [retry_delay(n, 300, 3600) for n in range(1, 7)] == [300, 600, 1200, 2400, 3600, 3600]
    assert retry_delay(50, 300, 0) == 24 * 3600.0
