"""A located .ini reader: every section and value remembers its line.

Synchronet-style files: ``[Section]`` headers, ``key = value`` lines, ``;``
comments (whole line, or after whitespace), case-insensitive section and key
names. Values keep their inner spaces. Duplicate sections or keys are errors,
so a sysop never wonders which copy wins.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from bbs.errors import ConfigError

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class IniValue:
    key: str
    value: str
    line: int


class IniSection:
    """One ``[section]``: typed accessors that raise located ConfigErrors.

    Each accessor marks its key as used; :meth:`unused` lists the keys no
    accessor asked for (likely typos), for warnings.
    """

    def __init__(self, path: Path, name: str, line: int) -> None:
        self.path = path
        self.name = name
        self.line = line
        self.values: dict[str, IniValue] = {}
        self._used: set[str] = set()

    def __contains__(self, key: str) -> bool:
        return key.lower() in self.values

    def raw(self, key: str) -> IniValue | None:
        """Return the located raw value of ``key`` or None; marks it used."""
        self._used.add(key.lower())
        return self.values.get(key.lower())

    def get(self, key: str, default: T, parse: Callable[[str], T] | None = None) -> T:
        """Return ``parse(value)`` for ``key``, or ``default`` when absent.

        Raises ConfigError(path, line, "Key: reason") when parse fails.
        """
        item = self.raw(key)
        if item is None:
            return default
        if parse is None:
            return item.value  # type: ignore[return-value]
        try:
            return parse(item.value)
        except ValueError as exc:
            raise ConfigError(self.path, item.line, f"[{self.name}] {item.key}: {exc}") from None

    def error(self, key: str, message: str) -> ConfigError:
        """A ConfigError located at ``key`` (or at the section header)."""
        item = self.values.get(key.lower())
        return ConfigError(self.path, item.line if item else self.line, f"[{self.name}] {message}")

    def unused(self) -> list[IniValue]:
        return [v for k, v in self.values.items() if k not in self._used]


class IniFile:
    """A parsed .ini file: ``sections`` in file order, keyed by lower-case name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.root = IniSection(path, "", 0)
        self.sections: dict[str, IniSection] = {}

    def section(self, name: str) -> IniSection:
        """Return section ``name``; an absent section is an empty one."""
        return self.sections.get(name.lower()) or IniSection(self.path, name, 0)

    def prefixed(self, prefix: str) -> Iterator[IniSection]:
        """Sections whose name starts with ``prefix`` (e.g. ``"sub:"``), in order."""
        lowered = prefix.lower()
        return (s for k, s in self.sections.items() if k.startswith(lowered))

    def unused(self) -> list[tuple[IniSection, IniValue]]:
        result = [(self.root, v) for v in self.root.unused()]
        for section in self.sections.values():
            result.extend((section, v) for v in section.unused())
        return result


def strip_comment(text: str) -> str:
    """Remove a ``;`` comment that starts the line or follows whitespace."""
    if text.lstrip().startswith(";"):
        return ""
    for index, char in enumerate(text):
        if char == ";" and index and text[index - 1] in " \t":
            return text[:index]
    return text


def parse_ini(path: Path, text: str | None = None) -> IniFile:
    """Parse ``path`` (or ``text`` attributed to it) into an :class:`IniFile`.

    Raises ConfigError with the line for unreadable files, malformed lines,
    duplicate sections and duplicate keys.
    """
    if text is None:
        try:
            # utf-8-sig: Windows editors often save sbbs.ini with a byte-order mark.
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise ConfigError(path, None, "file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(path, None, f"cannot read: {exc}") from None
    ini = IniFile(path)
    current = ini.root
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = strip_comment(raw).strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            name = line[1:-1].strip()
            if not line.endswith("]") or not name:
                raise ConfigError(path, lineno, f"malformed section header {line!r}")
            if name.lower() in ini.sections:
                first = ini.sections[name.lower()].line
                raise ConfigError(path, lineno, f"duplicate section [{name}] (first at line {first})")
            current = IniSection(path, name, lineno)
            ini.sections[name.lower()] = current
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(path, lineno, f"expected 'key = value', got {line!r}")
        if key.lower() in current.values:
            first = current.values[key.lower()].line
            raise ConfigError(path, lineno, f"duplicate key {key} (first at line {first})")
        current.values[key.lower()] = IniValue(key, value.strip(), lineno)
    return ini
