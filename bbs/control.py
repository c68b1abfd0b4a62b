"""Server control at run time: start, stop and recycle each server, as
Synchronet's control panel does, and its ``ctrl/recycle`` semaphore files.

One :class:`ServerControl` per running App (``app.servers``, made by
:func:`bbs.runner.serve`). Servers are named by their sbbs.ini section
(``bbs``, ``mail``, ``ftp``, ``services``); :func:`server_key` also takes
the short names the console, the log tags and the semaphore files use
(``term``, ``mail``, ``ftp``, ``srvc``, and Synchronet's ``telnet`` and
``services``).

What each action does:

* **recycle** re-reads ``ctrl/`` (:func:`bbs.instance.load_config`). A
  configuration that does not load changes nothing: the error
  (``file:line: what``) goes to the log and to the caller (the console's
  status line). Otherwise the server's listener sockets close, its
  background tasks (SendMail) are cancelled, and it starts again from the
  new configuration: new sockets, handlers (menus, SSH keys ...) and tasks.
  **Connected callers go on** with the server they connected to; only new
  connections get the new configuration. The replaced parts' stop hook runs
  once the last of those callers has gone (or at shutdown). When the new
  sockets cannot be bound or the TLS certificate does not load, the server
  comes back with the configuration (and certificate) it had, and the
  recycle reports the error.
* A recycle of one server takes its own sbbs.ini section and listener
  sockets (services.ini for the Services); ``[Global]`` takes effect with a
  recycle of all. Every recycle takes the board configuration shared by all
  servers (main.ini, msgs.ini, file.ini): new message subs and file dirs are
  seen by callers at once. The node range (``FirstNode``/``LastNode``),
  ``[Global] LogLevel`` and ``[Mail] AllowCramMD5`` need a restart.
* **stop** closes the server's sockets and tasks and disconnects its
  callers at once. **start** re-reads the configuration and starts a
  stopped server (one with listener sockets: ``AutoStart = true``).
* Semaphores: every ``[Global] SemFileCheckFrequency`` seconds
  :meth:`ServerControl.watch_semaphores` looks for ``ctrl/recycle`` (every
  server) and ``ctrl/recycle.<server>``; a file found is removed and acted
  upon. A server whose ``Options`` has ``NO_RECYCLE`` ("Do not allow this
  server to be automatically recycled by external event") is left alone;
  the console may still recycle it.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable

from bbs.boardconf import SystemConfig
from bbs.errors import ConfigError
from bbs.instance import Config, load_config
from bbs.listeners import SERVER_TAGS, BindError, ServiceHandler

if TYPE_CHECKING:
    from bbs.app import App

log = logging.getLogger(__name__)

#: Servers in start order (sbbs.ini sections).
SERVERS = ("bbs", "mail", "ftp", "services")
SERVER_TITLES = {"bbs": "Terminal Server", "mail": "Mail Server", "ftp": "FTP Server",
                 "services": "Services"}
#: Names accepted for a server: section, short name (log tag), Synchronet's semaphore suffix.
SERVER_NAMES = {**{s: s for s in SERVERS}, **{tag: s for s, tag in SERVER_TAGS.items()},
                "telnet": "bbs"}
#: The semaphore file that recycles every server (``ctrl/recycle``); ``recycle.<name>`` one.
RECYCLE_SEMAPHORE = "recycle"
#: The option that keeps a server from being recycled by a semaphore file (Synchronet's name).
NO_RECYCLE = "NO_RECYCLE"
#: Seconds between checks whether the callers of replaced server parts are gone.
RETIRE_POLL = 1.0
#: Seconds a cancelled background task (SendMail) gets to finish its clean-up.
TASK_STOP_TIMEOUT = 2.0


class ControlError(Exception):
    """A start, stop or recycle did not happen; ``str()`` says why (one line)."""


@dataclasses.dataclass
class ServerParts:
    """What a server package contributes: handlers per service name,
    background tasks (e.g. SendMail) and a stop hook. ``adopt(old)`` (when
    set) is called on the parts replacing ``old`` at a recycle, before they
    start, to take over what callers of both share (the chat channel)."""

    handlers: dict[str, ServiceHandler]
    tasks: list[Callable[[], Awaitable[None]]] = dataclasses.field(default_factory=list)
    stop: Callable[[], Awaitable[None]] | None = None
    adopt: Callable[["ServerParts"], None] | None = None
    state: Any = None  # the server's own object, for ``adopt``


@dataclasses.dataclass
class _Running:
    parts: ServerParts
    tasks: list[asyncio.Task]
    since: float


@dataclasses.dataclass(frozen=True)
class ServerStatus:
    """One server as the console's Servers pane shows it."""

    server: str
    name: str  # short name: term, mail, ftp, srvc
    title: str
    state: str  # running | stopped | off (no listener sockets configured)
    sockets: tuple[str, ...]  # "telnet 2023" ...
    clients: int
    since: float  # started (0: not running)
    no_recycle: bool
    error: str  # the last failure of a start or recycle


def server_key(name: str) -> str:
    """The sbbs.ini section of a server named ``name``; ControlError for an unknown name."""
    key = SERVER_NAMES.get(name.strip().lower())
    if key is None:
        raise ControlError(f"unknown server {name!r} (term, mail, ftp or srvc)")
    return key


def _tag(server: str | None) -> dict:
    return {"extra": {"tag": SERVER_TAGS.get(server or "", "bbs")}}


def configured(config: Config) -> list[str]:
    """Servers with listener sockets in ``config``, in start order."""
    wanted = {item.server for item in config.listeners}
    return [s for s in SERVERS if s in wanted]


def merge_config(old: Config, new: Config, servers: Iterable[str] | None) -> Config:
    """The configuration after recycling ``servers`` (None: every server).

    The recycled servers take their sbbs.ini sections and listeners from
    ``new``, the others keep theirs (and ``[Global]``) from ``old``; a
    recycle of every server takes all of sbbs.ini. The board configuration (main.ini, msgs.ini, file.ini) comes from
    ``new`` but the node range from ``old`` (the node table is sized at
    start-up)."""
    if servers is None:
        server, listeners = new.server, new.listeners
    else:
        servers = set(servers)
        server = dataclasses.replace(old.server, ini=new.server.ini,
                                     **{s: getattr(new.server, s) for s in servers})
        listeners = (tuple(i for i in old.listeners if i.server not in servers)
                     + tuple(i for i in new.listeners if i.server in servers))
    return dataclasses.replace(new, server=server, listeners=listeners, system=_keep_nodes(old, new))


def _keep_nodes(old: Config, new: Config) -> SystemConfig:
    return dataclasses.replace(new.system, first_node=old.system.first_node, last_node=old.system.last_node)


class ServerControl:
    """Starts, stops and recycles the servers of ``app``. ``create(app,
    server)`` builds a server's parts from ``app.config`` (None: that server
    is not part of this build); ``on_change()`` runs after the set of
    listening sockets changed (the composition root rewrites
    data/listeners.json)."""

    def __init__(self, app: "App", create: Callable[["App", str], ServerParts | None],
                 on_change: Callable[[], None] = lambda: None) -> None:
        self.app = app
        self._create = create
        self._on_change = on_change
        self.running: dict[str, _Running] = {}
        self.errors: dict[str, str] = {}
        self._retired: list[ServerParts] = []
        self._retiring: set[asyncio.Task] = set()
        self._ops: set[asyncio.Task] = set()
        self._lock = asyncio.Lock()
        self._closed = False

    # -- what the console shows --------------------------------------------
    def status(self) -> list[ServerStatus]:
        """Every server: running, stopped by the sysop, or off."""
        config = self.app.config
        wanted = configured(config)
        rows = []
        bound = self.app.listeners.bound()
        by_service = {i.service: i.server for i in config.listeners}
        for server in SERVERS:
            running = self.running.get(server)
            sockets = tuple(f"{service} {port}" for service, _, port, _ in bound
                            if by_service.get(service) == server)
            sockets = tuple(dict.fromkeys(sockets))  # v4 and v6 on one port: once
            state = "running" if running else ("stopped" if server in wanted else "off")
            clients = sum(1 for c in self.app.listeners.connections.values() if c.listener.server == server)
            options = getattr(config.server, server).common.options
            rows.append(ServerStatus(server, SERVER_TAGS[server], SERVER_TITLES[server], state, sockets,
                                     clients, running.since if running else 0.0, NO_RECYCLE in options,
                                     self.errors.get(server, "")))
        return rows

    # -- start-up and shutdown (the composition root) ------------------------
    async def start_all(self) -> None:
        """Start every configured server (``bbs run``); raises BindError with
        nothing left listening when a socket cannot be bound."""
        async with self._lock:
            await self._launch(configured(self.app.config))
        self._on_change()

    async def close(self, grace: float) -> None:
        """Shutdown: stop accepting and the background tasks, give sessions
        ``grace`` seconds, drop what is left, run every stop hook."""
        self._closed = True
        for task in list(self._ops):
            try:
                await asyncio.wait_for(asyncio.shield(task), 30)
            except Exception:  # reported by the operation itself
                pass
        for task in list(self._retiring):
            task.cancel()
        await self.app.listeners.close_listeners()
        tasks = [t for r in self.running.values() for t in r.tasks]
        for task in tasks:
            task.cancel()
        await self.app.listeners.drain(grace)
        parts = [r.parts for r in self.running.values()] + self._retired
        self.running.clear()
        self._retired.clear()
        for part in parts:
            await self._stop_parts(part)
        if tasks:
            await asyncio.wait(tasks, timeout=TASK_STOP_TIMEOUT)
        if self._retiring:
            await asyncio.wait(list(self._retiring), timeout=TASK_STOP_TIMEOUT)

    # -- sysop actions -------------------------------------------------------
    async def recycle(self, server: str | None = None) -> str:
        """Recycle ``server`` (None: every running server) and return one line
        for the status bar; ControlError says what failed (the old
        configuration then keeps running)."""
        return await self._operation(self._recycle(server_key(server) if server else None))

    async def stop(self, server: str | None = None) -> str:
        """Stop ``server`` (None: every running server), disconnecting its callers."""
        return await self._operation(self._stop(server_key(server) if server else None))

    async def start(self, server: str | None = None) -> str:
        """Start ``server`` (None: every configured server not running) from a fresh read of ctrl/."""
        return await self._operation(self._start(server_key(server) if server else None))

    async def reload_board(self) -> str:
        """Re-read main.ini, msgs.ini and file.ini into the running BBS
        without recycling a server (SCFG saves): callers see new subs and
        dirs at once. ControlError when ctrl/ does not load."""
        return await self._operation(self._reload_board())

    async def _operation(self, coro: Awaitable[str]) -> str:
        """Run ``coro`` as a task of its own: a console closing while it
        waits (e.g. the SSH console of a stopped Terminal Server) never
        leaves a server half recycled."""
        if self._closed:
            coro.close()  # type: ignore[attr-defined]
            raise ControlError("the BBS is shutting down")
        task = asyncio.ensure_future(coro)
        self._ops.add(task)
        task.add_done_callback(self._ops.discard)
        return await asyncio.shield(task)

    async def _load(self, what: str, server: str | None, outcome: str, servers: Iterable[str] = ()) -> Config:
        """ctrl/ read again; a ConfigError is logged (``what`` failed), noted
        for ``servers`` and raised as ControlError ``file:line: what is
        wrong (outcome)``, the path relative to the instance (it fits a
        status line)."""
        try:
            return await asyncio.to_thread(load_config, self.app.instance.root)
        except ConfigError as exc:
            log.error("!%s failed, the running configuration is kept: %s", what, exc, **_tag(server))
            short = self._short(exc)
            for name in servers:
                self.errors[name] = short
            raise ControlError(f"{short} ({outcome})") from None

    def _short(self, exc: BaseException) -> str:
        return _failure(exc).replace(f"{self.app.instance.root}{os.sep}", "")

    async def _recycle(self, server: str | None) -> str:
        async with self._lock:
            if server and server not in self.running:
                raise ControlError(f"the {SERVER_TITLES[server]} is not running: start it instead")
            what = f"Recycle of the {SERVER_TITLES[server]}" if server else "Recycle"
            new = await self._load(what, server, "not recycled: the old configuration keeps running",
                                   [server] if server else list(self.running))
            old = self.app.config
            # Every server: the running ones (a server the sysop stopped stays stopped).
            targets = [server] if server else [s for s in SERVERS if s in self.running]
            for name in targets:
                log.info("Recycling server...", **_tag(name))
            halted = {name: self.running.pop(name) for name in targets if name in self.running}
            await self._halt(halted)
            self.app.config = merge_config(old, new, [server] if server else None)
            old_rules = self.app.login.rules
            if server is None:
                self.app.login.rules = new.server.global_.login
            old_tls = self.app.reset_tls()  # a replaced certificate is read again
            starting = [s for s in targets if s in configured(self.app.config)]
            try:
                await asyncio.to_thread(self.app.config.make_folders)  # new file dirs (file.ini)
                await self._launch(starting, previous={s: r.parts for s, r in halted.items()})
            except Exception as exc:
                log.error("!%s failed: %s; starting again with the configuration it had",
                          what, _failure(exc), **_tag(server))
                self.app.config = old
                self.app.login.rules = old_rules
                self.app.reset_tls(old_tls)  # callers keep the certificate that worked
                await self._relaunch(list(halted), halted)
                reason = self._short(exc)
                for name in targets:
                    self.errors[name] = reason
                raise ControlError(f"{reason} (not recycled: running as before)") from None
            finally:
                for name, running in halted.items():
                    self._retire(name, running.parts)
                self._on_change()
            for name in targets:
                self.errors.pop(name, None)
                if name in self.running:
                    log.info("%s recycled", SERVER_TITLES[name], **_tag(name))
                else:
                    log.info("%s stopped: no listener sockets in the new configuration", SERVER_TITLES[name],
                             **_tag(name))
            return self._summary("recycled", targets)

    async def _relaunch(self, servers: list[str], halted: dict[str, _Running]) -> None:
        """After a failed recycle: the servers again with the old configuration."""
        try:
            await self._launch(servers, previous={s: r.parts for s, r in halted.items()})
        except Exception as exc:
            for name in servers:
                log.critical("!%s could not be started again: %s", SERVER_TITLES[name], _failure(exc),
                             **_tag(name))

    async def _stop(self, server: str | None) -> str:
        async with self._lock:
            targets = [server] if server else [s for s in SERVERS if s in self.running]
            if server and server not in self.running:
                raise ControlError(f"the {SERVER_TITLES[server]} is not running")
            if not targets:
                raise ControlError("no server is running")
            halted = {name: self.running.pop(name) for name in targets}
            await self._halt(halted)
            dropped = dict.fromkeys(halted, 0)
            for conn in list(self.app.listeners.connections.values()):
                if conn.listener.server in halted:
                    conn.close()
                    dropped[conn.listener.server] += 1
            for name, running in halted.items():
                await self._stop_parts(running.parts)
                log.info("%s stopped by the sysop (%d connection(s) closed)", SERVER_TITLES[name],
                         dropped[name], **_tag(name))
            self._on_change()
            titles = ", ".join(SERVER_TITLES[s] for s in targets)
            return f"{titles} stopped; {sum(dropped.values())} connection(s) closed"

    async def _start(self, server: str | None) -> str:
        async with self._lock:
            if server and server in self.running:
                raise ControlError(f"the {SERVER_TITLES[server]} is already running")
            what = f"Start of the {SERVER_TITLES[server]}" if server else "Start"
            new = await self._load(what, server, "not started", [server] if server else ())
            available = configured(new)
            if server and server not in available:
                raise ControlError(f"the {SERVER_TITLES[server]} has no listener sockets to open "
                                   f"(AutoStart = false, or its services are off in ctrl/sbbs.ini)")
            targets = [server] if server else [s for s in available if s not in self.running]
            if not targets:
                raise ControlError("every configured server is running")
            old = self.app.config
            self.app.config = merge_config(old, new, targets)
            try:
                await asyncio.to_thread(self.app.config.make_folders)  # new file dirs (file.ini)
                await self._launch(targets)
            except Exception as exc:
                self.app.config = old
                log.error("!%s failed: %s", what, _failure(exc), **_tag(server))
                reason = self._short(exc)
                for name in targets:
                    self.errors[name] = reason
                raise ControlError(f"{reason} (not started)") from None
            finally:
                self._on_change()
            for name in targets:
                self.errors.pop(name, None)
            return self._summary("started", targets)

    async def _reload_board(self) -> str:
        async with self._lock:
            new = await self._load("Re-reading the areas", None, "not applied")
            old = self.app.config
            self.app.config = dataclasses.replace(old, system=_keep_nodes(old, new), msgs=new.msgs,
                                                  files=new.files)
            await asyncio.to_thread(self.app.config.make_folders)
            log.info("board configuration re-read: %d message sub(s), %d file dir(s)",
                     len(new.msgs.subs), len(new.files.dirs))
            return (f"applied: {len(new.msgs.subs)} message sub(s) and {len(new.files.dirs)} file dir(s) "
                    f"for callers now")

    def _summary(self, verb: str, servers: list[str]) -> str:
        parts = []
        rows = {row.server: row for row in self.status()}
        for name in servers:
            row = rows[name]
            where = ", ".join(row.sockets) if row.sockets else "no sockets"
            parts.append(f"{row.title} {verb if row.state == 'running' else 'off'} ({where})")
        return "; ".join(parts)

    # -- the machinery -------------------------------------------------------
    async def _launch(self, servers: list[str], previous: dict[str, ServerParts] | None = None) -> None:
        """Create, bind and start ``servers`` from ``app.config``. On any
        failure nothing of them is left listening and the exception is raised."""
        config = self.app.config
        parts: dict[str, ServerParts] = {}
        try:
            for server in servers:
                part = self._create(self.app, server)
                if part is None:
                    continue
                old = (previous or {}).get(server)
                if old is not None and part.adopt is not None:
                    part.adopt(old)
                parts[server] = part
            handlers = {name: h for p in parts.values() for name, h in p.handlers.items()}
            for name in sorted({i.service for i in config.listeners
                                if i.server in parts and i.service not in handlers}):
                log.warning("%s: not part of this build yet; its listener stays closed", name)
            listeners = [i for i in config.listeners if i.server in parts and i.service in handlers]
            groups = {s: getattr(config.server, s).common for s in parts}
            await self.app.listeners.bind(listeners, groups)
            self.app.prepare_tls()  # a bad certificate fails the launch like a bind error
            await self.app.listeners.start(handlers)
        except BaseException:
            await self.app.listeners.close_listeners({s for p in parts.values() for s in p.handlers})
            for part in parts.values():
                await self._stop_parts(part)
            raise
        loop = asyncio.get_running_loop()
        for server, part in parts.items():
            self.running[server] = _Running(part, [loop.create_task(t()) for t in part.tasks], time.time())
            log.info("%s started", SERVER_TITLES[server], **_tag(server))

    async def _halt(self, halted: dict[str, _Running]) -> None:
        """Close the sockets and cancel the background tasks of ``halted``."""
        if not halted:
            return
        services = {name for r in halted.values() for name in r.parts.handlers}
        await self.app.listeners.close_listeners(services)
        tasks = [t for r in halted.values() for t in r.tasks]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=TASK_STOP_TIMEOUT)

    def _retire(self, server: str, parts: ServerParts) -> None:
        """Run ``parts``' stop hook once the callers connected to them are gone."""
        last = max((c.id for c in self.app.listeners.connections.values() if c.listener.server == server),
                   default=0)
        self._retired.append(parts)

        async def when_gone() -> None:
            while any(c.id <= last and c.listener.server == server
                      for c in self.app.listeners.connections.values()):
                await asyncio.sleep(RETIRE_POLL)
            if parts in self._retired:
                self._retired.remove(parts)
                await self._stop_parts(parts)

        task = asyncio.ensure_future(when_gone())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _stop_parts(self, parts: ServerParts) -> None:
        if parts.stop is None:
            return
        try:
            await parts.stop()
        except Exception:
            log.exception("a server's stop hook failed")

    # -- semaphore files -------------------------------------------------------
    def semaphores(self) -> list[tuple[Path, str | None]]:
        """The recycle semaphore files present now: (path, server or None for all)."""
        ctrl = self.app.instance.ctrl
        found: list[tuple[Path, str | None]] = []
        if (ctrl / RECYCLE_SEMAPHORE).exists():
            found.append((ctrl / RECYCLE_SEMAPHORE, None))
        for suffix, server in SERVER_NAMES.items():
            path = ctrl / f"{RECYCLE_SEMAPHORE}.{suffix}"
            if path.exists():
                found.append((path, server))
        return found

    async def check_semaphores(self) -> list[str]:
        """Act on the recycle semaphore files present now; each is removed
        first. Only running servers are recycled, never one with NO_RECYCLE.
        Returns what was done, one line each (also logged)."""
        done = []
        for path, server in self.semaphores():
            log.info("Recycle semaphore file (%s) detected", path, **_tag(server))
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.error("!cannot remove %s: %s; ignoring it", path, exc, **_tag(server))
                continue
            wanted = [server] if server else [s for s in SERVERS if s in self.running]
            allowed = []
            for name in wanted:
                if name not in self.running:
                    log.warning("%s is not running: %s ignored", SERVER_TITLES[name], path.name, **_tag(name))
                elif NO_RECYCLE in getattr(self.app.config.server, name).common.options:
                    log.warning("%s has NO_RECYCLE in its Options: %s ignored", SERVER_TITLES[name],
                                path.name, **_tag(name))
                else:
                    allowed.append(name)
            try:
                if server is None and allowed == wanted and allowed:
                    done.append(await self.recycle(None))
                else:
                    for name in allowed:
                        done.append(await self.recycle(name))
            except ControlError as exc:
                done.append(str(exc))
        return done

    async def watch_semaphores(self) -> None:
        """Check for semaphore files every ``[Global] SemFileCheckFrequency``
        seconds until cancelled (a task of the composition root)."""
        while True:
            await asyncio.sleep(self.app.config.server.global_.sem_file_check_frequency)
            try:
                await self.check_semaphores()
            except ControlError:
                pass
            except Exception:
                log.exception("checking the recycle semaphore files failed")


def _failure(exc: BaseException) -> str:
    """One line for a failed start: the bind advice, a config error's file:line, or the exception."""
    if isinstance(exc, (BindError, ConfigError, ControlError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
