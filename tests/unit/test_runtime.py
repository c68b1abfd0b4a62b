"""Node table, event bus, logging tags, TLS certificate and the App's first start."""
from __future__ import annotations

import asyncio
import io
import logging
import re
import ssl
import stat
import threading

import pytest

from bbs import events, logsetup
from bbs.app import App, generate_password
from bbs.events import EventBus, LogEvent, NodeChanged, UserLogon
from bbs.instance import init_instance, load_config
from bbs.nodetable import NodeStatus, NodeTable
from bbs.tlscert import ensure_certificate, server_context


def test_node_table_allocates_lowest_free_and_publishes():
    bus = EventBus()
    seen: list[NodeChanged] = []
    bus.subscribe(seen.append, NodeChanged)
    table = NodeTable(range(3, 6), bus)
    first = table.allocate("telnet", "192.0.2.1", conn_id=7)
    second = table.allocate("ssh", "192.0.2.2")
    assert (first.number, second.number) == (3, 4)
    assert first.status is NodeStatus.LOGON and first.address == "192.0.2.1" and first.since > 0
    table.update(3, status=NodeStatus.INUSE, user="Zaphod", activity="reading mail")
    assert table.get(3).user == "Zaphod" and [r.number for r in table.in_use()] == [3, 4]
    table.update(5, locked=True)
    assert table.allocate("telnet", "192.0.2.3") is None        # 5 is locked: all busy
    table.update(3, down_after=True)
    released = table.release(3)
    assert released.status is NodeStatus.OFFLINE and released.user == ""
    assert table.allocate("telnet", "192.0.2.4") is None        # 3 went offline after logoff
    table.release(4)
    assert table.allocate("telnet", "192.0.2.5").number == 4
    assert [e.node.number for e in seen][:3] == [3, 4, 3] and seen[-1].node.address == "192.0.2.5"


def test_event_bus_filters_types_and_survives_bad_subscribers():
    bus = EventBus()
    got: list = []

    def broken(event):
        raise RuntimeError("bad subscriber")

    bus.subscribe(broken)
    unsubscribe = bus.subscribe(got.append, UserLogon)
    bus.publish(UserLogon("Zaphod", 2, 1, "telnet", "192.0.2.1"))
    bus.publish(LogEvent(tag="bbs", level=20, logger="x", message="not for got"))
    unsubscribe()
    bus.publish(UserLogon("Ford", 3, 2, "ssh", "192.0.2.2"))
    assert [e.user for e in got] == ["Zaphod"]


def test_event_bus_says_whether_anyone_wants_a_kind_of_event():
    async def main() -> None:
        bus = EventBus()
        assert not bus.wants(LogEvent) and not bus.wants(UserLogon)
        unsubscribe = bus.subscribe(lambda event: None, UserLogon)
        assert bus.wants(UserLogon) and not bus.wants(LogEvent)
        unsubscribe()
        assert not bus.wants(UserLogon)
        everything = bus.subscribe(lambda event: None)     # no types: every event
        assert bus.wants(LogEvent)
        everything()
        stream = bus.stream(LogEvent)
        waiting = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0)
        assert bus.wants(LogEvent) and not bus.wants(UserLogon)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await stream.aclose()
        assert not bus.wants(LogEvent)
    asyncio.run(main())


def test_event_stream_gets_events_from_other_threads_and_counts_drops(monkeypatch):
    monkeypatch.setattr(events, "STREAM_QUEUE_LIMIT", 3)

    async def main():
        bus = EventBus()
        bus.bind_loop(asyncio.get_running_loop())
        received = []

        async def consume():
            async for event in bus.stream(UserLogon):
                received.append(event.user)
                if len(received) == 2:
                    return

        task = asyncio.create_task(consume())
        await asyncio.sleep(0)
        thread = threading.Thread(target=bus.publish, args=(UserLogon("Arthur", 1, 1, "telnet", "x"),))
        thread.start()
        thread.join()
        bus.publish(UserLogon("Trillian", 4, 2, "telnet", "y"))
        await asyncio.wait_for(task, 5)
        assert sorted(received) == ["Arthur", "Trillian"]  # the thread's event is handed to the loop
        # A consumer that never reads: the oldest events are dropped and counted.
        stream = bus.stream(UserLogon)
        first = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0)
        for number in range(6):
            bus.publish(UserLogon(f"u{number}", number, 1, "telnet", "z"))
        assert (await first).user == "u3"              # u0..u2 were dropped
        assert bus.dropped == 3
        await stream.aclose()

    asyncio.run(main())


def test_log_records_are_tagged_and_reach_the_bus(tmp_path):
    bus = EventBus()
    got: list[LogEvent] = []
    bus.subscribe(got.append, LogEvent)
    stderr = io.StringIO()
    handlers = logsetup.configure(logging.INFO, tmp_path / "logs", bus, stderr)
    try:
        logging.getLogger("nodes.telnet").info("Node %d logon", 1)
        logging.getLogger("mail.smtp").warning("SMTP ILLEGAL RELAY ATTEMPT")
        logging.getLogger("bbs.listeners").info("tagged", extra={"tag": "ftp"})
        logging.getLogger("services.finger").debug("below the level")
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("ftp.session").exception("session crashed")
    finally:
        logsetup.remove(handlers)
    assert [(e.tag, e.message) for e in got] == [("term", "Node 1 logon"), ("mail", "SMTP ILLEGAL RELAY ATTEMPT"),
                                                 ("ftp", "tagged"), ("ftp", "session crashed")]
    text = (tmp_path / "logs" / "bbs.log").read_text()
    assert " term INFO    Node 1 logon" in text and " mail WARNING SMTP ILLEGAL RELAY ATTEMPT" in text
    assert " bbs  INFO    tagged" not in text and " ftp  INFO    tagged" in text
    assert " ftp  ERROR   session crashed\nTraceback" in text and "ValueError: boom" in text
    assert stderr.getvalue() == text  # the same lines, formatted once
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d term ", text)
    assert logsetup.tag_for("services.msp") == "srvc" and logsetup.tag_for("nodesx") == "bbs"


def test_self_signed_certificate_is_generated_once_with_private_key_0600(tmp_path):
    cert, key = tmp_path / "tls" / "server.crt", tmp_path / "tls" / "server.key"
    assert ensure_certificate(cert, key, "bbs.example.org")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    before = cert.read_bytes()
    assert not ensure_certificate(cert, key, "bbs.example.org")  # kept: the sysop may have replaced it
    assert cert.read_bytes() == before
    context = server_context(cert, key)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    from cryptography import x509
    loaded = x509.load_pem_x509_certificate(before)
    names = loaded.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "bbs.example.org" in names.get_values_for_type(x509.DNSName)


def test_app_first_open_creates_sysop_folders_and_certificate(tmp_path):
    root = tmp_path / "bbs"
    init_instance(root)
    config = load_config(root)
    announced: list[tuple[str, str]] = []

    async def main():
        app = App(config)
        await app.open(lambda alias, password: announced.append((alias, password)))
        sysop = await app.users.verify("Sysop", announced[0][1])
        assert sysop.level == 99 and sysop.is_sysop
        await app.close()
        again = App(config)
        await again.open(lambda alias, password: announced.append((alias, password)))
        assert await again.users.count() == 1
        await again.close()

    asyncio.run(main())
    assert len(announced) == 1 and announced[0][0] == "Sysop"
    assert all(d.path.is_dir() for d in config.files.dirs)
    assert config.server.global_.tls_certificate.is_file()     # shipped config has TLS listeners


def test_generated_passwords_are_random_and_unambiguous():
    passwords = {generate_password() for _ in range(50)}
    assert len(passwords) == 50
    assert all(len(p) == 12 and not set(p) & set("0O1lI") for p in passwords)
