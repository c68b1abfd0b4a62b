"""Unit tests for bbs.units: the value forms of Synchronet .ini files."""
from __future__ import annotations

import pytest

from bbs import units

KIB, MIB, GIB = 1024, 1024**2, 1024**3


# --- durations ---------------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [
    ("30", 30.0), ("0", 0.0), (" 45 ", 45.0),
    ("30s", 30.0), ("30S", 30.0),
    ("2m", 120.0), ("10M", 600.0),            # M is minutes, as in Synchronet
    ("1h", 3600.0), ("2H", 7200.0),
    ("1d", 86400.0), ("1w", 604800.0), ("1y", 31536000.0),
    ("1.5h", 5400.0), ("0.5m", 30.0), ("2.25", 2.25),
    ("10 m", 600.0),                           # blank between number and unit
])
def test_duration_values(text, seconds):
    assert units.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text, seconds", [
    ("5000", 5.0), ("1000", 1.0), ("250", 0.25), ("1.5", 0.0015),
    ("5s", 5.0), ("2m", 120.0),                # a unit wins over bare_unit
])
def test_duration_bare_unit_for_millisecond_keys(text, seconds):
    assert units.parse_duration(text, bare_unit=0.001) == pytest.approx(seconds)


@pytest.mark.parametrize("text", [
    "", "   ", "abc", "-5", "-5s", "5x", "5q", "1h30m", "1e3", "5 s s", "s", ".5", "5.", "10 minutes",
])
def test_duration_rejects(text):
    with pytest.raises(ValueError, match="invalid duration"):
        units.parse_duration(text)


def test_duration_unknown_unit_is_a_value_error_not_key_error():
    # Regression: "5x" used to escape as KeyError, past the loader's ValueError handler.
    with pytest.raises(ValueError) as info:
        units.parse_duration("5x")
    assert type(info.value) is ValueError and "'5x'" in str(info.value)


# --- sizes -------------------------------------------------------------------

@pytest.mark.parametrize("text, size", [
    ("1000", 1000), ("0", 0), ("100B", 100), ("100b", 100),
    ("512K", 512 * KIB), ("512KB", 512 * KIB), ("512k", 512 * KIB), ("512kb", 512 * KIB),
    ("20M", 20 * MIB), ("20MB", 20 * MIB), ("20mb", 20 * MIB), ("20 M", 20 * MIB),
    ("1G", GIB), ("1GB", GIB), ("1T", 1024**4),
    ("1.5K", 1536), ("0.5M", MIB // 2),
])
def test_size_values(text, size):
    assert units.parse_size(text) == size
    assert isinstance(units.parse_size(text), int)


@pytest.mark.parametrize("text", ["", "M", "20X", "-1", "-1M", "20MiB", "20MBB", "twenty", "1e6"])
def test_size_rejects(text):
    with pytest.raises(ValueError, match="invalid size"):
        units.parse_size(text)


# --- integers and ports --------------------------------------------------------

@pytest.mark.parametrize("text, value", [
    ("42", 42), (" 42 ", 42), ("0", 0), ("-3", -3), ("+7", 7),
    ("08", 8), ("010", 10),                    # leading zeros are decimal, not errors
    ("0x10", 16), ("0X1f", 31),
])
def test_int_values(text, value):
    assert units.parse_int(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1.5", "12abc", "0x", "1 2"])
def test_int_rejects(text):
    with pytest.raises(ValueError, match="invalid number"):
        units.parse_int(text)


def test_int_bounds_are_inclusive():
    assert units.parse_int("10", minimum=10, maximum=20) == 10
    assert units.parse_int("20", minimum=10, maximum=20) == 20
    with pytest.raises(ValueError, match="9 is below the minimum 10"):
        units.parse_int("9", minimum=10)
    with pytest.raises(ValueError, match="21 is above the maximum 20"):
        units.parse_int("21", maximum=20)


@pytest.mark.parametrize("text, port", [("0", 0), ("23", 23), ("65535", 65535), ("2023", 2023)])
def test_port_values(text, port):
    assert units.parse_port(text) == port


@pytest.mark.parametrize("text, message", [
    ("65536", "above the maximum 65535"), ("-1", "below the minimum 0"),
    ("telnet", "invalid number"), ("", "invalid number"), ("23.0", "invalid number"),
])
def test_port_rejects(text, message):
    with pytest.raises(ValueError, match=message):
        units.parse_port(text)


# --- booleans ------------------------------------------------------------------

@pytest.mark.parametrize("text", ["true", "TRUE", "True", "yes", "Yes", "on", "ON", "1", " true "])
def test_bool_true(text):
    assert units.parse_bool(text) is True


@pytest.mark.parametrize("text", ["false", "FALSE", "no", "No", "off", "OFF", "0", " no "])
def test_bool_false(text):
    assert units.parse_bool(text) is False


@pytest.mark.parametrize("text", ["", "maybe", "2", "y", "enabled", "truee"])
def test_bool_rejects(text):
    with pytest.raises(ValueError, match="invalid boolean"):
        units.parse_bool(text)


# --- option flags --------------------------------------------------------------

KNOWN = frozenset({"ALLOW_SSH", "ALLOW_RLOGIN", "NO_DOS"})


@pytest.mark.parametrize("text, flags", [
    ("ALLOW_SSH | ALLOW_RLOGIN", {"ALLOW_SSH", "ALLOW_RLOGIN"}),
    ("allow_ssh|no_dos", {"ALLOW_SSH", "NO_DOS"}),
    ("  NO_DOS  ", {"NO_DOS"}),
    ("NO_DOS | NO_DOS", {"NO_DOS"}),
    ("", set()), (" | ", set()), ("ALLOW_SSH ||", {"ALLOW_SSH"}),
])
def test_flags_values(text, flags):
    result = units.parse_flags(text, KNOWN)
    assert result == frozenset(flags)
    assert isinstance(result, frozenset)


def test_flags_unknown_names_the_first_and_lists_the_known():
    with pytest.raises(ValueError) as info:
        units.parse_flags("ALLOW_SSH | ZZZ | ALLOW_TELEPORT", KNOWN)
    assert str(info.value) == "unknown option ALLOW_TELEPORT (known: ALLOW_RLOGIN, ALLOW_SSH, NO_DOS)"


def test_flags_are_not_split_on_commas():
    with pytest.raises(ValueError, match="unknown option ALLOW_SSH, NO_DOS"):
        units.parse_flags("ALLOW_SSH, NO_DOS", KNOWN)


# --- lists ---------------------------------------------------------------------

@pytest.mark.parametrize("text, items", [
    ("a, b ,c", ("a", "b", "c")),
    ("127.0.0.1,::1", ("127.0.0.1", "::1")),
    ("a,,b, ,", ("a", "b")),
    ("", ()), ("  ", ()),
    ("one item", ("one item",)),
])
def test_list_values(text, items):
    assert units.parse_list(text) == items
