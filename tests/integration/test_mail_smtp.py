"""SMTP, Submission and SMTPS with real clients (smtplib, swaks, raw sockets)
against the whole App on 127.0.0.1: local delivery, relay matrix, AUTH (and
each aiosmtpd trap of STYLE.md), limits, bad input."""
from __future__ import annotations

import logging
import shutil
import smtplib
import socket
import subprocess

import pytest

from mail.smtp import (MAILBOX_FULL, RELAY_DENIED, RELAY_NEEDS_AUTH, TOO_MANY_RECIPIENTS,
                       UNKNOWN_USER)
from tests.integration.mailsupport import PASSWORD, client_tls, mail_starter

MESSAGE = b"From: bob@example.org\r\nSubject: Hello\r\n\r\nHi Alice.\r\n.leading dot\r\n"
TIMEOUT = 15


def code_text(reply: str) -> tuple[int, bytes]:
    code, _, text = reply.partition(" ")
    return int(code), text.encode()


@pytest.fixture
def start(tmp_path):
    yield from mail_starter(tmp_path, "ALLOW_POP3 | USE_SUBMISSION_PORT | TLS_SUBMISSION | TLS_POP3",
                            real_name="Alice Smith")


def smtp(server, service="smtp"):
    return smtplib.SMTP("127.0.0.1", server.ports[service], timeout=TIMEOUT)


def test_local_delivery_by_alias_and_real_name_is_stored_with_trace_headers(start):
    server = start()
    with smtp(server) as client:
        refused = client.sendmail("bob@example.org", ["alice@bbs.test", "Alice.Smith@BBS.TEST."], MESSAGE)
    assert refused == {}
    [info] = server.mailbox(server.alice.number)        # two addresses, one user: one copy
    raw = server.read(server.alice.number, info.id)
    assert raw.startswith(b"Return-Path: <bob@example.org>\r\nReceived: from ")
    assert raw.endswith(MESSAGE) and info.subject == "Hello" and info.sender == "bob@example.org"


def test_unknown_local_user_is_refused(start):
    server = start()
    with smtp(server) as client:
        client.ehlo()
        client.mail("bob@example.org")
        assert client.rcpt("nobody@bbs.test") == code_text(UNKNOWN_USER.format(name="nobody"))


RELAY_PROBES = [
    "victim@example.com",
    "victim%example.com@bbs.test",        # percent hack
    "example.com!victim@bbs.test",        # bang path
    '"victim@example.com"@bbs.test',      # quoted local part
    "@bbs.test:victim@example.com",       # source route (RFC 5321 3.6.1)
    "victim@example.com.",                # trailing dot
    "victim@[192.0.2.1]",                 # address literal, not ours
    "victim@bbs.test.example.com",        # our name as a prefix
]


@pytest.mark.parametrize("probe", RELAY_PROBES)
def test_relay_attempts_are_refused_and_logged(start, caplog, probe):
    caplog.set_level(logging.INFO)
    server = start()
    with smtp(server) as client:
        client.ehlo()
        client.mail("spammer@example.net")
        assert client.rcpt(f"<{probe}>") == code_text(RELAY_DENIED)
        client.rset()
    shown = probe.split(":", 1)[1] if probe.startswith("@") else probe
    assert (f"!SMTP ILLEGAL RELAY ATTEMPT from <spammer@example.net> [127.0.0.1] to <{shown}>"
            in caplog.text)
    assert server.call(server.store().outbound()) == []
    assert "Relay attempt" in (server.root / "data" / "spam.log").read_text()


def test_allow_relay_needs_authentication(start):
    server = start(options="USE_SUBMISSION_PORT | ALLOW_RELAY")
    with smtp(server, "submission") as client:
        client.ehlo()
        client.mail("alice@bbs.test")
        assert client.rcpt("friend@example.com") == code_text(RELAY_NEEDS_AUTH)
        client.rset()
        client.starttls(context=client_tls())
        client.login("Alice", PASSWORD)
        assert client.sendmail("alice@bbs.test", ["friend@example.com", "alice@bbs.test"], MESSAGE) == {}
        client.mail("alice@bbs.test")                 # tricky forms stay closed for relay users too
        assert client.rcpt("x%example.com@bbs.test")[0] == 550
    [queued] = server.call(server.store().outbound())
    assert queued.recipients == ("friend@example.com",) and queued.raw.endswith(MESSAGE)
    assert len(server.mailbox(server.alice.number)) == 1


def test_without_allow_relay_even_authenticated_users_may_not_relay(start):
    server = start()
    with smtp(server, "submission") as client:
        client.starttls(context=client_tls())
        client.login("Alice", PASSWORD)
        client.mail("alice@bbs.test")
        assert client.rcpt("friend@example.com") == code_text(RELAY_DENIED)


def test_relay_cfg_lets_listed_addresses_relay(start):
    server = start(files={"ctrl/relay.cfg": "127.0.0.0/8\n"})
    with smtp(server) as client:
        assert client.sendmail("app@bbs.test", ["friend@example.com"], MESSAGE) == {}
    assert len(server.call(server.store().outbound())) == 1


def test_smtp_auth_via_ip_after_a_pop3_logon(start):
    import poplib
    server = start(options="ALLOW_POP3 | ALLOW_RELAY | SMTP_AUTH_VIA_IP")
    with smtp(server) as client:
        client.ehlo()
        client.mail("alice@bbs.test")
        assert client.rcpt("friend@example.com")[0] == 553
    pop = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=TIMEOUT)
    pop.user("Alice")
    pop.pass_(PASSWORD)
    pop.quit()
    with smtp(server) as client:
        assert client.sendmail("alice@bbs.test", ["friend@example.com"], MESSAGE) == {}


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_auth_each_mechanism_after_starttls(start, mechanism):
    server = start(AllowCramMD5="true")
    with smtp(server, "submission") as client:
        client.ehlo()
        assert "auth" not in client.esmtp_features        # not offered in clear text
        client.starttls(context=client_tls())
        client.ehlo()
        assert mechanism in client.esmtp_features["auth"].split()
        client.user, client.password = "Alice", PASSWORD
        method = {"PLAIN": client.auth_plain, "LOGIN": client.auth_login, "CRAM-MD5": client.auth_cram_md5}
        assert client.auth(mechanism, method[mechanism], initial_response_ok=False)[0] == 235


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_wrong_password_is_refused_promptly_for_each_mechanism(start, mechanism):
    # Traps: an async authenticator would accept any password; success=False
    # with handled=True would leave the client waiting for a reply.
    server = start(AllowCramMD5="true")
    with smtplib.SMTP_SSL("127.0.0.1", server.ports["smtps"], context=client_tls(), timeout=TIMEOUT) as client:
        client.ehlo()
        client.user, client.password = "Alice", "wrong-password"
        method = {"PLAIN": client.auth_plain, "LOGIN": client.auth_login, "CRAM-MD5": client.auth_cram_md5}
        with pytest.raises(smtplib.SMTPAuthenticationError) as err:
            client.auth(mechanism, method[mechanism])
        assert err.value.smtp_code == 535
        client.mail("alice@bbs.test")                   # still not authenticated: no relay
        assert client.rcpt("friend@example.com")[0] in (550, 553)


def test_cram_md5_is_not_offered_unless_enabled(start):
    server = start()
    with smtplib.SMTP_SSL("127.0.0.1", server.ports["smtps"], context=client_tls(), timeout=TIMEOUT) as client:
        client.ehlo()
        assert client.esmtp_features["auth"].split() == ["LOGIN", "PLAIN"]


def test_implicit_tls_offers_auth_without_starttls(start):
    server = start()
    with smtplib.SMTP_SSL("127.0.0.1", server.ports["smtps"], context=client_tls(), timeout=TIMEOUT) as client:
        client.ehlo()
        assert "starttls" not in client.esmtp_features
        assert client.login("Alice", PASSWORD)[0] == 235
        assert client.sendmail("alice@bbs.test", ["alice@bbs.test"], MESSAGE) == {}
    raw = server.read(server.alice.number, server.mailbox(server.alice.number)[0].id)
    assert b"with ESMTPSA" in raw


def test_auth_without_tls_when_configured(start):
    server = start(AuthWithoutTLS="true")
    with smtp(server) as client:
        assert client.login("alice", PASSWORD)[0] == 235


def test_max_recipients(start):
    server = start(MaxRecipients="2", AllowCramMD5="false")
    server.add_user("Carol")
    with smtp(server) as client:
        client.ehlo()
        client.mail("bob@example.org")
        assert client.rcpt("alice@bbs.test")[0] == 250
        assert client.rcpt("carol@bbs.test")[0] == 250
        assert client.rcpt("sysop@bbs.test") == code_text(TOO_MANY_RECIPIENTS)


def test_max_msg_size_is_advertised_and_enforced(start):
    server = start(MaxMsgSize="2K")
    with smtp(server) as client:
        client.ehlo()
        assert client.esmtp_features["size"] == "2048"
        assert client.mail("bob@example.org", ["SIZE=4096"])[0] == 552
        client.rset()
        assert client.mail("bob@example.org")[0] == 250      # no SIZE given: checked during DATA
        assert client.rcpt("alice@bbs.test")[0] == 250
        assert client.data(MESSAGE + (b"x" * 70 + b"\r\n") * 60)[0] == 552
        assert client.noop()[0] == 250
    assert server.mailbox(server.alice.number) == []


def test_max_msgs_waiting(start):
    server = start(MaxMsgsWaiting="1")
    with smtp(server) as client:
        assert client.sendmail("bob@example.org", ["alice@bbs.test"], MESSAGE) == {}
        client.mail("bob@example.org")
        assert client.rcpt("alice@bbs.test") == code_text(MAILBOX_FULL.format(name="alice"))


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks not installed (.ci/run installs it)")
def test_swaks_submission_with_starttls_and_auth(start):
    server = start()
    result = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(server.ports["submission"]), "--tls",
         "--auth", "LOGIN", "--auth-user", "Alice", "--auth-password", PASSWORD,
         "--from", "alice@bbs.test", "--to", "alice@bbs.test", "--header", "Subject: via swaks",
         "--body", "swaks body", "--timeout", "15"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "<~  250 OK" in result.stdout
    [info] = server.mailbox(server.alice.number)
    assert info.subject == "via swaks"


def raw_session(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    assert sock.recv(512).startswith(b"220 ")
    return sock


def read_reply(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n") or data.split(b"\r\n")[-2][3:4] == b"-":
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_client_vanishing_mid_data_stores_nothing(start):
    server = start()
    sock = raw_session(server.ports["smtp"])
    for line in (b"HELO x\r\n", b"MAIL FROM:<bob@example.org>\r\n", b"RCPT TO:<alice@bbs.test>\r\n",
                 b"DATA\r\n"):
        sock.sendall(line)
        assert read_reply(sock)[:1] in (b"2", b"3")
    sock.sendall(b"Subject: half\r\n\r\nhalf a message")
    sock.close()
    with smtp(server) as client:                      # the server is still up
        assert client.noop()[0] == 250
    assert server.mailbox(server.alice.number) == []


def test_junk_long_lines_and_nul_bytes_keep_the_server_up(start):
    server = start()
    sock = raw_session(server.ports["smtp"])
    try:
        _junk(server, sock)
    finally:
        sock.close()
    [info] = server.mailbox(server.alice.number)
    assert b"binary \x00 body" in server.read(server.alice.number, info.id)


def _junk(server, sock):
    sock.sendall(b"EHLO x\r\nJUNK\r\n\x00\x00\r\nMAIL FROM:<a\x00b@example.org>\r\n")
    replies = b""
    while replies.count(b"\r\n") < 8:                  # 5 EHLO lines, then one reply each
        replies += sock.recv(65536)
    lines = replies.split(b"\r\n")
    assert lines[5].startswith(b"500") and lines[6].startswith(b"500") and lines[7].startswith(b"553")
    sock.sendall(b"X" * (10 * 1024 * 1024) + b"\r\n")   # a 10 MB line
    assert b"500" in read_reply(sock)
    sock.sendall(b"RSET\r\nMAIL FROM:<bob@example.org>\r\nRCPT TO:<alice@bbs.test>\r\nDATA\r\n")
    replies = b""
    while b"354" not in replies:
        replies += sock.recv(65536)
    sock.sendall(b"Subject: nul\r\n\r\nbinary \x00 body\r\n.\r\n")
    assert read_reply(sock).startswith(b"250")
    sock.sendall(b"QUIT\r\n")
