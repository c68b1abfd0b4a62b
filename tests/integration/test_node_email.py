"""E-mail and inter-BBS messages for callers: `telnet` and OpenSSH `ssh`
under pexpect against `bbs run`, `smtplib` into the mail server, and the
`bbs mail queue` command for the outbound queue."""
from __future__ import annotations

import email
import email.policy
import smtplib
import sqlite3
from email.message import EmailMessage
from pathlib import Path

import pexpect
import pytest

from tests.integration.test_terminal_server import MAIN_MENU, add_user, logoff, logon, ssh, telnet
from tests.support import BBSProcess, run_bbs, set_ini

HOST = "bbs.test"
EMAIL_MENU = "E-mail "
NEW_MAIL = "You have 1 new e-mail."
READ_PROMPT = "uit: "
SENT_TO_BOB = "E-mail sent to Bob."
QUEUED = "queued for delivery"
FEEDBACK_SENT = "Feedback sent to Sysop."
MSP_ACCEPTED = "+ Message delivered to Bob@127.0.0.1"
MSP_REFUSED = "- Refused by 127.0.0.1: no such user."


@pytest.fixture
def board(instance: Path):
    sbbs = instance / "ctrl" / "sbbs.ini"
    set_ini(sbbs, "BBS", "Options", "ALLOW_SSH")
    set_ini(sbbs, "BBS", "SSHPort", "0")
    set_ini(sbbs, "Mail", "HostName", HOST)
    # SendMail stays off: Internet mail from callers must wait in the queue.
    set_ini(sbbs, "Mail", "Options", "ALLOW_POP3 | NO_SENDMAIL")
    process = BBSProcess(instance).start()   # creates data/ and the sysop (#1)
    add_user(instance, "Alice", "alicepw1", real_name="Alice A", location="Paris")
    add_user(instance, "Bob", "bobpw123", location="Berlin")
    yield process
    if process.proc and process.proc.poll() is None:
        assert process.stop() == 0
    assert "Traceback" not in process.stderr()


def mailbox(root: Path, user: int) -> list[tuple[str, str, int, bytes]]:
    with sqlite3.connect(root / "data" / "mail.db") as db:
        return db.execute("SELECT subject, sender, read, raw FROM messages WHERE user = ? AND deleted = 0 "
                          "ORDER BY id", (user,)).fetchall()


def emails_sent(root: Path, alias: str) -> int:
    with sqlite3.connect(root / "data" / "user.db") as db:
        return db.execute("SELECT emails FROM users WHERE alias = ?", (alias,)).fetchone()[0]


def compose(caller: pexpect.spawn, to: str, subject: str, lines: list[str], *, menu_key: str = "s") -> None:
    """From the e-mail menu: send ``lines`` to ``to`` (the editor saves with /S)."""
    caller.send(menu_key)
    caller.expect("user@host\\): ")
    caller.sendline(to)
    caller.expect("Subject: ")
    caller.sendline(subject)
    caller.expect("saves")
    for line in lines:
        caller.sendline(line)
    caller.sendline("/s")


def test_local_mail_read_reply_and_delete(board: BBSProcess):
    alice = telnet(board.ports["telnet"])
    logon(alice, "Alice", "alicepw1")
    alice.send("e")
    alice.expect(EMAIL_MENU)
    alice.send("s")
    alice.expect("to \\(")
    alice.sendline("nobody-here")
    alice.expect("No such user")
    compose(alice, "3", "Lunch on Friday", ["Shall we meet at noon?", "Café Müller is fine."])
    alice.expect(SENT_TO_BOB)
    alice.expect(EMAIL_MENU)
    alice.send("q")
    alice.expect(MAIN_MENU)
    logoff(alice)

    (subject, sender, read, raw), = mailbox(board.root, 3)
    assert (subject, sender, read) == ("Lunch on Friday", f"Alice@{HOST}", 0)
    stored = email.message_from_bytes(raw, policy=email.policy.default)
    assert stored["From"] == f"Alice <Alice@{HOST}>" and stored["To"] == f"Bob <Bob@{HOST}>"
    assert stored["Message-ID"] and stored["Date"]
    assert stored.get_content_charset() == "utf-8"
    assert stored["Content-Transfer-Encoding"] == "quoted-printable" and raw.isascii()
    assert stored.get_content().replace("\r\n", "\n") == "Shall we meet at noon?\nCafé Müller is fine.\n"
    assert emails_sent(board.root, "Alice") == 1

    bob = ssh(board.ports["ssh"], "Bob")
    bob.expect("assword:")
    bob.sendline("bobpw123")
    bob.expect(NEW_MAIL)
    bob.expect(MAIN_MENU)
    bob.send("e")
    bob.expect(EMAIL_MENU)
    bob.send("r")
    bob.expect("1 new")
    bob.expect("From: .*Alice <Alice@bbs.test>")
    bob.expect("Subj: .*Lunch on Friday")
    bob.expect("Date: ")
    bob.expect("Café Müller is fine.")
    bob.expect(READ_PROMPT)
    bob.send("r")
    bob.expect("To: .*Alice")
    bob.expect("Subject: ")
    bob.sendline("")                              # default: Re: Lunch on Friday
    bob.expect("Quote the message")
    bob.send("y")
    bob.expect(" A> Shall we meet at noon\\?")
    bob.sendline("Noon it is.")
    bob.sendline("/s")
    bob.expect("E-mail sent to Alice.")
    bob.expect("No more e-mail")
    bob.send("r")                                 # read again: now old, delete it
    bob.expect("0 new")
    bob.expect("Lunch on Friday")
    bob.expect(READ_PROMPT)
    bob.send("d")
    bob.expect("Delete this e-mail")
    bob.send("y")
    bob.expect("Deleted")
    bob.expect(EMAIL_MENU)
    bob.send("r")
    bob.expect("You have no e-mail")
    bob.send("q")
    bob.expect(MAIN_MENU)
    logoff(bob)
    assert mailbox(board.root, 3) == []

    alice = telnet(board.ports["telnet"])
    alice.expect("Login: ")
    alice.sendline("Alice")
    alice.expect("Password: ")
    alice.sendline("alicepw1")
    alice.expect(NEW_MAIL)
    alice.expect(MAIN_MENU)
    alice.send("e")
    alice.expect(EMAIL_MENU)
    alice.send("r")
    alice.expect("From: .*Bob <Bob@bbs.test>")
    alice.expect("Subj: .*Re: Lunch on Friday")
    alice.expect(" A> Shall we meet at noon\\?")
    alice.expect("Noon it is.")
    alice.expect(READ_PROMPT)
    alice.send("q")
    alice.expect(EMAIL_MENU)
    alice.send("q")
    logoff(alice)
    reply = email.message_from_bytes(mailbox(board.root, 2)[0][3], policy=email.policy.default)
    assert reply["In-Reply-To"] == stored["Message-ID"] and stored["Message-ID"] in reply["References"]


def test_smtp_mail_shows_up_in_the_callers_mailbox(board: BBSProcess):
    message = EmailMessage()
    message["From"] = "Carol Example <carol@example.org>"
    message["To"] = f"bob@{HOST}"
    message["Subject"] = "Grüße aus Köln"                       # RFC 2047 encoded by smtplib's policy
    message.set_content("Schöne Grüße,\nCarol\n", charset="iso-8859-1")
    message.add_alternative("<p>Sch&ouml;ne Gr&uuml;&szlig;e (HTML)</p>", subtype="html")
    with smtplib.SMTP("127.0.0.1", board.ports["smtp"], timeout=15) as smtp:
        smtp.send_message(message, "carol@example.org", [f"bob@{HOST}"])
    raw = mailbox(board.root, 3)[0][3]
    assert b"iso-8859-1" in raw.lower() and "Grüße".encode() not in raw   # really not UTF-8 on the wire

    bob = telnet(board.ports["telnet"])
    logon(bob, "Bob", "bobpw123")
    bob.send("e")
    bob.expect(EMAIL_MENU)
    bob.send("r")
    bob.expect("From: .*Carol Example <carol@example.org>")
    bob.expect("Subj: .*Grüße aus Köln")
    bob.expect("Schöne Grüße,")
    bob.expect(READ_PROMPT)
    assert "HTML" not in bob.before                                # the text/plain part is shown
    bob.send("r")                                                  # reply goes to the Internet
    bob.expect("To: .*carol@example.org")
    bob.expect("Subject: ")
    bob.sendline("")
    bob.expect("Quote the message")
    bob.send("n")
    bob.sendline("Danke!")
    bob.sendline("/s")
    bob.expect(f"E-mail sent to carol@example.org \\({QUEUED}\\)")
    bob.send("q")
    logoff(bob)
    queue = run_bbs("mail", "queue", "-d", str(board.root)).stdout
    assert "carol@example.org" in queue and "1 message(s) queued." in queue


def test_internet_mail_waits_in_the_outbound_queue(board: BBSProcess):
    alice = telnet(board.ports["telnet"])
    logon(alice, "Alice", "alicepw1")
    alice.send("e")
    alice.expect(EMAIL_MENU)
    alice.send("i")
    alice.expect("Internet address")
    alice.sendline("not an address")
    alice.expect("That is not an e-mail address")
    compose(alice, "dave@example.net", "Hello from the BBS", ["Greetings, Dave."], menu_key="i")
    alice.expect(f"E-mail sent to dave@example.net \\({QUEUED}\\)")
    compose(alice, f"bob@{HOST}", "Local after all", ["Our own host name is local mail."])
    alice.expect(SENT_TO_BOB)
    alice.send("q")
    logoff(alice)
    queue = run_bbs("mail", "queue", "-d", str(board.root)).stdout
    assert "dave@example.net" in queue and f"Alice@{HOST}" in queue and "1 message(s) queued." in queue
    assert [row[0] for row in mailbox(board.root, 3)] == ["Local after all"]
    assert emails_sent(board.root, "Alice") == 2


def test_feedback_reaches_the_sysop(board: BBSProcess):
    bob = telnet(board.ports["telnet"])
    logon(bob, "Bob", "bobpw123")
    bob.send("e")
    bob.expect(EMAIL_MENU)
    bob.send("f")
    bob.expect("To: .*Sysop")
    bob.expect("Subject: ")
    bob.sendline("")                                               # default: Feedback
    bob.expect("saves")
    bob.sendline("The file area needs more ANSI art.")
    bob.sendline("/s")
    bob.expect(FEEDBACK_SENT)
    bob.send("q")
    logoff(bob)
    (subject, sender, read, raw), = mailbox(board.root, 1)
    assert (subject, sender, read) == ("Feedback", f"Bob@{HOST}", 0)
    assert b"The file area needs more ANSI art." in raw


def test_msp_message_from_a_caller_reaches_an_online_user(board: BBSProcess):
    bob = ssh(board.ports["ssh"], "Bob")
    bob.expect("assword:")
    bob.sendline("bobpw123")
    bob.expect(MAIN_MENU)
    alice = telnet(board.ports["telnet"])
    logon(alice, "Alice", "alicepw1")
    port = board.ports["msp"]
    alice.send("b")
    alice.expect("Send a message to")
    alice.sendline("bob@127.0.0.1")                               # no port: 18, not ours
    alice.expect("Message: ")
    alice.sendline("x")
    alice.expect("port 18")
    alice.expect("Not sent|Refused")
    alice.expect(MAIN_MENU)
    alice.send("b")
    alice.expect("Send a message to")
    alice.sendline(f"Bob@127.0.0.1:{port}")
    alice.expect("Message: ")
    alice.sendline("Across the net!")
    alice.expect_exact(MSP_ACCEPTED)
    bob.expect("Telegram from Alice \\(MSP\\)")
    bob.expect("Across the net!")
    alice.send("b")
    alice.expect("Send a message to")
    alice.sendline(f"nobody@127.0.0.1:{port}")
    alice.expect("Message: ")
    alice.sendline("Hello?")
    alice.expect_exact(MSP_REFUSED)
    alice.expect(MAIN_MENU)
    logoff(alice)
    logoff(bob)
