"""SCFG Chat Features, External Programs and Text File Sections (urwid.testing):
sections, programs, files and channels added, edited and removed through the
menus, refused with the loader's ``file:line: what``, saved keeping comments."""
from __future__ import annotations

from pathlib import Path

from urwid.testing import press

from bbs.instance import load_config
from console.cfgapply import APPLIES_LIVE
from console.scfg import ScfgView
from tests.unit.scfg_support import SIZE, open_path, root, screen_text  # noqa: F401 (root: a fixture)


def type_in(view: ScfgView, text: str, clear: int = 0) -> None:
    press(view, SIZE, *["backspace"] * clear, *text, "enter")


def test_the_three_menus_are_in_the_tree(root: Path):
    texts = ScfgView(root).texts()
    for title in ("Chat Features ...", "External Programs ...", "Text File Sections ..."):
        assert title in texts


def test_add_a_section_and_a_program_the_loader_accepts(root: Path):
    xtrn = root / "ctrl" / "xtrn.ini"
    view = ScfgView(root)
    open_path(view, "External Programs")
    assert view.texts() == []                                   # the shipped file has none
    press(view, SIZE, "a")
    type_in(view, "Games")
    type_in(view, "Games and fun")
    assert f"saved ctrl/xtrn.ini: added section Games; {APPLIES_LIVE}" in screen_text(view)
    assert view.texts()[0].split() == ["Games", "Games", "and", "fun", "(0", "programs)", "..."]
    press(view, SIZE, "enter")                                  # the section
    assert [t.split()[0] for t in view.texts()] == ["name", "ars"]
    press(view, SIZE, "a")
    type_in(view, "echo")
    type_in(view, "Echo door")
    type_in(view, "./door %H")                                   # refused by the loader
    line = len(xtrn.read_text().splitlines()) + 4                # where [prog:...] would have put cmd
    assert f"{xtrn}:{line}: [prog:Games:ECHO] cmd: %H is not supported" in screen_text(view)
    assert "ECHO" not in xtrn.read_text()
    press(view, SIZE, "enter", "enter")                          # the code and name again, as answered
    type_in(view, "./door %GDOOR32.SYS", clear=len("./door %H"))
    assert "saved ctrl/xtrn.ini: added program ECHO to section Games" in screen_text(view)
    echo = load_config(root).xtrn.program("ECHO")
    assert (echo.name, echo.argv, echo.section) == ("Echo door", ("./door", "%GDOOR32.SYS"), "Games")
    assert "; xtrn.ini: external programs" in xtrn.read_text()  # the sysop's comments stay

    open_path(view, "Program ECHO")
    open_path(view, "io")
    type_in(view, "socket")
    assert "[prog:Games:ECHO] io: unknown io 'socket' (use stdio or pty)" in screen_text(view)
    type_in(view, "pty", clear=6)
    assert f"saved ctrl/xtrn.ini: io = pty; {APPLIES_LIVE}" in screen_text(view)
    assert load_config(root).xtrn.program("ECHO").io == "pty"
    press(view, SIZE, "esc")                                     # back to the section
    press(view, SIZE, "end", "d", "y")
    assert load_config(root).xtrn.programs == () and "Program" not in " ".join(view.texts())


def test_remove_a_section_with_its_programs(root: Path):
    xtrn = root / "ctrl" / "xtrn.ini"
    xtrn.write_text(xtrn.read_text() + "\n[sec:A]\n[prog:A:ONE]\ncmd = true\n[prog:A:TWO]\ncmd = true\n"
                    "\n[sec:B]\nname = Bee\n")
    view = ScfgView(root)
    open_path(view, "External Programs")
    assert [t.split()[0] for t in view.texts()] == ["A", "B"]
    press(view, SIZE, "d")
    assert "Remove section A and its 2 program(s)? [y/N]" in screen_text(view)
    press(view, SIZE, "n")
    assert len(load_config(root).xtrn.programs) == 2
    press(view, SIZE, "d", "y")
    config = load_config(root).xtrn
    assert [s.name for s in config.sections] == ["B"] and config.programs == ()
    assert xtrn.read_text().startswith("; xtrn.ini: external programs")


def test_text_file_sections_add_a_file(root: Path):
    view = ScfgView(root)
    open_path(view, "Text File Sections", "INFO")
    texts = view.texts()
    assert texts[2].split()[:2] == ["File", "RULES"] and "The rules of this BBS" in texts[2]
    press(view, SIZE, "a")
    type_in(view, "news")
    type_in(view, "../ctrl/sbbs.ini", clear=len("gfiles/"))
    type_in(view, "News")
    assert "[file:INFO:NEWS] path: '../ctrl/sbbs.ini' must be a path inside text/" in screen_text(view)
    press(view, SIZE, "enter")                                   # the code again
    type_in(view, "gfiles/news.msg", clear=len("../ctrl/sbbs.ini"))
    press(view, SIZE, "enter")                                   # the description again
    assert "saved ctrl/text.ini: added file NEWS to section INFO" in screen_text(view)
    files = load_config(root).text_sections.in_section("INFO")
    assert [(f.code, str(f.path), f.description) for f in files][-1] == ("NEWS", "gfiles/news.msg", "News")
    assert "File NEWS" in view.texts()[-1]


def test_chat_features_availability_and_channels(root: Path):
    chat = root / "ctrl" / "chat.ini"
    view = ScfgView(root)
    open_path(view, "Chat Features", "Sysop Availability")
    assert [t.split()[0] for t in view.texts()] == ["available", "hours", "override_ars", "page_duration",
                                                   "page_bell"]
    open_path(view, "available")
    type_in(view, "no", clear=3)
    assert f"saved ctrl/chat.ini: available = no; {APPLIES_LIVE}" in screen_text(view)
    assert load_config(root).chat.available is False
    open_path(view, "hours")
    type_in(view, "25:00-26:00")
    line = next(n for n, t in enumerate(chat.read_text().splitlines(), 1) if t.startswith("hours"))
    assert f"{chat}:{line}: [sysop] hours: invalid hours '25:00-26:00'" in screen_text(view)
    assert load_config(root).chat.hours is None
    press(view, SIZE, "esc", "esc")
    open_path(view, "Multinode Chat Channels")
    assert [t.split()[:2] for t in view.texts()] == [["Channel", "MAIN"], ["Channel", "SYSOPS"]]
    assert "(SYSOP)" in view.texts()[1]
    press(view, SIZE, "a")
    type_in(view, "fun")
    type_in(view, "Fun and games")
    assert [c.code for c in load_config(root).chat.channels] == ["MAIN", "SYSOPS", "FUN"]
    press(view, SIZE, "end", "d", "y")
    assert [c.code for c in load_config(root).chat.channels] == ["MAIN", "SYSOPS"]
    assert "; chat.ini: chat features" in chat.read_text()
