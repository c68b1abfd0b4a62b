"""Pure parsing of the mail servers: SMTP paths/addresses and POP3 commands."""
from __future__ import annotations

import random
import re

import pytest

from mail.address import is_local_domain, parse_address, parse_path, split_prefix, split_tag
from mail.pop3proto import CommandError, State, multiline, parse_command, split_user, top
from mail.smtp import _body
from mail.spam import dnsbl_query_name, parse_dns_server

LOCAL = frozenset({"bbs.test"})
IPS = frozenset({"127.0.0.1"})


@pytest.mark.parametrize("arg, address, rest", [
    ("<alice@bbs.test>", "alice@bbs.test", ""),
    ("<alice@bbs.test> SIZE=100", "alice@bbs.test", "SIZE=100"),
    ("alice@bbs.test", "alice@bbs.test", ""),
    ("<>", "", ""),
    ("<local:sysop@bbs.test>", "local:sysop@bbs.test", ""),
    ("<@relay.example,@b.example:joe@bbs.test>", "joe@bbs.test", ""),   # RFC 5321 3.6.1
    ('<"a > b"@bbs.test>', '"a > b"@bbs.test', ""),
])
def test_parse_path(arg, address, rest):
    assert parse_path(arg) == (address, rest)


@pytest.mark.parametrize("arg", ["<alice@bbs.test", "<a b@bbs.test>", "<a@b>x", "<" + "a" * 300 + "@b>",
                                 "<a\x00b@bbs.test>"])
def test_parse_path_refuses_malformed(arg):
    assert parse_path(arg)[0] is None


@pytest.mark.parametrize("text, routed, local", [
    ("alice@bbs.test", False, True),
    ("alice@BBS.TEST.", False, True),
    ("sysop", False, True),
    ("user%evil.example@bbs.test", True, True),        # percent hack
    ("evil.example!user@bbs.test", True, True),        # bang path
    ('"user@evil.example"@bbs.test', True, True),      # quoted local part hiding an address
    ("alice@evil.example", False, False),
    ("alice@[127.0.0.1]", False, True),
    ("alice@[192.0.2.1]", False, False),
    ("alice@bbs.test.evil.example", False, False),
])
def test_routing_forms_are_flagged(text, routed, local):
    address = parse_address(text)
    assert address is not None
    assert address.routed is routed
    assert is_local_domain(address, LOCAL, IPS) is local


@pytest.mark.parametrize("text", ["", "a@", "@bbs.test", '"unterminated@bbs.test', "a@-bad-.test",
                                  'x"y@bbs.test', "a@[127.0.0.1"])
def test_malformed_addresses(text):
    assert parse_address(text) is None


def test_prefix_and_tag_split():
    assert split_prefix("LOCAL:sysop") == ("local:", "sysop")
    assert split_prefix("forward:alice") == ("forward:", "alice")
    assert split_prefix("alice") == ("", "alice")
    assert split_tag("alice#lists") == ("alice", "lists")
    assert split_tag("#x") == ("#x", "")


def test_pop3_command_table():
    assert parse_command(b"user alice\r\n", State.AUTHORIZATION).args == ("alice",)
    assert parse_command(b"PASS pass with spaces\r\n", State.AUTHORIZATION).args == ("pass with spaces",)
    assert parse_command(b"TOP 1 0\r\n", State.TRANSACTION).args == ("1", "0")
    for line, state in [(b"STAT\r\n", State.AUTHORIZATION), (b"USER a\r\n", State.TRANSACTION),
                        (b"RETR x\r\n", State.TRANSACTION), (b"RETR\r\n", State.TRANSACTION),
                        (b"BOGUS\r\n", State.TRANSACTION), (b"RETR 1\x00\r\n", State.TRANSACTION),
                        (b"LIST 1 2\r\n", State.TRANSACTION), (b"DELE 9999999999\r\n", State.TRANSACTION)]:
        with pytest.raises(CommandError):
            parse_command(line, state)


def _multiline_by_lines(data: bytes) -> bytes:
    """RFC 1939 section 3 encoding, the obvious line-by-line way."""
    lines = re.split(rb"\r?\n", data)
    if lines[-1] == b"":
        lines.pop()
    return b"".join((b"." if line.startswith(b".") else b"") + line + b"\r\n" for line in lines) + b".\r\n"


def test_pop3_multiline_dot_stuffing_and_top():
    assert multiline(b"a\n.b\r\n..c") == b"a\r\n..b\r\n...c\r\n.\r\n"
    assert multiline(b"") == b".\r\n"
    rng = random.Random(1939)
    for _ in range(2000):
        data = bytes(rng.choice(b".\r\nab") for _ in range(rng.randint(0, 12)))
        assert multiline(data) == _multiline_by_lines(data), data
    message = b"Subject: x\r\nFrom: y\r\n\r\none\r\ntwo\r\nthree\r\n"
    assert top(message, 0) == b"Subject: x\r\nFrom: y\r\n\r\n"
    assert top(message, 2) == b"Subject: x\r\nFrom: y\r\n\r\none\r\ntwo\r\n"
    assert split_user("alice#nospam") == ("alice", True)
    assert split_user("alice#NoSpam") == ("alice", True)
    assert split_user("alice#other") == ("alice#other", False)


def test_dnsbl_names_and_dns_server_setting():
    assert dnsbl_query_name("192.0.2.7", "dnsbl.test") == "7.2.0.192.dnsbl.test."
    assert dnsbl_query_name("::ffff:192.0.2.7", "dnsbl.test") == "7.2.0.192.dnsbl.test."
    assert dnsbl_query_name("2001:db8::1", "x.test").startswith("1.0.0.0.")
    assert parse_dns_server("") is None and parse_dns_server("<auto>") is None
    assert parse_dns_server("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_dns_server("[::1]:53") == ("::1", 53)
    with pytest.raises(ValueError):
        parse_dns_server("dns.example")


@pytest.mark.parametrize("raw, body", [
    (b"Subject: a\r\n\r\nbody\r\n", b"body\r\n"),
    (b"Subject: a\n\nbody with\r\n\r\na blank line\n", b"body with\r\n\r\na blank line\n"),  # the first end counts
    (b"Subject: no body", b""),
])
def test_body_follows_the_first_end_of_the_headers(raw, body):
    assert _body(raw) == body
