"""SCFG menus: line edits that keep comments, loader validation, atomic saves, menu keys."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from urwid.testing import press, render_text

from bbs.instance import init_instance, load_config
from console.cfgfile import atomic_write, ini_get, ini_set, validate_ini_edit, validate_list
from console.scfg import APPLIES_LIVE, ScfgView

SIZE = (100, 30)

SAMPLE = """; top comment
[Global]
; about the host
Hostname = localhost ; inline note
  Interface =

[BBS]
TelnetPort = 2023
; trailing comment of BBS

[Mail]
"""


def test_ini_set_rewrites_only_the_key_line():
    out = ini_set(SAMPLE, "global", "HOSTNAME", "bbs.example")
    assert out.splitlines() == SAMPLE.replace("Hostname = localhost ; inline note",
                                              "Hostname = bbs.example ; inline note").splitlines()
    assert ini_get(out, "Global", "hostname") == "bbs.example"
    out = ini_set(SAMPLE, "Global", "Interface", "127.0.0.1")
    assert "  Interface = 127.0.0.1\n" in out


def test_ini_set_adds_missing_keys_and_sections():
    out = ini_set(SAMPLE, "BBS", "SSHPort", "2222").splitlines()
    assert out[out.index("TelnetPort = 2023") + 1] == "SSHPort = 2222"
    assert "; trailing comment of BBS" in out
    out = ini_set(SAMPLE, "Mail", "SMTPPort", "2525").splitlines()
    assert out[-2:] == ["[Mail]", "SMTPPort = 2525"]
    out = ini_set(SAMPLE, "FTP", "Port", "2121").splitlines()
    assert out[-2:] == ["[FTP]", "Port = 2121"] and ini_get("\n".join(out), "FTP", "port") == "2121"
    assert ini_get(SAMPLE, "FTP", "Port") is None


@pytest.fixture
def root(tmp_path: Path) -> Path:
    init_instance(tmp_path)
    return tmp_path


def test_validation_uses_the_loader_and_names_the_real_file(root: Path):
    sbbs = root / "ctrl" / "sbbs.ini"
    bad = ini_set(sbbs.read_text(), "BBS", "TelnetPort", "99999")
    line = next(n for n, text in enumerate(bad.splitlines(), 1) if "99999" in text)
    assert validate_ini_edit(root, sbbs, bad) == f"{sbbs}:{line}: [BBS] TelnetPort: 99999 is above the maximum 65535"
    assert validate_ini_edit(root, sbbs, ini_set(sbbs.read_text(), "BBS", "TelnetPort", "2323")) is None
    main = root / "ctrl" / "main.ini"
    assert "LastNode" in (validate_ini_edit(root, main, ini_set(main.read_text(), "Nodes", "LastNode", "x")) or "")
    assert validate_list(root / "text" / "ip.can", ["10.0.0.0/8", "; note", "192.0.2.1\te=junk"]).startswith(
        f"{root / 'text' / 'ip.can'}:3: ")
    assert validate_list(root / "text" / "ip.can", ["10.0.0.0/8", "!192.0.2.*"]) is None


def test_atomic_write_replaces_and_keeps_mode(root: Path):
    path = root / "ctrl" / "relay.cfg"
    os.chmod(path, 0o640)
    atomic_write(path, "127.0.0.1\n")
    assert path.read_text() == "127.0.0.1\n" and (path.stat().st_mode & 0o777) == 0o640
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def text(view: ScfgView) -> str:
    """The screen's text with wrapped lines joined (long paths wrap)."""
    return " ".join(" ".join(render_text(view, SIZE)).split())


def down_to(view: ScfgView, label: str) -> list[str]:
    """Keys that move from the first line of the screen to the one starting with ``label``."""
    return ["down"] * next(i for i, t in enumerate(view.texts()) if t.startswith(label))


def test_menus_edit_a_server_setting(root: Path):
    quit_called = []
    view = ScfgView(root, on_quit=lambda: quit_called.append(True))
    assert view.texts()[:3] == ["System ...", "Nodes ...", "Servers ..."]
    press(view, SIZE, "down", "down", "enter")                       # Servers
    assert "Terminal Server ..." in text(view) and "Configure > Servers" in text(view)
    press(view, SIZE, "down", "enter")                               # Terminal Server
    assert view.texts()[0].split() == ["TelnetPort", "2023"]
    press(view, SIZE, "enter")
    assert "[BBS] TelnetPort = 2023" in text(view)
    press(view, SIZE, *["backspace"] * 4, *"99999", "enter")         # refused by the loader
    sbbs = root / "ctrl" / "sbbs.ini"
    line = next(n for n, t in enumerate(sbbs.read_text().splitlines(), 1) if "TelnetPort" in t)
    assert f"{sbbs}:{line}: [BBS] TelnetPort: 99999 is above the maximum 65535" in text(view)
    assert "TelnetPort = 2023" in sbbs.read_text()
    press(view, SIZE, *["backspace"] * 5, *"2323", "enter")
    assert "saved ctrl/sbbs.ini: TelnetPort = 2323; applies at the next bbs run (no BBS runs on this" in text(view)
    shipped = (root / "ctrl" / "sbbs.ini").read_text()
    assert "TelnetPort = 2323" in shipped and "; Ports: Synchronet's defaults" in shipped
    assert load_config(root).server.bbs.telnet_port == 2323
    assert view.texts()[0].split() == ["TelnetPort", "2323"]
    press(view, SIZE, "esc", "esc")
    assert view.texts()[0] == "System ..." and not quit_called
    press(view, SIZE, "esc")
    assert quit_called


def test_message_areas_come_from_msgs_ini(root: Path):
    view = ScfgView(root)
    press(view, SIZE, *down_to(view, "Message Areas"), "enter")
    assert view.texts() == ["Local ...", "Fun ..."]
    press(view, SIZE, "enter")
    assert "Sub GENERAL ..." in view.texts()
    press(view, SIZE, *["down"] * 2, "enter", "enter", *["backspace"] * 7, *"Chatter", "enter")
    assert ini_get((root / "ctrl" / "msgs.ini").read_text(), "sub:Local:GENERAL", "name") == "Chatter"
    assert load_config(root).msgs.sub("GENERAL").name == "Chatter"


def test_list_file_editor_adds_edits_and_deletes(root: Path):
    view = ScfgView(root)
    press(view, SIZE, *down_to(view, "List Files and Filters"), "enter")
    names = [t.split()[0] for t in view.texts()]
    assert "ctrl/relay.cfg" in names and "text/ip.can" in names
    press(view, SIZE, *["down"] * names.index("text/ip.can"), "enter")
    ip_can = root / "text" / "ip.can"
    before = ip_can.read_text().splitlines()
    press(view, SIZE, "a", *"203.0.113.0/24", "enter")
    assert ip_can.read_text().splitlines() == before + ["203.0.113.0/24"]
    assert APPLIES_LIVE in text(view)
    press(view, SIZE, "end", "enter", *["backspace"] * 2, *"25", "enter")
    assert ip_can.read_text().splitlines()[-1] == "203.0.113.0/25"
    press(view, SIZE, "end", "d", "n")
    assert ip_can.read_text().splitlines()[-1] == "203.0.113.0/25"
    press(view, SIZE, "d", "y")
    assert ip_can.read_text().splitlines() == before               # the comments stayed throughout


def test_service_sockets_from_services_ini(root: Path):
    view = ScfgView(root)
    press(view, SIZE, "down", "down", "enter", *["down"] * 4, "enter")   # Servers > Services
    assert view.texts()[-1] == "Service Sockets (services.ini) ..."
    press(view, SIZE, "end", "enter")
    assert view.texts()[:2] == ["Finger ...", "ActiveUser ..."]
    press(view, SIZE, "enter", "down", "enter", *["backspace"] * 4, *"2080", "enter")
    text = (root / "ctrl" / "services.ini").read_text()
    assert "[Finger]\n; RFC 1288" in text and ini_get(text, "Finger", "Port") == "2080"
