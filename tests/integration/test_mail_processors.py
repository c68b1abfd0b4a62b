"""External mail processors (ctrl/mailproc.cfg) with smtplib: tag, spam-flag,
reject, crash and time out, each a tiny script in tmp_path."""
from __future__ import annotations

import logging
import smtplib
import sys
from pathlib import Path

import pytest

from mail.processors import parse_mailproc
from mail.smtp import PROCESSOR_REJECTED
from tests.integration.mailsupport import mail_starter

MESSAGE = b"From: bob@example.org\r\nSubject: Hello\r\n\r\nhello world\r\n"

TAGGER = """\
import os, sys
data = sys.stdin.buffer.read()
env = "%s|%s|%s" % (os.environ["MAIL_SENDER"], os.environ["MAIL_RECIPIENTS"], os.environ["MAIL_CLIENT_IP"])
sys.stdout.buffer.write(b"X-Tagged: " + env.encode() + b"\\r\\n" + data)
"""
SPAM = "import sys; sys.stdin.buffer.read(); sys.exit(1)\n"
REJECT = """\
import sys
data = sys.stdin.buffer.read()
if b"hello world" in data:
    sys.stderr.write("Virus found: Eicar-Test\\nsecond line\\n")
    sys.exit(2)
"""
CRASH = "import sys; sys.stdin.buffer.read(); print('junk'); raise SystemExit(3)\n"
SLEEP = "import time; time.sleep(30)\n"


def script(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    return f"{sys.executable} {path}"


@pytest.fixture
def start(tmp_path):
    """``start(lines, **keys)``: a server whose ctrl/mailproc.cfg holds ``lines``."""
    for generic in mail_starter(tmp_path, "ALLOW_POP3"):
        yield lambda lines, **keys: generic(files={"ctrl/mailproc.cfg": "; processors\n" + "\n".join(lines) + "\n"},
                                            **keys)


def send(server, message: bytes = MESSAGE):
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30) as client:
        client.ehlo()
        client.mail("bob@example.org")
        assert client.rcpt("alice@bbs.test")[0] == 250
        return client.data(message)


def test_shipped_mailproc_cfg_has_no_commands():
    shipped = Path(__file__).resolve().parents[2] / "ctrl" / "mailproc.cfg"
    assert parse_mailproc(shipped.read_text()) == []


def test_parse_mailproc_skips_comments_and_bad_quotes():
    commands = parse_mailproc("; c\n\n/bin/filter -a 'two words'\nbad 'quote\n")
    assert [(c.argv, c.line) for c in commands] == [(("/bin/filter", "-a", "two words"), 3)]


def test_tagging_processor_rewrites_the_message_and_sees_the_envelope(start, tmp_path):
    server = start([script(tmp_path, "tag", TAGGER)])
    assert send(server)[0] == 250
    [info] = server.mailbox(server.alice.number)
    raw = server.read(server.alice.number, info.id)
    assert raw.startswith(b"X-Tagged: bob@example.org|alice@bbs.test|127.0.0.1\r\n")
    assert b"Received: from" in raw and raw.endswith(b"hello world\r\n")
    assert not info.spam


def test_processors_chain_and_exit_1_marks_spam(start, tmp_path):
    server = start([script(tmp_path, "spam", SPAM), script(tmp_path, "tag", TAGGER)])
    assert send(server)[0] == 250
    [info] = server.mailbox(server.alice.number)
    assert info.spam
    assert server.read(server.alice.number, info.id).startswith(b"X-Tagged: ")
    assert "TAGGED" in (server.root / "data" / "spam.log").read_text()


def test_exit_2_rejects_with_first_stderr_line(start, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    server = start([script(tmp_path, "reject", REJECT), script(tmp_path, "tag", TAGGER)])
    reply = send(server)
    expected = PROCESSOR_REJECTED.format(reason="Virus found: Eicar-Test")
    assert reply == (554, expected[4:].encode())
    assert server.mailbox(server.alice.number) == []
    assert "MAIL PROCESSOR" in caplog.text and "REJECTED" in caplog.text
    # The same processor lets other mail through.
    assert send(server, b"Subject: fine\r\n\r\nnothing here\r\n")[0] == 250
    assert len(server.mailbox(server.alice.number)) == 1


def test_crash_missing_and_timeout_accept_unchanged(start, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    server = start([script(tmp_path, "crash", CRASH), str(tmp_path / "no-such-filter"),
                    script(tmp_path, "sleep", SLEEP)], MailProcessorTimeout="0.5")
    assert send(server)[0] == 250
    [info] = server.mailbox(server.alice.number)
    raw = server.read(server.alice.number, info.id)
    assert raw.startswith(b"Return-Path: <bob@example.org>\r\n") and raw.endswith(MESSAGE)
    assert not info.spam
    assert "FAILED (exit status 3)" in caplog.text
    assert "cannot start" in caplog.text
    assert "TIMED OUT after 0.5s" in caplog.text


def test_processors_file_is_reread_when_it_changes(start, tmp_path):
    server = start([])
    assert send(server)[0] == 250
    (server.root / "ctrl" / "mailproc.cfg").write_text(script(tmp_path, "reject", REJECT) + "\n")
    assert send(server)[0] == 554
    assert len(server.mailbox(server.alice.number)) == 1
