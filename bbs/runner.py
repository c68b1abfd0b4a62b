"""The composition root: starts every enabled server in one asyncio loop.

Server packages are imported lazily by name; each provides
``create(app) -> ServerParts``. This is the only module that knows them all.
:class:`bbs.control.ServerControl` (``app.servers``) starts, stops and
recycles them; the live console attaches through ``console.attach``'s
Unix socket (``bbs console``) when the caller registered
``app.remote_console``.
"""
from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import signal
from typing import Any, Callable

from bbs.app import App
from bbs.control import SERVER_TITLES, ServerControl, ServerParts
from bbs.listeners import BindError

__all__ = ["SERVER_MODULES", "SERVER_TITLES", "ServerParts", "create_server", "serve"]

log = logging.getLogger(__name__)

#: Server section -> module providing ``create(app)``.
SERVER_MODULES = {"bbs": "nodes.server", "mail": "mail.server", "ftp": "ftp.server",
                  "services": "services.server"}
#: Module providing ``open_console_socket(app)``: the local console socket of ``bbs console``.
CONSOLE_SOCKET_MODULE = "console.attach"


def create_server(app: App, server: str) -> ServerParts | None:
    """Import ``server``'s package and create its parts from ``app.config``
    (None when the package is not part of this build)."""
    module_name = SERVER_MODULES[server]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            log.warning("%s: not part of this build yet; its listeners stay closed", SERVER_TITLES[server])
            return None
        raise
    return module.create(app)


async def serve(app: App, *, stop: asyncio.Event | None = None,
                announce_password: Callable[[str, str], None] | None = None) -> int:
    """Run the BBS until ``stop`` is set or SIGTERM/SIGINT arrives.

    Returns the process exit status: 0 after a clean stop, 1 when a listener
    could not be bound (nothing is left running in that case).
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, _on_signal, stop, signum)
            installed.append(signum)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    await app.open(announce_password)
    control = ServerControl(app, create_server, on_change=lambda: _write_ports(app))
    app.servers = control
    watcher: asyncio.Task | None = None
    console_socket: Any = None
    status = 0
    try:
        if app.remote_console is not None:  # before listeners.json: scripts may attach once it is written
            console_socket = await importlib.import_module(CONSOLE_SOCKET_MODULE).open_console_socket(app)
        try:
            await control.start_all()
        except BindError as exc:
            log.critical("%s", exc)
            return 1
        log.info("%s ready: %d listener socket(s), nodes %d-%d", app.config.system.name,
                 len(app.listeners.bound()), app.config.system.first_node, app.config.system.last_node)
        watcher = loop.create_task(control.watch_semaphores())
        await stop.wait()
    finally:
        grace = app.config.server.global_.shutdown_grace
        log.info("shutting down: listeners closed, sessions get %g seconds", grace)
        app.shutdown.set()
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        if console_socket is not None:
            await console_socket.close()
        await control.close(grace)
        await app.close()
        for signum in installed:
            loop.remove_signal_handler(signum)
        log.info("BBS stopped")
    return status


def raise_open_file_limit() -> int:
    """Raise this process's open-file soft limit to the hard limit (every
    caller is a socket; 1024 is a common default). Returns the new limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        except (ValueError, OSError):
            log.warning("cannot raise the open-file limit above %d", soft)
    return soft


def _on_signal(stop: asyncio.Event, signum: int) -> None:
    log.info("received %s", signal.Signals(signum).name)
    stop.set()


def _write_ports(app: App) -> None:
    """data/listeners.json: where each service listens (for scripts and tests)."""
    path = app.instance.data / "listeners.json"
    rows = [{"service": s, "address": a, "port": p, "tls": t, "transport": "tcp"}
            for s, a, p, t in app.listeners.bound()]
    rows += [{"service": s, "address": a, "port": p, "tls": "off", "transport": "udp"}
             for s, a, p in app.listeners.bound_udp()]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "listeners": rows}, indent=1))
    os.replace(tmp, path)
