"""SCFG Servers > Listener Sockets: [Listener:NAME] sections of sbbs.ini added,
edited and removed through the menus, checked by bbs.listenconf."""
from __future__ import annotations

from pathlib import Path

from urwid.testing import press

from bbs.instance import load_config
from console.scfg import ScfgView
from tests.unit.scfg_support import SIZE, open_path, root, screen_text  # noqa: F401 (root: a fixture)


def _sockets(root: Path, service: str) -> list[tuple[int, str]]:
    return sorted((item.port, item.tls.value) for item in load_config(root).listeners if item.service == service)


def test_a_listener_socket_is_added_edited_and_removed(root: Path):
    sbbs = root / "ctrl" / "sbbs.ini"
    comments = [line for line in sbbs.read_text().splitlines() if line.startswith(";")]
    view = ScfgView(root)
    open_path(view, "Servers", "Listener Sockets")
    assert view.texts() == []                                      # the shipped sbbs.ini has none
    press(view, SIZE, "a", *"ftps", "enter", *"nosuch", "enter", *"9990", "enter",
          *["backspace"] * 3, *"on", "enter")                     # TLS: "off" offered, "on" typed
    shown = screen_text(view)
    assert f"{sbbs}:" in shown and "nosuch" in shown               # the loader's file:line: what
    assert "Listener:ftps" not in sbbs.read_text()                 # nothing written
    press(view, SIZE, "enter", *["backspace"] * 6, *"ftp", "enter", "enter", "enter")   # answers kept: fix one
    assert "saved ctrl/sbbs.ini: added listener ftps" in screen_text(view)
    assert (9990, "on") in _sockets(root, "ftp")
    assert view.texts()[0].split()[:4] == ["ftps", "ftp", "default:9990", "TLS"]
    press(view, SIZE, "enter")                                     # the socket's own keys
    labels = [t.split()[0] for t in view.texts()]
    assert labels == "Service Interface Port TLS Grant Deny MaxConcurrentConnections".split()
    press(view, SIZE, *["down"] * labels.index("Port"), "enter", *["backspace"] * 4, *"9991", "enter")
    assert (9991, "on") in _sockets(root, "ftp")
    press(view, SIZE, "esc", "d")
    assert "Remove listener ftps? [y/N]" in screen_text(view)
    press(view, SIZE, "y")
    assert "saved ctrl/sbbs.ini: removed listener ftps" in screen_text(view)
    assert all(port != 9991 for port, _ in _sockets(root, "ftp")) and view.texts() == []
    assert [line for line in sbbs.read_text().splitlines() if line.startswith(";")] == comments
