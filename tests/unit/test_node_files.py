"""The file-area screens' pure helpers: sizes, search matching, the listing,
placing received uploads (never overwriting, never leaving the dir), and
the transfer protocol table (each row's commands run against each other)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bbs.filebase import FileRecord
from nodes.screens.files import _place, human_size, list_lines, matches, name_problem
from nodes.transfer import PROTOCOLS, available, find


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


# -- the protocol table ------------------------------------------------------------
def test_protocol_table_is_synchronets_keys_with_zmodem_first():
    assert [(p.key, p.name, p.batch) for p in PROTOCOLS] == [
        ("Z", "Zmodem", True), ("X", "Xmodem-CRC", False), ("1", "Xmodem-1K", False), ("Y", "Ymodem", True)]
    assert [p.download[0] for p in PROTOCOLS] == ["sz", "sx", "sx", "sb"]
    assert [p.upload[0] for p in PROTOCOLS] == ["rz", "rx", "rx", "rb"]
    assert all("-R" in p.download and "-R" in p.upload for p in PROTOCOLS)  # restricted: no paths
    assert find(PROTOCOLS, "y").name == "Ymodem" and find(PROTOCOLS, "q") is None


def test_protocol_argv_ends_options_before_names():
    zmodem, xmodem = find(PROTOCOLS, "Z"), find(PROTOCOLS, "X")
    assert zmodem.download_argv("-rf") == ["sz", "-b", "-e", "-q", "-R", "--", "-rf"]
    assert zmodem.upload_argv(None) == ["rz", "-b", "-e", "-q", "-R"]
    assert xmodem.upload_argv("a.bin") == ["rx", "-b", "-c", "-q", "-R", "--", "a.bin"]
    with pytest.raises(ValueError):
        xmodem.upload_argv(None)                 # XMODEM carries no name: the caller must give one


def test_only_installed_protocols_are_offered(monkeypatch, tmp_path: Path):
    assert available() == list(PROTOCOLS)       # lrzsz is a test dependency (.ci/run)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert available() == []


def test_upload_names_are_checked():
    assert name_problem("report.txt") == ""
    for bad in ("", "..", "../x", "a/b", "x\x1b[2J", ".rz-abc"):
        assert name_problem(bad) == "not a valid file name", bad


def transfer(send: list[str], receive: list[str], source: Path, target: Path) -> None:
    """Run a sender and a receiver wired to each other (two pipes)."""
    to_receiver, from_sender = os.pipe()
    to_sender, from_receiver = os.pipe()
    sender = subprocess.Popen(send, cwd=source, stdin=to_sender, stdout=from_sender, stderr=subprocess.DEVNULL)
    receiver = subprocess.Popen(receive, cwd=target, stdin=to_receiver, stdout=from_receiver,
                                stderr=subprocess.DEVNULL)
    for fd in (to_receiver, from_sender, to_sender, from_receiver):
        os.close(fd)
    assert receiver.wait(30) == 0 and sender.wait(30) == 0, (send, receive)


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: p.name)
def test_each_protocols_download_command_talks_to_its_upload_command(protocol, tmp_path: Path):
    source, target = tmp_path / "source", tmp_path / "target"
    source.mkdir()
    target.mkdir()
    data = bytes(range(256)) * 9 + b"\xff\x18\x11\x13\r\n"
    (source / "f.bin").write_bytes(data)
    transfer(protocol.download_argv("f.bin"), protocol.upload_argv("f.bin"), source, target)
    received = (target / "f.bin").read_bytes()
    if protocol.batch:                           # ZMODEM and YMODEM carry the length
        assert received == data
    else:                                        # XMODEM fills the last block with Ctrl-Z
        assert received == data + b"\x1a" * (-len(data) % 128)
