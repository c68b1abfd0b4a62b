"""SendMail's pure parts: SMTP reply parsing, dot-stuffing, AUTH answers, MX
ordering, recipient grouping, DSN content, [Mail] keys, auto-detected DNS."""
from __future__ import annotations

import email
import email.policy
import logging
import random

import pytest

from bbs.errors import ConfigError
from bbs.instance import init_instance, load_config
from mail.dsn import Failure, build_dsn, status_code
from mail.mx import MXResolver, address_literal, order_exchangers
from mail.sendmail import RELAY_DESTINATION, Settings, group_recipients, recipient_domain
from mail.smtpclient import (Reply, ReplyParser, SMTPClientError, auth_login, auth_plain,
                             cram_md5_response, dot_stuff, parse_ehlo)
from tests.support import set_ini


def test_reply_parser_joins_multiline_replies_across_feeds():
    parser = ReplyParser()
    assert parser.feed(b"250-mx.test Hello\r\n250-STAR") == []
    [reply] = parser.feed(b"TTLS\r\n250 SIZE 1000\r\n")
    assert reply == Reply(250, ("mx.test Hello", "STARTTLS", "SIZE 1000"))
    assert parse_ehlo(reply) == {"STARTTLS": "", "SIZE": "1000"}
    assert parser.feed(b"550 5.1.1 No such user\r\n")[0].text == "550 5.1.1 No such user"


@pytest.mark.parametrize("bad", [b"hello\r\n", b"250-a\r\n251 b\r\n", b"2" * 5000 + b"\r\n"])
def test_reply_parser_refuses_garbage(bad):
    with pytest.raises(SMTPClientError):
        ReplyParser().feed(bad)


def test_dot_stuffing_and_line_endings():
    assert dot_stuff(b".a\nb\r\n..c\rd") == b"..a\r\nb\r\n...c\r\nd\r\n.\r\n"
    assert dot_stuff(b"") == b".\r\n"


def test_auth_answers():
    assert auth_plain("u", "p") == "AHUAcA=="
    assert auth_login("u") == "dQ=="
    # RFC 2195 section 2 example.
    challenge = "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+"
    assert cram_md5_response("tim", "tanstaaftanstaaf", challenge) == (
        "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw")
    with pytest.raises(SMTPClientError):
        cram_md5_response("tim", "x", "not base64!")


def test_exchangers_are_ordered_by_preference_and_duplicates_dropped():
    records = [(20, "b.test."), (10, "a.test."), (20, "c.test"), (10, "A.test")]
    ordered = order_exchangers(records, random.Random(1))
    assert ordered[0] == (10, "a.test")
    assert {h for _, h in ordered[1:]} == {"b.test", "c.test"} and len(ordered) == 3


def test_equal_preferences_are_shuffled():
    orders = {tuple(order_exchangers([(10, "a"), (10, "b"), (10, "c")], random.Random(seed)))
              for seed in range(20)}
    assert len(orders) > 1


def test_address_literals():
    assert address_literal("[192.0.2.1]") == "192.0.2.1"
    assert address_literal("[IPv6:::1]") == "::1"
    assert address_literal("[nonsense]") is None and address_literal("a.test") is None


def test_recipients_group_by_domain_or_relay():
    rcpts = ("a@X.test", "b@y.test", "c@x.test.", "d")
    assert group_recipients(rcpts, relay=False) == {"x.test": ["a@X.test", "c@x.test."],
                                                    "y.test": ["b@y.test"], "": ["d"]}
    assert group_recipients(rcpts, relay=True) == {RELAY_DESTINATION: list(rcpts)}
    assert recipient_domain("someone@Example.ORG") == "example.org"


def test_status_codes():
    assert status_code("550 5.1.1 No such user") == "5.1.1"
    assert status_code("554 rejected") == "5.0.0"
    assert status_code("451 try later") == "4.4.7"
    assert status_code("domain x does not exist (NXDOMAIN)") == "5.0.0"


def test_dsn_is_a_delivery_status_report_with_the_original_header_only():
    original = b"From: a@b.test\r\nSubject: Report\r\n\r\nSECRET BODY\r\n"
    raw = build_dsn(original=original, sender="a@b.test", reporting_mta="bbs.test", arrival=0,
                    queue_id=42, attempts=1, now=100,
                    failures=[Failure("x@y.test", "550 5.7.1 Go away", "mx.y.test")])
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert "To: <a@b.test>" in raw.decode() and msg["Subject"] == "Undeliverable mail: Report"
    assert msg["Auto-Submitted"] == "auto-replied"
    human, status, headers = msg.get_payload()
    assert "550 5.7.1 Go away" in human.get_content()
    assert status.get_content_type() == "message/delivery-status"
    text = raw.decode()
    for line in ("Reporting-MTA: dns; bbs.test", "Final-Recipient: rfc822; x@y.test", "Action: failed",
                 "Status: 5.7.1", "Remote-MTA: dns; mx.y.test", "Diagnostic-Code: smtp; 550 5.7.1 Go away"):
        assert line in text
    assert headers.get_content_type() == "text/rfc822-headers"
    assert b"Subject: Report" in raw and b"SECRET BODY" not in raw


def test_mail_keys_for_sendmail(tmp_path):
    root = tmp_path / "bbs"
    init_instance(root)
    sbbs = root / "ctrl" / "sbbs.ini"
    for key, value in [("MaxConcurrentDeliveries", "3"), ("MaxDeliveriesPerDomain", "1"),
                       ("DeliveryPort", "2525"), ("RetryDelay", "2m"), ("OutboundInterface", "0.0.0.0"),
                       ("Options", "RELAY_TX | RELAY_AUTH_LOGIN | SEND_INTRANSIT | NO_AUTO_EXEMPT")]:
        set_ini(sbbs, "Mail", key, value)
    s = Settings.from_config(load_config(root).server.mail)
    assert (s.max_concurrent, s.max_per_domain, s.delivery_port, s.retry_delay) == (3, 1, 2525, 120.0)
    assert s.relay and s.relay_auth == "LOGIN" and s.send_intransit and not s.auto_exempt
    assert s.outbound_interface is None and s.enabled
    set_ini(sbbs, "Mail", "MaxConcurrentDeliveries", "0")
    with pytest.raises(ConfigError) as err:
        load_config(root)
    assert "sbbs.ini" in str(err.value) and "MaxConcurrentDeliveries" in str(err.value)


def test_auto_detected_dns_server_is_logged(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 127.0.0.53\n")
    for value in ("", "<auto>"):
        resolver = MXResolver(value, resolv_conf=conf)
        assert resolver.server == "127.0.0.53"
    assert caplog.text.count("SEND using auto-detected DNS server address: 127.0.0.53") == 2


def test_dns_server_with_a_port_and_bad_values():
    resolver = MXResolver("127.0.0.1:5353")
    assert resolver.resolver.nameservers == ["127.0.0.1"] and resolver.resolver.port == 5353
    with pytest.raises(ValueError):
        MXResolver("dns.example.com")
