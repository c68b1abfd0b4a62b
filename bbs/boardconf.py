"""main.ini, msgs.ini and file.ini: the board itself (system, nodes, areas).

Parsed once into frozen dataclasses; access requirements are parsed here so
a bad one stops start-up with ``file:line``.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from bbs import units
from bbs.ars import ALLOW_ALL, Requirement, parse_ars
from bbs.errors import ConfigError
from bbs.ini import IniFile, IniSection

#: Synchronet's LEN_CODE: internal codes of subs and dirs.
MAX_CODE_LEN = 8
_CODE_RE = re.compile(r"^[A-Za-z0-9_-]+$")
#: Synchronet's node numbers are 1..250 (MAX_NODES).
MAX_NODES = 250


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


def _split_name(sec: IniSection, parts: int) -> list[str]:
    """``[sub:GROUP:CODE]`` -> ["sub", "GROUP", "CODE"], checked."""
    pieces = sec.name.split(":")
    if len(pieces) != parts or not all(p.strip() for p in pieces):
        kind = pieces[0].strip().lower()
        shape = f"[{kind}:NAME]" if parts == 2 else f"[{kind}:{'LIB' if kind == 'dir' else 'GROUP'}:CODE]"
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
    if not config.operator.strip():
        raise sysec.error("Operator", "Operator must name the sysop's alias")
    if config.last_node < config.first_node:
        raise nodes.error("LastNode", f"LastNode {config.last_node} is below FirstNode {config.first_node}")
    return config


def load_msgs(ini: IniFile) -> MsgAreas:
    """msgs.ini -> MsgAreas; raises ConfigError (file:line)."""
    groups: dict[str, MsgGroup] = {}
    subs: dict[str, MsgSub] = {}
    for key, sec in ini.sections.items():
        kind = key.split(":", 1)[0]
        if kind == "grp":
            _, name = _split_name(sec, 2)
            if name.lower() in groups:
                raise ConfigError(sec.path, sec.line, f"duplicate group {name!r}")
            groups[name.lower()] = MsgGroup(name, sec.get("description", name), _ars(sec, "ars"), sec.line)
        elif kind == "sub":
            _, group, code = _split_name(sec, 3)
            if group.lower() not in groups:
                raise ConfigError(sec.path, sec.line, f"sub {code} names unknown group {group!r} "
                                  "(declare [grp:...] before its subs)")
            if code.lower() in subs:
                raise ConfigError(sec.path, sec.line, f"duplicate sub code {code!r} "
                                  f"(first at line {subs[code.lower()].line})")
            name = sec.get("name", code)
            subs[code.lower()] = MsgSub(
                group=groups[group.lower()].name, code=_code(sec, code), name=name,
                description=sec.get("description", name), ars=_ars(sec, "ars"),
                read_ars=_ars(sec, "read_ars"), post_ars=_ars(sec, "post_ars"),
                newsgroup=sec.get("newsgroup", f"{group}.{code}".lower().replace(" ", "_")),
                max_msgs=sec.get("max_msgs", 0, lambda t: units.parse_int(t, minimum=0)),
                line=sec.line)
        else:
            raise ConfigError(sec.path, sec.line, f"unknown section [{sec.name}] (expected [grp:...] or [sub:...])")
    return MsgAreas(tuple(groups.values()), tuple(subs.values()))


def load_files(ini: IniFile, instance: Path) -> FileAreas:
    """file.ini -> FileAreas; dir paths are relative to the instance directory."""
    libs: dict[str, FileLib] = {}
    dirs: dict[str, FileDir] = {}
    for key, sec in ini.sections.items():
        kind = key.split(":", 1)[0]
        if kind == "lib":
            _, name = _split_name(sec, 2)
            if name.lower() in libs:
                raise ConfigError(sec.path, sec.line, f"duplicate library {name!r}")
            libs[name.lower()] = FileLib(name, sec.get("description", name), _ars(sec, "ars"), sec.line)
        elif kind == "dir":
            _, lib, code = _split_name(sec, 3)
            if lib.lower() not in libs:
                raise ConfigError(sec.path, sec.line, f"dir {code} names unknown library {lib!r} "
                                  "(declare [lib:...] before its dirs)")
            if code.lower() in dirs:
                raise ConfigError(sec.path, sec.line, f"duplicate dir code {code!r} "
                                  f"(first at line {dirs[code.lower()].line})")
            name = sec.get("name", code)
            code = _code(sec, code)
            path = _dir_path(sec, instance, sec.get("path", f"files/{lib}/{code}".lower()))
            dirs[code.lower()] = FileDir(
                lib=libs[lib.lower()].name, code=code, name=name,
                description=sec.get("description", name),
                path=path,
                ars=_ars(sec, "ars"), upload_ars=_ars(sec, "upload_ars"),
                download_ars=_ars(sec, "download_ars"),
                max_files=sec.get("max_files", 0, lambda t: units.parse_int(t, minimum=0)),
                line=sec.line)
        else:
            raise ConfigError(sec.path, sec.line, f"unknown section [{sec.name}] (expected [lib:...] or [dir:...])")
    return FileAreas(tuple(libs.values()), tuple(dirs.values()))
