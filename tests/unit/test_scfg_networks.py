"""SCFG Networks: QWK routes, the FidoNet address and Internet e-mail settings
the mail server reads, edited through the menus and checked by their loaders."""
from __future__ import annotations

from pathlib import Path

from urwid.testing import press

from bbs.filters import FilterList
from bbs.instance import load_config
from console.scfg import APPLIES_LIVE, ScfgView
from tests.unit.scfg_support import SIZE, root, screen_text  # noqa: F401 (root: a fixture)


def test_hot_letters_move_to_the_next_matching_line(root: Path):
    view = ScfgView(root)
    press(view, SIZE, "n")
    assert view.texts()[view.walker.get_focus()[1]] == "Nodes ..."
    press(view, SIZE, "n", "enter")
    assert "Configure > Networks" in screen_text(view)
    assert view.texts() == ["QWK Packet Networks ...", "FidoNet ...", "Internet E-mail ..."]


def test_qwk_network_nodes_are_checked_and_live(root: Path):
    view = ScfgView(root)
    press(view, SIZE, "n", "n", "enter", "enter")                    # Networks > QWK Packet Networks
    assert view.texts()[0].split() == ["System", "QWK-ID", "NEWBBS"]
    assert view.texts()[1].split() == ["QWK", "nodes:", "qwknodes.cfg", "0", "entries"]
    press(view, SIZE, "enter", *["backspace"] * 6, *"MY BBS", "enter")
    main = root / "ctrl" / "main.ini"
    assert f"{main}:" in screen_text(view) and "QWKID 'MY BBS' is not a QWK-ID" in screen_text(view)
    press(view, SIZE, *["backspace"] * 6, *"MYBBS", "enter")
    assert load_config(root).system.qwk_id == "MYBBS"
    press(view, SIZE, "down", "enter", "a", *"VERT*", "enter")
    qwknodes = root / "ctrl" / "qwknodes.cfg"
    assert "'VERT*' is not a QWK-ID" in screen_text(view) and "VERT" not in qwknodes.read_text().split()
    press(view, SIZE, "a", *"VERT", "enter")
    assert f"saved ctrl/qwknodes.cfg; {APPLIES_LIVE}" in screen_text(view)
    assert [e.pattern for e in FilterList.load(qwknodes).entries] == ["VERT"]   # as mail/delivery.py reads it
    assert qwknodes.read_text().startswith("; qwknodes.cfg: QWK network nodes")


def test_fidonet_address_is_checked_by_the_loader(root: Path):
    view = ScfgView(root)
    press(view, SIZE, "n", "n", "enter", "f", "enter", "enter", *"1:2", "enter")
    assert "[Mail] FidoNetAddress: '1:2' is not a FidoNet address" in screen_text(view)
    press(view, SIZE, *"/3.4", "enter")
    assert "saved ctrl/sbbs.ini: FidoNetAddress = 1:2/3.4; " in screen_text(view)
    assert load_config(root).server.mail.fidonet_address == "1:2/3.4"


def test_internet_mail_settings(root: Path):
    view = ScfgView(root)
    press(view, SIZE, "n", "n", "enter", "i", "enter")
    labels = [t[:30].strip() for t in view.texts()]
    assert labels[:3] == ["Mail host name", "Local domains: domains.cfg", "Mail aliases: alias.cfg"]
    press(view, SIZE, *["down"] * labels.index("Relay password"), "enter", *"s3cret", "enter")
    assert load_config(root).server.mail.relay_password == "s3cret"
    row = view.texts()[labels.index("Relay password")]
    assert row.split() == ["Relay", "password", "********"]                    # never on the screen
    press(view, SIZE, "home", "down", "enter", "a", *"bbs.example.org", "enter")   # domains.cfg did not exist
    assert (root / "ctrl" / "domains.cfg").read_text() == "bbs.example.org\n"
    assert APPLIES_LIVE in screen_text(view)
