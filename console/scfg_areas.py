"""Message Areas and File Areas in the SCFG menus: groups and subs of
``ctrl/msgs.ini``, libraries and dirs of ``ctrl/file.ini``.

As in Synchronet SCFG, areas are added (insert), copied (a new code with the
settings of an existing sub or dir) and removed (delete); an internal code
never changes once made, because stored messages and file records are filed
under it. Every change is a text edit of the ini file (comments kept), checked
by the real loader (unique codes, valid requirements, dir paths) and saved
atomically (:mod:`console.cfgfile`). A new dir's folder is created at once.
Removing an area asks first and never deletes what is stored: messages stay
in ``data/msgs.db`` and files in their folder and ``data/file.db`` (an area
added again with the same code shows them again).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from bbs.instance import load_config
from console.cfgfile import (atomic_write, ini_add_section, ini_remove_section, ini_section_values, read_text,
                             sections, validate_ini_edit)
from console.scfg_items import FILES, MSGS, Menu, fields


@dataclasses.dataclass(frozen=True)
class AreaKind:
    """The two-level shape of msgs.ini (``[grp:NAME]``/``[sub:GROUP:CODE]``)
    or file.ini (``[lib:NAME]``/``[dir:LIB:CODE]``) and the keys each level has."""

    file: str
    parent: str
    child: str
    parent_word: str
    child_word: str
    parent_keys: str
    child_keys: str
    #: Keys a copy must not share with its original (the loader wants them unique per area).
    unique_keys: tuple[str, ...]

    def parent_sections(self, root: Path) -> list[str]:
        return sections(root / self.file, f"{self.parent}:")

    def child_sections(self, root: Path, parent: str) -> list[str]:
        """``[sub:GROUP:CODE]`` sections of group ``parent`` (case-insensitive, as the loader)."""
        name = parent.split(":", 1)[1].strip().lower()
        return [s for s in sections(root / self.file, f"{self.child}:")
                if len(s.split(":")) == 3 and s.split(":")[1].strip().lower() == name]

    def new_values(self, parent_name: str, code: str, name: str) -> list[tuple[str, str]]:
        values = [("name", name), ("description", name)]
        if self.child == "dir":  # the loader's default, written out so the sysop sees it
            values.append(("path", f"files/{parent_name}/{code}".lower()))
        return values


MSG_AREAS = AreaKind(MSGS, "grp", "sub", "group", "sub", "description ars",
                     "name description ars read_ars post_ars newsgroup max_msgs", ("newsgroup",))
FILE_AREAS = AreaKind(FILES, "lib", "dir", "library", "dir", "description ars",
                      "name description path ars upload_ars download_ars max_files", ("path",))


def _code(section: str) -> str:
    return section.split(":")[2].strip()


@dataclasses.dataclass(frozen=True)
class Child:
    """A sub or dir: a menu of its settings."""

    kind: AreaKind
    section: str

    def row_text(self, root: Path) -> str:
        return f"{self.kind.child_word.capitalize()} {_code(self.section)} ..."

    def screen(self, view: Any) -> Menu:
        return Menu(f"{self.kind.child_word.capitalize()} {_code(self.section)}",
                    fields(self.kind.file, self.section, self.kind.child_keys))


@dataclasses.dataclass(frozen=True)
class Parent:
    """A group or library: its settings, then its subs or dirs."""

    kind: AreaKind
    section: str

    @property
    def name(self) -> str:
        return self.section.split(":", 1)[1].strip()

    def row_text(self, root: Path) -> str:
        return f"{self.name} ..."

    def screen(self, view: Any) -> Menu:
        kind = self.kind
        return Menu(self.name, lambda root: fields(kind.file, self.section, kind.parent_keys)
                    + tuple(Child(kind, s) for s in kind.child_sections(root, self.section)),
                    handler=ChildKeys(self))


@dataclasses.dataclass(frozen=True)
class Areas:
    """The top-level "Message Areas" / "File Areas" item."""

    title: str
    kind: AreaKind

    def row_text(self, root: Path) -> str:
        return f"{self.title} ..."

    def screen(self, view: Any) -> Menu:
        return Menu(self.title, lambda root: tuple(Parent(self.kind, s) for s in self.kind.parent_sections(root)),
                    handler=ParentKeys(self.kind))


# -- saving ------------------------------------------------------------------------------------

def _save(view: Any, kind: AreaKind, text: str, what: str, focus: Any = None) -> str | None:
    """Validate ``text`` as the new ``kind.file`` with the loader and save it
    atomically; then show the screen (on ``focus`` when it is one of its
    items) and say so. Returns the loader's ``file:line: what`` instead when
    it refuses the text (nothing is written)."""
    path = view.root / kind.file
    error = validate_ini_edit(view.root, path, text)
    if error:
        return error
    atomic_write(path, text)
    entries = view.screen.entries(view.root)
    view.show(entries.index(focus) if focus in entries else (view.walker.get_focus()[1] or 0))
    view.saved(kind.file, what, live=False)
    return None


def _make_folder(view: Any, code: str) -> None:
    """Create a new dir's folder (the path the loader resolved)."""
    folder = load_config(view.root).files.dir(code)
    if folder is not None:
        folder.path.mkdir(parents=True, exist_ok=True)


def _ask_area(view: Any, caption: str, default: str, then: Callable[[str], str | None]) -> None:
    """Prompt; ``then(answer)`` returns an error to prompt again with, or None."""
    def done(answer: str) -> None:
        error = then(answer)
        if error:
            view.ask(caption, answer, done, error=error)
    view.ask(caption, default, done)


def add_parent(view: Any, kind: AreaKind) -> None:
    """Prompt for a new group's (library's) name and append it to the file."""
    def then(name: str) -> str | None:
        if not name:
            return f"a {kind.parent_word} needs a name"
        text = ini_add_section(read_text(view.root / kind.file), f"{kind.parent}:{name}", [("description", name)])
        return _save(view, kind, text, f"added {kind.parent_word} {name}", Parent(kind, f"{kind.parent}:{name}"))
    _ask_area(view, f"New {kind.parent_word} name: ", "", then)


def add_child(view: Any, parent: Parent, original: Child | None = None) -> None:
    """Prompt for a new sub's (dir's) internal code, then its name; with
    ``original`` the new one copies its settings (except those that must
    stay unique per area) and goes right after it, else after the group's
    last sub. A refused code is asked again with the loader's reason."""
    kind = parent.kind
    word = kind.child_word
    caption = f"Copy of {word} {_code(original.section)}, new code: " if original else f"New {word} code: "
    text = read_text(view.root / kind.file)
    copied = ([(k, v) for k, v in ini_section_values(text, original.section) if k.lower() not in kind.unique_keys]
              if original is not None else [])
    after = original.section if original is not None else (
        [parent.section] + kind.child_sections(view.root, parent.section))[-1]

    def ask_code(default: str = "", error: str | None = None) -> None:
        view.ask(caption, default, lambda code: ask_name(code.upper()), error=error)

    def ask_name(code: str) -> None:
        if not code:
            ask_code(error=f"a {word} needs an internal code (1-8 letters, digits, _ or -)")
            return
        name = dict((k.lower(), v) for k, v in copied).get("name", code)
        view.ask(f"Name of {word} {code}: ", name, lambda name: save(code, name or code))

    def save(code: str, name: str) -> None:
        fresh = kind.new_values(parent.name, code, name)
        if original is None:
            values = fresh
        else:
            values = [(k, name if k.lower() == "name" else v) for k, v in copied]
            if not any(k.lower() == "name" for k, _ in copied):
                values.insert(0, ("name", name))
            values += [pair for pair in fresh if pair[0] in kind.unique_keys]
        section = f"{kind.child}:{parent.name}:{code}"
        new_text = ini_add_section(read_text(view.root / kind.file), section, values, after=after)
        error = _save(view, kind, new_text, f"{'copied' if original else 'added'} {word} {code} to {parent.name}",
                      Child(kind, section))
        if error:
            ask_code(code, error)
        elif kind.child == "dir":
            _make_folder(view, code)

    ask_code()


# -- removing ----------------------------------------------------------------------------------

async def stored_content(stores: Any, kind: AreaKind, root: Path, codes: list[str]) -> str:
    """What stays stored for the areas ``codes`` when they are removed, said
    for the confirmation ('' when they hold nothing)."""
    if kind is MSG_AREAS:
        count = 0
        for code in codes:
            count += (await stores.msgs.stats(code))[0]
        return f"{count} message(s) stay in data/msgs.db" if count else ""
    areas = load_config(root).files
    records = on_disk = 0
    for code in codes:
        records += len(await stores.files.list(code))
        folder = areas.dir(code)
        if folder is not None and folder.path.is_dir():
            on_disk += sum(1 for p in folder.path.iterdir() if p.is_file() and not p.name.startswith("."))
    if not records and not on_disk:
        return ""
    return f"{on_disk} file(s) stay in the folder(s) and {records} record(s) in data/file.db"


def remove(view: Any, target: Parent | Child) -> None:
    """Ask, then remove a sub/dir, or a group/library with all of its subs/dirs,
    from the file. Stored messages and files are kept."""
    kind = target.kind
    if isinstance(target, Parent):
        children = kind.child_sections(view.root, target.section)
        label = f"{kind.parent_word} {target.name}"
        if children:
            label += f" and its {len(children)} {kind.child_word}(s)"
    else:
        children = []
        label = f"{kind.child_word} {_code(target.section)}"
    codes = [_code(s) for s in children] if isinstance(target, Parent) else [_code(target.section)]

    def action() -> None:
        text = read_text(view.root / kind.file)
        for section in [*children, target.section]:
            text = ini_remove_section(text, section)
        error = _save(view, kind, text, f"removed {label}")
        if error:
            view.status(error, "error_msg")

    def ask(content: str) -> None:
        view.confirm(f"Remove {label}? " + (f"Its {content}." if content else "Nothing is stored in it."), action)

    if view.stores is None:
        view.confirm(f"Remove {label}? (Stored messages and files are kept.)", action)
    else:
        view.status("counting what is stored ...")
        view.spawn(stored_content(view.stores, kind, view.root, codes), ask)


# -- keys --------------------------------------------------------------------------------------

_ADD_KEYS = ("a", "i", "insert")
_REMOVE_KEYS = ("d", "delete")


class ParentKeys:
    """Keys of the list of groups (libraries)."""

    def __init__(self, kind: AreaKind) -> None:
        self.kind = kind
        self.help = f"Enter open  a add a {kind.parent_word}  d remove it  Esc back"

    def keypress(self, view: Any, key: str, item: Any) -> bool:
        if key in _ADD_KEYS:
            add_parent(view, self.kind)
        elif key in _REMOVE_KEYS and isinstance(item, Parent):
            remove(view, item)
        else:
            return False
        return True


class ChildKeys:
    """Keys of one group (library): its settings and its subs (dirs)."""

    def __init__(self, parent: Parent) -> None:
        self.parent = parent
        word = parent.kind.child_word
        self.help = f"Enter open/edit  a add a {word}  c copy the {word}  d remove it  Esc back"

    def keypress(self, view: Any, key: str, item: Any) -> bool:
        if key in _ADD_KEYS:
            add_child(view, self.parent)
        elif key == "c" and isinstance(item, Child):
            add_child(view, self.parent, original=item)
        elif key in _REMOVE_KEYS and isinstance(item, Child):
            remove(view, item)
        else:
            return False
        return True
