"""Pure terminal handling: keys, Ctrl-A rendering, @-codes, encodings,
RLogin handshake, SSH algorithm lists, menu files, display files."""
from __future__ import annotations

from pathlib import Path

import pytest

from bbs.errors import ConfigError
from nodes import terminal as t
from nodes.menus import load_menus
from nodes.rlogin import Handshake, split_window
from nodes.session import read_display_file, record_caller
from nodes.ssh import MODERN_KEX, algorithm_options, classify_algorithms

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("data, key", [
    (b"\x1b[A", t.KEY_UP), (b"\x1bOA", t.KEY_UP), (b"\x1b[1;5A", t.KEY_UP),
    (b"\x1b[B", t.KEY_DOWN), (b"\x1b[C", t.KEY_RIGHT), (b"\x1b[D", t.KEY_LEFT),
    (b"\x1b[H", t.KEY_HOME), (b"\x1b[1~", t.KEY_HOME), (b"\x1b[7~", t.KEY_HOME), (b"\x1bOH", t.KEY_HOME),
    (b"\x1b[F", t.KEY_END), (b"\x1b[4~", t.KEY_END), (b"\x1b[8~", t.KEY_END), (b"\x1b[K", t.KEY_END),
    (b"\x1b[5~", t.KEY_PGUP), (b"\x1b[V", t.KEY_PGUP), (b"\x1b[6~", t.KEY_PGDN), (b"\x1b[U", t.KEY_PGDN),
    (b"\x1b[2~", t.KEY_INSERT), (b"\x1b[@", t.KEY_INSERT), (b"\x1b[3~", t.KEY_DELETE),
    (b"\x7f", t.KEY_BACKSPACE), (b"\x08", t.KEY_BACKSPACE),
])
def test_special_keys_in_every_common_encoding(data, key):
    assert t.KeyDecoder().feed(data) == [key]


def test_enter_is_one_key_whatever_the_client_sends():
    decoder = t.KeyDecoder()
    assert decoder.feed(b"a\r\nb\r\x00c\rd\ne") == ["a", "\r", "b", "\r", "c", "\r", "d", "\r", "e"]
    assert decoder.feed(b"\r") == ["\r"] and decoder.feed(b"\n") == []  # CR LF split across reads


def test_sequences_split_across_reads_and_lone_escape():
    decoder = t.KeyDecoder()
    assert decoder.feed(b"x\x1b[") == ["x"] and decoder.holding
    assert decoder.feed(b"5~y") == [t.KEY_PGUP, "y"]
    assert decoder.feed(b"\x1b") == [] and decoder.flush() == [t.KEY_ESCAPE]
    assert decoder.feed(b"\x1b[9;9Zq") == ["q"]          # unknown sequence: dropped, not typed
    assert decoder.feed(b"\x1b[" + b"1" * 100) == []      # junk does not grow without bound
    assert not decoder.holding


def test_cursor_position_report_and_charsets():
    assert t.KeyDecoder().feed(b"\x1b[24;80R") == [t.CursorReport(24, 80)]
    assert t.KeyDecoder("utf-8").feed("é".encode()) == ["é"]
    assert t.KeyDecoder("cp437").feed(b"\x82") == ["é"]
    decoder = t.KeyDecoder("utf-8")
    assert decoder.feed(b"\xc3") == [] and decoder.feed(b"\xa9") == ["é"]


def test_ctrl_a_codes_become_sgr_only_when_text_follows():
    out = t.render("\x01h\x01r\x01nx\x01b\x01hy", ansi=True)
    assert out == ["x\x1b[0;1;34;40my"]                  # normal was already shown
    assert t.render("\x01h\x01rRed\x01n plain\n", ansi=False) == ["Red plain\r\n"]
    assert t.render("a\x01Pb", ansi=True) == ["a", t.PAUSE, "b"]
    assert t.render("\x01l", ansi=True) == ["\x1b[2J\x1b[H"] and t.render("\x01l", ansi=False) == ["\r\n"]
    assert t.render("\x1b[1;31mX", ansi=False) == ["X"]   # raw ANSI stripped for dumb terminals


def test_a_colour_set_before_a_cursor_move_still_reaches_the_text():
    assert t.render("\x01h\x01y\x1b[10;5HHello", ansi=True) == ["\x1b[10;5H\x1b[0;1;33;40mHello"]
    # the text's own colour (an .ans file) stays through its cursor moves
    assert t.render("\x1b[1;31mRed\x1b[2;1Hmore", ansi=True) == ["\x1b[1;31mRed\x1b[2;1Hmore"]


def test_atcodes_with_padding_and_unknown_codes_kept():
    values = {"USER": "Alice", "NODE": "3"}
    assert t.expand_atcodes("Hi @USER@ on @NODE@", values) == "Hi Alice on 3"
    assert t.expand_atcodes("[@USER-L8@][@USER-R8@][@NODE-C3@]", values) == "[Alice   ][   Alice][ 3 ]"
    assert t.expand_atcodes("mail me @ home @NOPE@", values) == "mail me @ home @NOPE@"


def test_output_encodings():
    assert t.encode_output("╔═╗ é", "cp437") == b"\xc9\xcd\xbb \x82"
    assert t.encode_output("╔═╗ é", "utf-8") == "╔═╗ é".encode()
    assert t.encode_output("╔═╗ é ░", "ascii") == b"+-+ e #"


@pytest.mark.parametrize("ttype, expected", [
    ("xterm-256color", (True, "utf-8")), ("syncterm", (True, "cp437")), ("ANSI-BBS", (True, "cp437")),
    ("dumb", (False, "ascii")), ("", (None, None)), ("weird-term", (None, None)), ("VT100", (True, "utf-8")),
])
def test_terminal_types(ttype, expected):
    assert t.classify_terminal(ttype) == expected


def test_wrap_keeps_blank_lines_and_words():
    assert t.wrap_lines("one two three\n\nfour", 8) == ["one two", "three", "", "four"]


def test_rlogin_handshake_and_window_size():
    shake = Handshake()
    assert shake.feed(b"\0pass") is None
    assert shake.feed(b"word\0Alice\0ansi-bbs/38400\0typed") == b"typed"
    assert (shake.client_user, shake.server_user, shake.terminal) == ("password", "Alice", "ansi-bbs")
    with pytest.raises(ValueError):
        Handshake().feed(b"GET / HTTP/1.0\r\n")
    with pytest.raises(ValueError):
        Handshake().feed(b"\0" + b"x" * 2000)
    data, sizes = split_window(b"ab\xff\xffss\x00\x19\x00\x50\x00\x00\x00\x00cd")
    assert data == b"abcd" and sizes == [(80, 25)]


def test_ssh_algorithms_modern_first_then_legacy():
    options = algorithm_options(["ssh-rsa", "diffie-hellman-group14-sha1", "aes128-cbc", "hmac-sha1"])
    assert options["kex_algs"][:len(MODERN_KEX)] == list(MODERN_KEX)
    assert options["kex_algs"][-1] == "diffie-hellman-group14-sha1"
    assert options["encryption_algs"][-1] == "aes128-cbc" and options["mac_algs"][-1] == "hmac-sha1"
    assert options["signature_algs"][-1] == "ssh-rsa"
    with pytest.raises(ValueError, match="unknown SSH algorithm 'rot13'"):
        classify_algorithms(["rot13"])


def test_shipped_menus_load_and_bad_menus_are_located(tmp_path: Path):
    screens = frozenset({"who", "msg_read"})
    menus = load_menus(REPO / "text" / "menu", frozenset(__import__("nodes.screens", fromlist=["SCREENS"]).SCREENS))
    assert {"main", "message", "sysop"} <= set(menus)
    assert menus["main"].item("m").action == "menu" and menus["main"].item("!").require.text == "SYSOP"
    folder = tmp_path / "menu"
    folder.mkdir()
    (folder / "main.ini").write_text("[Menu]\nTitle = Main\n\n[Key:W]\nAction = whoo\n")
    with pytest.raises(ConfigError) as err:
        load_menus(folder, screens)
    assert f"{folder / 'main.ini'}:5:" in str(err.value) and "unknown action 'whoo'" in str(err.value)
    (folder / "main.ini").write_text("[Menu]\n[Key:W]\nAction = who\nRequire = LEVEL LEVEL\n")
    with pytest.raises(ConfigError, match=r"main.ini:4:"):
        load_menus(folder, screens)
    (folder / "main.ini").write_text("[Menu]\n[Key:M]\nAction = menu nowhere\n")
    with pytest.raises(ConfigError, match="menu 'nowhere' does not exist"):
        load_menus(folder, screens)


def test_display_files_prefer_ans_for_ansi_and_stay_in_text(tmp_path: Path):
    (tmp_path / "hello.msg").write_text("plain ╔", encoding="utf-8")
    (tmp_path / "hello.ans").write_bytes(b"\x1b[1mCP437 \xc9\x1aSAUCE00")
    assert read_display_file(tmp_path, "hello", ansi=True) == "\x1b[1mCP437 ╔"
    assert read_display_file(tmp_path, "hello", ansi=False) == "plain ╔"
    assert read_display_file(tmp_path, "missing", ansi=True) is None
    (tmp_path.parent / "secret.msg").write_text("no")
    assert read_display_file(tmp_path, "../secret", ansi=False) is None


def test_last_callers_log_is_bounded(tmp_path: Path):
    path = tmp_path / "logon.lst"
    assert record_caller(path, {"alias": "a"}) == []
    assert record_caller(path, {"alias": "b"}) == [{"alias": "a"}]
    for index in range(300):
        record_caller(path, {"alias": str(index)})
    assert len(path.read_text().splitlines()) == 200
