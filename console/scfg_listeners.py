"""Listener sockets in the SCFG menus: the ``[Listener:NAME]`` sections of
``ctrl/sbbs.ini`` (CommuniGate Pro listener semantics, :mod:`bbs.listenconf`).

A section named after a service (``[Listener:telnet]``) adjusts that
service's default sockets (Grant/Deny, per-address limit); any other name adds
a socket for its ``Service`` (e.g. ``[Listener:ftps]`` with ``TLS = on``).
Sockets are added (``a``: name, service, port) and removed (``d``, asks
first); every change is checked by the loader (known service, free of
conflicts, valid networks) and saved atomically, and the save offers to
recycle the server the socket belongs to.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from console.cfgfile import ini_add_section, ini_get, read_text, sections
from console.scfg_items import SBBS, Menu, fields
from console.scfg_xtrn import _ADD_KEYS, _REMOVE_KEYS, _ask_all, _remove, _save

#: The keys of a [Listener:NAME] section (bbs.listenconf).
LISTENER_KEYS = "Service Interface Port TLS Grant Deny MaxConcurrentConnections"
PREFIX = "Listener:"


@dataclasses.dataclass(frozen=True)
class Listener:
    """One ``[Listener:NAME]`` section: a menu of its keys."""

    section: str

    @property
    def name(self) -> str:
        return self.section.split(":", 1)[1].strip()

    def row_text(self, root: Path) -> str:
        text = read_text(root / SBBS)
        value = lambda key: ini_get(text, self.section, key) or ""  # noqa: E731
        where = f"{value('Interface') or 'default'}:{value('Port') or 'default'}"
        return (f"{self.name:<12} {value('Service') or self.name:<10} {where:<22}"
                f" TLS {value('TLS') or 'off'} ...")

    def screen(self, view: Any) -> Menu:
        return Menu(f"Listener {self.name}", fields(SBBS, self.section, LISTENER_KEYS))


class ListenerKeys:
    help = "Enter open  a add a listener socket  d remove it  Esc back"

    def keypress(self, view: Any, key: str, item: Any) -> bool:
        if key in _ADD_KEYS:
            add_listener(view)
        elif key in _REMOVE_KEYS and isinstance(item, Listener):
            _remove(view, SBBS, [item.section], f"listener {item.name}", live=False)
        else:
            return False
        return True


def add_listener(view: Any) -> None:
    """Ask a new socket's name, service, port and TLS mode; a refusal by
    the loader asks again with the reason."""
    def finish(answers: list[str]) -> str | None:
        name, service, port, tls = answers
        if not name:
            return "a listener needs a name (e.g. ftps, or a service's own name to adjust it)"
        pairs = [(key, value) for key, value in (("Service", service), ("Port", port), ("TLS", tls)) if value]
        section = f"{PREFIX}{name}"
        text = ini_add_section(read_text(view.root / SBBS), section, pairs)
        return _save(view, SBBS, text, f"added listener {name}", live=False, section=section)
    _ask_all(view, [("New listener name", ""), ("Service (telnet, ssh, rlogin, smtp, pop3, ftp ...)", ""),
                    ("Port", ""), ("TLS (off, on, ext)", "off")], finish)


LISTENERS = Menu("Listener Sockets", lambda root: tuple(Listener(s) for s in sections(root / SBBS, PREFIX)),
                 handler=ListenerKeys())
