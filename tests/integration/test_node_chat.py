"""Multinode chat and paging the sysop: two (or three) `telnet` callers under
pexpect against `bbs run`."""
from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pexpect
import pytest

from bbs.db import Database
from bbs.users import USER_MIGRATIONS, UserBase
from tests.integration.test_terminal_server import LOGIN, MAIN_MENU, PASSWORD, add_user, logoff, logon, telnet
from tests.support import BBSProcess

CHAT_MENU = "Chat menu"
CHAT_PROMPT = "Chat> "
LEFT_CHAT = "You have left the chat."
PAGE_REASON = "Reason for paging the sysop: "


@pytest.fixture
def board(instance: Path):
    process = BBSProcess(instance).start()   # creates data/ and the sysop (#1)
    add_user(instance, "Alice", "alicepw1", real_name="Alice A", location="Paris")
    add_user(instance, "Bob", "bobpw123", location="Berlin")
    yield process
    if process.proc and process.proc.poll() is None:
        assert process.stop() == 0
    assert "Traceback" not in process.stderr()


def set_password(root: Path, alias: str, password: str) -> None:
    async def main():
        db = Database(root / "data" / "user.db", USER_MIGRATIONS)
        await db.open()
        users = UserBase(db)
        await users.set_password((await users.find(alias)).number, password)
        await db.close()
    asyncio.run(main())


def telegrams(root: Path) -> list[tuple[int, str, str]]:
    with sqlite3.connect(root / "data" / "telegram.db") as db:
        return db.execute("SELECT to_number, sender, text FROM telegrams ORDER BY id").fetchall()


def user_number(root: Path, alias: str) -> int:
    with sqlite3.connect(root / "data" / "user.db") as db:
        return db.execute("SELECT number FROM users WHERE alias = ?", (alias,)).fetchone()[0]


def join_chat(caller: pexpect.spawn) -> None:
    caller.send("c")
    caller.expect(CHAT_MENU)
    caller.send("j")
    caller.expect("Multinode chat")


def test_two_callers_chat_and_see_each_other(board: BBSProcess):
    alice = telnet(board.ports["telnet"])
    logon(alice, "Alice", "alicepw1")             # node 1
    bob = telnet(board.ports["telnet"])
    logon(bob, "Bob", "bobpw123")                 # node 2
    join_chat(alice)
    alice.expect("Nobody else is here yet")
    alice.expect(CHAT_PROMPT)
    join_chat(bob)
    bob.expect("In the chat:")
    bob.expect(r"node +1  Alice")
    bob.expect(CHAT_PROMPT)
    alice.expect(r"\[2\] Bob has joined the chat")
    alice.expect(CHAT_PROMPT)                     # her prompt is drawn again

    bob.sendline("hello")
    alice.expect(r"\[2\] Bob: hello")
    alice.expect(CHAT_PROMPT)
    alice.sendline("hi Bob, @USER@ stays as typed")
    bob.expect(r"\[1\] Alice: hi Bob, @USER@ stays as typed")
    assert "Bob: hello" not in bob.before        # his own line is not sent back to him
    bob.expect(CHAT_PROMPT)

    alice.sendline("/who")
    alice.expect(r"node +1  Alice <- you")
    alice.expect(r"node +2  Bob")
    alice.expect(CHAT_PROMPT)

    # Alice is still in the chat: who's online says so.
    bob.sendline("/q")
    bob.expect(LEFT_CHAT)
    bob.expect(CHAT_MENU)
    alice.expect(r"\[2\] Bob has left the chat")
    alice.expect(CHAT_PROMPT)
    bob.send("w")
    bob.expect(r"1  .*Alice.*in multinode chat")
    bob.expect(CHAT_MENU)

    # Lines after Bob left do not reach him; his next chat line is Alice's.
    alice.sendline("anyone?")
    alice.expect(CHAT_PROMPT)
    bob.send("j")                                 # still at the chat menu
    bob.expect("Multinode chat")
    bob.expect(CHAT_PROMPT)
    alice.expect(r"\[2\] Bob has joined the chat")
    alice.sendline("welcome back")
    bob.expect(r"\[1\] Alice: (\S+ \S+)")
    assert bob.match.group(1) == "welcome back"
    bob.sendline("/q")
    bob.expect(CHAT_MENU)
    assert "anyone?" not in bob.before
    bob.send("q")
    bob.expect(MAIN_MENU)
    logoff(bob)

    alice.sendline("/q")
    alice.expect(LEFT_CHAT)
    alice.expect(CHAT_MENU)
    alice.send("q")
    alice.expect(MAIN_MENU)
    logoff(alice)


def test_page_the_sysop_offline_is_stored(board: BBSProcess, instance: Path):
    bob = telnet(board.ports["telnet"])
    logon(bob, "Bob", "bobpw123")                 # node 1
    bob.send("c")
    bob.expect(CHAT_MENU)
    bob.send("p")
    bob.expect(PAGE_REASON)
    bob.sendline("my upload is stuck")
    bob.expect(r"Page sent to Sysop \(not on line now")
    bob.expect(CHAT_MENU)
    assert telegrams(instance) == [(user_number(instance, "Sysop"), "Bob",
                                    "Node 1: Bob is paging you: my upload is stuck")]
    bob.send("q")
    bob.expect(MAIN_MENU)
    logoff(bob)


def test_page_reaches_the_sysop_on_line_at_once(board: BBSProcess, instance: Path):
    set_password(instance, "Sysop", "sysoppw9")
    sysop = telnet(board.ports["telnet"])
    sysop.expect(LOGIN)
    sysop.sendline("Sysop")
    sysop.expect(PASSWORD)
    sysop.sendline("sysoppw9")
    sysop.expect(MAIN_MENU)                       # node 1
    alice = telnet(board.ports["telnet"])
    logon(alice, "Alice", "alicepw1")             # node 2
    alice.send("c")
    alice.expect(CHAT_MENU)
    alice.send("p")
    alice.expect(PAGE_REASON)
    alice.sendline("please chat with me")
    alice.expect(r"Page sent to Sysop\.")
    sysop.expect("Telegram from Alice")
    sysop.expect("Node 2: Alice is paging you: please chat with me")
    sysop.expect(MAIN_MENU)
    assert telegrams(instance)[-1] == (user_number(instance, "Sysop"), "Alice",
                                       "Node 2: Alice is paging you: please chat with me")
    alice.send("q")
    alice.expect(MAIN_MENU)
    logoff(alice)
    logoff(sysop)
