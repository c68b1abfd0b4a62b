"""The console's node actions on a real caller: `bbs run` in a pty (pexpect) with a
`telnet` caller. Spy (the caller's screen, CP437 converted; the sysop's keys reach
the caller), chat (answering a page; lines both ways; either side ends it) and
interrupt (the caller is logged off with a message and the normal logoff)."""
from __future__ import annotations

import io
from pathlib import Path

import pexpect

from tests.integration.test_console_run import console, telnet_port
from tests.integration.test_terminal_server import GOODBYE, MAIN_MENU, add_user, logon, telnet

CHAT_MENU = "Chat menu"
CTRL_RIGHT_BRACKET, ESC = "\x1d", "\x1b"
#: How a VT sequence between two runs of urwid output may look (colour changes).
SGR = r"(?:\x1b\[[\d;]*m)*"
#: The end of a menu prompt ("... (? for help): ").
PROMPT_END = r"for help\)" + SGR + ": "


def test_spy_chat_and_interrupt_a_telnet_caller(instance: Path):
    bbs = console("run", str(instance))
    bbs.logfile_read = transcript = io.StringIO()
    caller = None
    try:
        bbs.expect("press any key")                       # the first start's sysop password
        bbs.send(" ")
        port = telnet_port(bbs, instance)
        add_user(instance, "Alice", "alicepw1")
        caller = telnet(port, term="syncterm")            # a BBS terminal: CP437 output
        logon(caller, "Alice", "alicepw1")
        caller.expect(PROMPT_END)
        bbs.expect(r"   1  in use\s+Alice")

        # Spy: the sysop's "?" reaches the caller, whose menu shows on the console in Unicode.
        bbs.send("s")
        bbs.expect(r"Spying on node 1: Alice \(telnet 127\.0\.0\.1\)")
        bbs.expect(r"80x24 cp437")
        bbs.send("?")
        caller.expect("Message areas")
        caller.expect(MAIN_MENU)
        bbs.expect("═" + SGR + r" Main Menu " + SGR + "═")   # CP437 0xCD shown as U+2550
        bbs.expect("Message areas")
        caller.send("w")                                  # the caller's own keys show too
        caller.expect("in use|at the main menu|viewing who's online")
        bbs.expect("viewing who's online")
        bbs.send(CTRL_RIGHT_BRACKET)
        bbs.expect("stopped spying on node 1")

        # Chat: the caller pages, the sysop answers from the Nodes pane.
        caller.expect(MAIN_MENU)
        caller.send("c")
        caller.expect(CHAT_MENU)
        caller.send("p")
        caller.expect("Reason for paging the sysop: ")
        caller.sendline("need help")
        caller.expect("Page sent to Sysop")
        caller.expect(CHAT_MENU)
        bbs.expect("node 1: Alice pages you: need help")
        bbs.expect(r"in use \[page\]")
        bbs.send("c")
        caller.expect(r"Sysop \(the sysop\) is chatting with you")
        caller.expect("You: ")
        bbs.expect("Alice is in the chat now")
        bbs.send("hello Alice\r")
        caller.expect("Sysop: " + SGR + "hello Alice")
        caller.expect("You: ")
        caller.sendline("hi sysop")
        bbs.expect("Alice: hi sysop")
        caller.sendline("/q")                             # the caller ends it ...
        caller.expect("Chat ended")
        caller.expect(CHAT_MENU)                          # ... and is back at the prompt she left
        bbs.expect("chat with node 1 ended by Alice")

        bbs.send("c")                                     # again; this time the sysop ends it
        caller.expect("is chatting with you")
        caller.expect("You: ")
        bbs.expect("Alice is in the chat now")
        bbs.send(ESC)
        caller.expect("The sysop has ended the chat")
        caller.expect(CHAT_MENU)
        bbs.expect("chat with node 1 ended by the sysop")

        # Interrupt: logged off at the prompt, with the message and the normal logoff.
        bbs.send("i")
        bbs.expect(r"Interrupt node 1 \(log its caller off at the next prompt\)\? \[y/N\]")
        bbs.send("y")
        caller.expect("The sysop needs this node")
        caller.expect(GOODBYE)
        caller.expect(pexpect.EOF)
        bbs.expect(r"   1  waiting ")

        bbs.send("q")
        bbs.expect(r"\[y/N\]")
        bbs.send("y")
        bbs.expect(pexpect.EOF)
        bbs.close()
        assert bbs.exitstatus == 0, bbs.before
    finally:
        if caller is not None and caller.isalive():
            caller.terminate(force=True)
        if bbs.isalive():
            bbs.terminate(force=True)
    log = (instance / "data" / "logs" / "bbs.log").read_text()
    assert "the local console spies on node 1, Alice (telnet 127.0.0.1)" in log
    assert "the local console stopped spying on node 1" in log
    assert "chat with node 1 ended by Alice" in log and "chat with node 1 ended by the sysop" in log
    assert "the local console interrupts node 1, Alice (telnet 127.0.0.1)" in log
    assert "session ends: interrupted by the sysop" in log
    assert "Traceback" not in log, log
