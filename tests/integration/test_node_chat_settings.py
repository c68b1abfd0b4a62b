"""Chat features from ctrl/chat.ini, edited while `bbs run` runs (each edit
applies to the next page or join): the sysop's availability, hours and
override requirement, the page's ring, and chat channels with requirements;
real `telnet` callers under pexpect."""
from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path

import pexpect
import pytest

from console.cfgfile import atomic_write, ini_set
from nodes.terminal import strip_codes
from tests.integration.ftpsupport import add_user
from tests.integration.test_terminal_server import MAIN_MENU, logoff, logon, telnet
from tests.support import BBSProcess

CHAT_MENU = "Chat menu"
CHAT_PROMPT = "Chat> "
NOT_AVAILABLE = "Sysop is not available for chat."
PAGE_REASON = "Reason for paging the sysop: "
CHANNEL_PROMPT = r"Channel number \(Enter = 1\): "

CHAT_INI = """[sysop]
available = no
override_ars = LEVEL 50
page_duration = 2
page_bell = yes

[chan:MAIN]
name = Main

[chan:FUN]
name = Fun and games

[chan:SYSOPS]
name = Sysops only
ars = SYSOP
"""


@pytest.fixture
def board(instance: Path):
    add_user(instance, "Alice", "alicepw1", "--level", "60")
    add_user(instance, "Bob", "bobpw123")
    (instance / "ctrl" / "chat.ini").write_text(CHAT_INI)
    process = BBSProcess(instance).start()
    yield process
    if process.proc and process.proc.poll() is None:
        assert process.stop() == 0
    assert "Traceback" not in process.stderr()


def edit(root: Path, key: str, value: str) -> None:
    """What SCFG does: change one line of chat.ini, saved atomically."""
    path = root / "ctrl" / "chat.ini"
    atomic_write(path, ini_set(path.read_text(), "sysop", key, value))


def telegram_count(root: Path) -> int:
    with sqlite3.connect(root / "data" / "telegram.db") as db:
        return db.execute("SELECT COUNT(*) FROM telegrams").fetchone()[0]


def test_paging_follows_availability_hours_and_override(board: BBSProcess):
    bob = telnet(board.ports["telnet"])
    logon(bob, "Bob", "bobpw123")
    bob.send("c")
    bob.expect(CHAT_MENU)
    bob.send("p")
    bob.expect_exact(NOT_AVAILABLE)                      # available = no
    bob.expect(CHAT_MENU)
    assert PAGE_REASON not in bob.before and telegram_count(board.root) == 0

    alice = telnet(board.ports["telnet"])
    logon(alice, "Alice", "alicepw1")                    # level 60 meets override_ars
    alice.send("c")
    alice.expect(CHAT_MENU)
    alice.send("p")
    alice.expect_exact(PAGE_REASON)
    alice.sendline("urgent")
    alice.expect("Paging .*Sysop.* for chat")
    alice.expect_exact("\x07.\x07.")                     # two seconds of ringing, with the bell
    alice.expect_exact("Page sent to Sysop")
    assert telegram_count(board.root) == 1

    edit(board.root, "available", "yes")
    later = time.localtime(time.time() + 2 * 3600)
    start, end = f"{later.tm_hour:02d}:00", f"{(later.tm_hour + 1) % 24:02d}:00"
    edit(board.root, "hours", f"{start}-{end}")          # a window that is not now
    bob.send("p")
    bob.expect_exact(NOT_AVAILABLE)
    bob.expect_exact(f"Pages are taken from {start} to {end}.")
    bob.expect(CHAT_MENU)

    edit(board.root, "hours", "")
    edit(board.root, "page_duration", "0")
    bob.send("p")
    bob.expect_exact(PAGE_REASON)
    bob.sendline("hello")
    bob.expect_exact("Page sent to Sysop")
    assert "Paging" not in bob.before                    # no ringing
    assert telegram_count(board.root) == 2
    for caller in (alice, bob):
        caller.expect(CHAT_MENU)
        caller.send("q")
        caller.expect(MAIN_MENU)
        logoff(caller)


def join(caller: pexpect.spawn, channel: str) -> None:
    """At the chat menu: J, then the channel named ``channel`` from the list."""
    caller.send("j")
    caller.expect(CHANNEL_PROMPT)
    listing = strip_codes(caller.before)
    assert "Sysops only" not in listing                  # ars SYSOP
    number = next(line.split(")")[0].strip() for line in listing.splitlines() if f") {channel}" in line)
    caller.sendline(number)
    caller.expect(rf"Multinode chat.*\({re.escape(channel)}\)")
    caller.expect(CHAT_PROMPT)


def test_channels_keep_their_members_apart(board: BBSProcess):
    alice, bob = telnet(board.ports["telnet"]), telnet(board.ports["telnet"])
    logon(alice, "Alice", "alicepw1")
    logon(bob, "Bob", "bobpw123")
    for caller in (alice, bob):
        caller.send("c")
        caller.expect(CHAT_MENU)
    join(bob, "Fun and games")
    join(alice, "Main")
    alice.sendline("anyone in main?")
    alice.expect(CHAT_PROMPT)
    alice.sendline("/q")
    alice.expect(CHAT_MENU)
    join(alice, "Fun and games")
    bob.expect(r"\[1\] Alice has joined the chat")
    alice.sendline("hello fun")
    bob.expect(r"\[1\] Alice: hello fun")
    assert "anyone in main?" not in bob.before           # Main's line never reached Fun
    for caller in (alice, bob):
        caller.sendline("/q")
        caller.expect(CHAT_MENU)
    (board.root / "ctrl" / "chat.ini").write_text("[sysop]\n")   # no channels: no multinode chat
    bob.send("j")
    bob.expect_exact("There is no chat channel you may join.")
    bob.expect(CHAT_MENU)
    for caller in (alice, bob):
        caller.send("q")
        caller.expect(MAIN_MENU)
        logoff(caller)


def test_scfg_makes_the_sysop_unavailable_for_a_caller_already_on(instance: Path):
    from tests.integration.test_console_run import BACKSPACE, ENTER, ESC, scfg_menus

    board = BBSProcess(instance).start()
    try:
        add_user(instance, "Bob", "bobpw123")
        bob = telnet(board.ports["telnet"])
        logon(bob, "Bob", "bobpw123")
        bob.send("c")
        bob.expect(CHAT_MENU)
        with scfg_menus(instance) as scfg:
            scfg.send("c" + ENTER)                           # hot letter: Chat Features
            scfg.expect("Sysop Availability and Paging ...")
            scfg.send(ENTER)
            scfg.expect(r"available\s+yes")
            scfg.send(ENTER)
            scfg.expect(r"\[sysop\] available = ")
            scfg.send(BACKSPACE * 3 + "no" + ENTER)
            scfg.expect("saved ctrl/chat.ini: available = no; applies now")
            scfg.send(ESC + ESC)
            scfg.expect("System ...")
        assert "\navailable = no\n" in (instance / "ctrl" / "chat.ini").read_text()
        bob.send("p")
        bob.expect_exact(NOT_AVAILABLE)
        bob.expect(CHAT_MENU)
        bob.send("q")
        bob.expect(MAIN_MENU)
        logoff(bob)
    finally:
        assert board.stop() == 0
    assert "Traceback" not in board.stderr()
