"""Applying SCFG saves: what each edit needs, and the menus applying it in a
running BBS (areas at once, a recycle after a yes) or, alone, through the
semaphore file of a BBS running on the instance."""
from __future__ import annotations

import asyncio
from pathlib import Path

from urwid.testing import press

from bbs.instance import load_config
from console.cfgapply import Effect, effect_of
from console.scfg import ScfgView
from tests.support import run_async
from tests.unit.scfg_support import SIZE, open_path, screen_text as text
from tests.unit.test_control import free_port, ftp, refused, running


def status(view: ScfgView) -> str:
    return view.status_text.text


def edit(view: ScfgView, label: str, value: str) -> None:
    """Edit the setting on the line starting with ``label`` to ``value``."""
    open_path(view, label)
    current = view.frame.footer.original_widget.edit_text
    press(view, SIZE, *["backspace"] * len(current), *value, "enter")


def test_what_each_edit_needs(instance: Path):
    sbbs = instance / "ctrl" / "sbbs.ini"
    sbbs.write_text(sbbs.read_text() + "\n[Listener:telnets]\nService = telnet\nPort = 0\nTLS = on\n")
    cases = {
        ("ctrl/sbbs.ini", "Mail", "SMTPPort"): Effect(server="mail"),
        ("ctrl/sbbs.ini", "BBS", "Options"): Effect(server="bbs"),
        ("ctrl/sbbs.ini", "Global", "Hostname"): Effect(every=True),
        ("ctrl/sbbs.ini", "Global", "LogLevel"): Effect(restart="logging is set up at start-up"),
        ("ctrl/sbbs.ini", "Mail", "AllowCramMD5"): Effect(
            restart="the user base keeps or erases passwords at start-up"),
        ("ctrl/sbbs.ini", "Listener:telnets", "Port"): Effect(server="bbs"),
        ("ctrl/sbbs.ini", "Listener:pop3", "Grant"): Effect(server="mail"),
        ("ctrl/services.ini", "Finger", "Port"): Effect(server="services"),
        ("ctrl/main.ini", "System", "Name"): Effect(board=True),
        ("ctrl/main.ini", "Nodes", "LastNode"): Effect(restart="the node table is made at start-up"),
        ("ctrl/msgs.ini", "sub:Local:GENERAL", "name"): Effect(board=True),
        ("ctrl/file.ini", "dir:Main:UPLOADS", "path"): Effect(board=True),
    }
    for (file, section, key), expected in cases.items():
        assert effect_of(instance, file, section, key) == expected, (file, section, key)
    assert effect_of(instance, "text/ip.can", live=True) == Effect(live=True)
    assert effect_of(instance, "ctrl/xtrn.ini", "prog:Games:TREK", "cmd") == Effect(live=True)   # nodes re-read it


def test_in_the_console_a_save_recycles_the_server_after_a_yes(instance: Path):
    async def main():
        async with running(instance) as app:
            view = ScfgView(instance)
            view.app = app
            open_path(view, "Servers", "FTP Server")
            old_port = app.listeners.port_of("ftp")
            new_port = free_port()
            edit(view, "Port", str(new_port))
            assert "Saved. Recycle the FTP Server now to apply it? [y/N]" in text(view)
            assert not await refused(old_port)                          # nothing happens before the yes
            press(view, SIZE, "y")
            await view.settle()
            assert f"saved ctrl/sbbs.ini: Port = {new_port}; FTP Server recycled (ftp {new_port})" in status(view)
            _, writer = await ftp(new_port)
            writer.close()
            edit(view, "Port", "banana")                                # refused by the loader: not saved
            assert "[FTP] Port: invalid number 'banana'" in text(view)
            press(view, SIZE, "esc")
            assert app.config.server.ftp.port == new_port
            press(view, SIZE, "esc", "esc")                             # back to the top
            open_path(view, "Message Areas", "Local", "Sub GENERAL")
            edit(view, "name", "Chatter")
            await view.settle()
            assert "saved ctrl/msgs.ini: name = Chatter; applied: " in status(view)
            assert app.config.msgs.sub("GENERAL").name == "Chatter"     # callers see it now
            press(view, SIZE, "esc", "esc", "esc")
            open_path(view, "File Areas", "Main", "Dir UPLOADS")
            edit(view, "description", "Fresh uploads")
            await view.settle()
            assert "saved ctrl/file.ini: description = Fresh uploads; applied: " in status(view)
            assert next(d for d in app.config.files.dirs if d.code == "UPLOADS").description == "Fresh uploads"
            press(view, SIZE, "esc", "esc", "esc")
            open_path(view, "Nodes")
            edit(view, "LastNode", "9")
            assert "needs a restart of bbs run (the node table is made at start-up)" in status(view)
    run_async(main(), timeout=60)


def test_alone_the_menus_hand_the_recycle_to_a_bbs_running_on_the_instance(instance: Path):
    ctrl = instance / "ctrl"

    async def remote_console(app, channel) -> int:  # pragma: no cover - nobody attaches here
        return 0

    async def main():
        view = ScfgView(instance)                                       # `bbs scfg`: no App
        open_path(view, "Servers", "FTP Server")
        edit(view, "MaxClients", "5")
        assert "applies at the next bbs run (no BBS runs on this instance)" in status(view)
        from bbs.app import App
        from bbs.runner import serve

        app = App(load_config(instance))
        app.remote_console = remote_console                             # opens data/console.sock
        stop = asyncio.Event()
        task = asyncio.ensure_future(serve(app, stop=stop, announce_password=lambda a, p: None))
        while app.servers is None or "ftp" not in app.servers.running:
            await asyncio.sleep(0.05)
        try:
            edit(view, "MaxClients", "6")
            assert "Saved. A BBS runs on this instance: recycle the FTP Server (ctrl/recycle.ftp)?" in text(view)
            press(view, SIZE, "y")
            assert (ctrl / "recycle.ftp").exists()
            assert "ctrl/recycle.ftp created" in status(view)
            await app.servers.check_semaphores()
            assert app.config.server.ftp.common.max_clients == 6
        finally:
            stop.set()
            assert await task == 0
        assert not (instance / "data" / "console.sock").exists()
    run_async(main(), timeout=60)
