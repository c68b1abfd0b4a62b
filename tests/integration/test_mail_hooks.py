"""Python hooks in ctrl/mailproc.cfg (``python: module:function``) with
smtplib: rewrite, spam, reject, chained with a command, broken hooks, a
hook that blocks (the server still answers) and one that times out. The
hook modules live in the instance directory, as a sysop would put them."""
from __future__ import annotations

import logging
import smtplib
import sys
import threading
import time
import uuid

import pytest

from mail.smtp import PROCESSOR_REJECTED
from tests.integration.mailsupport import MailServer, mail_instance
from tests.integration.test_mail_processors import TAGGER, script

MESSAGE = b"From: bob@example.org\r\nSubject: Hello\r\n\r\nhello world\r\n"
TIMEOUT = 30

HOOKS = '''\
import os, time
from mail.hooks import Decision

MARKS = {marks!r}

def tag(message):
    env = "%s|%s|%s" % (message.sender, ",".join(message.recipients), message.client_ip)
    subject = message.parsed()["Subject"]
    return Decision.accept(("X-Hooked: %s %s\\r\\n" % (env, subject)).encode() + message.raw)

def spam(message):
    return Decision.spam()

def reject(message):
    if b"hello world" in message.raw:
        return Decision.reject("Virus found: Eicar-Test\\nsecond line")
    return None

def boom(message):
    raise ValueError("broken filter")

def wrong(message):
    return "yes"

async def coro(message):
    return None

def slow(message):
    open(os.path.join(MARKS, "started"), "w").close()
    time.sleep({slow})
    open(os.path.join(MARKS, "done"), "w").close()
'''


@pytest.fixture
def start(tmp_path):
    servers, modules = [], []

    def _start(lines: list[str], slow: float = 2.0, **keys):
        root = mail_instance(tmp_path / f"bbs{len(servers)}", "ALLOW_POP3", **keys)
        # Modules are imported once per process: a fresh name per server.
        name = f"bbshooks_{uuid.uuid4().hex[:10]}"
        modules.append(name)
        (root / "marks").mkdir()
        package = root / name
        package.mkdir()
        (package / "__init__.py").write_text("")
        (package / "filters.py").write_text(HOOKS.format(marks=str(root / "marks"), slow=slow))
        text = "\n".join(line.replace("HOOKS", f"{name}.filters") for line in lines)
        (root / "ctrl" / "mailproc.cfg").write_text("; processors\n" + text + "\n")
        server = MailServer(root).start()
        servers.append(server)
        server.alice = server.add_user("Alice")
        server.marks = root / "marks"
        return server

    yield _start
    for server in servers:
        server.stop()
    for name in modules:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]


def send(server, message: bytes = MESSAGE):
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=TIMEOUT) as client:
        client.ehlo()
        client.mail("bob@example.org")
        assert client.rcpt("alice@bbs.test")[0] == 250
        return client.data(message)


def stored(server) -> tuple[bytes, bool]:
    [info] = server.mailbox(server.alice.number)
    return server.read(server.alice.number, info.id), info.spam


def test_hook_rewrites_the_message_and_sees_the_envelope(start):
    server = start(["python: HOOKS:tag"])
    assert send(server)[0] == 250
    raw, spam = stored(server)
    assert raw.startswith(b"X-Hooked: bob@example.org|alice@bbs.test|127.0.0.1 Hello\r\n")
    assert b"Received: from" in raw and raw.endswith(b"hello world\r\n") and not spam


def test_hook_marks_spam_and_chains_with_a_command(start, tmp_path):
    server = start(["python:HOOKS:spam", script(tmp_path, "tag", TAGGER)])
    assert send(server)[0] == 250
    raw, spam = stored(server)
    assert spam and raw.startswith(b"X-Tagged: ")
    assert "TAGGED" in (server.root / "data" / "spam.log").read_text()


def test_hook_rejects_with_its_reason_and_stops_the_chain(start, caplog):
    caplog.set_level(logging.INFO)
    server = start(["python: HOOKS:reject", "python: HOOKS:tag"])
    expected = PROCESSOR_REJECTED.format(reason="Virus found: Eicar-Test")
    assert send(server) == (554, expected[4:].encode())
    assert server.mailbox(server.alice.number) == []
    assert "REJECTED message: Virus found: Eicar-Test" in caplog.text
    assert send(server, b"Subject: fine\r\n\r\nnothing here\r\n")[0] == 250
    assert stored(server)[0].startswith(b"X-Hooked: ")       # the chain went on to tag


def test_broken_hooks_are_logged_and_the_message_accepted_unchanged(start, caplog):
    caplog.set_level(logging.INFO)
    server = start(["python: HOOKS:boom", "python: HOOKS:wrong", "python: HOOKS:coro",
                    "python: HOOKS:missing", "python: no_such_module_here:check",
                    "python: not a target", "python: HOOKS:spam"])
    assert send(server)[0] == 250
    raw, spam = stored(server)
    assert raw.startswith(b"Return-Path: <bob@example.org>\r\n") and raw.endswith(MESSAGE)
    assert spam                                              # the good hook after them ran
    text = caplog.text
    assert "FAILED: raised ValueError: broken filter (filters.py:" in text
    assert "FAILED: returned str, not None or a mail.hooks.Decision" in text
    assert "is async; a hook is a plain function" in text
    assert "has no missing" in text
    assert "cannot import no_such_module_here: ModuleNotFoundError" in text
    assert "mailproc.cfg:7: mail processor line ignored: expected python:" in text


def test_a_blocking_hook_does_not_block_the_server(start):
    server = start(["python: HOOKS:slow"], slow=3.0)
    result: list = []
    sender = threading.Thread(target=lambda: result.append(send(server)))
    sender.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (server.marks / "started").exists():
            assert time.monotonic() < deadline, "the hook never ran"
            time.sleep(0.02)
        with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=TIMEOUT) as other:
            assert other.noop()[0] == 250                      # answered while the hook sleeps
        assert not (server.marks / "done").exists()
    finally:
        sender.join(TIMEOUT)
    assert result and result[0][0] == 250 and (server.marks / "done").exists()
    assert stored(server)[0].endswith(MESSAGE)


def test_a_hook_over_the_time_out_is_skipped(start, caplog):
    caplog.set_level(logging.INFO)
    server = start(["python: HOOKS:slow", "python: HOOKS:tag"], slow=2.0, MailProcessorTimeout="0.3")
    assert send(server)[0] == 250
    assert not (server.marks / "done").exists()               # 250 came before the hook ended
    assert "TIMED OUT after 0.3s" in caplog.text
    assert stored(server)[0].startswith(b"X-Hooked: ")       # the next processor still ran
