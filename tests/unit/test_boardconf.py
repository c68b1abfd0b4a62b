"""Unit tests for bbs.boardconf: main.ini, msgs.ini and file.ini via load_config."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bbs.ars import AccessContext
from bbs.errors import ConfigError
from bbs.instance import init_instance, load_config


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "bbs"
    init_instance(root)
    return root


def write(root: Path, name: str, text: str) -> Path:
    path = root / "ctrl" / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def line_of(path: Path, needle: str, nth: int = 1) -> int:
    hits = [n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line]
    assert len(hits) >= nth, (needle, hits)
    return hits[nth - 1]


def located(root: Path, path: Path, line: int, *fragments: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(root)
    text = str(info.value)
    assert text.startswith(f"{path}:{line}: "), text
    for fragment in fragments:
        assert fragment in text, (fragment, text)
    return text


# --- shipped files ------------------------------------------------------------------------

def test_shipped_board(root):
    config = load_config(root)
    system = config.system
    assert system.name == "New Python BBS" and system.operator == "Sysop"
    assert system.nodes == range(1, 5)
    assert system.new_user_level == 10 and system.guest_name == "Guest"
    assert [g.name for g in config.msgs.groups] == ["Local", "Fun"]
    assert [s.code for s in config.msgs.subs] == ["GENERAL", "TECH", "SYSOP", "GAMES"]
    sysop = config.msgs.sub("sysop")                       # lookup is case-insensitive
    assert sysop is not None and sysop.group == "Local" and sysop.newsgroup == "local.sysop"
    assert sysop.post_ars.allows(AccessContext(level=90))
    assert not sysop.post_ars.allows(AccessContext(level=10))
    assert config.msgs.sub("nope") is None
    uploads = config.files.dir("UPLOADS")
    assert uploads.path == root / "files" / "main" / "uploads"
    assert not uploads.upload_ars.allows(AccessContext(guest=True, level=10))
    assert uploads.download_ars.allows(AccessContext(level=10))
    assert config.files.dir("uploads") is uploads and config.files.dir("x") is None


# --- main.ini -------------------------------------------------------------------------------

def test_main_ini_defaults(root):
    write(root, "main.ini", "")
    system = load_config(root).system
    assert system.name == "New Synchronet-style BBS" and system.operator == "Sysop"
    assert (system.first_node, system.last_node) == (1, 4)
    assert system.new_user_level == 10 and system.new_user_password == ""


def test_main_ini_values(root):
    write(root, "main.ini", """
        [System]
        Name = Dark Star
        Operator = Captain
        [Nodes]
        FirstNode = 3
        LastNode = 010
        [NewUser]
        Level = 20
        Flags = AB
        Password = open sesame
        """)
    system = load_config(root).system
    assert system.name == "Dark Star" and system.operator == "Captain"
    assert system.nodes == range(3, 11)
    assert (system.new_user_level, system.new_user_flags, system.new_user_password) == (20, "AB", "open sesame")
    assert "open sesame" not in repr(system)


def test_single_node(root):
    write(root, "main.ini", "[Nodes]\nFirstNode = 5\nLastNode = 5\n")
    assert load_config(root).system.nodes == range(5, 6)


MAIN_ERRORS = [
    ("[Nodes]\nFirstNode = 5\nLastNode = 2\n", "LastNode", "[Nodes] LastNode 2 is below FirstNode 5"),
    ("[Nodes]\nFirstNode = 8\n", "[Nodes]", "LastNode 4 is below FirstNode 8"),   # default LastNode
    ("[Nodes]\nLastNode = 10000\n", "10000", "[Nodes] LastNode: 10000 is above the maximum 9999"),
    ("[Nodes]\nFirstNode = 0\n", "= 0", "[Nodes] FirstNode: 0 is below the minimum 1"),
    ("[Nodes]\nLastNode = four\n", "four", "LastNode: invalid number 'four'"),
    ("[System]\nName = X\nOperator =\n", "Operator", "[System] Operator must name the sysop's alias"),
    ("[System]\nOperator =   ; nobody\n", "Operator", "Operator must name"),
    ("[System]\n[Sytem]\n", "[Sytem]", "unknown section [Sytem]"),
    ("[NewUser]\nLevel = 100\n", "100", "[NewUser] Level: 100 is above the maximum 99"),
    ("[System]\nName = a\nname = b\n", "name = b", "duplicate key name (first at line 2)"),
    ("[System]\nQWKID = MY BBS\n", "QWKID", "[System] QWKID 'MY BBS' is not a QWK-ID"),
    ("[System]\nQWKID = TOOLONGID\n", "QWKID", "QWKID 'TOOLONGID' is not a QWK-ID (1-8 letters"),
]


@pytest.mark.parametrize("text, marker, fragment", MAIN_ERRORS, ids=[e[2][:30] for e in MAIN_ERRORS])
def test_main_ini_errors(root, text, marker, fragment):
    path = write(root, "main.ini", text)
    located(root, path, line_of(path, marker), fragment)


# --- msgs.ini -------------------------------------------------------------------------------

def test_msgs_values_and_defaults(root):
    write(root, "msgs.ini", """
        [grp:Main Hall]
        ars = LEVEL 20
        [sub:Main Hall:CHAT]
        [sub:main hall:ADS-1]
        name = Ads
        read_ars = NOT GUEST
        post_ars = LEVEL 50 OR FLAG S
        max_msgs = 500
        newsgroup = misc.ads
        """)
    msgs = load_config(root).msgs
    (group,) = msgs.groups
    assert group.name == "Main Hall" and group.description == "Main Hall" and group.line == 1
    assert not group.ars.allows(AccessContext(level=19)) and group.ars.allows(AccessContext(level=20))
    chat, ads = msgs.subs
    assert (chat.code, chat.name, chat.description, chat.max_msgs) == ("CHAT", "CHAT", "CHAT", 0)
    assert chat.newsgroup == "main_hall.chat" and chat.line == 3
    assert chat.post_ars.allows(AccessContext(guest=True))          # absent = allow all
    assert ads.group == "Main Hall"                                 # group name as declared
    assert (ads.name, ads.description, ads.max_msgs, ads.newsgroup) == ("Ads", "Ads", 500, "misc.ads")
    assert ads.post_ars.allows(AccessContext(flags="S"))
    assert not ads.read_ars.allows(AccessContext(guest=True))


def test_empty_msgs_ini(root):
    write(root, "msgs.ini", "; nothing\n")
    msgs = load_config(root).msgs
    assert msgs.groups == () and msgs.subs == ()


MSGS_ERRORS = [
    ("[grp:Local]\n[sub:Other:GEN]\n", "[sub:Other:GEN]", "sub GEN names unknown group 'Other'"),
    ("[sub:Local:GEN]\n[grp:Local]\n", "[sub:Local:GEN]", "unknown group 'Local' (declare [grp:...] before its subs)"),
    ("[grp:A]\n[sub:A:GEN]\n[grp:B]\n[sub:B:gen]\n", "[sub:B:gen]", "duplicate sub code 'gen' (first at line 3)"),
    ("[grp:A]\n[sub:A:THISISTOOLONG]\n", "[sub:A:THIS", "invalid code 'THISISTOOLONG' (1-8 letters, digits, _ or -)"),
    ("[grp:A]\n[sub:A:BAD CODE]\n", "[sub:A:BAD", "invalid code 'BAD CODE'"),
    ("[grp:A]\n[sub:A:B.C]\n", "[sub:A:B.C]", "invalid code 'B.C'"),
    ("[grp:A]\n[sub:A:GEN]\nname = x\npost_ars = LEVEL 20 OR WIZARD\n", "post_ars",
     "[sub:A:GEN] post_ars: unknown keyword 'WIZARD'"),
    ("[grp:A]\n[sub:A:GEN]\nread_ars = (LEVEL 20\n", "read_ars", "read_ars: missing ')'"),
    ("[grp:A]\nars = LEVEL\n", "ars", "[grp:A] ars: requirement 'LEVEL' ends too early"),
    ("[grp:A]\n[sub:A:GEN]\nars = FLAG 1\n", "ars", "ars: FLAG needs flag letters"),
    ("[grp:A]\n[sub:A]\n", "[sub:A]", "malformed section [sub:A] (expected [sub:GROUP:CODE])"),
    ("[grp:A]\n[sub:A:B:C]\n", "[sub:A:B:C]", "malformed section [sub:A:B:C]"),
    ("[grp:A]\n[sub:A: ]\n", "[sub:A: ]", "malformed section"),
    ("[grp:]\n", "[grp:]", "malformed section [grp:] (expected [grp:NAME])"),
    ("[grp:A:B]\n", "[grp:A:B]", "malformed section [grp:A:B] (expected [grp:NAME])"),
    ("[grp:A]\n[area:A:X]\n", "[area:A:X]", "unknown section [area:A:X] (expected [grp:...] or [sub:...])"),
    ("[Local]\n", "[Local]", "unknown section [Local]"),
    ("[grp:Local]\n[grp: local ]\n", "[grp: local ]", "duplicate group 'local'"),
    ("[grp:Local]\n[GRP:LOCAL]\n", "[GRP:LOCAL]", "duplicate section [GRP:LOCAL] (first at line 2)"),
    ("[grp:A]\n[sub:A:GEN]\nmax_msgs = -1\n", "max_msgs", "max_msgs: -1 is below the minimum 0"),
    ("[grp:A]\n[sub:A:GEN]\nnewsgroup = a.x\n[sub:A:OTHER]\nnewsgroup = A.X\n", "[sub:A:OTHER]",
     "sub OTHER: newsgroup 'A.X' is already sub GEN's (line 3)"),
    ("[grp:A]\n[sub:A:GEN]\n[sub:A:X]\nnewsgroup = a.gen\n", "[sub:A:X]", "newsgroup 'a.gen' is already sub GEN's"),
]


@pytest.mark.parametrize("text, marker, fragment", MSGS_ERRORS, ids=[e[2][:30] for e in MSGS_ERRORS])
def test_msgs_ini_errors(root, text, marker, fragment):
    path = write(root, "msgs.ini", "; message areas\n" + text)
    located(root, path, line_of(path, marker), fragment)


# --- file.ini -------------------------------------------------------------------------------

def test_file_dirs_paths(root, tmp_path):
    absolute = tmp_path / "outside" / "cdrom"
    write(root, "file.ini", f"""
        [lib:Main]
        description = Main library
        [dir:Main:REL]
        path = some/where
        [dir:Main:ABS]
        path = {absolute}
        [dir:main:Dflt]
        name = Default
        upload_ars = SYSOP
        download_ars = LEVEL 10
        max_files = 100
        [dir:Main:DOTS]
        path = files/../other
        """)
    files = load_config(root).files
    (lib,) = files.libs
    assert (lib.name, lib.description, lib.line) == ("Main", "Main library", 1)
    assert files.dir("rel").path == root / "some" / "where"
    assert files.dir("ABS").path == absolute
    dflt = files.dir("dflt")
    assert dflt.path == root / "files" / "main" / "dflt"            # default: files/LIB/CODE, lower-case
    assert (dflt.lib, dflt.name, dflt.description, dflt.max_files) == ("Main", "Default", "Default", 100)
    assert dflt.upload_ars.allows(AccessContext(level=90)) and not dflt.upload_ars.allows(AccessContext(level=89))
    assert not dflt.download_ars.allows(AccessContext(level=9))
    assert files.dir("DOTS").path == root / "files" / ".." / "other"
    assert files.dir("REL").ars.allows(AccessContext(guest=True))


def test_home_relative_path_is_expanded(root, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    write(root, "file.ini", "[lib:L]\n[dir:L:HOME]\npath = ~/shared\n")
    assert load_config(root).files.dir("home").path == tmp_path / "home" / "shared"


FILE_ERRORS = [
    ("[lib:Main]\n[dir:Other:UP]\n", "[dir:Other:UP]", "dir UP names unknown library 'Other'"),
    ("[dir:Main:UP]\n[lib:Main]\n", "[dir:Main:UP]", "(declare [lib:...] before its dirs)"),
    ("[lib:A]\n[dir:A:UP]\n[lib:B]\n[dir:B:up]\n", "[dir:B:up]", "duplicate dir code 'up' (first at line 3)"),
    ("[lib:A]\n[dir:A:WAYTOOLONG]\n", "WAYTOOLONG", "invalid code 'WAYTOOLONG'"),
    ("[lib:A]\n[dir:A:UP/DN]\n", "UP/DN", "invalid code 'UP/DN'"),
    ("[lib:A]\n[dir:A:UP]\ndownload_ars = LEVEL\n", "download_ars", "[dir:A:UP] download_ars: requirement 'LEVEL' ends too early"),
    ("[lib:A]\n[dir:A:UP]\nupload_ars = FOO\n", "upload_ars", "upload_ars: unknown keyword 'FOO'"),
    ("[lib:A]\nars = LEVEL x\n", "ars", "[lib:A] ars: LEVEL needs a number"),
    ("[lib:A]\n[dir:A]\n", "[dir:A]", "malformed section [dir:A] (expected [dir:LIB:CODE])"),
    ("[lib:]\n", "[lib:]", "malformed section [lib:] (expected [lib:NAME])"),
    ("[lib:A]\n[library:A]\n", "[library:A]", "unknown section [library:A] (expected [lib:...] or [dir:...])"),
    ("[lib:A]\n[lib: a]\n", "[lib: a]", "duplicate library 'a'"),
    ("[lib:A]\n[LIB:A]\n", "[LIB:A]", "duplicate section [LIB:A] (first at line 2)"),
    ("[lib:A]\n[dir:A:UP]\nmax_files = many\n", "max_files", "max_files: invalid number 'many'"),
    ("[lib:A]\n[dir:A:UP]\npath =\n", "path", "[dir:A:UP] path: must name a folder"),
    ("[lib:A]\n[dir:A:UP]\npath = .\n", "path", "would publish the instance directory"),
    ("[lib:A]\n[dir:A:UP]\npath = files/..\n", "path", "would publish the instance directory"),
    ("[lib:A]\n[dir:A:UP]\npath = ..\n", "path", "would publish the instance directory"),
]


@pytest.mark.parametrize("text, marker, fragment", FILE_ERRORS, ids=[e[2][:30] for e in FILE_ERRORS])
def test_file_ini_errors(root, text, marker, fragment):
    path = write(root, "file.ini", "; file areas\n" + text)
    located(root, path, line_of(path, marker), fragment)


def test_first_bad_file_wins_in_load_order(root):
    # sbbs.ini is checked before main.ini, main.ini before msgs.ini and file.ini.
    main = write(root, "main.ini", "[Nodes]\nLastNode = 0\n")
    write(root, "msgs.ini", "[bogus]\n")
    located(root, main, 2, "LastNode")
