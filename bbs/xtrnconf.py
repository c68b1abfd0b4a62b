"""ctrl/xtrn.ini: external programs (doors), Synchronet SCFG "External Programs".

Shape (like msgs.ini)::

    [sec:Games]                 ; a section callers choose first
    name = Games                ; shown to callers (default: the section's id)
    ars = NOT GUEST             ; who sees the section

    [prog:Games:ECHO]           ; a program: section id and an internal code (1-8)
    name = Echo door
    cmd = python3 echo.py %GDOOR32.SYS %#
    startup_dir = xtrn/echo     ; relative to the instance (default: the node directory)
    ars =                       ; who sees the program
    execution_ars = LEVEL 20    ; who may run it
    io = stdio                  ; stdio (pipes, bytes unchanged) or pty (a pseudo-terminal)
    dropfile = DOOR.SYS, DOOR32.SYS
    max_time = 30               ; minutes (or 90s, 1h); 0 = no limit

``cmd`` is split into words like a shell would (quotes group words) but no
shell runs it; each word then gets Synchronet's command-line specifiers
(:data:`SPECIFIERS`, e.g. ``%A`` alias, ``%#`` node number, ``%G`` the
node's temp folder holding the drop files), so a value with spaces stays one
argument. Drop files are written by :func:`door_sys` and :func:`door32_sys`
(pure: a :class:`DropInfo` in, the file's text out).
"""
from __future__ import annotations

import dataclasses
import platform
import shlex
import time
from pathlib import Path
from typing import Mapping

from bbs import units
from bbs.ars import Requirement
from bbs.boardconf import _ars, _load_tree
from bbs.errors import ConfigError
from bbs.ini import IniFile, IniSection

#: How a program is wired to the caller (Synchronet's "Intercept I/O" / native choice).
IO_STDIO, IO_PTY = "stdio", "pty"
IO_MODES = (IO_STDIO, IO_PTY)
#: Drop file types we write (Synchronet XTRN_DOOR_SYS, 52 lines, and XTRN_DOOR32).
DOOR_SYS, DOOR32_SYS = "DOOR.SYS", "DOOR32.SYS"
DROP_FILES = (DOOR_SYS, DOOR32_SYS)
#: Minutes the drop files report when a program has no time limit (a day).
UNLIMITED_MINUTES = 1440
#: Line speed the drop files report (Synchronet writes the DTE rate; doors
#: built on DMlib refuse anything that is not a valid FOSSIL rate).
DTE_RATE = 38400

#: Synchronet's command-line specifiers (src/sbbs3/xtrn.cpp cmdstr) that mean
#: something here. ``%0``-``%9`` are the user number padded to that many digits.
SPECIFIERS: dict[str, str] = {
    "A": "user alias", "C": "connection (Telnet, SSH, RLogin)", "G": "the node's temp folder (drop files)",
    "I": "caller's IP address", "J": "data folder", "K": "ctrl folder", "N": "the node's folder",
    "O": "sysop's name", "P": "protocol (telnet, ssh, rlogin)", "Q": "QWK ID", "R": "screen rows",
    "S": "the program's startup folder", "T": "time left in seconds", "W": "screen columns",
    "Z": "text folder", "#": "node number", "*": "node number, 3 digits", "+": "user's real name",
    "-": "user alias (chat handle)", "%": "a percent sign", "?": "platform (linux)", "^": "architecture",
    "@": "nothing (Synchronet's exec folder for DOS)", ".": "nothing (Synchronet's .exe for DOS)",
}
#: Specifiers Synchronet has that cannot work here, with the reason (a clear load error).
UNSUPPORTED = {"H": "no socket handle is passed: the program talks on stdin/stdout (io = stdio or pty)",
               "B": "there is no modem line rate", "D": "there is no modem line rate",
               "E": "there is no modem line rate", "U": "there is no UART",
               "F": "no file is passed to external programs", "!": "there is no exec folder",
               "L": "there is no lines-per-message limit", "M": "there are no minute credits",
               "$": "there are no credits", "X": "there are no command shells", "Y": "there is no COMSPEC",
               "&": "there is no modem status register", "~": "no file is passed to external programs",
               "V": "use %? and %^ for the platform"}


@dataclasses.dataclass(frozen=True)
class XtrnSection:
    name: str          # the id in [sec:ID]
    title: str         # shown to callers (``name =``)
    ars: Requirement
    line: int


@dataclasses.dataclass(frozen=True)
class XtrnProgram:
    section: str
    code: str
    name: str
    argv: tuple[str, ...]       # words of the ``cmd`` line, specifiers not yet expanded
    startup_dir: Path | None    # None: the node's folder
    ars: Requirement
    execution_ars: Requirement
    io: str
    dropfiles: tuple[str, ...]
    max_time: float             # seconds; 0 = no limit
    line: int


@dataclasses.dataclass(frozen=True)
class XtrnConfig:
    sections: tuple[XtrnSection, ...] = ()
    programs: tuple[XtrnProgram, ...] = ()

    def program(self, code: str) -> XtrnProgram | None:
        return next((p for p in self.programs if p.code.lower() == code.lower()), None)

    def in_section(self, name: str) -> list[XtrnProgram]:
        return [p for p in self.programs if p.section.lower() == name.lower()]


def check_specifiers(word: str) -> None:
    """Raise ValueError naming the first specifier of ``word`` that is
    unknown or cannot work here (``%`` at the very end included)."""
    i = 0
    while i < len(word):
        if word[i] != "%":
            i += 1
            continue
        if i + 1 >= len(word):
            raise ValueError(f"{word!r} ends with a lone % (write %% for a percent sign)")
        ch = word[i + 1].upper()
        if ch in UNSUPPORTED:
            raise ValueError(f"%{word[i + 1]} is not supported: {UNSUPPORTED[ch]}")
        if ch not in SPECIFIERS and not ch.isdigit():
            raise ValueError(f"unknown specifier %{word[i + 1]} in {word!r} "
                             f"(known: {' '.join('%' + k for k in SPECIFIERS)} %0-%9)")
        i += 2


def expand_word(word: str, values: Mapping[str, str], user_number: int) -> str:
    """One command word with its specifiers replaced (``values`` is keyed by
    the upper-case specifier character; checked at load by :func:`check_specifiers`)."""
    out: list[str] = []
    i = 0
    while i < len(word):
        if word[i] == "%" and i + 1 < len(word):
            ch = word[i + 1].upper()
            out.append(f"{user_number:0{int(ch)}d}" if ch.isdigit() else "%" if ch == "%" else values.get(ch, ""))
            i += 2
        else:
            out.append(word[i])
            i += 1
    return "".join(out)


def expand_command(argv: tuple[str, ...], values: Mapping[str, str], user_number: int) -> list[str]:
    """The argv to execute: every word expanded (values never split words)."""
    return [expand_word(word, values, user_number) for word in argv]


def platform_values() -> dict[str, str]:
    """``%?``, ``%^``, ``%@`` and ``%.`` (the same for every caller)."""
    return {"?": platform.system().lower(), "^": platform.machine(), "@": "", ".": "", "%": "%"}


def parse_command(text: str) -> tuple[str, ...]:
    """Split a ``cmd`` value into words and check its specifiers; ValueError if bad."""
    try:
        words = tuple(shlex.split(text))
    except ValueError as exc:
        raise ValueError(f"cannot split the command line: {exc}") from None
    if not words:
        raise ValueError("is empty: name the program to run")
    for word in words:
        check_specifiers(word)
    return words


def parse_dropfiles(text: str) -> tuple[str, ...]:
    """``DOOR.SYS, DOOR32.SYS`` (comma or | separated, any case; blank = none)."""
    names = []
    for part in text.replace("|", ",").split(","):
        name = part.strip().upper()
        if not name or name in ("NONE", "NO"):
            continue
        if name not in DROP_FILES:
            raise ValueError(f"unknown drop file {part.strip()!r} (use {' and/or '.join(DROP_FILES)}, or blank)")
        if name not in names:
            names.append(name)
    return tuple(names)


def parse_io(text: str) -> str:
    mode = text.strip().lower()
    if mode not in IO_MODES:
        raise ValueError(f"unknown io {text!r} (use stdio or pty)")
    return mode


def _startup_dir(sec: IniSection, instance: Path) -> Path | None:
    raw = sec.get("startup_dir", "").strip()
    if not raw:
        return None
    path = Path(raw).expanduser()
    return path if path.is_absolute() else instance / path


def load_xtrn(ini: IniFile, instance: Path) -> XtrnConfig:
    """xtrn.ini -> XtrnConfig; raises ConfigError (file:line)."""
    def section(sec: IniSection, name: str) -> XtrnSection:
        return XtrnSection(name, sec.get("name", name), _ars(sec, "ars"), sec.line)

    def program(sec: IniSection, owner: XtrnSection, code: str) -> XtrnProgram:
        if "cmd" not in sec:
            raise ConfigError(sec.path, sec.line, f"[{sec.name}] needs cmd = the command line to run")
        return XtrnProgram(
            section=owner.name, code=code, name=sec.get("name", code),
            argv=sec.get("cmd", (), parse_command), startup_dir=_startup_dir(sec, instance),
            ars=_ars(sec, "ars"), execution_ars=_ars(sec, "execution_ars"),
            io=sec.get("io", IO_STDIO, parse_io), dropfiles=sec.get("dropfile", (), parse_dropfiles),
            max_time=sec.get("max_time", 0.0, lambda t: units.parse_duration(t, bare_unit=60.0)),
            line=sec.line)

    return XtrnConfig(*_load_tree(ini, ("sec", "section"), "prog", section, program))


# -- drop files ----------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class DropInfo:
    """What the drop files say about the caller and the node."""

    node: int
    user_number: int
    alias: str
    real_name: str
    location: str
    phone: str
    level: int
    logons: int
    last_on: float | None
    uploads: int
    downloads: int
    upload_bytes: int
    download_bytes: int
    posts: int
    expert: bool
    ansi: bool
    rows: int
    seconds_left: int
    logon_time: float
    bbs_name: str
    sysop: str
    node_dir: str
    data_dir: str
    software: str = "pybbs"


def _mmddyy(when: float | None) -> str:
    return time.strftime("%m/%d/%y", time.localtime(when)) if when else "01/01/70"


def _hhmm(when: float | None) -> str:
    return time.strftime("%H:%M", time.localtime(when)) if when else "00:00"


def door_sys(info: DropInfo) -> str:
    """DOOR.SYS, the 52-line format (lines end CR LF). No password is
    written (line 14 stays blank: we keep only a hash)."""
    minutes = info.seconds_left // 60
    lines = [
        "COM0:", str(DTE_RATE), "8", str(info.node), str(DTE_RATE),      # 1-5 port (0 = local), rates, node
        "Y", "Y", "Y", "Y",                                              # 6-9 display, printer, bell, alarm
        info.alias, info.location, info.phone, info.phone, "",           # 10-14 name, place, phones, password
        str(info.level), str(min(info.logons, 32767)), _mmddyy(info.last_on),
        str(min(info.seconds_left, 32767)), str(min(minutes, 32767)),    # 18-19 time left
        "GR" if info.ansi else "NG", str(info.rows), "Y" if info.expert else "N",
        "", "0", "12/31/99", str(info.user_number), "Z",                 # 23-27 conferences, expiry, no., protocol
        str(info.uploads), str(info.downloads), "0", "999999",           # 28-31
        "01/01/70", info.node_dir, info.data_dir, info.sysop, info.alias,  # 32-36 birthday, paths, sysop, alias
        "00:00", "Y", "N", "Y", "7", "0",                                # 37-42 event, ECC, NG-ANSI, locking, colour, credits
        _mmddyy(info.logon_time), _hhmm(info.logon_time), _hhmm(info.last_on),  # 43-45
        "999", "0", str(info.upload_bytes // 1024), str(info.download_bytes // 1024),  # 46-49
        "", "0", str(min(info.posts, 32767)),                            # 50-52 comment, doors, posts
    ]
    assert len(lines) == 52
    return "".join(line.replace("\r", " ").replace("\n", " ") + "\r\n" for line in lines)


def door32_sys(info: DropInfo) -> str:
    """DOOR32.SYS (11 lines). Comm type 0 (local) and handle -1: the
    program talks on stdin/stdout, as Synchronet writes for stdio programs."""
    lines = ["0", "-1", str(DTE_RATE), info.software, str(info.user_number), info.real_name or info.alias,
             info.alias, str(info.level), str(info.seconds_left // 60), "1" if info.ansi else "0", str(info.node)]
    return "".join(line.replace("\r", " ").replace("\n", " ") + "\r\n" for line in lines)


DROP_WRITERS = {DOOR_SYS: door_sys, DOOR32_SYS: door32_sys}

