"""main.ini, msgs.ini and file.ini: the board itself (system, nodes, areas).

Parsed once into frozen dataclasses; access requirements are parsed here so
a bad one stops start-up with ``file:line``.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Callable

from bbs import units
from bbs.ars import ALLOW_ALL, Requirement, parse_ars
from bbs.errors import ConfigError
from bbs.ini import IniFile, IniSection

#: Synchronet's LEN_CODE: internal codes of subs and dirs.
MAX_CODE_LEN = 8
_CODE_RE = re.compile(r"^[A-Za-z0-9_-]+$")
#: A QWK-ID (Synchronet LEN_QWKID: 8): main.ini QWKID and ctrl/qwknodes.cfg entries,
#: as mail routes ``<qwk-id>!<user>`` (letters, digits, ``_`` and ``-``).
QWK_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,8}$")
#: Highest node number. Synchronet stops at 250 (MAX_NODES); an asyncio node
#: costs ~10 KB, and the console issue asks for 500 busy nodes, so we allow more.
MAX_NODES = 9999


@dataclasses.dataclass(frozen=True)
class SystemConfig:
    """main.ini [System] and [Nodes]."""

    name: str
    operator: str
    location: str
    qwk_id: str
    first_node: int
    last_node: int
    new_user_level: int
    new_user_flags: str
    new_user_password: str = dataclasses.field(repr=False)
    guest_name: str = "Guest"

    @property
    def nodes(self) -> range:
        return range(self.first_node, self.last_node + 1)


@dataclasses.dataclass(frozen=True)
class MsgGroup:
    name: str
    description: str
    ars: Requirement
    line: int


@dataclasses.dataclass(frozen=True)
class MsgSub:
    group: str
    code: str
    name: str
    description: str
    ars: Requirement
    read_ars: Requirement
    post_ars: Requirement
    newsgroup: str
    max_msgs: int
    line: int


@dataclasses.dataclass(frozen=True)
class FileLib:
    name: str
    description: str
    ars: Requirement
    line: int


@dataclasses.dataclass(frozen=True)
class FileDir:
    lib: str
    code: str
    name: str
    description: str
    path: Path
    ars: Requirement
    upload_ars: Requirement
    download_ars: Requirement
    max_files: int
    line: int


@dataclasses.dataclass(frozen=True)
class MsgAreas:
    groups: tuple[MsgGroup, ...]
    subs: tuple[MsgSub, ...]

    def sub(self, code: str) -> MsgSub | None:
        return next((s for s in self.subs if s.code.lower() == code.lower()), None)


@dataclasses.dataclass(frozen=True)
class FileAreas:
    libs: tuple[FileLib, ...]
    dirs: tuple[FileDir, ...]

    def dir(self, code: str) -> FileDir | None:
        return next((d for d in self.dirs if d.code.lower() == code.lower()), None)


def _ars(sec: IniSection, key: str) -> Requirement:
    return sec.get(key, ALLOW_ALL, parse_ars)


#: What the middle of a child section's name is, for error messages (xtrn.ini
#: and text.ini children, [prog:...] and [file:...], name a SEC).
_PARENT_WORD = {"dir": "LIB", "sub": "GROUP"}


def _split_name(sec: IniSection, parts: int) -> list[str]:
    """``[sub:GROUP:CODE]`` -> ["sub", "GROUP", "CODE"], checked."""
    pieces = sec.name.split(":")
    if len(pieces) != parts or not all(p.strip() for p in pieces):
        kind = pieces[0].strip().lower()
        shape = f"[{kind}:NAME]" if parts == 2 else f"[{kind}:{_PARENT_WORD.get(kind, 'SEC')}:CODE]"
        raise ConfigError(sec.path, sec.line, f"malformed section [{sec.name}] (expected {shape})")
    return [p.strip() for p in pieces]


def _code(sec: IniSection, code: str) -> str:
    if len(code) > MAX_CODE_LEN or not _CODE_RE.match(code):
        raise ConfigError(sec.path, sec.line, f"invalid code {code!r} (1-{MAX_CODE_LEN} "
                          "letters, digits, _ or -)")
    return code


def _dir_path(sec: IniSection, instance: Path, raw: str) -> Path:
    """A dir's folder: relative to the instance, never the instance itself.

    A blank ``path =`` would otherwise become the instance directory and
    publish ctrl/ and data/ (the user database) as a file area.
    """
    if not raw.strip():
        raise sec.error("path", "path: must name a folder (blank would be the instance directory)")
    path = Path(raw.strip()).expanduser()
    path = path if path.is_absolute() else instance / path
    resolved, home = path.resolve(), instance.resolve()
    if resolved == home or home.is_relative_to(resolved):
        raise sec.error("path", f"path: {raw.strip()!r} would publish the instance directory "
                        "(ctrl/, data/) as a file area")
    return path


def load_system(ini: IniFile) -> SystemConfig:
    """main.ini -> SystemConfig; raises ConfigError (file:line)."""
    for name, section in ini.sections.items():
        if name not in ("system", "nodes", "newuser"):
            raise ConfigError(ini.path, section.line, f"unknown section [{section.name}]")
    sysec, nodes, new = ini.section("System"), ini.section("Nodes"), ini.section("NewUser")
    node_number = lambda t: units.parse_int(t, minimum=1, maximum=MAX_NODES)  # noqa: E731
    config = SystemConfig(
        name=sysec.get("Name", "New Synchronet-style BBS"),
        operator=sysec.get("Operator", "Sysop"),
        location=sysec.get("Location", ""),
        qwk_id=sysec.get("QWKID", "NEWBBS"),
        guest_name=sysec.get("GuestName", "Guest"),
        first_node=nodes.get("FirstNode", 1, node_number),
        last_node=nodes.get("LastNode", 4, node_number),
        new_user_level=new.get("Level", 10, lambda t: units.parse_int(t, minimum=0, maximum=99)),
        new_user_flags=new.get("Flags", ""),
        new_user_password=new.get("Password", ""),
    )
    if not QWK_ID_RE.fullmatch(config.qwk_id):
        raise sysec.error("QWKID", f"QWKID {config.qwk_id!r} is not a QWK-ID (1-8 letters, digits, _ or -)")
    if not config.operator.strip():
        raise sysec.error("Operator", "Operator must name the sysop's alias")
    if config.last_node < config.first_node:
        raise nodes.error("LastNode", f"LastNode {config.last_node} is below FirstNode {config.first_node}")
    return config


def _load_tree(ini: IniFile, parent: tuple[str, str], child: str,
               make_parent: Callable[[IniSection, str], Any],
               make_child: Callable[[IniSection, Any, str], Any]) -> tuple[tuple, tuple]:
    """The two-level shape of msgs.ini and file.ini: ``[grp:NAME]`` /
    ``[sub:GROUP:CODE]`` or ``[lib:NAME]`` / ``[dir:LIB:CODE]``.

    ``parent`` is (section kind, word for messages); parents must come before
    their children; codes are unique case-insensitively. Raises ConfigError.
    """
    parent_kind, parent_word = parent
    parents: dict[str, Any] = {}
    children: dict[str, Any] = {}
    for key, sec in ini.sections.items():
        kind = key.split(":", 1)[0]
        if kind == parent_kind:
            _, name = _split_name(sec, 2)
            if name.lower() in parents:
                raise ConfigError(sec.path, sec.line, f"duplicate {parent_word} {name!r}")
            parents[name.lower()] = make_parent(sec, name)
        elif kind == child:
            _, owner, code = _split_name(sec, 3)
            if owner.lower() not in parents:
                raise ConfigError(sec.path, sec.line, f"{child} {code} names unknown {parent_word} {owner!r} "
                                  f"(declare [{parent_kind}:...] before its {child}s)")
            if code.lower() in children:
                raise ConfigError(sec.path, sec.line, f"duplicate {child} code {code!r} "
                                  f"(first at line {children[code.lower()].line})")
            children[code.lower()] = make_child(sec, parents[owner.lower()], _code(sec, code))
        else:
            raise ConfigError(sec.path, sec.line, f"unknown section [{sec.name}] "
                              f"(expected [{parent_kind}:...] or [{child}:...])")
    return tuple(parents.values()), tuple(children.values())


def _max(sec: IniSection, key: str) -> int:
    return sec.get(key, 0, lambda t: units.parse_int(t, minimum=0))


def load_msgs(ini: IniFile) -> MsgAreas:
    """msgs.ini -> MsgAreas; raises ConfigError (file:line)."""
    def group(sec: IniSection, name: str) -> MsgGroup:
        return MsgGroup(name, sec.get("description", name), _ars(sec, "ars"), sec.line)

    def sub(sec: IniSection, owner: MsgGroup, code: str) -> MsgSub:
        name = sec.get("name", code)
        return MsgSub(group=owner.name, code=code, name=name, description=sec.get("description", name),
                      ars=_ars(sec, "ars"), read_ars=_ars(sec, "read_ars"), post_ars=_ars(sec, "post_ars"),
                      newsgroup=sec.get("newsgroup", f"{owner.name}.{code}".lower().replace(" ", "_")),
                      max_msgs=_max(sec, "max_msgs"), line=sec.line)

    areas = MsgAreas(*_load_tree(ini, ("grp", "group"), "sub", group, sub))
    newsgroups: dict[str, MsgSub] = {}
    for item in areas.subs:  # NNTP serves each sub as its newsgroup: one sub each
        first = newsgroups.setdefault(item.newsgroup.lower(), item)
        if first is not item:
            raise ConfigError(ini.path, item.line, f"sub {item.code}: newsgroup {item.newsgroup!r} is "
                              f"already sub {first.code}'s (line {first.line})")
    return areas


def load_files(ini: IniFile, instance: Path) -> FileAreas:
    """file.ini -> FileAreas; dir paths are relative to the instance directory."""
    def lib(sec: IniSection, name: str) -> FileLib:
        return FileLib(name, sec.get("description", name), _ars(sec, "ars"), sec.line)

    def dir_(sec: IniSection, owner: FileLib, code: str) -> FileDir:
        name = sec.get("name", code)
        path = _dir_path(sec, instance, sec.get("path", f"files/{owner.name}/{code}".lower()))
        return FileDir(lib=owner.name, code=code, name=name, description=sec.get("description", name),
                       path=path, ars=_ars(sec, "ars"), upload_ars=_ars(sec, "upload_ars"),
                       download_ars=_ars(sec, "download_ars"), max_files=_max(sec, "max_files"),
                       line=sec.line)

    return FileAreas(*_load_tree(ini, ("lib", "library"), "dir", lib, dir_))
