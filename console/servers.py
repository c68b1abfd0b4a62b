"""The console's Servers pane: Synchronet's control panel for each server.

One row per server (Terminal, Mail, FTP, Services) from
:meth:`bbs.control.ServerControl.status`: state, open connections, since
when it runs, its sockets, ``NO_RECYCLE`` and the last failure. Keys
recycle, stop or start the focused server (capitals: every server), each
after a yes/no question; the work runs in the background
(:func:`console.actions.control_server`) and its outcome, or the
configuration error that kept the old configuration running, replaces the
status line.
"""
from __future__ import annotations

import time
from typing import Any, Awaitable

import urwid

from console import actions
from console.panes import Pane, Row, clock_text

SERVERS_HEADER = f"{'Server':<16} {'State':<8} {'Clients':>7}  {'Since':<8}  Sockets"
#: Row colours by state.
STATE_ATTRS = {"running": "node_inuse", "stopped": "node_off", "off": "node_wait"}
#: Keys: (verb, every server?).
KEYS = {"r": ("recycle", False), "s": ("stop", False), "g": ("start", False),
        "R": ("recycle", True), "S": ("stop", True), "G": ("start", True)}
QUESTIONS = {
    "recycle": "Recycle {what}? (configuration re-read; connected callers stay, new ones get the new settings)",
    "stop": "Stop {what}? (its callers are disconnected)",
    "start": "Start {what}? (configuration re-read)",
}


def server_row(status: Any) -> str:
    """One line of the Servers pane for a bbs.control.ServerStatus."""
    since = clock_text(status.since) if status.since else ""
    sockets = ", ".join(status.sockets) or "-"
    flags = "  [NO_RECYCLE]" if status.no_recycle else ""
    error = f"  ! {status.error}" if status.error else ""
    return (f"{status.title:<16.16} {status.state:<8} {status.clients:>7}  {since:<8}  "
            f"{sockets}{flags}{error}")


class ServersPane(Pane):
    """Built by the console with itself as ``ui``; rows re-read every tick."""

    title = "Servers"
    help = "r recycle  s stop  g start  (R S G: every server)"
    #: Four rows, re-read once a second: cheap enough to keep current when hidden.
    always_refresh = True

    def __init__(self, ui: Any, clock=time.time) -> None:
        super().__init__(ui, SERVERS_HEADER)
        self.clock = clock
        self.statuses: dict[str, Any] = {}
        self.rebuild()

    def rebuild(self) -> None:
        control = getattr(self.ui.app, "servers", None)
        keep = self.focused_key()
        if control is None:
            self.statuses = {}
            self.walker[:] = [urwid.AttrMap(Row("(the servers have not started yet)", None), None, "focus")]
            return
        rows = control.status()
        self.statuses = {row.server: row for row in rows}
        self.walker[:] = [urwid.AttrMap(Row(server_row(row), row.server), STATE_ATTRS.get(row.state), "focus")
                          for row in rows]
        keys = [row.server for row in rows]
        self.walker.set_focus(keys.index(keep) if keep in keys else 0)

    def refresh(self, changes: Any) -> None:
        if changes.tick or changes.connections:
            self.rebuild()

    def keypress(self, size, key):
        key = super().keypress(size, key)
        if key not in KEYS:
            return key
        verb, every = KEYS[key]
        status = self.statuses.get(self.focused_key())
        if status is None and not every:
            return None
        server = None if every else status.name
        what = "every server" if every else f"the {status.title}"
        self.ui.confirm(QUESTIONS[verb].format(what=what),
                        lambda: self.ui.run_later(self._then_rebuild(actions.control_server(self.ui.app, verb, server))))
        return None

    async def _then_rebuild(self, work: Awaitable[str]) -> str:
        try:
            return await work
        finally:
            self.rebuild()
