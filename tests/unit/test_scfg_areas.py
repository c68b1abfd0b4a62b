"""SCFG Message Areas and File Areas: adding, copying and removing groups/subs
and libraries/dirs through the menus, checked by the loader, saved keeping comments."""
from __future__ import annotations

from pathlib import Path

import pytest
from urwid.testing import press

from bbs.instance import load_config
from console.cfgfile import (ini_add_section, ini_remove_section, ini_section_spans, ini_section_values,
                             validate_list)
from console.scfg import ScfgView
from console.scfg_stores import standalone_stores
from tests.support import run_async
from tests.unit.scfg_support import SIZE, open_path, root, screen_text  # noqa: F401 (root: a fixture)

SAMPLE = """; areas
[grp:A]
description = a   ; inline

; about B1
[sub:A:B1]
name = b1
; between keys
post_ars = SYSOP
; after B1's last key

[sub:A:B2]
name = b2
"""


def test_section_spans_and_values():
    spans = ini_section_spans(SAMPLE)
    assert [(name, first) for name, first, _ in spans] == [("grp:A", 1), ("sub:A:B1", 5), ("sub:A:B2", 11)]
    assert spans[1][2] == 9                                  # ends after post_ars, not after the comment
    assert ini_section_values(SAMPLE, "SUB:a:b1") == [("name", "b1"), ("post_ars", "SYSOP")]
    assert ini_section_values(SAMPLE, "grp:A") == [("description", "a")]
    with pytest.raises(KeyError):
        ini_section_values(SAMPLE, "sub:A:NONE")


def test_add_section_after_one_or_at_the_end():
    out = ini_add_section(SAMPLE, "sub:A:NEW", [("name", "New"), ("ars", "")], after="sub:A:B1").splitlines()
    at = out.index("[sub:A:NEW]")
    assert out[at - 2:at + 3] == ["post_ars = SYSOP", "", "[sub:A:NEW]", "name = New", "ars ="]
    assert out[at + 3] == "; after B1's last key"            # the comment still precedes what follows
    out = ini_add_section(SAMPLE + "\n\n", "grp:Z", [("description", "z")]).splitlines()
    assert out[-4:] == ["name = b2", "", "[grp:Z]", "description = z"]
    assert ini_add_section("", "grp:Z", []) == "[grp:Z]\n"


def test_remove_section_keeps_the_comments_of_others():
    out = ini_remove_section(SAMPLE, "sub:A:B1")
    assert "[sub:A:B1]" not in out and "; between keys" not in out and "; about B1" not in out
    assert "; after B1's last key" in out and "; areas" in out and "description = a   ; inline" in out
    assert "\n\n\n" not in out
    out = ini_remove_section(SAMPLE, "sub:A:B2")
    assert out.endswith("; after B1's last key\n") and "name = b2" not in out
    glued = "[grp:A]\nx = 1\n; glued to A\n[grp:B]\ny = 2\n"
    assert ini_remove_section(glued, "grp:B") == "[grp:A]\nx = 1\n; glued to A\n"


def test_qwknodes_entries_must_be_qwk_ids(tmp_path: Path):
    path = tmp_path / "qwknodes.cfg"
    assert validate_list(path, ["; hubs", "VERT", "DOVE-NET"]) is None
    assert validate_list(path, ["VERT", "vert*"]) == (f"{path}:2: 'vert*' is not a QWK-ID "
                                                      "(1-8 letters, digits, _ or -; no wildcards)")
    assert "TOOLONGID" in validate_list(path, ["TOOLONGID"])


def test_add_a_sub_after_the_groups_last_one(root: Path):
    msgs = root / "ctrl" / "msgs.ini"
    before = msgs.read_text()
    view = ScfgView(root)
    open_path(view, "Message Areas", "Local")
    press(view, SIZE, "a", *"chat", "enter")
    assert "Name of sub CHAT: CHAT" in screen_text(view)
    press(view, SIZE, *["backspace"] * 4, *"Chatter", "enter")
    assert "saved ctrl/msgs.ini: added sub CHAT to Local; " in screen_text(view)
    assert view.texts()[view.walker.get_focus()[1]] == "Sub CHAT ..."
    text = msgs.read_text()
    assert text.startswith(before.split("[grp:Fun]")[0].rstrip("\n") + "\n\n[sub:Local:CHAT]\nname = Chatter\n"
                           "description = Chatter\n\n[grp:Fun]")
    assert text.replace("[sub:Local:CHAT]\nname = Chatter\ndescription = Chatter\n\n", "") == before
    sub = load_config(root).msgs.sub("CHAT")
    assert (sub.group, sub.name, sub.newsgroup) == ("Local", "Chatter", "local.chat")


def test_a_refused_code_is_asked_again_with_the_loaders_reason(root: Path):
    msgs = root / "ctrl" / "msgs.ini"
    before = msgs.read_text()
    view = ScfgView(root)
    open_path(view, "Message Areas", "Fun")
    press(view, SIZE, "a", *"general", "enter", "enter")      # GENERAL is Local's
    assert f"{msgs}:" in screen_text(view) and "duplicate sub code 'GENERAL'" in screen_text(view)
    assert "New sub code: GENERAL" in screen_text(view)        # asked again, answer kept
    press(view, SIZE, *["backspace"] * 7, *"much-too-long", "enter", "enter")
    assert "invalid code 'MUCH-TOO-LONG' (1-8 letters, digits, _ or -)" in screen_text(view)
    press(view, SIZE, "esc")
    assert "cancelled" in screen_text(view) and msgs.read_text() == before


def test_copy_a_sub_keeps_its_settings_but_not_its_newsgroup(root: Path):
    view = ScfgView(root)
    open_path(view, "Message Areas", "Local", "Sub SYSOP")
    press(view, SIZE, "esc", "c", *"news", "enter")
    assert "Name of sub NEWS: Sysop Notices" in screen_text(view)
    press(view, SIZE, "enter")
    subs = load_config(root).msgs.subs
    assert [s.code for s in subs] == ["GENERAL", "TECH", "SYSOP", "NEWS", "GAMES"]
    news = subs[3]
    assert (news.name, news.description, news.newsgroup) == ("Sysop Notices", "Announcements from the sysop",
                                                            "local.news")
    assert "[sub:Local:NEWS]\nname = Sysop Notices\ndescription = Announcements from the sysop\n" \
           "post_ars = SYSOP\n" in (root / "ctrl" / "msgs.ini").read_text()


def test_remove_a_sub_with_messages_asks_and_keeps_them(root: Path):
    async def main() -> None:
        async with standalone_stores(root) as stores:
            await stores.msgs.post("TECH", "Zaphod", "Hi", "text")
            view = ScfgView(root, stores=stores)
            open_path(view, "Message Areas", "Local")
            press(view, SIZE, *["down"] * 3, "d")              # Sub TECH
            await view.settle()
            assert "Remove sub TECH? Its 1 message(s) stay in data/msgs.db. [y/N]" in screen_text(view)
            press(view, SIZE, "n")
            assert load_config(root).msgs.sub("TECH") is not None
            press(view, SIZE, "d")
            await view.settle()
            press(view, SIZE, "y")
            assert "saved ctrl/msgs.ini: removed sub TECH" in screen_text(view)
            assert load_config(root).msgs.sub("TECH") is None
            assert "Sub TECH ..." not in view.texts()
            assert (await stores.msgs.stats("TECH"))[0] == 1
            press(view, SIZE, "home", *["down"] * 3, "d")     # Sub SYSOP: empty
            await view.settle()
            assert "Remove sub SYSOP? Nothing is stored in it. [y/N]" in screen_text(view)
    run_async(main())


def test_add_and_remove_a_group(root: Path):
    msgs = root / "ctrl" / "msgs.ini"
    view = ScfgView(root)
    open_path(view, "Message Areas")
    press(view, SIZE, "a", *"Net", "enter")
    assert view.texts() == ["Local ...", "Fun ...", "Net ..."] and "added group Net" in screen_text(view)
    press(view, SIZE, "enter", "a", *"echo", "enter", "enter", "esc")
    assert [s.code for s in load_config(root).msgs.subs if s.group == "Net"] == ["ECHO"]
    press(view, SIZE, "home", "d")                            # Local and its three subs
    assert "Remove group Local and its 3 sub(s)? (Stored messages and files are kept.) [y/N]" in screen_text(view)
    press(view, SIZE, "y")
    config = load_config(root).msgs
    assert [g.name for g in config.groups] == ["Fun", "Net"]
    assert [s.code for s in config.subs] == ["GAMES", "ECHO"]
    assert msgs.read_text().startswith("; msgs.ini: message groups and sub-boards")


def test_file_areas_add_creates_the_folder_and_remove_keeps_the_files(root: Path):
    async def main() -> None:
        async with standalone_stores(root) as stores:
            view = ScfgView(root, stores=stores)
            open_path(view, "File Areas", "Main")
            press(view, SIZE, "a", *"games", "enter", *["backspace"] * 5, *"Games", "enter")
            folder = root / "files" / "main" / "games"
            assert folder.is_dir()
            assert load_config(root).files.dir("GAMES").path == folder
            (folder / "doom.zip").write_bytes(b"x" * 10)
            await stores.files.add("GAMES", "doom.zip", 10, uploader="Sysop")
            press(view, SIZE, "c", *"games2", "enter", "enter")   # a copy gets its own folder
            assert load_config(root).files.dir("GAMES2").path == root / "files" / "main" / "games2"
            assert (root / "files" / "main" / "games2").is_dir()
            press(view, SIZE, "up", "d")
            await view.settle()
            assert ("Remove dir GAMES? Its 1 file(s) stay in the folder(s) and 1 record(s) in data/file.db. "
                    "[y/N]") in screen_text(view)
            press(view, SIZE, "y")
            assert load_config(root).files.dir("GAMES") is None
            assert (folder / "doom.zip").exists() and await stores.files.get("GAMES", "doom.zip") is not None
    run_async(main())


def test_an_invalid_requirement_is_refused_by_the_loader(root: Path):
    view = ScfgView(root)
    open_path(view, "File Areas", "Main", "Dir UPLOADS", "upload_ars")
    press(view, SIZE, *["backspace"] * 9, *"LEVEL 20 OR WIZARD", "enter")
    assert "upload_ars: unknown keyword 'WIZARD'" in screen_text(view)
    assert load_config(root).files.dir("UPLOADS").upload_ars is not None
    assert "WIZARD" not in (root / "ctrl" / "file.ini").read_text()
