"""Anti-spam with real clients: spamblock/spambait, email.can, subject.can and
DNSBL answered by a fake DNS server on 127.0.0.1 (dnspython messages)."""
from __future__ import annotations

import logging
import smtplib
import socket
import threading

import dns.message
import dns.rcode
import dns.rrset
import pytest

from mail.smtp import ACCESS_DENIED, DNSBL_REFUSED, SENDER_REFUSED, SUBJECT_REFUSED
from tests.integration.mailsupport import mail_starter

MESSAGE = b"From: bob@example.org\r\nSubject: Hello\r\n\r\nhello\r\n"
ZONE = "dnsbl.test"


class FakeDNSBL:
    """A UDP DNS server on 127.0.0.1 listing the names in ``listed``."""

    def __init__(self, listed: set[str]) -> None:
        self.listed = listed
        self.queries: list[str] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                continue
            query = dns.message.from_wire(data)
            name = query.question[0].name.to_text()
            self.queries.append(name)
            reply = dns.message.make_response(query)
            if name in self.listed:
                reply.answer.append(dns.rrset.from_text(name, 60, "IN", "A", "127.0.0.2"))
            else:
                reply.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(reply.to_wire(), peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def dnsbl():
    server = FakeDNSBL({f"1.0.0.127.{ZONE}."})
    yield server
    server.close()


@pytest.fixture
def start(tmp_path):
    yield from mail_starter(tmp_path)


def greeting(server) -> bytes:
    sock = socket.create_connection(("127.0.0.1", server.ports["smtp"]), timeout=15)
    try:
        return sock.recv(512)
    finally:
        sock.close()


def test_spamblock_refuses_at_greeting_unless_exempt(start):
    server = start(files={"ctrl/spamblock.cfg": "127.0.0.0/8\n"})
    assert greeting(server) == ACCESS_DENIED.encode() + b"\r\n"
    server = start(files={"ctrl/spamblock.cfg": "127.0.0.0/8\n", "ctrl/spamblock_exempt.cfg": "127.0.0.1\n"})
    assert greeting(server).startswith(b"220 ")


def test_spambait_blocks_the_sending_server(start):
    server = start(files={"ctrl/spambait.cfg": "honeypot@bbs.test\n"})
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=15) as client:
        client.ehlo()
        client.mail("bob@example.org")
        assert client.rcpt("honeypot@bbs.test")[0] == 550
    assert "127.0.0.1\t" in (server.root / "ctrl" / "spamblock.cfg").read_text()
    assert greeting(server) == ACCESS_DENIED.encode() + b"\r\n"


def test_email_can_and_subject_can(start):
    server = start(files={"text/email.can": "*@spammer.example\n", "text/subject.can": "~viagra\n"})
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=15) as client:
        client.ehlo()
        assert client.mail("x@spammer.example") == (554, SENDER_REFUSED[4:].encode())
        client.rset()
        client.mail("bob@example.org")
        client.rcpt("alice@bbs.test")
        assert client.data(b"Subject: cheap VIAGRA\r\n\r\nbuy\r\n") == (554, SUBJECT_REFUSED[4:].encode())
        assert client.sendmail("bob@example.org", ["alice@bbs.test"], MESSAGE) == {}
    assert [m.subject for m in server.mailbox(server.alice.number)] == ["Hello"]


def dnsbl_server(start, dnsbl, options, **keys):
    return start(options, files={"ctrl/dns_blacklist.cfg": f"{ZONE}\n"},
                 DNSServer=f"127.0.0.1:{dnsbl.port}", **keys)


def test_dnsbl_refuse(start, dnsbl, caplog):
    caplog.set_level(logging.INFO)
    server = dnsbl_server(start, dnsbl, "DNSBL_REFUSE")
    assert greeting(server) == DNSBL_REFUSED.format(ip="127.0.0.1", zone=ZONE).encode() + b"\r\n"
    assert f"1.0.0.127.{ZONE}." in dnsbl.queries
    assert f"SMTP BLACKLISTED SERVER on {ZONE}: 127.0.0.1 [127.0.0.1] = 127.0.0.2" in caplog.text
    assert "REFUSED" in (server.root / "data" / "spam.log").read_text()


def test_dnsbl_tags_header_and_subject_and_marks_spam(start, dnsbl):
    server = dnsbl_server(start, dnsbl, "DNSBL_SPAMHASH")
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=15) as client:
        assert client.sendmail("bob@example.org", ["alice@bbs.test"], MESSAGE) == {}
    [info] = server.mailbox(server.alice.number)
    raw = server.read(server.alice.number, info.id)
    assert info.spam and info.subject == "SPAM: Hello"
    assert f"X-DNSBL: {ZONE}: 127.0.0.1 = 127.0.0.2".encode() in raw
    assert len((server.root / "data" / "spam.hash").read_text().split()) == 1


def test_dnsbl_baduser_and_ignore(start, dnsbl):
    server = dnsbl_server(start, dnsbl, "DNSBL_BADUSER")
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=15) as client:
        client.ehlo()
        client.mail("bob@example.org")
        assert client.rcpt("alice@bbs.test")[0] == 550
    server = dnsbl_server(start, dnsbl, "DNSBL_IGNORE")
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=15) as client:
        assert client.sendmail("bob@example.org", ["alice@bbs.test"], MESSAGE) == {}
    assert server.mailbox(server.alice.number) == []


def test_dnsbl_exempt_addresses_and_senders(start, dnsbl):
    server = start("DNSBL_REFUSE", files={"ctrl/dns_blacklist.cfg": f"{ZONE}\n",
                                          "ctrl/dnsbl_exempt.cfg": "127.0.0.1\n"},
                   DNSServer=f"127.0.0.1:{dnsbl.port}")
    assert greeting(server).startswith(b"220 ")
    assert dnsbl.queries == []
    server = start("", files={"ctrl/dns_blacklist.cfg": f"{ZONE}\n",
                              "ctrl/dnsbl_exempt.cfg": "friend@example.org\n"},
                   DNSServer=f"127.0.0.1:{dnsbl.port}")
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=15) as client:
        assert client.sendmail("friend@example.org", ["alice@bbs.test"], MESSAGE) == {}
    [info] = server.mailbox(server.alice.number)
    assert not info.spam and info.subject == "Hello"


def test_dnsbl_checks_received_headers(start, dnsbl):
    dnsbl.listed.add(f"7.2.0.192.{ZONE}.")
    server = start("DNSBL_CHKRECVHDRS", files={"ctrl/dns_blacklist.cfg": f"{ZONE}\n",
                                               "ctrl/dnsbl_exempt.cfg": "127.0.0.1\n"},
                   DNSServer=f"127.0.0.1:{dnsbl.port}")
    relayed = b"Received: from spam.example (spam.example [192.0.2.7])\r\n\tby mx.example;\r\n" + MESSAGE
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=15) as client:
        assert client.sendmail("bob@example.org", ["alice@bbs.test"], relayed) == {}
    [info] = server.mailbox(server.alice.number)
    assert info.spam and info.subject == "SPAM: Hello"
