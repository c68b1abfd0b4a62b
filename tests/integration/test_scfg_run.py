"""`bbs scfg` end to end: a sub and a user added through the menus are what
`bbs run` then serves to a real telnet caller."""
from __future__ import annotations

from pathlib import Path

from tests.integration.test_console_run import BACKSPACE, ENTER, ESC, bbs_console, scfg_menus, telnet_port
from tests.integration.test_terminal_server import MAIN_MENU, logoff, logon, telnet
from tests.support import BBSProcess

ANSI = r"(\x1b\[[0-9;]*m)*"  # colour codes between words
END, UP, DOWN = "\x1b[F", "\x1b[A", "\x1b[B"


def test_a_sub_and_a_user_added_in_scfg_are_served_by_bbs_run(instance: Path):
    with scfg_menus(instance) as scfg:
        scfg.send("m" + ENTER)                               # hot letter: Message Areas
        scfg.expect("Local ...")
        scfg.send(ENTER)
        scfg.expect("Sub GENERAL ...")
        scfg.send("a")
        scfg.expect("New sub code: ")
        scfg.send("chat" + ENTER)
        scfg.expect("Name of sub CHAT: ")
        scfg.send(BACKSPACE * 4 + "Chatter" + ENTER)
        scfg.expect("saved ctrl/msgs.ini: added sub CHAT to Local")
        scfg.send(ESC)
        scfg.expect("Fun ...")
        scfg.send(ESC)
        scfg.expect("System ...")
        scfg.send("u" + ENTER)                               # Users
        scfg.expect(r"no users yet")                         # bbs init made none; bbs run adds the sysop
        scfg.send("a")
        scfg.expect("New user's alias: ")
        scfg.send("Carol" + ENTER)
        scfg.expect(r"added user #1 Carol, password: (\S+) ")
        password = scfg.match.group(1)
        scfg.send(DOWN * 2 + ENTER)                          # Location
        scfg.expect("Location: ")
        scfg.send("Dublin" + ENTER)
        scfg.expect("saved user #1: Location = Dublin")
        scfg.send(ESC)
        scfg.expect(r"#1\s+Carol")
        scfg.send(ESC)
        scfg.expect("System ...")
    assert "[sub:Local:CHAT]\nname = Chatter\n" in (instance / "ctrl" / "msgs.ini").read_text()

    bbs = BBSProcess(instance).start()
    try:
        caller = telnet(bbs.ports["telnet"])
        logon(caller, "Carol", password)
        caller.send("i")
        caller.expect(rf"Location\s+{ANSI}Dublin")
        caller.expect(MAIN_MENU)
        caller.send("m")
        caller.expect("Messages ")
        caller.send("a")
        caller.expect("Group number: ")
        caller.sendline("1")
        caller.expect(rf"4\S*\) {ANSI}Chatter ")           # GENERAL, TECH, SYSOP, then the new sub
        caller.expect("Area number: ")
        caller.sendline("4")
        caller.expect(rf"Now in {ANSI}Chatter")
        caller.send("q")
        caller.expect(MAIN_MENU)
        logoff(caller)
        new_password = reset_password_in_scfg(instance, "Carol")   # next to the running BBS
        caller = telnet(bbs.ports["telnet"])
        logon(caller, "Carol", new_password)
        logoff(caller)
    finally:
        assert bbs.stop() == 0
    assert "Traceback" not in bbs.stderr()
    log = (instance / "data" / "logs" / "bbs.log").read_text()
    assert password not in log and new_password not in log


def reset_password_in_scfg(instance: Path, alias: str) -> str:
    """`bbs scfg` > Users > / alias > Reset the password; returns the new one."""
    with scfg_menus(instance) as scfg:
        scfg.send("u" + ENTER)
        scfg.expect(alias)
        scfg.send("/")
        scfg.expect(r"Find user \(number, alias or real name\): ")
        scfg.send(alias + ENTER)
        scfg.expect(f"User #\\d+ {alias}")
        scfg.send(END + UP + ENTER)                          # Reset the password (above Delete)
        scfg.expect(r"Reset the password of #\d+ " + alias + r"\? \[y/N\]")
        scfg.send("y")
        scfg.expect(r"new password of #\d+ " + alias + r": (\S+) ")
        password = scfg.match.group(1)
        scfg.send(ESC)
        scfg.expect("level")
        scfg.send(ESC)
        scfg.expect("System ...")
    return password


def test_the_consoles_config_pane_adds_a_user_who_logs_on_at_once(instance: Path):
    """In `bbs run`'s console the user editor writes through the running App's
    user base: the new user logs on over telnet without a restart."""
    with bbs_console(instance) as bbs:
        bbs.expect("   1  waiting")
        port = telnet_port(bbs, instance)
        bbs.send("\x1b[Z")                                   # Shift-Tab: the last pane, Config
        bbs.expect("System ...")
        bbs.send("u" + ENTER)
        bbs.expect(r"#1\s+Sysop")
        bbs.send("a")
        bbs.expect("New user's alias: ")
        bbs.send("Dora" + ENTER)
        bbs.expect(r"added user #2 Dora, password: (\S+) ")
        password = bbs.match.group(1)
        caller = telnet(port)
        logon(caller, "Dora", password)
        logoff(caller)
        bbs.send("1")
        bbs.expect(r"   1  waiting")
    log = (instance / "data" / "logs" / "bbs.log").read_text()
    assert "user #2 'Dora' added" in log and password not in log
