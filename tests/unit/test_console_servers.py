"""The console's Servers pane: rows from the running BBS, recycle, stop and
start after a yes (urwid.testing keys on a SysopConsole of a real serve())."""
from __future__ import annotations

import asyncio
from pathlib import Path

from urwid.testing import press, render_text

from console.live import SysopConsole
from console.model import ConsoleModel
from console.servers import ServersPane, server_row
from tests.support import run_async, set_ini
from tests.unit.test_control import free_port, ftp, refused, running

SIZE = (150, 30)


def screen(ui: SysopConsole) -> str:
    return "\n".join(render_text(ui, SIZE))


async def settle(ui: SysopConsole) -> None:
    while ui._tasks:
        await asyncio.gather(*ui._tasks)


def test_servers_pane_recycles_stops_and_starts_after_a_yes(instance: Path):
    async def main():
        async with running(instance) as app:
            model = ConsoleModel(nodes=app.nodes.records(), connections=app.listeners.connections,
                                 schedule=asyncio.get_running_loop().call_later)
            ui = SysopConsole(app, asyncio.Event(), model=model, extra_panes=[ServersPane])
            pane = ui.panes[-1]
            press(ui, SIZE, str(len(ui.panes)))
            rows = pane.texts()
            assert [r.split()[0] for r in rows] == ["Terminal", "Mail", "FTP", "Services"]
            ftp_port = app.listeners.port_of("ftp")
            assert f"ftp {ftp_port}" in rows[2] and "running" in rows[2]
            new_port = free_port()
            set_ini(instance / "ctrl" / "sbbs.ini", "FTP", "Port", str(new_port))
            press(ui, SIZE, "down", "down", "r")
            assert "Recycle the FTP Server? (configuration re-read; connected callers stay" in screen(ui)
            press(ui, SIZE, "n")
            assert "cancelled" in screen(ui) and app.listeners.port_of("ftp") == ftp_port
            press(ui, SIZE, "r", "y")
            await settle(ui)
            assert f"FTP Server recycled (ftp {new_port})" in screen(ui)
            assert f"ftp {new_port}" in pane.texts()[2]
            set_ini(instance / "ctrl" / "sbbs.ini", "FTP", "Port", "banana")
            press(ui, SIZE, "r", "y")
            await settle(ui)
            assert "[FTP] Port: invalid number 'banana' (not recycled: the old configuration keeps running)" \
                in screen(ui)
            assert "! ctrl/sbbs.ini:" in pane.texts()[2]                # the row keeps the error
            set_ini(instance / "ctrl" / "sbbs.ini", "FTP", "Port", str(new_port))
            press(ui, SIZE, "s", "y")
            await settle(ui)
            assert "FTP Server stopped; 0 connection(s) closed" in screen(ui)
            assert " stopped " in pane.texts()[2] and await refused(new_port)
            press(ui, SIZE, "g", "y")
            await settle(ui)
            assert f"FTP Server started (ftp {new_port})" in screen(ui)
            _, writer = await ftp(new_port)
            writer.close()
            press(ui, SIZE, "R")
            assert "Recycle every server?" in screen(ui)
            press(ui, SIZE, "y")
            await settle(ui)
            assert "Terminal Server recycled" in screen(ui)
            ui.close()
            model.detach()
    run_async(main(), timeout=60)


def test_server_row_shows_no_recycle_and_the_last_error():
    from bbs.control import ServerStatus

    row = server_row(ServerStatus("mail", "mail", "Mail Server", "running", ("smtp 2025", "pop3 2110"), 3,
                                  0.0, True, "ctrl/sbbs.ini:40: bad"))
    assert row.split()[:4] == ["Mail", "Server", "running", "3"]
    assert row.endswith("smtp 2025, pop3 2110  [NO_RECYCLE]  ! ctrl/sbbs.ini:40: bad")
