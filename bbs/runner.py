"""The composition root: starts every enabled server in one asyncio loop.

Server packages are imported lazily by name; each provides
``create(app) -> ServerParts``. This is the only module that knows them all.
"""
from __future__ import annotations

import asyncio
import dataclasses
import importlib
import json
import logging
import os
import signal
from typing import Awaitable, Callable

from bbs.app import App
from bbs.listeners import BindError, ServiceHandler

log = logging.getLogger(__name__)

#: Server section -> module providing ``create(app)``.
SERVER_MODULES = {"bbs": "nodes.server", "mail": "mail.server", "ftp": "ftp.server",
                  "services": "services.server"}
SERVER_TITLES = {"bbs": "Terminal Server", "mail": "Mail Server", "ftp": "FTP Server",
                 "services": "Services"}


@dataclasses.dataclass
class ServerParts:
    """What a server package contributes: handlers per service name,
    background tasks (e.g. SendMail) and a stop hook."""

    handlers: dict[str, ServiceHandler]
    tasks: list[Callable[[], Awaitable[None]]] = dataclasses.field(default_factory=list)
    stop: Callable[[], Awaitable[None]] | None = None


def load_servers(app: App) -> dict[str, ServerParts]:
    """Import and create each server whose section is enabled and has listeners."""
    wanted = {item.server for item in app.config.listeners}
    parts: dict[str, ServerParts] = {}
    for server, module_name in SERVER_MODULES.items():
        if server not in wanted:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                log.warning("%s: not part of this build yet; its listeners stay closed",
                            SERVER_TITLES[server])
                continue
            raise
        parts[server] = module.create(app)
    return parts


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
    parts = load_servers(app)
    handlers = {name: h for p in parts.values() for name, h in p.handlers.items()}
    listeners = [item for item in app.config.listeners if item.service in handlers]
    for name in sorted({i.service for i in app.config.listeners if i.server in parts and i.service not in handlers}):
        log.warning("%s: not part of this build yet; its listener stays closed", name)
    groups = {name: getattr(app.config.server, name).common for name in parts}
    background: list[asyncio.Task] = []
    status = 0
    try:
        try:
            await app.listeners.bind(listeners, groups)
        except BindError as exc:
            log.critical("%s", exc)
            return 1
        await app.listeners.start(handlers)
        for server, part in parts.items():
            log.info("%s started", SERVER_TITLES[server])
            background.extend(loop.create_task(task()) for task in part.tasks)
        _write_ports(app)
        log.info("%s ready: %d listener socket(s), nodes %d-%d", app.config.system.name,
                 len(app.listeners.bound()), app.config.system.first_node, app.config.system.last_node)
        await stop.wait()
    finally:
        grace = app.config.server.global_.shutdown_grace
        log.info("shutting down: listeners closed, sessions get %g seconds", grace)
        app.shutdown.set()
        await app.listeners.close_listeners()
        for task in background:
            task.cancel()
        await app.listeners.drain(grace)
        for part in parts.values():
            if part.stop is not None:
                await part.stop()
        if background:
            await asyncio.wait(background, timeout=2.0)
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
