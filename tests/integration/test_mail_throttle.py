"""DNSBL_THROTTLE with smtplib and the fake DNSBL of test_mail_spam: a
blacklisted client's commands are delayed (seen in the log, not timed), its
mail is still taken and tagged; without the option nothing is delayed."""
from __future__ import annotations

import logging
import smtplib

from tests.integration.test_mail_spam import MESSAGE, dnsbl, dnsbl_server, start  # noqa: F401

THROTTLING = "SMTP THROTTLING blacklisted server 127.0.0.1"


def test_dnsbl_throttle_delays_a_blacklisted_client(start, dnsbl, caplog):
    caplog.set_level(logging.INFO)
    server = dnsbl_server(start, dnsbl, "DNSBL_THROTTLE")
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=15) as client:
        assert client.sendmail("bob@example.org", ["alice@bbs.test"], MESSAGE) == {}
    assert caplog.text.count(THROTTLING) == 1                 # logged once per session
    [info] = server.mailbox(server.alice.number)
    assert info.spam and info.subject == "SPAM: Hello"


def test_no_throttle_without_the_option_or_the_listing(start, dnsbl, caplog):
    caplog.set_level(logging.INFO)
    server = dnsbl_server(start, dnsbl, "")                   # listed, not throttled
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=15) as client:
        assert client.sendmail("bob@example.org", ["alice@bbs.test"], MESSAGE) == {}
    dnsbl.listed.clear()
    server = dnsbl_server(start, dnsbl, "DNSBL_THROTTLE")     # throttle on, not listed
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=15) as client:
        assert client.sendmail("bob@example.org", ["alice@bbs.test"], MESSAGE) == {}
    assert "SMTP BLACKLISTED SERVER" in caplog.text and THROTTLING not in caplog.text
    [info] = server.mailbox(server.alice.number)
    assert not info.spam
