"""Chat Features, External Programs and Text File Sections in the SCFG menus:
``ctrl/chat.ini``, ``ctrl/xtrn.ini`` and ``ctrl/text.ini``.

External programs and text files have Synchronet's two levels: sections
(``[sec:ID]``) and what they hold (``[prog:SEC:CODE]``, ``[file:SEC:CODE]``);
chat has its ``[sysop]`` settings and its channels (``[chan:CODE]``). ``a``
adds a section, program, file or channel (asking what it cannot do without:
a program's command line, a file's path), ``d`` removes one after a yes (a
section with what it holds). Every change is a text edit of the file
(comments kept, :mod:`console.cfgfile`), checked by the loader
(:func:`bbs.instance.load_config`) and saved atomically. The nodes re-read
these files when they change (:mod:`bbs.liveconf`), so every save applies to
the next caller without a restart.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from console.cfgfile import (atomic_write, ini_add_section, ini_get, ini_remove_section, read_text, sections,
                             validate_ini_edit)
from console.scfg_items import Field, Menu

XTRN, TEXT, CHAT = "ctrl/xtrn.ini", "ctrl/text.ini", "ctrl/chat.ini"


def live_fields(file: str, section: str, keys: str) -> tuple[Field, ...]:
    """Settings of a file the nodes re-read (a save applies now)."""
    return tuple(Field(key, file, section, key, live=True) for key in keys.split())


@dataclasses.dataclass(frozen=True)
class Kind:
    """xtrn.ini or text.ini: the keys of a section and of what it holds, and
    the values a new entry is asked for: (key, caption, default)."""

    file: str
    child: str
    child_word: str
    section_keys: str
    child_keys: str
    asked: tuple[tuple[str, str, str], ...]

    def children(self, root: Path, section_id: str) -> list[str]:
        """``[child:SEC:CODE]`` sections of section ``section_id`` (case-insensitive, as the loader)."""
        return [s for s in sections(root / self.file, f"{self.child}:")
                if len(s.split(":")) == 3 and s.split(":")[1].strip().lower() == section_id.lower()]


PROGRAMS = Kind(XTRN, "prog", "program", "name ars", "name cmd startup_dir ars execution_ars io dropfile max_time",
                (("name", "Name", ""), ("cmd", "Command line (%A alias, %# node, %G drop file folder ...)", "")))
TEXT_FILES = Kind(TEXT, "file", "file", "name ars", "path description",
                  (("path", "File inside text/ (e.g. gfiles/news.msg)", "gfiles/"), ("description", "Description", "")))


def _part(section: str, index: int) -> str:
    return section.split(":")[index].strip()


def _save(view: Any, file: str, text: str, what: str, *, live: bool = True,
          section: str | None = None) -> str | None:
    """Check ``text`` as the new ``file`` with the loader, save it atomically,
    show the screen again and say so (``live``: the readers re-read it; else
    the save offers to recycle the server of ``section``); returns the
    loader's ``file:line: what`` instead when it refuses (nothing written)."""
    path = view.root / file
    error = validate_ini_edit(view.root, path, text)
    if error:
        return error
    atomic_write(path, text)
    view.show(view.walker.get_focus()[1] or 0)
    view.saved(file, what, live, section)
    return None


def _ask_all(view: Any, questions: list[tuple[str, str]], finish: Callable[[list[str]], str | None],
             error: str | None = None, answers: tuple[str, ...] = ()) -> None:
    """Ask each (caption, default) in turn, then ``finish(answers)``; when it
    returns an error, ask everything again with the answers given as defaults."""
    if len(answers) == len(questions):
        problem = finish(list(answers))
        if problem:
            _ask_all(view, [(c, a) for (c, _), a in zip(questions, answers)], finish, problem)
        return
    caption, default = questions[len(answers)]
    view.ask(f"{caption}: ", default, lambda text: _ask_all(view, questions, finish, None, answers + (text.strip(),)),
             error=error if not answers else None)


def _remove(view: Any, file: str, doomed: list[str], label: str, *, live: bool = True) -> None:
    def action() -> None:
        text = read_text(view.root / file)
        for section in doomed:
            text = ini_remove_section(text, section)
        error = _save(view, file, text, f"removed {label}", live=live, section=doomed[-1])
        if error:
            view.status(error, "error_msg")
    view.confirm(f"Remove {label}?", action)


# -- External Programs and Text File Sections ----------------------------------------
@dataclasses.dataclass(frozen=True)
class Child:
    """A program or text file: a menu of its settings."""

    kind: Kind
    section: str

    def row_text(self, root: Path) -> str:
        name = ini_get(read_text(root / self.kind.file), self.section,
                       "name" if self.kind is PROGRAMS else "description") or ""
        return f"{self.kind.child_word.capitalize()} {_part(self.section, 2):<8} {name} ..."

    def screen(self, view: Any) -> Menu:
        return Menu(f"{self.kind.child_word.capitalize()} {_part(self.section, 2)}",
                    live_fields(self.kind.file, self.section, self.kind.child_keys))


@dataclasses.dataclass(frozen=True)
class Section:
    """A section: its settings, then what it holds."""

    kind: Kind
    section: str

    def row_text(self, root: Path) -> str:
        name = ini_get(read_text(root / self.kind.file), self.section, "name")
        count = len(self.kind.children(root, _part(self.section, 1)))
        return f"{_part(self.section, 1):<10} {name or ''} ({count} {self.kind.child_word}{'s' if count != 1 else ''}) ..."

    def screen(self, view: Any) -> Menu:
        kind, ident = self.kind, _part(self.section, 1)
        return Menu(f"Section {ident}", lambda root: live_fields(kind.file, self.section, kind.section_keys)
                    + tuple(Child(kind, s) for s in kind.children(root, ident)), handler=ChildKeys(self))


@dataclasses.dataclass(frozen=True)
class Sections:
    """The top-level "External Programs" / "Text File Sections" item."""

    title: str
    kind: Kind

    def row_text(self, root: Path) -> str:
        return f"{self.title} ..."

    def screen(self, view: Any) -> Menu:
        return Menu(self.title, lambda root: tuple(Section(self.kind, s) for s in sections(root / self.kind.file, "sec:")),
                    handler=SectionKeys(self.kind))


def add_section(view: Any, kind: Kind) -> None:
    """Ask a new section's id and name; append it to the file."""
    def finish(answers: list[str]) -> str | None:
        ident, name = answers
        if not ident:
            return "a section needs an id (letters, digits, _ or -)"
        text = ini_add_section(read_text(view.root / kind.file), f"sec:{ident}", [("name", name or ident)])
        return _save(view, kind.file, text, f"added section {ident}")
    _ask_all(view, [("New section id", ""), ("Name shown to callers", "")], finish)


def add_child(view: Any, parent: Section) -> None:
    """Ask a new program's (file's) code and the values it needs; add it
    after the section's last entry. A refusal asks again with the reason."""
    kind, ident = parent.kind, _part(parent.section, 1)
    after = ([parent.section] + kind.children(view.root, ident))[-1]

    def finish(answers: list[str]) -> str | None:
        code, values = answers[0].upper(), answers[1:]
        if not code:
            return f"a {kind.child_word} needs a code (1-8 letters, digits, _ or -)"
        pairs = [(key, value or (code if key == "name" else "")) for (key, _, _), value in zip(kind.asked, values)]
        pairs = [(key, value) for key, value in pairs if value]  # a missing cmd or path: the loader says so
        text = ini_add_section(read_text(view.root / kind.file), f"{kind.child}:{ident}:{code}", pairs, after=after)
        return _save(view, kind.file, text, f"added {kind.child_word} {code} to section {ident}")
    _ask_all(view, [(f"New {kind.child_word} code", "")] + [(caption, default) for _, caption, default in kind.asked],
             finish)


_ADD_KEYS = ("a", "i", "insert")
_REMOVE_KEYS = ("d", "delete")


class SectionKeys:
    """Keys of the list of sections."""

    help = "Enter open  a add a section  d remove it (with what it holds)  Esc back"

    def __init__(self, kind: Kind) -> None:
        self.kind = kind

    def keypress(self, view: Any, key: str, item: Any) -> bool:
        if key in _ADD_KEYS:
            add_section(view, self.kind)
        elif key in _REMOVE_KEYS and isinstance(item, Section):
            ident = _part(item.section, 1)
            held = self.kind.children(view.root, ident)
            label = f"section {ident}" + (f" and its {len(held)} {self.kind.child_word}(s)" if held else "")
            _remove(view, self.kind.file, [*held, item.section], label)
        else:
            return False
        return True


class ChildKeys:
    """Keys of one section: its settings and its programs (files)."""

    def __init__(self, parent: Section) -> None:
        self.parent = parent
        self.help = f"Enter open/edit  a add a {parent.kind.child_word}  d remove it  Esc back"

    def keypress(self, view: Any, key: str, item: Any) -> bool:
        if key in _ADD_KEYS:
            add_child(view, self.parent)
        elif key in _REMOVE_KEYS and isinstance(item, Child):
            _remove(view, item.kind.file, [item.section], f"{item.kind.child_word} {_part(item.section, 2)}")
        else:
            return False
        return True


# -- Chat Features ---------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Channel:
    section: str

    def row_text(self, root: Path) -> str:
        text = read_text(root / CHAT)
        ars = ini_get(text, self.section, "ars")
        return (f"Channel {_part(self.section, 1):<8} {ini_get(text, self.section, 'name') or ''}"
                f"{f'  ({ars})' if ars else ''} ...")

    def screen(self, view: Any) -> Menu:
        return Menu(f"Channel {_part(self.section, 1)}", live_fields(CHAT, self.section, "name ars"))


class ChannelKeys:
    help = "Enter open  a add a channel  d remove it  Esc back"

    def keypress(self, view: Any, key: str, item: Any) -> bool:
        if key in _ADD_KEYS:
            def finish(answers: list[str]) -> str | None:
                code, name = answers[0].upper(), answers[1]
                if not code:
                    return "a channel needs a code (1-8 letters, digits, _ or -)"
                text = ini_add_section(read_text(view.root / CHAT), f"chan:{code}", [("name", name or code)])
                return _save(view, CHAT, text, f"added channel {code}")
            _ask_all(view, [("New channel code", ""), ("Name shown to callers", "")], finish)
        elif key in _REMOVE_KEYS and isinstance(item, Channel):
            _remove(view, CHAT, [item.section], f"channel {_part(item.section, 1)}")
        else:
            return False
        return True


CHAT_FEATURES = Menu("Chat Features", (
    Menu("Sysop Availability and Paging", live_fields(CHAT, "sysop", "available hours override_ars page_duration "
                                                      "page_bell")),
    Menu("Multinode Chat Channels", lambda root: tuple(Channel(s) for s in sections(root / CHAT, "chan:")),
         handler=ChannelKeys()),
))
EXTERNAL_PROGRAMS = Sections("External Programs", PROGRAMS)
TEXT_FILE_SECTIONS = Sections("Text File Sections", TEXT_FILES)
