"""NewMailNotice: a telegram for each local recipient, unless NO_NOTIFY."""
from __future__ import annotations

import smtplib

from tests.integration.mailsupport import MailServer, mail_instance

MESSAGE = b"From: bob@example.org\r\nSubject: Hi\r\n\r\nHello.\r\n"


def send_and_collect(tmp_path, options: str) -> list:
    server = MailServer(mail_instance(tmp_path / "bbs", options)).start()
    try:
        alice = server.add_user("Alice")
        with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=15) as client:
            assert client.sendmail("bob@example.org", ["alice@bbs.test"], MESSAGE) == {}
        return server.call(server.app.telegrams.unread(alice.number))
    finally:
        server.stop()


def test_new_mail_notice_telegram(tmp_path):
    [telegram] = send_and_collect(tmp_path, "ALLOW_POP3")
    assert telegram.sender == "Mail Server" and telegram.text == "New e-mail from <bob@example.org>\r\n"


def test_no_notify_sends_no_telegram(tmp_path):
    assert send_and_collect(tmp_path, "ALLOW_POP3 | NO_NOTIFY") == []


def test_debug_rx_header_and_body_log_the_received_message(tmp_path, caplog):
    import logging

    caplog.set_level(logging.DEBUG, logger="mail")
    send_and_collect(tmp_path, "ALLOW_POP3 | DEBUG_RX_HEADER")
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.endswith("RX header: Subject: Hi") for line in lines)
    assert not any("RX body:" in line for line in lines)
    caplog.clear()
    send_and_collect(tmp_path / "2", "ALLOW_POP3 | DEBUG_RX_BODY")
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.endswith("RX body: Hello.") for line in lines)
    assert not any("RX header:" in line for line in lines)
