"""The items of the SCFG menu tree (data, no urwid): settings, list files, menus.

:mod:`console.scfg` shows them; modules adding menus of their own
(:mod:`console.scfg_areas`, :mod:`console.scfg_users` ...) build on them.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Union

#: The ini files of an instance the menus edit most (relative to the instance).
SBBS, MAIN, MSGS, FILES = "ctrl/sbbs.ini", "ctrl/main.ini", "ctrl/msgs.ini", "ctrl/file.ini"

@dataclasses.dataclass(frozen=True)
class Field:
    """One ``key = value`` of an ini file under ``ctrl/``."""

    label: str
    file: str  # relative to the instance, e.g. "ctrl/sbbs.ini"
    section: str
    key: str
    live: bool = False
    secret: bool = False  # the menu line shows ******** (e.g. RelayPassword)


@dataclasses.dataclass(frozen=True)
class ListFile:
    """A one-entry-a-line list (ctrl/*.cfg, text/*.can) edited line by line."""

    label: str
    file: str
    live: bool = False


@dataclasses.dataclass(frozen=True)
class Menu:
    """A screen of items: settings, list files, sub-menus, or item kinds of
    their own. An item with ``row_text(root)`` draws its own line; one with
    ``screen(view)`` builds the screen Enter opens. ``handler`` (optional)
    takes the screen's own keys first: ``handler.keypress(view, key, item)``
    returns True when it used the key; ``handler.help`` is its key help."""

    title: str
    items: Union[tuple, Callable[[Path], tuple]]
    handler: Any = dataclasses.field(default=None, compare=False)

    def entries(self, root: Path) -> tuple:
        return self.items(root) if callable(self.items) else self.items


def fields(file: str, section: str, keys: str, labels: dict[str, str] | None = None) -> tuple[Field, ...]:
    """One :class:`Field` per key of ``keys`` (space-separated) of ``[section]``."""
    labels = labels or {}
    return tuple(Field(labels.get(k, k), file, section, k) for k in keys.split())
