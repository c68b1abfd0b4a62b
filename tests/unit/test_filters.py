"""Unit tests for bbs.filters: .can / list-file syntax, matching and files."""
from __future__ import annotations

import calendar
import logging
import os
from pathlib import Path

import pytest

from bbs.errors import BBSError, ConfigError, Reason
from bbs.filters import (
    FilterEntry,
    FilterList,
    FilterSet,
    format_time,
    ip_pattern_matches,
    normalize_ip,
    parse_line,
    parse_time,
    pattern_matches,
)

T0 = float(calendar.timegm((2026, 11, 23, 9, 40, 1, 0, 0, 0)))  # 2026-11-23T09:40:01Z
T0_TEXT = "20261123T094001Z"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- operators


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("bob", "bob", True),
        ("bob", "BOB", True),
        ("BoB", "bob", True),
        ("bob", "bobby", False),
        ("bob", "jimbob", False),
        ("~spam", "I love SPAM and eggs", True),
        ("~spam", "ham", False),
        ("^guest", "GuestUser", True),
        ("^guest", "myguest", False),
        ("*@spammer.com", "joe@SPAMMER.com", True),
        ("*@spammer.com", "joe@spammer.com.au", False),
        ("sys*op", "sysop", True),
        ("sys*op", "sys the op", True),
        ("sys*op", "sysops", False),
        ("a*b*c", "aXXbYYc", True),
        ("a*b*c", "aXXcYYb", False),
        ("*", "anything", True),
        ("~foo*bar", "xx foo and bar yy", True),
        ("^foo*bar", "foo..bar..", True),
        ("^foo*bar", "xfoo..bar", False),
        ("what?", "what?", True),  # ? is an ordinary character
        ("what?", "whatx", False),
        ("a.c", "abc", False),  # regex metacharacters are literal
        ("!~foo", "bar", True),
        ("!~foo", "xFOOx", False),
        ("!bob", "alice", True),
        ("!bob", "Bob", False),
        ("!^x", "yx", True),
    ],
)
def test_pattern_matches_operators(pattern: str, value: str, expected: bool) -> None:
    assert pattern_matches(pattern, value) is expected


@pytest.mark.parametrize(
    ("pattern", "addr", "expected"),
    [
        ("10.0.0.0/8", "10.200.3.4", True),
        ("10.0.0.0/8", "11.0.0.1", False),
        ("192.168.1.77/24", "192.168.1.5", True),  # host bits are ignored
        ("2001:db8::/32", "2001:DB8:1::5", True),
        ("2001:db8::/32", "2001:db9::5", False),
        ("::1", "0:0:0:0:0:0:0:1", True),
        ("0:0:0:0:0:0:0:1", "::1", True),
        ("::1", "::2", False),
        ("1.2.3.4", "1.2.3.4", True),
        ("1.2.3.4", "1.2.3.40", False),
        ("192.168.*", "192.168.7.9", True),
        ("192.168.*", "192.169.7.9", False),
        ("192.168.*", "::ffff:192.168.7.9", True),  # mapped -> IPv4 text
        ("1.2.3.4", "::ffff:1.2.3.4", True),
        ("10.0.0.0/8", "::ffff:10.9.9.9", True),
        ("::ffff:1.2.3.4", "1.2.3.4", True),
        ("::ffff:10.0.0.0/104", "10.1.1.1", True),
        ("[::1]", "::1", True),
        ("1.2.3.4", "[::ffff:1.2.3.4]", True),
        ("2001:db8:*", "2001:db8::1", True),
        ("^10.", "10.1.1.1", True),
        ("~.66.", "1.66.3.4", True),
        ("!10.0.0.0/8", "10.1.1.1", False),
        ("!10.0.0.0/8", "192.0.2.1", True),
        ("10.0.0.0/8", "not-an-address", False),
        ("1.2.3.4", "1.2.3.4.example", False),
        ("10.0.0.0/8", "::a00:1", False),  # an IPv6 address is not in an IPv4 net
    ],
)
def test_ip_pattern_matches(pattern: str, addr: str, expected: bool) -> None:
    assert ip_pattern_matches(pattern, addr) is expected


def test_normalize_ip() -> None:
    assert normalize_ip("::FFFF:1.2.3.4") == "1.2.3.4"
    assert normalize_ip("0:0:0:0:0:0:0:1") == "::1"
    assert normalize_ip("[2001:DB8::1]") == "2001:db8::1"
    assert normalize_ip(" Host.Example ") == "host.example"


# ------------------------------------------------------------------ parsing


@pytest.mark.parametrize("text", ["", "   ", "; a comment", "  ;indented comment", "\t r=orphan", "!"])
def test_parse_line_skips_blank_and_comments(text: str) -> None:
    assert parse_line(text, 1) is None


def test_parse_line_plain_and_negated() -> None:
    entry = parse_line("  bob  \r\n", 7)
    assert entry == FilterEntry(pattern="bob", line=7, negate=False, metadata={}, expires=None)
    neg = parse_line("!~foo", 2)
    assert neg is not None and neg.negate and neg.pattern == "~foo" and neg.text == "!~foo"


def test_parse_line_metadata() -> None:
    entry = parse_line(
        f'1.2.3.4\tt={T0_TEXT} e=20261124T094001Z p=Telnet u=bob r="Too many failed login attempts (20)" h=x.example',
        3,
    )
    assert entry is not None
    assert entry.pattern == "1.2.3.4"
    assert entry.metadata == {
        "t": T0_TEXT,
        "e": "20261124T094001Z",
        "p": "Telnet",
        "u": "bob",
        "r": "Too many failed login attempts (20)",
        "h": "x.example",
    }
    assert entry.expires == T0 + 86400
    assert entry.reason == "Too many failed login attempts (20)"


def test_parse_line_epoch_expiry() -> None:
    entry = parse_line("x\te=1700000000", 1)
    assert entry is not None and entry.expires == 1700000000.0


def test_parse_line_zero_expiry_means_never() -> None:
    entry = parse_line("x\te=0", 1)  # time_t 0 is Synchronet's "not set"
    assert entry is not None and entry.expires is None


def test_parse_line_malformed_expiry_warns_and_never_expires(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bbs.filters"):
        entry = parse_line("x\te=tomorrow r=spam", 4, source="text/name.can")
    assert entry is not None and entry.expires is None and entry.metadata["r"] == "spam"
    assert "text/name.can:4" in caplog.text and "tomorrow" in caplog.text


def test_parse_line_malformed_token_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bbs.filters"):
        entry = parse_line('x\tgarbage u=bob r="unterminated', 1)
    assert entry is not None and entry.metadata == {"u": "bob"}
    assert "garbage" in caplog.text


def test_time_round_trip() -> None:
    assert format_time(T0) == T0_TEXT
    assert parse_time(T0_TEXT) == T0
    assert parse_time("1700000000") == 1700000000.0
    with pytest.raises(ValueError):
        parse_time("2026-11-23")


# ----------------------------------------------------------------- matching


def test_match_first_entry_case_insensitive_with_comments(tmp_path: Path) -> None:
    path = write(tmp_path / "name.can", "; reserved names\n\nSYSOP\n~fuck\n^guest\n*bot\n")
    flist = FilterList.load(path)
    assert len(flist) == 4
    hit = flist.match("sysop", now=T0)
    assert hit is not None and hit.pattern == "SYSOP" and hit.line == 3
    assert flist.match("xFUCKx", now=T0).line == 4
    assert flist.match("Guest42", now=T0).line == 5
    assert flist.match("SpamBot", now=T0).line == 6
    assert flist.match("alice", now=T0) is None


def test_negated_entry_in_list(tmp_path: Path) -> None:
    flist = FilterList.load(write(tmp_path / "email.can", "!*@example.com\n"))
    assert flist.match("a@example.com", now=T0) is None
    assert flist.match("a@other.org", now=T0) is not None


def test_expiry_past_future_and_none(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ip.can",
        f"1.1.1.1\te={format_time(T0 - 1)}\n"
        f"2.2.2.2\te={format_time(T0 + 60)}\n"
        f"3.3.3.3\te={int(T0) - 5}\n"
        "4.4.4.4\te=bogus\n",
    )
    flist = FilterList.load(path)
    assert flist.match_ip("1.1.1.1", now=T0) is None  # expired
    assert flist.match_ip("2.2.2.2", now=T0) is not None
    assert flist.match_ip("2.2.2.2", now=T0 + 60) is None  # expiry instant is past
    assert flist.match_ip("3.3.3.3", now=T0) is None  # epoch form, expired
    assert flist.match_ip("3.3.3.3", now=T0 - 10) is not None
    assert flist.match_ip("4.4.4.4", now=T0 + 10**9) is not None  # malformed: no expiry


def test_match_ip_file_cidr_and_mapped(tmp_path: Path) -> None:
    path = write(tmp_path / "ip.can", "10.0.0.0/8\n2001:db8::/32\n192.168.*\n::1\n")
    flist = FilterList.load(path)
    assert flist.match_ip("10.1.2.3", now=T0).line == 1
    assert flist.match_ip("::ffff:10.1.2.3", now=T0).line == 1
    assert flist.match_ip("2001:db8:ffff::1", now=T0).line == 2
    assert flist.match_ip("192.168.0.1", now=T0).line == 3
    assert flist.match_ip("0:0:0:0:0:0:0:1", now=T0).line == 4
    assert flist.match_ip("203.0.113.9", now=T0) is None


def test_load_missing_file_is_empty(tmp_path: Path) -> None:
    flist = FilterList.load(tmp_path / "nope" / "ip.can")
    assert len(flist) == 0 and flist.match("x") is None and flist.match_ip("1.2.3.4") is None


def test_load_unreadable_raises_config_error(tmp_path: Path) -> None:
    (tmp_path / "ip.can").mkdir()
    with pytest.raises(ConfigError) as info:
        FilterList.load(tmp_path / "ip.can")
    assert "ip.can" in str(info.value)


def test_load_tolerates_undecodable_bytes(tmp_path: Path) -> None:
    path = tmp_path / "name.can"
    path.write_bytes(b"\xb0\xb1bad\r\nbob\r\n")
    flist = FilterList.load(path)
    assert flist.match("BOB", now=T0).line == 2


# ------------------------------------------------------------------ writing


def test_append_then_match_and_reread(tmp_path: Path) -> None:
    path = tmp_path / "text" / "ip.can"  # directory does not exist yet
    flist = FilterList.load(path)
    entry = flist.append(
        "203.0.113.9",
        reason="Too many failed login attempts (3)",
        protocol="telnet",
        user="bob",
        expires=T0 + 600,
        now=T0,
        comment="auto-filtered",
    )
    assert entry.line == 2 and entry.expires == T0 + 600
    assert flist.match_ip("203.0.113.9", now=T0) == entry
    assert path.read_text() == (
        "; auto-filtered\n"
        f'203.0.113.9\tt={T0_TEXT} e={format_time(T0 + 600)} p=telnet u=bob r="Too many failed login attempts (3)"\n'
    )
    again = FilterList.load(path)
    assert again.entries == flist.entries
    assert flist.reload_if_changed() is False  # our own write is not a change


def test_append_keeps_sysop_content_and_fixes_missing_newline(tmp_path: Path) -> None:
    path = write(tmp_path / "ip.can", "; sysop's notes\n10.0.0.0/8")
    flist = FilterList.load(path)
    entry = flist.append("1.2.3.4", now=T0)
    text = path.read_text()
    assert text.startswith("; sysop's notes\n10.0.0.0/8\n1.2.3.4\t")
    assert entry.line == 3 and entry.expires is None
    assert [e.line for e in FilterList.load(path).entries] == [2, 3]


def test_append_sanitises_metadata(tmp_path: Path) -> None:
    flist = FilterList.load(tmp_path / "ip.can")
    entry = flist.append("1.2.3.4", user='evil"\nname\te=0', now=T0)
    lines = (tmp_path / "ip.can").read_text().splitlines()
    assert len(lines) == 1
    assert entry.metadata["u"] == "evil' name e=0"
    assert entry.expires is None


def test_append_rereads_file_changed_by_someone_else(tmp_path: Path) -> None:
    path = write(tmp_path / "ip.can", "1.1.1.1\n")
    flist = FilterList.load(path)
    with open(path, "a") as fh:
        fh.write("2.2.2.2\n3.3.3.3\n")
    entry = flist.append("4.4.4.4", now=T0)
    assert entry.line == 4
    assert [e.pattern for e in flist.entries] == ["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"]


@pytest.mark.parametrize("bad", ["", "   ", "a\tb", "a\nb", "; comment"])
def test_append_rejects_bad_pattern(tmp_path: Path, bad: str) -> None:
    flist = FilterList.load(tmp_path / "ip.can")
    with pytest.raises(BBSError) as info:
        flist.append(bad, now=T0)
    assert info.value.reason is Reason.BAD_VALUE
    assert not (tmp_path / "ip.can").exists()


def test_append_storage_error(tmp_path: Path) -> None:
    blocker = write(tmp_path / "text", "a file where a directory should be")
    flist = FilterList(blocker / "ip.can")
    with pytest.raises(BBSError) as info:
        flist.append("1.2.3.4", now=T0)
    assert info.value.reason is Reason.STORAGE
    assert len(flist) == 0


def test_in_memory_list_append() -> None:
    flist = FilterList(None, [FilterEntry(pattern="a", line=1)])
    entry = flist.append("b", now=T0)
    assert entry.line == 2 and len(flist) == 2 and flist.match("B", now=T0) == entry


# ------------------------------------------------------------------- reload


def test_reload_if_changed(tmp_path: Path) -> None:
    path = write(tmp_path / "host.can", "*.bad.example\n")
    flist = FilterList.load(path)
    assert flist.reload_if_changed() is False
    assert flist.match("x.bad.example", now=T0) is not None

    write(path, "*.worse.example\n~dialup\n")
    assert flist.reload_if_changed() is True
    assert flist.match("x.bad.example", now=T0) is None
    assert flist.match("ppp-dialup-1.isp", now=T0).line == 2
    assert flist.reload_if_changed() is False

    path.unlink()
    assert flist.reload_if_changed() is True
    assert len(flist) == 0
    assert flist.reload_if_changed() is False


def test_reload_detects_same_size_rewrite_by_mtime(tmp_path: Path) -> None:
    path = write(tmp_path / "name.can", "aaa\n")
    flist = FilterList.load(path)
    st = path.stat()
    with open(path, "r+") as fh:  # same inode, same size
        fh.write("bbb\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert flist.reload_if_changed() is True
    assert flist.match("bbb", now=T0) is not None


def test_reload_of_constructed_list_reads_file(tmp_path: Path) -> None:
    path = write(tmp_path / "subject.can", "~viagra\n")
    flist = FilterList(path)
    assert len(flist) == 0
    assert flist.reload_if_changed() is True
    assert flist.match("Cheap VIAGRA", now=T0) is not None


# --------------------------------------------------------------- FilterSet


def test_filter_set_is_ip_filtered_with_exemption(tmp_path: Path) -> None:
    text_dir, ctrl_dir = tmp_path / "text", tmp_path / "ctrl"
    write(text_dir / "ip.can", "10.0.0.0/8\n203.0.113.9\n")
    write(text_dir / "name.can", "sysop\n")
    write(ctrl_dir / "ipfilter_exempt.cfg", "; our office\n10.1.0.0/16\n")
    filters = FilterSet(text_dir, ctrl_dir)
    assert filters.is_ip_filtered("10.2.3.4", now=T0).line == 1
    assert filters.is_ip_filtered("10.1.3.4", now=T0) is None  # exempt
    assert filters.is_ip_filtered("::ffff:203.0.113.9", now=T0).line == 2
    assert filters.is_ip_filtered("198.51.100.1", now=T0) is None
    assert filters.name.match("SysOp", now=T0) is not None
    assert len(filters.host) == len(filters.email) == len(filters.subject) == 0

    write(ctrl_dir / "ipfilter_exempt.cfg", "10.0.0.0/8\n")
    write(text_dir / "host.can", "~evil\n")
    assert filters.reload_if_changed() is True
    assert filters.is_ip_filtered("10.2.3.4", now=T0) is None
    assert filters.host.match("an.evil.host", now=T0) is not None
    assert filters.reload_if_changed() is False
