"""The file-area screens' pure helpers: sizes, search matching, the listing,
and placing received uploads (never overwriting, never leaving the dir)."""
from __future__ import annotations

from pathlib import Path

from bbs.filebase import FileRecord
from nodes.screens.files import _place, human_size, list_lines, matches


def record(name: str, description: str = "", size: int = 10, uploader: str = "Bob", downloads: int = 0):
    return FileRecord("TEXT", name, size, uploader, 2, 1_700_000_000.0, description, downloads, None)


def test_human_size():
    assert [human_size(n) for n in (0, 999, 1500, 5 * 1024 * 1024, 3 * 1024 ** 3)] == \
        ["0", "999", "1.5K", "5.0M", "3.0G"]


def test_matches_names_descriptions_and_patterns():
    rec = record("DoorKit.ZIP", "A kit for writing doors")
    assert matches(rec, "doorkit")
    assert matches(rec, "WRITING")
    assert matches(rec, "*.zip")
    assert not matches(rec, "*.txt")
    assert not matches(rec, "tetris")
    assert not matches(rec, "   ")


def test_listing_shows_columns_and_strips_control_codes():
    text = list_lines([record("a.txt", "evil \x01r\x1b[2Jtext", size=2048, downloads=7)], 80)
    assert "a.txt" in text and "2.0K" in text and "Bob" in text and " 7" in text
    assert "\x1b" not in text and "\x01r" not in text
    assert "(no description)" in list_lines([record("b.txt")], 80)


def test_place_moves_new_files_and_refuses_existing_ones(tmp_path: Path):
    temp, target = tmp_path / "temp", tmp_path / "dir"
    temp.mkdir()
    target.mkdir()
    (temp / "new.bin").write_bytes(b"new")
    (temp / "taken.txt").write_bytes(b"upload")
    (target / "taken.txt").write_bytes(b"original")
    (temp / "sub").mkdir()                     # folders are ignored
    (temp / "sub" / "x").write_bytes(b"x")
    results = _place(temp, target)
    assert results == [("new.bin", 3, ""), ("taken.txt", 6, "a file by that name exists")]
    assert (target / "new.bin").read_bytes() == b"new"
    assert (target / "taken.txt").read_bytes() == b"original"
    assert not (temp / "new.bin").exists()
    assert sorted(p.name for p in target.iterdir()) == ["new.bin", "taken.txt"]
