"""Text file sections for callers: real `telnet` under pexpect browses the
sections of ctrl/text.ini and reads .msg (Ctrl-A and @-codes), .ans (CP437
ANSI), .txt (shown as written) files with paging; requirements hide a
section; an ASCII caller gets no escape sequences."""
from __future__ import annotations

from pathlib import Path

import pexpect
import pytest

from nodes.terminal import strip_codes
from tests.integration.ftpsupport import add_user
from tests.integration.test_terminal_server import MAIN_MENU, logoff, logon, telnet
from tests.support import BBSProcess

SECTION_PROMPT = r"Section \(1-\d+, Enter to quit\): "
FILE_PROMPT = r"Read which \(1-\d+, Enter to quit\): "
PAUSE = "Hit a key"
MISSING = "That file is missing; please tell the sysop."

EXTRA_SECTIONS = """
[sec:ART]
name = Art and notes

[file:ART:LOGO]
path = gfiles/logo.ans
description = An ANSI logo

[file:ART:NOTES]
path = gfiles/notes.txt
description = Plain notes

[file:ART:LONG]
path = gfiles/long.txt
description = A long list

[file:ART:BANNER]
path = gfiles/banner
description = A banner

[file:ART:GONE]
path = gfiles/gone.msg
description = Not there

[sec:STAFF]
name = Staff only
ars = SYSOP

[file:STAFF:SECRET]
path = gfiles/notes.txt
description = Staff notes
"""
#: CP437: a double box corner (0xC9), bright red text, and a SAUCE record after Ctrl-Z.
LOGO = b"\x1b[1;31m\xc9\xcd\xcd LOGO \xcd\xcd\xbb\x1b[0m\r\n\x1aSAUCE00 not shown"
NOTES = "Notes: @USER@ stays as written; \x01rno colour codes\r\n"


@pytest.fixture
def board(instance: Path):
    add_user(instance, "Alice", "alicepw1")
    gfiles = instance / "text" / "gfiles"
    (gfiles / "logo.ans").write_bytes(LOGO)
    (gfiles / "notes.txt").write_text(NOTES)
    (gfiles / "banner.ans").write_bytes(b"\x1b[1;32mANSI BANNER\x1b[0m\r\n")   # for ANSI callers
    (gfiles / "banner.msg").write_text("\x01cPLAIN BANNER for @USER@\r\n")     # for the others
    (gfiles / "long.txt").write_text("".join(f"line {n}\n" for n in range(1, 61)))
    text_ini = instance / "ctrl" / "text.ini"
    text_ini.write_text(text_ini.read_text() + EXTRA_SECTIONS)
    process = BBSProcess(instance).start()
    yield process
    if process.proc and process.proc.poll() is None:
        assert process.stop() == 0
    assert "Traceback" not in process.stderr()


def pick(caller: pexpect.spawn, prompt: str, name: str, *, at_prompt: bool = False) -> None:
    """Choose ``name`` from the numbered list before ``prompt`` (``at_prompt``:
    the prompt was already expected)."""
    if not at_prompt:
        caller.expect(prompt)
    number = next(line.split(")")[0].strip() for line in strip_codes(caller.before).splitlines()
                  if f") {name}" in line)
    caller.sendline(number)


def test_browse_sections_and_read_files(board: BBSProcess):
    alice = telnet(board.ports["telnet"])
    logon(alice, "Alice", "alicepw1")
    alice.send("v")
    alice.expect(SECTION_PROMPT)
    sections = strip_codes(alice.before)
    assert "About this BBS" in sections and "Art and notes" in sections and "Staff only" not in sections
    alice.sendline("1")
    pick(alice, FILE_PROMPT, "The rules of this BBS")
    alice.expect("The rules of New Python BBS")               # @BBS@ expanded
    alice.expect(r"The sysop, .*Sysop.*, has the last word")  # Ctrl-A colours rendered as ANSI
    assert "\x01" not in alice.before
    pick(alice, FILE_PROMPT, "A short guide to the menus")
    alice.expect("You are .*Alice.* on node .*1.*, calling with telnet")
    alice.expect(FILE_PROMPT)
    alice.sendline("")                                        # back to the sections
    pick(alice, SECTION_PROMPT, "Art and notes")
    pick(alice, FILE_PROMPT, "An ANSI logo")
    alice.expect_exact("\x1b[1;31m╔══ LOGO ══╗")               # CP437 art to a UTF-8 caller
    pick(alice, FILE_PROMPT, "Plain notes")
    alice.expect_exact("Notes: @USER@ stays as written; rno colour codes")
    pick(alice, FILE_PROMPT, "A long list")
    alice.expect(PAUSE)                                       # a screenful, then the pause
    assert "line 22\r\n" in alice.before and "line 23" not in alice.before  # 24 rows: 23 lines, the pause
    alice.send("q")                                           # stop reading
    pick(alice, FILE_PROMPT, "A banner")                     # no extension: the display-file rule
    alice.expect_exact("ANSI BANNER")
    pick(alice, FILE_PROMPT, "Not there")
    alice.expect_exact(MISSING)
    alice.expect(FILE_PROMPT)
    assert "SAUCE" not in alice.before
    alice.sendline("")
    alice.expect(SECTION_PROMPT)
    alice.sendline("")
    alice.expect(MAIN_MENU)
    logoff(alice)
    assert "text file gfiles/gone.msg of section ART is missing" in (
        board.root / "data" / "logs" / "bbs.log").read_text()


def test_ascii_caller_gets_no_escape_sequences(board: BBSProcess):
    alice = telnet(board.ports["telnet"], term="dumb")
    logon(alice, "Alice", "alicepw1")
    alice.send("v")
    pick(alice, SECTION_PROMPT, "Art and notes")
    pick(alice, FILE_PROMPT, "An ANSI logo")
    alice.expect(FILE_PROMPT)
    assert "LOGO" in alice.before and "\x1b" not in alice.before
    pick(alice, FILE_PROMPT, "A banner", at_prompt=True)
    alice.expect_exact("PLAIN BANNER for Alice")
    alice.expect(FILE_PROMPT)
    alice.sendline("")
    alice.expect(SECTION_PROMPT)
    alice.sendline("")
    alice.expect(MAIN_MENU)
    logoff(alice)
