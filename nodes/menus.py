"""Menus are data (STYLE 9): ``text/menu/NAME.ini`` declares a menu, Python
screens (:mod:`nodes.screens`) implement what its keys do.

A menu file::

    ; text/menu/main.ini
    [Menu]
    Title = Main                       ; shown in the node's activity
    Display = menu/main                ; display file shown on entry and for ?
    Prompt = \\1n\\1h\\1b@TITLE@ \\1c@TIMEON@\\1n: ; \\1 stands for Ctrl-A; @-codes work
    Activity = at the main menu        ; who's-online text (optional)

    [Key:M]                            ; the hotkey (one character; Enter is "ENTER")
    Help = Message areas               ; shown by the generated menu when there is no display file
    Action = menu message              ; what it does (see below)
    Require = NOT GUEST                ; Synchronet ARS; a key the caller fails is hidden and refused

Actions: ``menu NAME`` (enter a sub-menu), ``return`` (back to the menu
that opened this one), ``display FILE`` (show text/FILE), ``logoff``, or the
name of a screen registered in :data:`nodes.screens.SCREENS` followed by
optional arguments. Files are loaded once at start-up; a bad key, action,
requirement or missing menu stops start-up with ``file:line``
(:class:`bbs.errors.ConfigError`), like the rest of the configuration.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from bbs.ars import ALLOW_ALL, Requirement, parse_ars
from bbs.errors import ConfigError
from bbs.ini import parse_ini

log = logging.getLogger(__name__)

#: Actions the menu runner itself performs (screens add the rest).
BUILTIN_ACTIONS = frozenset({"menu", "return", "display", "logoff"})
#: The menu a caller starts in after logon (text/menu/main.ini).
MAIN_MENU = "main"


@dataclasses.dataclass(frozen=True)
class MenuItem:
    """One hotkey of a menu."""

    key: str
    action: str
    args: tuple[str, ...]
    help: str
    require: Requirement
    line: int


@dataclasses.dataclass(frozen=True)
class Menu:
    """A parsed menu file."""

    name: str
    title: str
    display: str
    prompt: str
    activity: str
    items: tuple[MenuItem, ...]
    path: Path

    def item(self, key: str) -> MenuItem | None:
        key = key.upper()
        return next((i for i in self.items if i.key == key), None)


def _unescape(text: str) -> str:
    return text.replace("\\1", "\x01").replace("\\n", "\n")


def load_menu(path: Path, screens: frozenset[str]) -> Menu:
    """Parse one menu file; raises ConfigError at the bad line."""
    ini = parse_ini(path)
    head = ini.section("Menu")
    name = path.stem.lower()
    items: list[MenuItem] = []
    for section in ini.sections.values():
        if section.name.lower() == "menu":
            continue
        kind, _, key = section.name.partition(":")
        if kind.strip().lower() != "key" or not key.strip():
            raise ConfigError(path, section.line, f"unknown section [{section.name}] (use [Menu] or [Key:X])")
        key = key.strip().upper()
        if key != "ENTER" and len(key) != 1:
            raise ConfigError(path, section.line, f"[{section.name}]: a hotkey is one character (or ENTER)")
        if any(i.key == key for i in items):
            raise ConfigError(path, section.line, f"[{section.name}]: key {key} is defined twice")
        action_text = section.get("Action", "")
        words = action_text.split()
        if not words:
            raise section.error("Action", f"[{section.name}] needs an Action")
        action = words[0].lower()
        if action not in BUILTIN_ACTIONS and action not in screens:
            raise section.error("Action", f"unknown action {action!r} (one of "
                                f"{', '.join(sorted(BUILTIN_ACTIONS | screens))})")
        if action in ("menu", "display") and len(words) < 2:
            raise section.error("Action", f"{action} needs a name")
        require = section.get("Require", ALLOW_ALL, parse_ars)
        items.append(MenuItem(key, action, tuple(words[1:]), section.get("Help", ""), require,
                              section.values["action"].line))
    return Menu(name=name, title=head.get("Title", name.title()), display=head.get("Display", ""),
                prompt=_unescape(head.get("Prompt", f"\x01n\x01h\x01c{name.title()} \x01n\x01c(?=help)\x01h: \x01n")),
                activity=head.get("Activity", f"at the {name} menu"), items=tuple(items), path=path)


def load_menus(folder: Path, screens: frozenset[str]) -> dict[str, Menu]:
    """Every ``*.ini`` in ``folder`` (text/menu/), checked for dangling
    ``menu NAME`` references; raises ConfigError."""
    menus = {p.stem.lower(): load_menu(p, screens) for p in sorted(folder.glob("*.ini"))}
    if MAIN_MENU not in menus:
        raise ConfigError(folder / f"{MAIN_MENU}.ini", None, "the main menu is missing")
    for menu in menus.values():
        for item in menu.items:
            if item.action == "menu" and item.args[0].lower() not in menus:
                raise ConfigError(menu.path, item.line, f"menu {item.args[0]!r} does not exist "
                                  f"(no {folder / (item.args[0].lower() + '.ini')})")
    return menus
