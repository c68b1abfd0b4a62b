"""Synchronet's special recipients and verbs against the whole App: ``sub:``
posts, SEND/SAML/SOML telegrams, KILL_READ_SPAM, QWK bang paths and FidoNet
netmail, driven with smtplib, poplib and a raw socket."""
from __future__ import annotations

import poplib
import smtplib
import socket
import time

import pytest

from bbs.errors import ConfigError
from bbs.nodetable import NodeStatus
from mail.smtp import NOT_A_USER, RELAY_DENIED, UNKNOWN_SUB, UNKNOWN_USER
from tests.integration.mailsupport import MailServer, PASSWORD, mail_instance, mail_starter

TIMEOUT = 15
#: A MIME message whose text part is quoted-printable and whose From has a display name.
MIME_MESSAGE = (b"From: Bob Sender <bob@example.org>\r\n"
                b"Subject: =?utf-8?q?Caf=C3=A9_news?=\r\n"
                b"MIME-Version: 1.0\r\n"
                b'Content-Type: multipart/alternative; boundary="b1"\r\n\r\n'
                b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
                b"Caf=C3=A9 opens at noon.\r\n"
                b"--b1\r\nContent-Type: text/html\r\n\r\n<p>HTML version</p>\r\n--b1--\r\n")
PLAIN = b"From: bob@example.org\r\nSubject: ping\r\n\r\nAre you there?\r\n"


@pytest.fixture
def start(tmp_path):
    yield from mail_starter(tmp_path)


def rcpt(server, address, message=PLAIN):
    """MAIL, one RCPT (docmd: smtplib would mangle ``sub:x@host``), DATA if accepted."""
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=TIMEOUT) as client:
        client.ehlo()
        client.mail("bob@example.org")
        reply = client.docmd("RCPT", f"TO:<{address}>")
        if reply[0] == 250:
            assert client.data(message)[0] == 250
        return reply


def reply_text(constant: str, **fields) -> tuple[int, bytes]:
    text = constant.format(**fields)
    return int(text[:3]), text[4:].encode()


# -- sub:<code> --------------------------------------------------------------

def test_sub_prefix_posts_decoded_text_body(start):
    server = start()
    assert rcpt(server, "sub:GENERAL@bbs.test", MIME_MESSAGE)[0] == 250
    [post] = server.call(server.app.msgs.list("GENERAL"))
    assert post.from_name == "Bob Sender"
    assert post.subject == "Café news"
    assert post.body.strip() == "Café opens at noon."
    assert server.mailbox(server.alice.number) == []


def test_sub_via_alias_cfg_and_unknown_sub(start):
    server = start(files={"ctrl/alias.cfg": "cnnreport  sub:TECH\nbroken  sub:NOSUCH\n"})
    assert rcpt(server, "cnnreport@bbs.test")[0] == 250
    [post] = server.call(server.app.msgs.list("TECH"))
    assert (post.from_name, post.subject, post.body) == ("bob@example.org", "ping", "Are you there?\n")
    assert rcpt(server, "sub:NOSUCH@bbs.test") == reply_text(UNKNOWN_SUB, code="NOSUCH")
    assert rcpt(server, "broken@bbs.test") == reply_text(UNKNOWN_SUB, code="NOSUCH")
    assert server.call(server.app.msgs.list("NOSUCH")) == []


# -- SEND / SAML / SOML ------------------------------------------------------

def transaction(server, verb, recipients, message=PLAIN):
    """A raw SMTP session: ``verb FROM:``, RCPTs, DATA; returns the replies."""
    with socket.create_connection(("127.0.0.1", server.ports["smtp"]), timeout=TIMEOUT) as sock:
        stream = sock.makefile("rwb")

        def command(line: str) -> str:
            stream.write(line.encode() + b"\r\n")
            stream.flush()
            return read()

        def read() -> str:
            while True:
                line = stream.readline().decode()
                if line[3:4] != "-":
                    return line.rstrip("\r\n")

        assert read().startswith("220 ")
        assert command("HELO client.test").startswith("250")
        replies = [command(f"{verb} FROM:<bob@example.org>")]
        replies += [command(f"RCPT TO:<{r}>") for r in recipients]
        if any(r.startswith("250") for r in replies[1:]):
            assert command("DATA").startswith("354")
            stream.write(message.replace(b"\r\n.", b"\r\n..") + b".\r\n")
            stream.flush()
            replies.append(read())
        command("QUIT")
        return replies


def telegrams(server, user):
    return server.call(server.app.telegrams.unread(user.number))


def test_send_is_telegram_only(start):
    server = start()
    replies = transaction(server, "SEND", ["alice@bbs.test"])
    assert replies == ["250 OK", "250 OK", "250 OK"]
    [telegram] = telegrams(server, server.alice)
    assert telegram.sender == "bob@example.org"
    assert "Are you there?" in telegram.text
    assert server.mailbox(server.alice.number) == []


def test_saml_is_telegram_and_mailbox_and_only_users(start):
    server = start()
    replies = transaction(server, "SAML", ["sub:GENERAL@bbs.test", "alice@bbs.test"])
    assert replies[1] == NOT_A_USER.format(name="sub:GENERAL@bbs.test")
    assert replies[2:] == ["250 OK", "250 OK"]
    assert len(telegrams(server, server.alice)) == 1
    [info] = server.mailbox(server.alice.number)
    assert info.subject == "ping"


def test_soml_telegram_when_online_else_mailbox(start):
    server = start()
    bob = server.add_user("Bobby")

    async def log_on():
        record = server.app.nodes.allocate("telnet", "127.0.0.1")
        server.app.nodes.update(record.number, status=NodeStatus.INUSE, user="Bobby",
                                user_number=bob.number)

    server.call(log_on())
    assert transaction(server, "SOML", ["alice@bbs.test", "bobby@bbs.test"])[-1] == "250 OK"
    assert telegrams(server, server.alice) == []
    assert [m.subject for m in server.mailbox(server.alice.number)] == ["ping"]
    assert len(telegrams(server, bob)) == 1
    assert server.mailbox(bob.number) == []


def test_mail_after_rset_is_plain_mail_again(start):
    server = start()
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=TIMEOUT) as client:
        client.ehlo()
        assert client.docmd("SEND", "FROM:<bob@example.org>")[0] == 250
        client.rset()
        assert client.sendmail("bob@example.org", ["alice@bbs.test"], PLAIN) == {}
    # only the NewMailNotice of ordinary mail, no instant message
    assert [t.sender for t in telegrams(server, server.alice)] == ["Mail Server"]
    assert len(server.mailbox(server.alice.number)) == 1


# -- KILL_READ_SPAM ----------------------------------------------------------

def spam_and_ham(server):
    store = server.store()
    try:
        server.call(store.deliver([server.alice.number], b"Subject: spam\r\n\r\nbuy\r\n", spam=True))
        server.call(store.deliver([server.alice.number], b"Subject: ham\r\n\r\nhi\r\n"))
    finally:
        server.call(store.close())


def retrieve_all_and_rset(server):
    pop = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=TIMEOUT)
    pop.user("Alice")
    pop.pass_(PASSWORD)
    for number in (1, 2):
        pop.retr(number)
    pop.rset()
    pop.quit()


@pytest.mark.parametrize("options,left", [("ALLOW_POP3 | KILL_READ_SPAM", ["ham"]),
                                          ("ALLOW_POP3", ["spam", "ham"])])
def test_kill_read_spam(start, options, left):
    server = start(options)
    spam_and_ham(server)
    retrieve_all_and_rset(server)
    assert [m.subject for m in server.mailbox(server.alice.number)] == left


def test_kill_read_spam_keeps_unread_spam(start):
    server = start("ALLOW_POP3 | KILL_READ_SPAM")
    spam_and_ham(server)
    pop = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=TIMEOUT)
    pop.user("Alice")
    pop.pass_(PASSWORD)
    pop.retr(2)
    pop.quit()
    assert [m.subject for m in server.mailbox(server.alice.number)] == ["spam", "ham"]


# -- QWK bang paths ----------------------------------------------------------

def test_qwk_route_is_queued_and_unknown_ids_refused(start):
    server = start(files={"ctrl/qwknodes.cfg": "; QWK nodes\nVERT\n"})
    assert rcpt(server, "vert!digital.man@bbs.test")[0] == 250
    assert rcpt(server, "VERT/CUDDLY!rob@bbs.test")[0] == 250
    assert rcpt(server, "DOVE!someone@bbs.test") == reply_text(RELAY_DENIED)
    assert rcpt(server, "VERT!a!b@bbs.test") == reply_text(RELAY_DENIED)
    queued = server.call(server.app.mail.outbound())
    assert [q.recipients for q in queued] == [("qwk:digital.man@VERT",), ("qwk:rob@VERT/CUDDLY",)]


def test_qwk_route_via_alias(start):
    server = start(files={"ctrl/qwknodes.cfg": "VERT\n", "ctrl/alias.cfg": "rob  VERT!rob\n"})
    assert rcpt(server, "rob@bbs.test")[0] == 250
    [queued] = server.call(server.app.mail.outbound())
    assert queued.recipients == ("qwk:rob@VERT",)


# -- FidoNet netmail ---------------------------------------------------------

def test_fidonet_netmail_queued_when_configured(start):
    server = start(FidoNetAddress="1:103/100")
    assert rcpt(server, "rob.swindell@f705.n103.z1.fidonet")[0] == 250
    assert rcpt(server, "sysop@p2.f1.n2.z3.fidonet")[0] == 250
    assert rcpt(server, "x@f1.n2.fidonet") == reply_text(RELAY_DENIED)
    queued = server.call(server.app.mail.outbound())
    assert [q.recipients for q in queued] == [("fidonet:rob swindell@1:103/705",),
                                              ("fidonet:sysop@3:2/1.2",)]


def test_fidonet_refused_without_address(start):
    server = start()
    address = "rob.swindell@f705.n103.z1.fidonet"
    assert rcpt(server, address) == reply_text(UNKNOWN_USER, name=address)
    assert server.call(server.app.mail.outbound()) == []


def test_bad_fidonet_address_is_a_located_config_error(tmp_path):
    from bbs.instance import load_config

    root = mail_instance(tmp_path / "bbs", FidoNetAddress="1:103")
    with pytest.raises(ConfigError, match=r"sbbs\.ini:\d+: \[Mail\] FidoNetAddress"):
        load_config(root)


def test_sendmail_leaves_network_mail_for_its_hub(tmp_path):
    # SendMail on; its DNS is a closed loopback port, so the Internet message
    # is tried (and deferred) while the QWK one must never be claimed.
    root = mail_instance(tmp_path / "bbs", "ALLOW_POP3", sendmail=True)
    (root / "ctrl" / "qwknodes.cfg").write_text("VERT\n")
    (root / "ctrl" / "relay.cfg").write_text("127.0.0.1\n")
    server = MailServer(root).start()
    try:
        assert rcpt(server, "VERT!rob@bbs.test")[0] == 250
        assert rcpt(server, "someone@far.example")[0] == 250
        deadline = time.monotonic() + 20
        while True:
            queued = {q.recipients[0]: q for q in server.call(server.app.mail.outbound())}
            internet = queued["someone@far.example"]
            if internet.in_transit or internet.attempts >= 1:
                break
            assert time.monotonic() < deadline, "SendMail never tried the Internet message"
            time.sleep(0.05)
        time.sleep(0.3)  # the same scan saw both; give a wrong claim time to land
        queued = {q.recipients[0]: q for q in server.call(server.app.mail.outbound())}
        network = queued["qwk:rob@VERT"]
        assert (network.attempts, network.in_transit, network.last_error) == (0, False, "")
    finally:
        server.stop()


@pytest.mark.parametrize("address", ["VERT!rob%evil.example@bbs.test", '"VERT!rob"@bbs.test',
                                     "VERT!rob@elsewhere.example"])
def test_qwk_lookalikes_stay_relay_attempts(start, address):
    server = start(files={"ctrl/qwknodes.cfg": "VERT\n"})
    assert rcpt(server, address) == reply_text(RELAY_DENIED)
    assert server.call(server.app.mail.outbound()) == []
