"""ctrl/text.ini: text file sections (Synchronet SCFG "Text File Sections", G-files).

Shape::

    [sec:INFO]                  ; a section (its id; letters, digits, _ or -)
    name = About this BBS       ; shown to callers
    ars =                       ; who sees it (Synchronet ARS)

    [file:INFO:RULES]           ; a file of that section, shown in file order
    path = gfiles/rules.msg     ; inside text/ (.msg/.asc: Ctrl-A codes, .ans: CP437 ANSI,
                                ; .txt: plain; no extension: the display file rules)
    description = The rules of this BBS

Paths are checked when loaded (relative, inside text/); a missing file is a
warning (``bbs config check`` lists it) and the caller is told when they pick it.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path, PurePosixPath

from bbs.ars import Requirement
from bbs.boardconf import _ars, _load_tree
from bbs.errors import ConfigError
from bbs.ini import IniFile, IniSection


@dataclasses.dataclass(frozen=True)
class TextSection:
    name: str          # the id in [sec:ID]
    title: str
    ars: Requirement
    line: int


@dataclasses.dataclass(frozen=True)
class TextFile:
    section: str
    code: str
    path: PurePosixPath   # relative to text/
    description: str
    line: int


@dataclasses.dataclass(frozen=True)
class TextConfig:
    sections: tuple[TextSection, ...] = ()
    files: tuple[TextFile, ...] = ()
    warnings: tuple[str, ...] = ()

    def in_section(self, name: str) -> list[TextFile]:
        return [f for f in self.files if f.section.lower() == name.lower()]


def parse_text_path(text: str) -> PurePosixPath:
    """A path inside text/: relative, no ``..`` (ValueError otherwise)."""
    raw = text.strip()
    if not raw:
        raise ValueError("must name a file inside text/")
    path = PurePosixPath(raw.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or raw.startswith("~"):
        raise ValueError(f"{raw!r} must be a path inside text/ (relative, no '..')")
    return path


def load_text(ini: IniFile, instance: Path) -> TextConfig:
    """text.ini -> TextConfig; raises ConfigError (file:line). Files missing
    from ``instance``/text are listed in ``warnings``."""
    def section(sec: IniSection, name: str) -> TextSection:
        return TextSection(name, sec.get("name", name), _ars(sec, "ars"), sec.line)

    def text_file(sec: IniSection, owner: TextSection, code: str) -> TextFile:
        if "path" not in sec:
            raise ConfigError(sec.path, sec.line, f"[{sec.name}] needs path = a file inside text/")
        path = sec.get("path", PurePosixPath(), parse_text_path)
        return TextFile(owner.name, code, path, sec.get("description", path.name), sec.line)

    sections, files = _load_tree(ini, ("sec", "section"), "file", section, text_file)
    text_dir = instance / "text"
    warnings = tuple(f"{ini.path}:{f.line}: [file:{f.section}:{f.code}] {f.path} is not in {text_dir}"
                     for f in files if not _exists(text_dir, f.path))
    return TextConfig(sections, files, warnings)


def _exists(text_dir: Path, path: PurePosixPath) -> bool:
    target = text_dir / path
    if path.suffix:
        return target.is_file()
    return any(target.with_name(target.name + s).is_file() for s in (".ans", ".msg", ".asc"))
