"""Terminal server entry point: telnet, SSH and RLogin nodes.

:func:`create` is called by the composition root (:mod:`bbs.runner`). It
loads the menus (a bad menu file stops start-up with ``file:line``), prepares
the SSH host keys and options, and returns one protocol factory per service.
Each factory allocates a node from FirstNode..LastNode (all busy: the caller
is told so and disconnected) and starts a :class:`nodes.session.Session`.

Sessions are isolated: each runs in its own task; an exception is logged
with the node and closes only that connection. When the BBS stops
(``app.shutdown``), sessions tell their callers and end; :meth:`NodeServices.stop`
cancels what is left after the grace period.
"""
from __future__ import annotations

import asyncio
import logging

from bbs.app import App
from bbs.instance import LIVE_FILES
from bbs.listeners import Connection, ServiceHandler
from bbs.liveconf import LiveConfig
from bbs.msgbase import MessageBase
from bbs.runner import ServerParts
from nodes.io import Link
from nodes.menus import Menu, load_menus

log = logging.getLogger(__name__)

#: Shown when FirstNode..LastNode are all in use (Synchronet's "all nodes busy").
ALL_BUSY = "\r\nSorry, all nodes are busy right now. Please call again later.\r\n"


class NodeServices:
    """What every node shares: the app, menus, the message base, sessions."""

    def __init__(self, app: App) -> None:
        from nodes.screens import SCREENS
        self.app = app
        self.menus: dict[str, Menu] = load_menus(app.instance.text / "menu", frozenset(SCREENS))
        self.msgs: MessageBase = app.msgs  # opened and closed by the App (shared with NNTP, Gopher)
        self.sessions: set[asyncio.Task] = set()
        self._released: set[int] = set()
        #: ctrl/xtrn.ini, text.ini and chat.ini as in force now (re-read when SCFG saves them).
        self.live: dict[str, LiveConfig] = {
            name: LiveConfig(app.instance.ctrl / name, parse, default, app.instance.root, getattr(app.config, attr))
            for name, (attr, parse, default) in LIVE_FILES.items()}

    def all_busy_message(self) -> bytes:
        return ALL_BUSY.encode("ascii")

    def allocate(self, conn: Connection) -> int | None:
        """The lowest free node for ``conn``, or None when all are busy."""
        record = self.app.nodes.allocate(conn.service, conn.address, conn.id)
        if record is None:
            log.warning("%s %s: all nodes busy", conn.service, conn.address)
            return None
        conn.node = record.number
        self._released.discard(conn.id)
        log.info("Node %d %s connection accepted from %s port %d", record.number, conn.service,
                 conn.address, conn.port)
        return record.number

    def release(self, node: int, conn: Connection) -> None:
        """The caller on ``node`` is gone (idempotent per connection)."""
        if conn.id in self._released:
            return
        self._released.add(conn.id)
        if self.app.nodes.get(node).conn_id == conn.id:
            self.app.nodes.release(node)
        log.info("Node %d %s %s disconnected", node, conn.service, conn.address)

    async def run_session(self, link: Link, conn: Connection, node: int, **options) -> None:
        """Run one caller's session on ``node``; never raises (STYLE 12)."""
        from nodes.session import Session
        task = asyncio.current_task()
        if task is not None:
            self.sessions.add(task)
        try:
            session = Session(self.app, self, link, node, conn.address)
            await session.run(**options)
        except asyncio.CancelledError:
            log.info("Node %d: session cancelled", node)
        except Exception:
            log.exception("Node %d %s %s: session crashed; closing it", node, conn.service, conn.address)
        finally:
            if task is not None:
                self.sessions.discard(task)
            self.release(node, conn)
            try:
                link.close()
            except Exception:
                pass

    def adopt(self, old: ServerParts) -> None:
        """A recycle replaces ``old``'s services with these: callers still on
        the old ones and new callers share one chat channel."""
        self.chat = old.state.chat

    async def stop(self) -> None:
        """After the grace period: cancel the sessions left."""
        for task in list(self.sessions):
            task.cancel()
        if self.sessions:
            await asyncio.wait(list(self.sessions), timeout=2.0)


def create(app: App) -> ServerParts:
    """Called by the composition root; returns the telnet, SSH and RLogin handlers."""
    from nodes.rlogin import rlogin_factory
    from nodes.screens.chat import ChatRooms
    from nodes.ssh import SSHService
    from nodes.telnet import telnet_factory

    services = NodeServices(app)
    services.chat = ChatRooms()  # the multinode chat channels, shared by every node
    handlers = {"telnet": ServiceHandler(protocol=telnet_factory(services)),
                "rlogin": ServiceHandler(protocol=rlogin_factory(services))}
    wanted = {item.service for item in app.config.listeners}
    ssh = None
    if "ssh" in wanted:
        ssh = SSHService(services)
        handlers["ssh"] = ServiceHandler(protocol=ssh.factory)
    return ServerParts(handlers=handlers, stop=services.stop, state=services, adopt=services.adopt)
