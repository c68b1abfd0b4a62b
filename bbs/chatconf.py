"""ctrl/chat.ini: the chat settings callers meet (Synchronet SCFG "Chat Features").

Shape::

    [sysop]
    available = yes          ; the sysop takes pages (Synchronet's "sysop available" toggle)
    hours = 08:00-22:30      ; and only then (may wrap past midnight; blank = any time)
    override_ars = LEVEL 80  ; who may page even when the sysop is not available (blank: nobody)
    page_duration = 3        ; seconds the page rings on the caller's screen (0 = none)
    page_bell = yes          ; each ring beeps (BEL)

    [chan:MAIN]              ; a multinode chat channel (code: letters, digits, _ or -)
    name = Main              ; shown to callers
    ars =                    ; who may join

Without the file the defaults apply: available at any time, one channel
``MAIN`` open to everyone.
"""
from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path

from bbs import units
from bbs.ars import ALLOW_ALL, Requirement, parse_ars
from bbs.boardconf import _ars, _code
from bbs.errors import ConfigError
from bbs.ini import IniFile, IniSection

#: Seconds a page may ring at most (ours: a caller waits that long at most).
MAX_PAGE_DURATION = 60
_HOURS_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclasses.dataclass(frozen=True)
class ChannelConfig:
    code: str
    name: str
    ars: Requirement
    line: int


DEFAULT_CHANNELS = (ChannelConfig("MAIN", "Main", ALLOW_ALL, 0),)


@dataclasses.dataclass(frozen=True)
class ChatConfig:
    available: bool = True
    hours: tuple[int, int] | None = None      # minutes after midnight: start, end
    override_ars: Requirement | None = None   # None: nobody overrides
    page_duration: int = 0
    page_bell: bool = True
    channels: tuple[ChannelConfig, ...] = DEFAULT_CHANNELS

    def sysop_available(self, when: float | None = None) -> bool:
        """The toggle and, when set, the hours at local time ``when`` (now)."""
        if not self.available:
            return False
        if self.hours is None:
            return True
        now = time.localtime(when)
        minute = now.tm_hour * 60 + now.tm_min
        start, end = self.hours
        return start <= minute < end if start <= end else (minute >= start or minute < end)


def parse_hours(text: str) -> tuple[int, int] | None:
    """``08:00-22:30`` -> (480, 1350); blank -> None (any time)."""
    if not text.strip():
        return None
    match = _HOURS_RE.match(text)
    if not match:
        raise ValueError(f"invalid hours {text!r} (use HH:MM-HH:MM, e.g. 08:00-22:30)")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 24 or h2 > 24 or m1 > 59 or m2 > 59 or (h1 == 24 and m1) or (h2 == 24 and m2):
        raise ValueError(f"invalid hours {text!r} (hours 00-24, minutes 00-59)")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise ValueError(f"hours {text!r} start and end at the same time (leave blank for any time)")
    return start, end


def _override(text: str) -> Requirement | None:
    return parse_ars(text) if text.strip() else None


def load_chat(ini: IniFile, instance: Path | None = None) -> ChatConfig:
    """chat.ini -> ChatConfig; raises ConfigError (file:line)."""
    channels: dict[str, ChannelConfig] = {}
    sysop: IniSection | None = None
    for key, sec in ini.sections.items():
        kind, _, code = sec.name.partition(":")
        if key == "sysop":
            sysop = sec
        elif kind.strip().lower() == "chan":
            code = _code(sec, code.strip())
            if code.lower() in channels:
                raise ConfigError(sec.path, sec.line, f"duplicate channel {code!r} "
                                  f"(first at line {channels[code.lower()].line})")
            channels[code.lower()] = ChannelConfig(code, sec.get("name", code), _ars(sec, "ars"), sec.line)
        else:
            raise ConfigError(sec.path, sec.line, f"unknown section [{sec.name}] (expected [sysop] or [chan:CODE])")
    sec = sysop or ini.section("sysop")
    return ChatConfig(
        available=sec.get("available", True, units.parse_bool),
        hours=sec.get("hours", None, parse_hours),
        override_ars=sec.get("override_ars", None, _override),
        page_duration=sec.get("page_duration", 0, lambda t: units.parse_int(t, minimum=0,
                                                                             maximum=MAX_PAGE_DURATION)),
        page_bell=sec.get("page_bell", True, units.parse_bool),
        channels=tuple(channels.values()))
