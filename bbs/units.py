"""Parsers for the value forms used in Synchronet .ini files.

Pure functions, no I/O: each takes the text of a value and returns a typed
value or raises :class:`ValueError` with a short human message (the config
loader adds ``file:line``).
"""
from __future__ import annotations

import re

#: Duration suffixes accepted by Synchronet's ``parse_duration()`` (case-insensitive;
#: ``M`` is minutes).
_DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}
#: Size suffixes (binary multiples, as Synchronet's ``parse_byte_count()``).
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdwy]?)\s*$", re.IGNORECASE)
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)b?\s*$", re.IGNORECASE)

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def parse_duration(text: str, *, bare_unit: float = 1.0) -> float:
    """Return ``text`` ("30", "2m", "1.5h", "10M") in seconds.

    ``bare_unit`` scales a number without suffix: 1.0 for keys in seconds,
    0.001 for Synchronet's millisecond keys (``LoginAttemptDelay``).
    Raises ValueError on anything else, including negative values.
    """
    match = _DURATION_RE.match(text)
    if not match:
        raise ValueError(f"invalid duration {text!r} (use e.g. 30, 30s, 2m, 1h, 1d)")
    number, unit = float(match.group(1)), match.group(2).lower()
    return number * _DURATION_UNITS[unit] if unit else number * bare_unit


def parse_size(text: str) -> int:
    """Return ``text`` ("20M", "20MB", "512K", "1000") as a number of bytes."""
    match = _SIZE_RE.match(text)
    if not match:
        raise ValueError(f"invalid size {text!r} (use e.g. 1000, 512K, 20M, 1G)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def parse_int(text: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``text`` as an int within [minimum, maximum].

    Decimal, with leading zeros allowed ("08" is 8); ``0x``/``0o``/``0b``
    prefixes select another base.
    """
    stripped = text.strip()
    try:
        value = int(stripped, 10)
    except ValueError:
        try:
            value = int(stripped, 0)
        except ValueError:
            raise ValueError(f"invalid number {text!r}") from None
    if minimum is not None and value < minimum:
        raise ValueError(f"{value} is below the minimum {minimum}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{value} is above the maximum {maximum}")
    return value


def parse_port(text: str) -> int:
    """Return a TCP/UDP port number; 0 asks the OS for a free port."""
    return parse_int(text, minimum=0, maximum=65535)


def parse_bool(text: str) -> bool:
    """Return ``text`` (true/false/yes/no/on/off/1/0) as a bool."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"invalid boolean {text!r} (use true or false)")


def parse_flags(text: str, known: frozenset[str]) -> frozenset[str]:
    """Return the option flags of an ``Options = A | B`` value.

    Flags are upper-cased; an empty value gives no flags. Raises ValueError
    naming the first unknown flag and listing the known ones.
    """
    flags = frozenset(part.strip().upper() for part in text.split("|") if part.strip())
    unknown = sorted(flags - known)
    if unknown:
        raise ValueError(f"unknown option {unknown[0]} (known: {', '.join(sorted(known))})")
    return flags


def parse_list(text: str) -> tuple[str, ...]:
    """Split a comma-separated list, dropping blanks."""
    return tuple(part.strip() for part in text.split(",") if part.strip())
