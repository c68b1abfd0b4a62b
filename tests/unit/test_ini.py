"""Unit tests for bbs.ini: the located .ini reader."""
from __future__ import annotations

from pathlib import Path

import pytest

from bbs import units
from bbs.errors import ConfigError
from bbs.ini import parse_ini, strip_comment


def write(tmp_path: Path, text: str, name: str = "test.ini") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str):
    return parse_ini(write(tmp_path, text))


def error_of(tmp_path: Path, text: str) -> tuple[Path, ConfigError]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        parse_ini(path)
    return path, info.value


# --- comments --------------------------------------------------------------------

@pytest.mark.parametrize("text, kept", [
    ("; whole line", ""),
    ("   ; indented whole line", ""),
    ("key = value ; trailing", "key = value "),
    ("key = value\t; after a tab", "key = value\t"),
    ("key = a;b", "key = a;b"),                 # no blank before ';': part of the value
    ("key = http://x/;y ; note", "key = http://x/;y "),
    ("key = value", "key = value"),
])
def test_strip_comment(text, kept):
    assert strip_comment(text) == kept


def test_comments_in_a_file(tmp_path):
    ini = load(tmp_path, "; header comment\n"
                         "# hash comment line\n"
                         "[Sec] ; section comment\n"
                         "A = 1 ; one\n"
                         "B = x;y\n"
                         "C = spaced  inner   words\t; tab comment\n"
                         "D =\n"
                         "E = ;only a comment\n")
    sec = ini.section("Sec")
    assert sec.get("A", None) == "1"
    assert sec.get("B", None) == "x;y"
    assert sec.get("C", None) == "spaced  inner   words"
    assert sec.get("D", None) == ""
    assert sec.get("E", None) == ""
    assert sec.raw("A").line == 4 and sec.raw("C").line == 6
    assert sec.line == 3


def test_value_may_contain_equals_signs(tmp_path):
    ini = load(tmp_path, "[S]\nNotice = a=b = c\n")
    assert ini.section("S").get("Notice", None) == "a=b = c"


# --- case-insensitivity ---------------------------------------------------------------

def test_sections_and_keys_are_case_insensitive(tmp_path):
    ini = load(tmp_path, "[Global]\nHostName = bbs.example\n")
    for name in ("Global", "global", "GLOBAL"):
        sec = ini.section(name)
        assert sec.line == 1
        assert "hostname" in sec and "HOSTNAME" in sec
        assert sec.get("hOsTnAmE", None) == "bbs.example"
    item = ini.section("global").raw("HOSTNAME")
    assert item.key == "HostName" and item.line == 2   # keeps the spelling of the file


def test_sections_keep_file_order_and_prefixed_filters(tmp_path):
    ini = load(tmp_path, "[sub:A:X]\n[grp:A]\n[Sub:A:Y]\n[other]\n")
    assert list(ini.sections) == ["sub:a:x", "grp:a", "sub:a:y", "other"]
    assert [s.name for s in ini.prefixed("SUB:")] == ["sub:A:X", "Sub:A:Y"]


def test_keys_before_any_section_go_to_the_root(tmp_path):
    ini = load(tmp_path, "Top = 1\n[S]\nA = 2\n")
    assert ini.root.get("top", None) == "1"
    assert "top" not in ini.section("S")


def test_absent_section_is_empty_with_defaults(tmp_path):
    ini = load(tmp_path, "[S]\nA = 1\n")
    missing = ini.section("Missing")
    assert missing.line == 0 and missing.values == {}
    assert missing.get("A", 42, int) == 42
    assert "missing" not in ini.sections


# --- errors ----------------------------------------------------------------------------

def test_duplicate_section_names_both_lines(tmp_path):
    path, err = error_of(tmp_path, "[Mail]\nA = 1\n\n[MAIL]\nB = 2\n")
    assert str(err) == f"{path}:4: duplicate section [MAIL] (first at line 1)"
    assert err.path == str(path) and err.line == 4


def test_duplicate_key_names_both_lines(tmp_path):
    path, err = error_of(tmp_path, "[BBS]\nTelnetPort = 23\nSSHPort = 22\ntelnetport = 2023\n")
    assert str(err) == f"{path}:4: duplicate key telnetport (first at line 2)"


def test_duplicate_root_key(tmp_path):
    path, err = error_of(tmp_path, "A = 1\nA = 2\n[S]\n")
    assert str(err).startswith(f"{path}:2: duplicate key A (first at line 1)")


def test_same_key_in_two_sections_is_fine(tmp_path):
    ini = load(tmp_path, "[A]\nPort = 1\n[B]\nPort = 2\n")
    assert ini.section("A").get("Port", 0, int) == 1
    assert ini.section("B").get("Port", 0, int) == 2


@pytest.mark.parametrize("line", ["[Global", "[]", "[ ]", "[Global]junk", "[Global] x"])
def test_malformed_section_header(tmp_path, line):
    path, err = error_of(tmp_path, f"; comment\n{line}\n")
    assert str(err).startswith(f"{path}:2: malformed section header "), str(err)


@pytest.mark.parametrize("line", ["TelnetPort 23", "justtext", "= value", "  = 3"])
def test_line_without_key_and_equals(tmp_path, line):
    path, err = error_of(tmp_path, f"[BBS]\nA = 1\n{line}\n")
    assert str(err) == f"{path}:3: expected 'key = value', got {line.strip()!r}"


def test_missing_file(tmp_path):
    path = tmp_path / "nope.ini"
    with pytest.raises(ConfigError) as info:
        parse_ini(path)
    assert str(info.value) == f"{path}: file not found"
    assert info.value.line is None


def test_unreadable_file(tmp_path):
    path = tmp_path / "latin.ini"
    path.write_bytes(b"[S]\nName = caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        parse_ini(path)
    assert str(info.value).startswith(f"{path}: cannot read: ")


def test_byte_order_mark_is_ignored(tmp_path):
    # Regression: Windows editors save a BOM; it used to break the first header.
    path = tmp_path / "bom.ini"
    path.write_bytes(b"\xef\xbb\xbf[Global]\r\nHostname = x\r\n")
    ini = parse_ini(path)
    assert ini.section("Global").get("Hostname", None) == "x"
    assert ini.section("Global").line == 1


def test_text_argument_is_attributed_to_path(tmp_path):
    path = tmp_path / "never-written.ini"
    with pytest.raises(ConfigError) as info:
        parse_ini(path, "[S]\nbad line\n")
    assert str(info.value).startswith(f"{path}:2: ")


# --- typed access ---------------------------------------------------------------------

def test_get_parse_error_is_located_at_the_key(tmp_path):
    path = write(tmp_path, "[BBS]\n\nTelnetPort = 99999\n")
    sec = parse_ini(path).section("BBS")
    with pytest.raises(ConfigError) as info:
        sec.get("telnetport", 23, units.parse_port)
    assert str(info.value) == f"{path}:3: [BBS] TelnetPort: 99999 is above the maximum 65535"


def test_error_points_at_key_or_section(tmp_path):
    path = write(tmp_path, "x = 1\n[FTP]\nPasvPortHigh = 10\n")
    sec = parse_ini(path).section("ftp")
    assert str(sec.error("PasvPortHigh", "too low")) == f"{path}:3: [FTP] too low"
    assert str(sec.error("PasvPortLow", "absent")) == f"{path}:2: [FTP] absent"


def test_unused_lists_keys_no_accessor_asked_for(tmp_path):
    ini = load(tmp_path, "Stray = 1\n[S]\nUsed = 1\nTypo = 2\nRaw = 3\n")
    sec = ini.section("S")
    sec.get("used", None)
    sec.raw("RAW")
    sec.get("NeverThere", None)
    assert [(s.name, v.key, v.line) for s, v in ini.unused()] == [("", "Stray", 1), ("S", "Typo", 4)]
    assert [v.key for v in sec.unused()] == ["Typo"]
