"""Local delivery rules: alias.cfg, prefixes, tags, numbers, sysop aliases,
DefaultUser, forwarding into the outbound queue."""
from __future__ import annotations

import smtplib

import pytest

from mail.smtp import UNKNOWN_USER
from tests.integration.mailsupport import mail_starter

MESSAGE = b"Subject: hi\r\n\r\nhello\r\n"


@pytest.fixture
def start(tmp_path):
    yield from mail_starter(tmp_path, email="alice@elsewhere.example")


def rcpt(server, *addresses):
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=15) as client:
        client.ehlo()
        client.mail("bob@example.org")
        # docmd: smtplib's rcpt() would re-parse "forward:alice@bbs.test" as a group
        replies = [client.docmd("RCPT", f"TO:<{a.strip('<>')}>") for a in addresses]
        if any(code == 250 for code, _ in replies):
            assert client.data(MESSAGE)[0] == 250
        return [code for code, _ in replies]


def test_alias_cfg_routes_to_users_and_outside_addresses(start):
    server = start(files={"ctrl/alias.cfg": "; aliases\nwebmaster   Alice\nlist   local:alice\n"
                                            "outside   someone@example.net\n"})
    assert rcpt(server, "webmaster@bbs.test", "list@bbs.test", "outside@bbs.test") == [250, 250, 250]
    assert len(server.mailbox(server.alice.number)) == 1
    [queued] = server.call(server.store().outbound())
    assert queued.recipients == ("someone@example.net",)


def test_by_number_only_with_allow_rx_by_number(start):
    server = start()
    assert rcpt(server, f"{server.alice.number}@bbs.test") == [550]
    server = start("ALLOW_RX_BY_NUMBER")
    assert rcpt(server, f"{server.alice.number}@bbs.test") == [250]
    assert len(server.mailbox(server.alice.number)) == 1


def test_sysop_aliases_only_with_allow_sysop_aliases(start):
    server = start()
    assert rcpt(server, "postmaster@bbs.test") == [550]
    server = start("ALLOW_SYSOP_ALIASES")
    assert rcpt(server, "postmaster@bbs.test", "NEWBBS@bbs.test") == [250, 250]
    assert len(server.mailbox(1)) == 1


def test_default_user_takes_unknown_names(start):
    server = start(DefaultUser="Alice")
    assert rcpt(server, "whoever@bbs.test") == [250]
    assert len(server.mailbox(server.alice.number)) == 1


def test_tags_refused_when_listed_in_smtptags(start):
    server = start()
    tags = server.root / "data" / "user" / f"{server.alice.number:04d}.smtptags"
    tags.parent.mkdir(parents=True, exist_ok=True)
    tags.write_text("spammed\n")
    assert rcpt(server, "alice#lists@bbs.test", "alice#SPAMMED@bbs.test") == [250, 550]
    assert len(server.mailbox(server.alice.number)) == 1


def test_forward_and_local_prefixes_and_forwarding_setting(start):
    server = start()
    assert rcpt(server, "<forward:alice@bbs.test>") == [250]
    [queued] = server.call(server.store().outbound())
    assert queued.recipients == ("alice@elsewhere.example",)
    assert server.mailbox(server.alice.number) == []
    server.call(server.app.users.update(server.alice.number, settings={"forward_email": True}))
    assert rcpt(server, "alice@bbs.test", "<local:alice@bbs.test>") == [250, 250]
    assert len(server.mailbox(server.alice.number)) == 1        # local: kept it here
    assert len(server.call(server.store().outbound())) == 2     # the plain one was forwarded


def test_sub_prefix_with_an_unknown_code_is_refused(start):
    # known codes are posted to the sub: tests/integration/test_mail_extras.py
    server = start()
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=15) as client:
        client.ehlo()
        client.mail("bob@example.org")
        code, text = client.docmd("RCPT", "TO:<sub:NOSUCH@bbs.test>")
    assert code == 550 and text == b"Unknown message sub: NOSUCH"
    assert UNKNOWN_USER.startswith("550 Unknown User")
