"""Unit tests for bbs.ars: access requirement strings, checked fail-closed."""
from __future__ import annotations

import logging

import pytest

from bbs.ars import ALLOW_ALL, SYSOP_LEVEL, AccessContext, parse_ars


def allows(text: str, **ctx) -> bool:
    return parse_ars(text).allows(AccessContext(**ctx))


# --- empty ------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["", "   ", "\t"])
def test_empty_allows_everyone(text):
    req = parse_ars(text)
    assert req is ALLOW_ALL
    assert req.allows(AccessContext())
    assert req.allows(AccessContext(guest=True, level=0))


def test_text_is_kept_stripped():
    assert parse_ars("  LEVEL 20 ").text == "LEVEL 20"


# --- numeric keywords and operators -------------------------------------------------

@pytest.mark.parametrize("text, level, expected", [
    ("LEVEL 20", 19, False), ("LEVEL 20", 20, True), ("LEVEL 20", 99, True),   # bare = at least
    ("LEVEL = 20", 20, True), ("LEVEL =20", 19, False), ("LEVEL = 20", 21, False),
    ("LEVEL < 20", 19, True), ("LEVEL <20", 20, False), ("LEVEL < 20", 21, False),
    ("LEVEL > 20", 21, True), ("LEVEL >20", 20, False), ("LEVEL > 20", 19, False),
    ("level 20", 20, True), ("Level 20", 19, False),
    ("LEVEL #20", 20, True), ("LEVEL #20", 19, False),
])
def test_level(text, level, expected):
    assert allows(text, level=level) is expected


@pytest.mark.parametrize("text, age, expected", [
    ("AGE 18", 17, False), ("AGE 18", 18, True), ("AGE 18", 40, True),
    ("AGE < 18", 17, True), ("AGE < 18", 18, False),
    ("AGE = 18", 18, True), ("AGE = 18", 19, False), ("AGE > 18", 19, True),
])
def test_age(text, age, expected):
    assert allows(text, age=age) is expected


@pytest.mark.parametrize("text, number, expected", [
    ("USER 5", 5, True), ("USER 5", 6, False), ("USER 5", 4, False),   # bare = equal
    ("USER > 5", 6, True), ("USER < 5", 4, True), ("USER < 5", 5, False),
])
def test_user(text, number, expected):
    assert allows(text, user=number) is expected


@pytest.mark.parametrize("text, node, expected", [
    ("NODE 2", 2, True), ("NODE 2", 3, False), ("NODE 2", 1, False), ("NODE > 2", 3, True),
])
def test_node(text, node, expected):
    assert allows(text, node=node) is expected


# --- letter keywords --------------------------------------------------------------------

@pytest.mark.parametrize("text, flags, expected", [
    ("FLAG A", "A", True), ("FLAG A", "XAZ", True), ("FLAG A", "B", False), ("FLAG A", "", False),
    ("FLAG AB", "BA", True), ("FLAG AB", "A", False),                       # every letter needed
    ("flag a", "A", True), ("FLAG A", "a", True),                           # case-insensitive
    ("FLAG1 A", "A", True), ("FLAG2 C", "C", True), ("FLAG3 C", "B", False), ("FLAG4 Z", "Z", True),
])
def test_flag(text, flags, expected):
    assert allows(text, flags=flags) is expected


def test_exempt_and_rest_use_their_own_sets():
    assert allows("EXEMPT X", exempt="X") is True
    assert allows("EXEMPT X", flags="X") is False
    assert allows("REST P", restrict="P") is True
    assert allows("REST P", flags="P", exempt="P") is False


@pytest.mark.parametrize("text, protocol, expected", [
    ("PROTOCOL telnet", "telnet", True), ("PROTOCOL telnet", "Telnet", True),
    ("PROTOCOL TELNET", "telnet", True), ("PROTOCOL telnet", "ssh", False),
    ("PROTOCOL ftp", "", False),
])
def test_protocol(text, protocol, expected):
    assert allows(text, protocol=protocol) is expected


def test_sysop_guest_ansi():
    assert SYSOP_LEVEL == 90
    assert allows("SYSOP", level=90) and allows("SYSOP", level=99)
    assert not allows("SYSOP", level=89)
    assert allows("GUEST", guest=True) and not allows("GUEST", guest=False)
    assert allows("ANSI", ansi=True) and not allows("ANSI", ansi=False)


# --- operators and precedence ---------------------------------------------------------

@pytest.mark.parametrize("text", ["NOT GUEST", "not guest", "!GUEST", "! GUEST"])
def test_not(text):
    assert allows(text, guest=False) is True
    assert allows(text, guest=True) is False


@pytest.mark.parametrize("text", ["LEVEL 20 AND FLAG A", "LEVEL 20 & FLAG A", "LEVEL 20 FLAG A",
                                  "level 20 and flag a", "LEVEL 20&FLAG A"])
def test_and_forms(text):
    assert allows(text, level=20, flags="A") is True
    assert allows(text, level=19, flags="A") is False
    assert allows(text, level=20, flags="B") is False


@pytest.mark.parametrize("text", ["SYSOP OR FLAG S", "SYSOP | FLAG S", "sysop or flag s", "SYSOP|FLAG S"])
def test_or_forms(text):
    assert allows(text, level=90) is True
    assert allows(text, flags="S") is True
    assert allows(text, level=10, flags="A") is False


@pytest.mark.parametrize("text", ["FLAG A OR FLAG B AND FLAG C", "FLAG A | FLAG B & FLAG C",
                                  "FLAG A OR FLAG B FLAG C"])
def test_and_binds_tighter_than_or(text):
    # A OR (B AND C); if OR bound tighter, (A OR B) AND C would deny "A".
    assert allows(text, flags="A") is True
    assert allows(text, flags="B") is False
    assert allows(text, flags="BC") is True
    assert allows(text, flags="C") is False


def test_and_before_or_on_the_left_too():
    # (A AND B) OR C
    assert allows("FLAG A AND FLAG B OR FLAG C", flags="C") is True
    assert allows("FLAG A AND FLAG B OR FLAG C", flags="A") is False


def test_parentheses_override_precedence():
    text = "(FLAG A OR FLAG B) AND FLAG C"
    assert allows(text, flags="A") is False
    assert allows(text, flags="AC") is True
    assert allows(text, flags="BC") is True
    assert allows("((LEVEL 20))", level=20) is True
    assert allows("(LEVEL 50 OR SYSOP) AND NOT GUEST", level=50, guest=True) is False


def test_not_binds_to_one_factor():
    assert allows("NOT FLAG A AND FLAG B", flags="B") is True     # (NOT A) AND B
    assert allows("NOT FLAG A AND FLAG B", flags="AB") is False
    assert allows("NOT FLAG A AND FLAG B", flags="") is False
    assert allows("NOT (FLAG A AND FLAG B)", flags="A") is True
    assert allows("NOT (FLAG A AND FLAG B)", flags="AB") is False
    assert allows("NOT NOT GUEST", guest=True) is True


def test_shipped_examples():
    assert allows("LEVEL 50 OR FLAG S", level=10, flags="S")
    assert not allows("LEVEL 50 OR FLAG S", level=10, flags="")
    assert allows("NOT GUEST", level=10)


# --- parse errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("FOO 3", "unknown keyword 'FOO'"),
    ("LEVEL 20 OR WIZARD", "unknown keyword 'WIZARD'"),
    ("LEVEL", "ends too early"),
    ("LEVEL =", "ends too early"),
    ("LEVEL abc", "LEVEL needs a number, got 'abc'"),
    ("LEVEL -5", "LEVEL needs a number"),
    ("AGE x", "AGE needs a number"),
    ("USER", "ends too early"),
    ("NODE one", "NODE needs a number"),
    ("LEVEL 20 AND", "ends too early"),
    ("LEVEL 20 OR", "ends too early"),
    ("NOT", "ends too early"),
    ("FLAG", "ends too early"),
    ("FLAG 1", "FLAG needs flag letters A-Z, got '1'"),
    ("EXEMPT A1", "EXEMPT needs flag letters"),
    ("PROTOCOL", "ends too early"),
    ("(LEVEL 20", "missing ')'"),
    ("((LEVEL 20) OR SYSOP", "missing ')'"),
    ("LEVEL 20)", "unexpected ')'"),
    ("()", "unknown keyword ')'"),
    ("LEVEL 20 $ SYSOP", "unexpected character '$'"),
    ("LEVEL 20 OR OR SYSOP", "unknown keyword 'OR'"),
])
def test_parse_errors(text, message):
    with pytest.raises(ValueError) as info:
        parse_ars(text)
    assert message in str(info.value)


# --- evaluation failures deny ------------------------------------------------------------

def test_evaluation_failure_denies_and_logs(caplog):
    req = parse_ars("LEVEL 20")
    broken = AccessContext(level=None)  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="bbs.ars"):
        assert req.allows(broken) is False
    assert "'LEVEL 20' failed to evaluate; denying" in caplog.text


def test_evaluation_failure_under_not_still_denies():
    # NOT of an error must not turn into an allow.
    assert parse_ars("NOT FLAG A").allows(AccessContext(flags=None)) is False  # type: ignore[arg-type]
    assert parse_ars("SYSOP OR FLAG A").allows(AccessContext(level="x")) is False  # type: ignore[arg-type]


def test_allows_returns_a_bool():
    assert parse_ars("FLAG A").allows(AccessContext(flags="A")) is True
