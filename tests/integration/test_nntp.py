"""NNTP (RFC 3977) against `bbs run` with a small raw-socket client (nntplib
left the standard library in 3.13): groups, articles, overview, NEWNEWS,
AUTHINFO, POST with the subs' requirements, Guest reading, bad input."""
from __future__ import annotations

import asyncio
import re
import socket
import ssl
from pathlib import Path

import pytest

from bbs.db import Database
from bbs.msgbase import MSG_MIGRATIONS, MessageBase
from tests.integration.test_services import add_user
from tests.support import BBSProcess


class News:
    """Just enough of an NNTP client: status lines and dot-terminated blocks."""

    def __init__(self, port: int, tls: bool = False) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        if tls:
            sock = ssl._create_unverified_context().wrap_socket(sock, server_hostname="localhost")
        self.sock = sock
        self.file = sock.makefile("rwb")
        self.greeting = self.line()

    def line(self) -> str:
        return self.file.readline().decode().rstrip("\r\n")

    def cmd(self, text: str) -> str:
        self.file.write(text.encode() + b"\r\n")
        self.file.flush()
        return self.line()

    def block(self) -> list[str]:
        lines = []
        while (line := self.line()) != ".":
            lines.append(line[1:] if line.startswith("..") else line)
        return lines

    MULTI = {"CAPABILITIES", "HELP", "LIST", "LISTGROUP", "ARTICLE", "HEAD", "BODY", "OVER", "XOVER",
             "NEWNEWS", "NEWGROUPS"}

    def multi(self, text: str) -> tuple[str, list[str]]:
        status = self.cmd(text)
        verb = text.split()[0].upper()
        return status, self.block() if verb in self.MULTI and status[:1] in ("1", "2") else []

    def login(self, user: str, password: str) -> str:
        assert self.cmd(f"AUTHINFO USER {user}") == "381 Password required"
        return self.cmd(f"AUTHINFO PASS {password}")

    def post(self, article: str) -> str:
        status = self.cmd("POST")
        if not status.startswith("340"):
            return status
        for line in article.split("\n"):
            self.file.write((("." + line) if line.startswith(".") else line).encode() + b"\r\n")
        self.file.write(b".\r\n")
        self.file.flush()
        return self.line()

    def close(self) -> None:
        self.cmd("QUIT")
        self.sock.close()


def seed(root: Path) -> None:
    async def main():
        db = Database(root / "data" / "msgs.db", MSG_MIGRATIONS)
        await db.open()
        msgs = MessageBase(db)
        first = await msgs.post("GENERAL", "Arthur", "Where is my towel?", "Has anyone seen it?\n.hidden dot")
        await msgs.post("GENERAL", "Ford", "Re: Where is my towel?", "Check the pub.", reply_to=first.number)
        await msgs.post("SYSOP", "Sysop", "Rules", "Be excellent.")
        await db.close()
    asyncio.run(main())


@pytest.fixture
def news_bbs(instance: Path):
    (instance / "data").mkdir(exist_ok=True)
    add_user(instance, "Zaphod")                  # password "password1", level 10
    seed(instance)
    process = BBSProcess(instance).start()
    yield process
    if process.proc.poll() is None:
        assert process.stop() == 0


def test_reading_needs_a_login_when_there_is_no_guest(news_bbs: BBSProcess):
    news = News(news_bbs.ports["nntp"])
    assert news.greeting.startswith("200 ")
    status, caps = news.multi("CAPABILITIES")
    assert status.startswith("101") and "VERSION 2" in caps and "AUTHINFO USER" in caps
    assert news.cmd("GROUP local.general") == "480 Authentication required"
    assert news.login("zaphod", "wrong") == "481 Authentication failed"
    assert news.cmd("AUTHINFO PASS x") == "482 Authentication commands issued out of sequence"
    assert news.login("zaphod", "password1") == "281 Authentication accepted"
    news.close()


def test_groups_articles_overview_and_navigation(news_bbs: BBSProcess):
    news = News(news_bbs.ports["nntp"])
    news.login("Zaphod", "password1")
    status, active = news.multi("LIST ACTIVE")
    assert status.startswith("215")
    assert "local.general 2 1 y" in active and "local.sysop 1 1 n" in active   # SYSOP: post_ars = SYSOP
    status, groups = news.multi("LIST NEWSGROUPS local.*")
    assert "local.general\tGeneral discussion" in groups and not any(g.startswith("fun.") for g in groups)
    assert news.cmd("GROUP local.general") == "211 2 1 2 local.general"
    assert news.cmd("GROUP no.such.group") == "411 No such newsgroup"
    assert news.cmd("GROUP local.general") == "211 2 1 2 local.general"
    status, article = news.multi("ARTICLE 1")
    first_id = status.split()[2]
    assert re.fullmatch(r"220 1 <[0-9a-f]+@msgbase>", status)
    assert "From: Arthur <Arthur@localhost>" in article and "Subject: Where is my towel?" in article
    assert article[article.index("") + 1:] == ["Has anyone seen it?", ".hidden dot"]
    status, head = news.multi("HEAD 2")
    assert f"References: {first_id}" in head and "" not in head
    assert news.multi(f"BODY {first_id}")[1] == ["Has anyone seen it?", ".hidden dot"]
    assert news.cmd("STAT 99") == "423 No article with that number"
    assert news.cmd("STAT <nope@nowhere>") == "430 No article with that message-id"
    assert news.cmd("STAT 1").startswith("223 1 ")
    assert news.cmd("NEXT").startswith("223 2 ") and news.cmd("NEXT") == "421 No next article in this group"
    assert news.cmd("LAST").startswith("223 1 ")
    status, over = news.multi("OVER 1-")
    assert status.startswith("224") and len(over) == 2
    number, subject, sender, date, msgid, refs, size, lines = over[1].split("\t")
    assert (number, subject, refs, lines) == ("2", "Re: Where is my towel?", first_id, "1")
    assert news.multi("XOVER 2")[1] == [over[1]]
    status, numbers = news.multi("LISTGROUP local.general")
    assert status.startswith("211 2 1 2 local.general") and numbers == ["1", "2"]
    status, ids = news.multi("NEWNEWS local.* 20000101 000000 GMT")
    assert status.startswith("230") and first_id in ids and len(ids) == 3
    assert news.multi("NEWNEWS local.* 20991231 000000")[1] == []
    assert re.fullmatch(r"111 \d{14}", news.cmd("DATE"))
    news.close()


def test_post_follows_the_subs_requirements_and_threads_replies(news_bbs: BBSProcess):
    news = News(news_bbs.ports["nntp"])
    assert news.cmd("POST") == "480 Authentication required"
    news.login("Zaphod", "password1")
    assert news.cmd("GROUP local.general").startswith("211")
    first_id = news.cmd("STAT 1").split()[2]
    reply = (f"Newsgroups: local.general\nSubject: Re: Where is my towel?\nReferences: {first_id}\n"
             "From: spoofed@example.org\n\nIt is on the Heart of Gold.\n.and a dot line")
    assert news.post(reply) == "240 Article received OK"
    assert news.post("Newsgroups: local.sysop\nSubject: Hi\n\nNot allowed.") == \
        "441 Posting to that newsgroup is not permitted"
    assert news.post("Newsgroups: no.such\nSubject: Hi\n\nx") == "441 Posting to that newsgroup is not permitted"
    status, article = news.multi("ARTICLE 3")
    assert "From: Zaphod <Zaphod@localhost>" in article and f"References: {first_id}" in article
    assert article[-2:] == ["It is on the Heart of Gold.", ".and a dot line"]
    news.close()


def test_guest_account_reads_but_cannot_post(news_bbs: BBSProcess):
    add_user(news_bbs.root, "Guest")
    news = News(news_bbs.ports["nntp"])
    assert news.cmd("GROUP local.general") == "211 2 1 2 local.general"
    assert news.cmd("POST") == "440 Posting not permitted"
    news.close()


def test_nntps_and_bad_input(news_bbs: BBSProcess):
    news = News(news_bbs.ports["nntps"], tls=True)
    assert news.greeting.startswith("200 ")
    assert news.login("Zaphod", "password1") == "281 Authentication accepted"
    news.close()
    raw = News(news_bbs.ports["nntp"])
    assert raw.cmd("FROBNICATE") == "500 Unknown command"
    assert raw.cmd("GROUP") == "501 Syntax: GROUP newsgroup"
    assert raw.cmd("X" * 1000) == "501 Command line too long"
    assert raw.cmd("\x00\xff garbage") == "500 Unknown command"
    raw.sock.sendall(b"Y" * 200_000 + b"\r\n")          # past the stream limit: dropped
    raw.sock.close()
    again = News(news_bbs.ports["nntp"])
    assert again.login("Zaphod", "password1") == "281 Authentication accepted"
    again.close()
    assert "Traceback" not in news_bbs.stderr()


def test_a_post_made_over_nntp_is_read_in_a_telnet_session(news_bbs: BBSProcess):
    from tests.integration.test_terminal_server import MAIN_MENU, logon, telnet

    news = News(news_bbs.ports["nntp"])
    news.login("Zaphod", "password1")
    assert news.post("Newsgroups: local.tech\nSubject: Improbability drive notes\n\n"
                     "Posted from a news reader.") == "240 Article received OK"
    news.close()

    async def mark_general_read():                       # so the scan starts with the new post
        db = Database(news_bbs.root / "data" / "msgs.db", MSG_MIGRATIONS)
        await db.open()
        await MessageBase(db).set_last_read(1, "GENERAL", 2)
        await db.close()
    asyncio.run(mark_general_read())
    caller = telnet(news_bbs.ports["telnet"])
    logon(caller, "Zaphod", "password1")
    caller.send("m")
    caller.expect("Messages ")
    caller.send("n")                                     # scan for new messages
    caller.expect("Improbability drive notes")
    caller.expect("Zaphod")
    caller.expect("Posted from a news reader.")
    caller.close()
