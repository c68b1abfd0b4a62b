"""kill -9 durability: every message that got 250 is in the mailbox after the
process dies, and no half message is ever visible; a message for a mailbox,
the Internet queue and a QWK hub at once is stored whole or not at all."""
from __future__ import annotations

import signal
import smtplib
import sqlite3
import threading

from bbs.mailbox import MailStore
from mail.smtp import STORAGE_FAILED
from tests.integration.mailsupport import MailServer, mail_instance
from tests.support import BBSProcess, run_async

SENDERS = 4
ACCEPTED_BEFORE_KILL = 40
BODY_LINES = 200  # ~15 KB a message: the kill lands mid-DATA or mid-commit too


def message(tag: str) -> bytes:
    body = b"".join(b"%s line %03d ............................................\r\n" % (tag.encode(), n)
                    for n in range(BODY_LINES))
    return b"Subject: " + tag.encode() + b"\r\n\r\n" + body + b"END " + tag.encode() + b"\r\n"


def test_kill_9_never_loses_an_accepted_message_nor_shows_a_half_one(instance):
    bbs = BBSProcess(instance).start()
    port = bbs.ports["smtp"]
    accepted: list[str] = []
    lock = threading.Lock()
    enough = threading.Event()

    def sender(number: int) -> None:
        count = 0
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
                while True:
                    tag = f"s{number}m{count}"
                    count += 1
                    client.sendmail("load@example.org", ["sysop@localhost"], message(tag))
                    with lock:
                        accepted.append(tag)          # 250 received
                        if len(accepted) >= ACCEPTED_BEFORE_KILL:
                            enough.set()
        except (smtplib.SMTPException, OSError):
            return                                     # the server died under us

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(SENDERS)]
    for thread in threads:
        thread.start()
    try:
        assert enough.wait(120), bbs.stderr()
        bbs.proc.send_signal(signal.SIGKILL)           # while the senders keep going
    finally:
        bbs.stop()
        for thread in threads:
            thread.join(60)

    async def stored() -> dict[str, bytes]:
        store = MailStore(instance / "data" / "mail.db")
        try:
            return {m.subject: await store.read(1, m.id) for m in await store.list(1)}
        finally:
            await store.close()

    messages = run_async(stored())
    missing = [tag for tag in accepted if tag not in messages]
    assert not missing, f"accepted but lost: {missing}"
    for tag, raw in messages.items():
        assert raw.endswith(message(tag)), f"{tag} is incomplete"
    assert len(messages) >= len(accepted)


#: Makes the QWK part of an accepted message fail after its mailbox and
#: Internet queue rows were written (an SQLite trigger: a real failure of
#: the real server's transaction, nothing patched).
FAIL_NETWORK_PART = ("CREATE TRIGGER fail_network BEFORE INSERT ON outbound "
                     "WHEN NEW.recipients LIKE '%qwk:%' BEGIN SELECT RAISE(ABORT, 'injected'); END")
MIXED = b"From: bob@example.org\r\nSubject: mixed\r\n\r\nto a mailbox, the Internet and a QWK hub\r\n"
MIXED_RECIPIENTS = ["alice@bbs.test", "carol@far.example", "VERT!rob@bbs.test"]


def test_mixed_recipients_are_one_atomic_store(tmp_path):
    root = mail_instance(tmp_path / "bbs", "ALLOW_POP3")
    (root / "ctrl" / "qwknodes.cfg").write_text("VERT\n")
    (root / "ctrl" / "relay.cfg").write_text("127.0.0.1\n")
    server = MailServer(root).start()
    try:
        alice = server.add_user("Alice")
        db = sqlite3.connect(root / "data" / "mail.db", timeout=30, isolation_level=None)
        db.execute(FAIL_NETWORK_PART)

        def send() -> tuple[int, bytes]:
            with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30) as client:
                client.ehlo()
                client.mail("bob@example.org")
                for address in MIXED_RECIPIENTS:
                    assert client.rcpt(address)[0] == 250, address
                return client.data(MIXED)

        code, text = send()
        assert code == int(STORAGE_FAILED[:3]) and text == STORAGE_FAILED[4:].encode()
        assert server.mailbox(alice.number) == []
        assert db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0
        assert server.call(server.app.mail.outbound()) == []

        db.execute("DROP TRIGGER fail_network")
        db.close()
        assert send()[0] == 250                        # the client's retry
        [info] = server.mailbox(alice.number)
        assert server.read(alice.number, info.id).endswith(MIXED)
        queued = sorted(q.recipients for q in server.call(server.app.mail.outbound()))
        assert queued == [("carol@far.example",), ("qwk:rob@VERT",)]
    finally:
        server.stop()
