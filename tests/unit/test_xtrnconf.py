"""Loaders of ctrl/xtrn.ini, text.ini and chat.ini (errors located as
``file:line: what``), command-line specifiers, drop files, live re-reading,
and the rendering of an .ans file's own colours."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bbs.ars import AccessContext
from bbs.chatconf import ChatConfig, load_chat, parse_hours
from bbs.errors import ConfigError
from bbs.ini import parse_ini
from bbs.instance import init_instance, load_config
from bbs.liveconf import LiveConfig
from bbs.textconf import load_text
from bbs.xtrnconf import DropInfo, door32_sys, door_sys, expand_command, load_xtrn
from nodes import terminal as t

GOOD_XTRN = """[sec:Games]
name = Games and more
ars = NOT GUEST

[prog:Games:LORD]
name = Legend
cmd = ./lord "-n %#" %GDOOR32.SYS %A %3 100%%
startup_dir = xtrn/lord
execution_ars = LEVEL 20
io = PTY
dropfile = door32.sys | DOOR.SYS
max_time = 30

[prog:Games:ECHO]
cmd = /usr/bin/echo
max_time = 90s
"""


def xtrn(tmp_path: Path, text: str):
    path = tmp_path / "xtrn.ini"
    path.write_text(text)
    return load_xtrn(parse_ini(path), tmp_path)


def test_xtrn_ini_is_parsed(tmp_path: Path):
    config = xtrn(tmp_path, GOOD_XTRN)
    assert [s.title for s in config.sections] == ["Games and more"]
    lord = config.program("lord")
    assert lord.argv == ("./lord", "-n %#", "%GDOOR32.SYS", "%A", "%3", "100%%")
    assert lord.startup_dir == tmp_path / "xtrn/lord" and lord.io == "pty" and lord.max_time == 1800
    assert lord.dropfiles == ("DOOR32.SYS", "DOOR.SYS") and lord.line == 5
    assert not lord.execution_ars.allows(AccessContext(level=10)) and lord.execution_ars.allows(AccessContext(level=20))
    echo = config.program("ECHO")
    assert (echo.name, echo.io, echo.dropfiles, echo.max_time, echo.startup_dir) == ("ECHO", "stdio", (), 90, None)
    assert [p.code for p in config.in_section("games")] == ["LORD", "ECHO"]


def test_specifiers_expand_inside_words_and_never_split_them(tmp_path: Path):
    lord = xtrn(tmp_path, GOOD_XTRN).program("LORD")
    values = {"#": "7", "G": "/bbs/data/node7/temp/", "A": "Zaphod Beeblebrox", "%": "%"}
    assert expand_command(lord.argv, values, 42) == ["./lord", "-n 7", "/bbs/data/node7/temp/DOOR32.SYS",
                                                     "Zaphod Beeblebrox", "042", "100%"]


@pytest.mark.parametrize("body, line, message", [
    ("[prog:Games:X]\ncmd = x\n", 1, "prog X names unknown section 'Games' (declare [sec:...] before its progs)"),
    ("[sec:G]\n[prog:G:X]\ncmd = door %H\n", 3, "[prog:G:X] cmd: %H is not supported: no socket handle is passed"),
    ("[sec:G]\n[prog:G:X]\ncmd = door %Y%\n", 3, "[prog:G:X] cmd: %Y is not supported"),
    ("[sec:G]\n[prog:G:X]\ncmd = door 50%\n", 3, "[prog:G:X] cmd: '50%' ends with a lone % (write %% for a percent sign)"),
    ("[sec:G]\n[prog:G:X]\ncmd = door %;\n", 3, "[prog:G:X] cmd: unknown specifier %;"),
    ("[sec:G]\n[prog:G:X]\ncmd = door 'open\n", 3, "[prog:G:X] cmd: cannot split the command line"),
    ("[sec:G]\n[prog:G:X]\ncmd =\n", 3, "[prog:G:X] cmd: is empty: name the program to run"),
    ("[sec:G]\n[prog:G:X]\nname = no command\n", 2, "[prog:G:X] needs cmd = the command line to run"),
    ("[sec:G]\n[prog:G:X]\ncmd = x\nio = socket\n", 4, "[prog:G:X] io: unknown io 'socket' (use stdio or pty)"),
    ("[sec:G]\n[prog:G:X]\ncmd = x\ndropfile = CHAIN.TXT\n", 4, "[prog:G:X] dropfile: unknown drop file 'CHAIN.TXT'"),
    ("[sec:G]\n[prog:G:X]\ncmd = x\nmax_time = soon\n", 4, "[prog:G:X] max_time: invalid duration 'soon'"),
    ("[sec:G]\n[prog:G:X]\ncmd = x\nars = LEVEL\n", 4, "[prog:G:X] ars: requirement 'LEVEL' ends too early"),
    ("[sec:G]\n[prog:G:TOOLONGCODE]\ncmd = x\n", 2, "invalid code 'TOOLONGCODE' (1-8 letters, digits, _ or -)"),
    ("[sec:G]\n[prog:G]\ncmd = x\n", 2, "malformed section [prog:G] (expected [prog:SEC:CODE])"),
    ("[sec:G]\n[prog:G:X]\ncmd = x\n[prog:G: x]\ncmd = y\n", 4, "duplicate prog code 'x' (first at line 2)"),
    ("[games]\n", 1, "unknown section [games] (expected [sec:...] or [prog:...])"),
])
def test_xtrn_ini_errors_are_located(tmp_path: Path, body: str, line: int, message: str):
    assert_located(tmp_path / "xtrn.ini", body, lambda ini: load_xtrn(ini, tmp_path), line, message)


def assert_located(path: Path, body: str, load, line: int, message: str) -> None:
    """Loading ``body`` from ``path`` fails with ``path:line: message...``."""
    path.write_text(body)
    with pytest.raises(ConfigError) as caught:
        load(parse_ini(path))
    assert str(caught.value).startswith(f"{path}:{line}: {message}")


INFO = DropInfo(node=3, user_number=12, alias="Zaphod", real_name="Zaphod Beeblebrox", location="Betelgeuse",
                phone="555", level=50, logons=7, last_on=0.0, uploads=2, downloads=5, upload_bytes=4096,
                download_bytes=10240, posts=9, expert=True, ansi=True, rows=25, seconds_left=1800,
                logon_time=1_700_000_000.0, bbs_name="Heart of Gold", sysop="Trillian",
                node_dir="/bbs/data/node3/", data_dir="/bbs/data/")


def test_door_sys_has_52_crlf_lines_and_no_password():
    text = door_sys(INFO)
    lines = text.split("\r\n")
    assert text.endswith("\r\n") and len(lines) == 53 and "\n" not in text.replace("\r\n", "")
    assert lines[0] == "COM0:" and lines[3] == "3"                 # local port, node
    assert lines[9] == "Zaphod" and lines[10] == "Betelgeuse"       # name, location
    assert lines[13] == ""                                          # no password
    assert (lines[14], lines[15], lines[17], lines[18]) == ("50", "7", "1800", "30")
    assert (lines[19], lines[20], lines[21], lines[25]) == ("GR", "25", "Y", "12")
    assert (lines[32], lines[34], lines[35]) == ("/bbs/data/node3/", "Trillian", "Zaphod")
    assert (lines[47], lines[48], lines[51]) == ("4", "10", "9")    # K up, K down, posts


def test_door32_sys():
    assert door32_sys(INFO).split("\r\n") == ["0", "-1", "38400", "pybbs", "12", "Zaphod Beeblebrox", "Zaphod",
                                              "50", "30", "1", "3", ""]


def test_text_ini_paths_stay_inside_text(tmp_path: Path):
    (tmp_path / "text" / "g").mkdir(parents=True)
    (tmp_path / "text" / "g" / "a.msg").write_text("hi")
    path = tmp_path / "text.ini"
    path.write_text("[sec:INFO]\nname = Info\n[file:INFO:A]\npath = g/a.msg\n[file:INFO:B]\npath = g/b.txt\n"
                    "description = Bee\n[file:INFO:C]\npath = g/art\n")
    config = load_text(parse_ini(path), tmp_path)
    assert [(f.code, str(f.path), f.description) for f in config.in_section("info")] == [
        ("A", "g/a.msg", "a.msg"), ("B", "g/b.txt", "Bee"), ("C", "g/art", "art")]
    assert [w.split(": ", 1)[0] for w in config.warnings] == [f"{path}:5", f"{path}:8"]   # b.txt, art.*
    for bad, message in (("../ctrl/sbbs.ini", "must be a path inside text/"), ("/etc/passwd", "must be a path"),
                         ("", "must name a file inside text/")):
        path.write_text(f"[sec:INFO]\n[file:INFO:A]\npath = {bad}\n")
        with pytest.raises(ConfigError, match=rf"^{path}:3: \[file:INFO:A\] path: .*{message}"):
            load_text(parse_ini(path), tmp_path)
    path.write_text("[sec:INFO]\n[file:INFO:A]\ndescription = no path\n")
    with pytest.raises(ConfigError, match=rf"^{path}:2: \[file:INFO:A\] needs path ="):
        load_text(parse_ini(path), tmp_path)


def test_chat_ini_hours_and_availability(tmp_path: Path):
    assert parse_hours("08:00-22:30") == (480, 1350) and parse_hours(" ") is None
    assert parse_hours("22:00-02:00") == (1320, 120)
    for bad in ("8-22", "25:00-26:00", "10:60-11:00", "09:00-09:00"):
        with pytest.raises(ValueError):
            parse_hours(bad)
    at = lambda hh, mm: time.mktime((2030, 1, 1, hh, mm, 0, 0, 0, -1))  # noqa: E731  local time
    night = ChatConfig(hours=parse_hours("22:00-02:00"))
    assert night.sysop_available(at(23, 0)) and night.sysop_available(at(1, 59))
    assert not night.sysop_available(at(2, 0)) and not night.sysop_available(at(12, 0))
    assert not ChatConfig(available=False).sysop_available(at(23, 0))
    path = tmp_path / "chat.ini"
    path.write_text("[sysop]\navailable = no\noverride_ars = SYSOP\npage_duration = 5\npage_bell = no\n"
                    "[chan:MAIN]\n[chan:FUN]\nname = Fun\nars = LEVEL 20\n")
    config = load_chat(parse_ini(path))
    assert (config.available, config.page_duration, config.page_bell) == (False, 5, False)
    assert config.override_ars.allows(AccessContext(level=90)) and not config.override_ars.allows(AccessContext())
    assert [(c.code, c.name) for c in config.channels] == [("MAIN", "MAIN"), ("FUN", "Fun")]
    path.write_text("[sysop]\n")
    assert load_chat(parse_ini(path)).channels == ()                # no [chan:...]: no multinode chat
    assert ChatConfig().override_ars is None and [c.code for c in ChatConfig().channels] == ["MAIN"]


@pytest.mark.parametrize("body, line, message", [
    ("[sysop]\npage_duration = 61\n", 2, "[sysop] page_duration: 61 is above the maximum 60"),
    ("[sysop]\navailable = maybe\n", 2, "[sysop] available: invalid boolean 'maybe'"),
    ("[sysop]\nhours = noon\n", 2, "[sysop] hours: invalid hours 'noon'"),
    ("[sysop]\noverride_ars = FLAG 1\n", 2, "[sysop] override_ars: FLAG needs flag letters"),
    ("[chan:A]\n[chan: a]\n", 2, "duplicate channel 'a' (first at line 1)"),
    ("[chan:]\n", 1, "invalid code ''"),
    ("[pager]\n", 1, "unknown section [pager] (expected [sysop] or [chan:CODE])"),
])
def test_chat_ini_errors_are_located(tmp_path: Path, body: str, line: int, message: str):
    assert_located(tmp_path / "chat.ini", body, load_chat, line, message)


def test_instance_loads_the_shipped_files_and_stops_on_a_bad_one(tmp_path: Path):
    init_instance(tmp_path)
    config = load_config(tmp_path)
    assert config.xtrn.programs == () and [s.name for s in config.text_sections.sections] == ["INFO"]
    assert config.chat.page_duration == 3 and [c.code for c in config.chat.channels] == ["MAIN", "SYSOPS"]
    assert not config.text_sections.warnings                          # the shipped G-files are there
    (tmp_path / "ctrl" / "xtrn.ini").write_text("[sec:G]\n[prog:G:X]\ncmd = x %H\n")
    with pytest.raises(ConfigError, match=rf"^{tmp_path / 'ctrl' / 'xtrn.ini'}:3: "):
        load_config(tmp_path)
    os.unlink(tmp_path / "ctrl" / "xtrn.ini")                         # absent: no programs
    assert load_config(tmp_path).xtrn.programs == ()


def test_live_config_follows_edits_and_keeps_the_last_good_one(tmp_path: Path, caplog):
    path = tmp_path / "chat.ini"
    path.write_text("[sysop]\navailable = yes\n")
    live = LiveConfig(path, load_chat, ChatConfig(), tmp_path, load_chat(parse_ini(path)))
    assert live.current().available
    tmp = tmp_path / "new"
    tmp.write_text("[sysop]\navailable = no \n")                     # same size, renamed over it
    os.replace(tmp, path)
    assert not live.current().available
    path.write_text("[sysop]\navailable = perhaps\n")
    assert not live.current().available                              # broken: the last good one stays
    assert f"{path}:2: [sysop] available: invalid boolean" in caplog.text
    path.unlink()
    assert live.current() == ChatConfig()                            # gone: the defaults


def test_live_config_of_an_unreadable_file_keeps_its_settings_until_it_reads(tmp_path: Path, caplog):
    path = tmp_path / "chat.ini"
    path.mkdir()                                                     # read_text fails: IsADirectoryError
    live = LiveConfig(path, load_chat, ChatConfig(), tmp_path, ChatConfig(available=False))
    assert not live.current().available
    assert f"{path}: cannot read: " in caplog.text
    path.rmdir()
    path.write_text("[sysop]\navailable = yes\n")
    assert live.current().available


def test_an_ans_files_own_colours_stay_until_a_ctrl_a_code():
    state = t.RenderState()
    out = "".join(t.render("\x01h\x01cA\x1b[1;31mRED\x1b[0m GREY", True, state))
    assert out == "\x1b[0;1;36;40mA\x1b[1;31mRED\x1b[0m GREY"         # no SGR of ours inside the art
    assert "".join(t.render("\x01cok", True, state)) == "\x1b[0;1;36;40mok"  # ours again after a code
