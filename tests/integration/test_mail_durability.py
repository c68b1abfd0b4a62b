"""kill -9 durability: every message that got 250 is in the mailbox after the
process dies, and no half message is ever visible."""
from __future__ import annotations

import signal
import smtplib
import threading

from bbs.mailbox import MailStore
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
