"""Sysop actions on the running BBS (Synchronet umonitor's node and client commands).

Each function is called by the console when the sysop confirms an action,
acts through the App's own services (node table, listener connections,
ip.can, the failed-login tracker) and returns one line for the status bar.
Failures the sysop should see raise :class:`ActionError` with that line.
Every action is logged (tag ``con``) so the log shows who did what.
"""
from __future__ import annotations

import logging
import time

from bbs.control import ControlError
from bbs.errors import BBSError
from bbs.nodetable import NodeStatus

log = logging.getLogger(__name__)

#: The ``r=`` reason written to ip.can for addresses the sysop filters.
FILTER_REASON = "filtered by the sysop"


class ActionError(Exception):
    """The action could not be done; ``str()`` says why, for the status bar."""


def kick_node(app, number: int) -> str:
    """Drop the caller on node ``number`` (closes its connection)."""
    record = app.nodes.get(number)
    conn = app.listeners.connections.get(record.conn_id) if record.conn_id else None
    if conn is None:
        raise ActionError(f"node {number} has no caller to kick")
    conn.close()
    log.warning("sysop kicked node %d (%s %s)", number, record.connection, record.address)
    return f"node {number}: caller at {record.address} disconnected"


def toggle_lock(app, number: int) -> str:
    """Lock node ``number`` (no new caller gets it) or unlock it."""
    record = app.nodes.update(number, locked=not app.nodes.get(number).locked)
    log.info("sysop %s node %d", "locked" if record.locked else "unlocked", number)
    return f"node {number} {'locked' if record.locked else 'unlocked'}"


def toggle_down(app, number: int) -> str:
    """Mark node ``number`` down after its caller logs off (or clear that);
    a waiting node goes offline at once, an offline node comes back."""
    record = app.nodes.get(number)
    if record.status is NodeStatus.OFFLINE:
        app.nodes.update(number, status=NodeStatus.WAITING, down_after=False)
        log.info("sysop brought node %d back up", number)
        return f"node {number} is up again"
    if record.status is NodeStatus.WAITING:
        app.nodes.update(number, status=NodeStatus.OFFLINE, down_after=False)
        log.info("sysop took node %d offline", number)
        return f"node {number} is offline"
    record = app.nodes.update(number, down_after=not record.down_after)
    log.info("sysop %s node %d down after logoff", "marked" if record.down_after else "unmarked", number)
    return f"node {number} {'goes down after logoff' if record.down_after else 'stays up after logoff'}"


def close_connection(app, conn_id: int) -> str:
    """Close one client socket of any server."""
    conn = app.listeners.connections.get(conn_id)
    if conn is None:
        raise ActionError("that connection is already closed")
    conn.close()
    log.warning("sysop closed %s connection from %s port %d", conn.service, conn.address, conn.port)
    return f"closed {conn.service} connection from {conn.address}"


def filter_address(app, address: str, duration: float, *, protocol: str = "",
                   now: float | None = None) -> str:
    """Append ``address`` to text/ip.can (expiring after ``duration``
    seconds, 0 = never) and close its open connections."""
    now = time.time() if now is None else now
    expires = now + duration if duration > 0 else None
    try:
        app.filters.ip.append(address, reason=FILTER_REASON, protocol=protocol, expires=expires, now=now)
    except BBSError as exc:
        raise ActionError(f"cannot filter {address}: {exc}") from None
    closed = 0
    for conn in list(app.listeners.connections.values()):
        if conn.address == address:
            conn.close()
            closed += 1
    until = time.strftime("%Y-%m-%d %H:%M", time.localtime(expires)) if expires else "ever"
    log.warning("sysop filtered %s in ip.can until %s", address, until)
    return f"{address} filtered in ip.can until {until}; {closed} connection(s) closed"


def lift_ban(app, address: str) -> str:
    """Lift the temporary (failed-login) ban of ``address``."""
    if not app.login.lift(address):
        raise ActionError(f"{address} has no active temporary ban")
    return f"temporary ban of {address} lifted"


async def send_telegram(app, number: int, text: str) -> str:
    """Send a telegram from the sysop to the user on node ``number``
    (stored until read, shown on the user's node by the terminal server)."""
    record = app.nodes.get(number)
    if not record.user_number:
        raise ActionError(f"node {number} has no user logged on")
    try:
        await app.telegrams.send(record.user_number, record.user, app.config.system.operator, text)
    except BBSError as exc:
        raise ActionError(f"telegram not sent: {exc}") from None
    log.info("sysop sent a telegram to %s on node %d", record.user, number)
    return f"telegram sent to {record.user} on node {number}"


async def clear_in_transit(app) -> str:
    """Clear the in-transit flags of the outbound queue (Synchronet's
    "clear in-transit" after a crash left messages marked as being sent).
    SendMail skips the messages it is delivering itself, so none goes twice."""
    store = getattr(app, "mail", None)
    if store is None or not store.db.is_open:
        raise ActionError("the mail queue is not open in this process")
    count = await store.clear_in_transit()
    log.info("sysop cleared the in-transit flag of %d queued message(s)", count)
    return f"{count} queued message(s) no longer marked in transit"


#: What the sysop may do to a server (bbs.control.ServerControl's methods), and how it is logged.
SERVER_VERBS = {"recycle": logging.INFO, "stop": logging.WARNING, "start": logging.INFO}


async def control_server(app, verb: str, server: str | None) -> str:
    """``verb`` (recycle, stop or start) ``server`` (``term``, ``mail``,
    ``ftp``, ``srvc``; None: every server) through ``app.servers``. Recycle
    and start re-read the configuration: a bad one changes nothing and its
    ``file:line: what`` is the error."""
    control = getattr(app, "servers", None)
    if control is None:
        raise ActionError("the servers are not running in this process")
    log.log(SERVER_VERBS[verb], "sysop: %s %s", verb, server or "every server")
    try:
        return await getattr(control, verb)(server)
    except ControlError as exc:
        raise ActionError(str(exc)) from None
