"""When an SCFG edit takes effect, and making it take effect.

:func:`effect_of` says what a saved edit needs (pure: file, section and key
in, :class:`Effect` out). :func:`apply_saved` then tells the sysop, on the
menus' status line, and does what can be done:

* list files, filters and the files nodes re-read (xtrn.ini, text.ini,
  chat.ini: :data:`bbs.instance.LIVE_FILES`): nothing (applies now);
* main.ini (system, new users), msgs.ini, file.ini, in the live console:
  re-read into the running BBS at once (new subs and dirs appear to callers
  and FTP clients without a restart;
  :meth:`bbs.control.ServerControl.reload_board`);
* a server's sbbs.ini section, its listener sockets, services.ini: in the
  live console, a yes/no question recycles that server now
  (``[Global]``: every server);
* the node range, ``[Global] LogLevel``, ``[Mail] AllowCramMD5``: a restart
  of ``bbs run``.

In ``bbs scfg`` alone no server runs in the process: when a BBS runs on
the instance anyway (its console socket answers) the question creates the
``ctrl/recycle.<server>`` semaphore file it polls; otherwise the sysop is
told the change applies when ``bbs run`` starts.
"""
from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any, Awaitable, Callable

from bbs.control import NO_RECYCLE, SERVER_TITLES, ControlError, server_key
from bbs.instance import LIVE_FILES
from bbs.listenconf import SERVICE_BY_NAME
from bbs.listeners import SERVER_TAGS
from console.cfgfile import ini_get, read_text

#: What the status line says after a save that applies without anything else.
APPLIES_LIVE = "applies now (the file is re-read on its next use)"
#: Keys whose change only a restart of `bbs run` applies: (file, section) -> {key: why}.
RESTART_KEYS = {
    ("ctrl/main.ini", "nodes"): {"": "the node table is made at start-up"},
    ("ctrl/sbbs.ini", "global"): {"loglevel": "logging is set up at start-up"},
    ("ctrl/sbbs.ini", "mail"): {"allowcrammd5": "the user base keeps or erases passwords at start-up"},
}
#: Server -> its sbbs.ini section, as written in the shipped file.
SECTION_NAMES = {"bbs": "BBS", "mail": "Mail", "ftp": "FTP", "services": "Services"}
#: sbbs.ini sections (lower case) -> server.
SECTION_SERVERS = {name.lower(): server for server, name in SECTION_NAMES.items()}


@dataclasses.dataclass(frozen=True)
class Effect:
    """How a saved edit takes effect."""

    live: bool = False  # re-read by its reader: nothing to do
    board: bool = False  # main.ini / msgs.ini / file.ini: re-read into the running BBS
    server: str | None = None  # a server to recycle for it (sbbs.ini section name)
    every: bool = False  # every server ([Global])
    restart: str = ""  # only a restart applies it: why


def effect_of(root: Path, file: str, section: str | None = None, key: str | None = None,
              live: bool = False) -> Effect:
    """What an edit of ``key`` in ``[section]`` of ``file`` (relative to
    the instance, e.g. ``ctrl/sbbs.ini``) needs to take effect; ``live``:
    the menu knows its reader re-reads the file."""
    if live or (file.startswith("ctrl/") and file[5:] in LIVE_FILES):
        return Effect(live=True)
    sec = (section or "").lower()
    restart = RESTART_KEYS.get((file, sec), {})
    why = restart.get((key or "").lower()) or restart.get("")
    if why:
        return Effect(restart=why)
    if file in ("ctrl/main.ini", "ctrl/msgs.ini", "ctrl/file.ini"):
        return Effect(board=True)
    if file == "ctrl/services.ini":
        return Effect(server="services")
    if file == "ctrl/sbbs.ini":
        if sec == "global":
            return Effect(every=True)
        if sec in SECTION_SERVERS:
            return Effect(server=SECTION_SERVERS[sec])
        if sec.startswith("listener:"):
            return Effect(server=_listener_server(root, section or ""))
        return Effect(every=True)
    return Effect(restart="it is read at start-up")


def _listener_server(root: Path, section: str) -> str:
    """The server of a ``[Listener:NAME]`` section: its ``Service`` (or NAME)."""
    service = (ini_get(read_text(root / "ctrl" / "sbbs.ini"), section, "Service")
               or section.split(":", 1)[1]).strip().lower()
    spec = SERVICE_BY_NAME.get(service)
    return spec.server if spec else "services"


def recycle_target(effect: Effect) -> str | None:
    """The server a recycle applies ``effect`` to ("" = every server; None: no recycle helps)."""
    if effect.every:
        return ""
    return effect.server


def title_of(server: str) -> str:
    return "every server" if not server else f"the {SERVER_TITLES[server]}"


def semaphore_name(server: str) -> str:
    """``recycle`` (every server) or ``recycle.<short name>`` (Synchronet's semaphore files)."""
    return "recycle" if not server else f"recycle.{SERVER_TAGS[server_key(server)]}"


def apply_saved(view: Any, head: str, effect: Effect) -> None:
    """Say on ``view``'s status line (an SCFG menu: ``status``, ``confirm``,
    ``redraw``, ``app`` and ``root``) how the edit described by ``head``
    ("saved ctrl/sbbs.ini: SMTPPort = 2525") applies, and apply it when the
    menus run inside the BBS (``view.app``)."""
    if effect.live:
        view.status(f"{head}; {APPLIES_LIVE}", "ok_msg")
        return
    if effect.restart:
        view.status(f"{head}; needs a restart of bbs run ({effect.restart})", "ok_msg")
        return
    control = getattr(getattr(view, "app", None), "servers", None)
    if control is None:
        _standalone(view, head, effect)
        return
    target = recycle_target(effect)
    if effect.board:
        _background(view, control.reload_board(), lambda message: view.status(f"{head}; {message}", "ok_msg"))
        return
    if target is not None:
        _offer_recycle(view, control, head, target)


def _offer_recycle(view: Any, control: Any, head: str, server: str) -> None:
    if server and server not in control.running:
        view.status(f"{head}; the {SERVER_TITLES[server]} is stopped: applies when it starts", "ok_msg")
        return
    view.confirm(f"Saved. Recycle {title_of(server)} now to apply it?",
                 lambda: _background(view, control.recycle(server or None),
                                     lambda message: view.status(f"{head}; {message}", "ok_msg")))


def _background(view: Any, work: Awaitable[str], done: Callable[[str], None]) -> None:
    """Run ``work`` (a ServerControl call) in the background; ``done(its
    line)``, or its ControlError on the status line; then redraw."""
    async def go() -> None:
        try:
            done(await work)
        except ControlError as exc:
            view.status(str(exc), "error_msg")
        view.redraw()

    view.status("applying ...", "ok_msg")
    task = asyncio.ensure_future(go())
    tasks = getattr(view, "_tasks", None)
    if tasks is not None:  # ScfgView.settle waits for it
        tasks.add(task)
        task.add_done_callback(tasks.discard)


def _standalone(view: Any, head: str, effect: Effect) -> None:
    """``bbs scfg`` alone: offer the semaphore file to a BBS running on the
    instance in another process, else say when the edit applies."""
    from console.attach import bbs_running

    server = recycle_target(effect)
    if server is None:
        server = "bbs"  # board files: any recycle re-reads them; the Terminal Server's callers use them
    what = title_of(server)
    root = Path(view.root)
    if not bbs_running(root):
        view.status(f"{head}; applies at the next bbs run (no BBS runs on this instance)", "ok_msg")
        return
    blocked = _no_recycle(root, server)
    if blocked:
        view.status(f"{head}; [{blocked}] has {NO_RECYCLE}: recycle it in the BBS's console (bbs console)",
                    "ok_msg")
        return
    semaphore = root / "ctrl" / semaphore_name(server)

    def touch() -> None:
        semaphore.touch()
        view.status(f"ctrl/{semaphore.name} created: the running BBS recycles {what} within seconds", "ok_msg")

    view.confirm(f"Saved. A BBS runs on this instance: recycle {what} (ctrl/{semaphore.name})?", touch)


def _no_recycle(root: Path, server: str) -> str:
    """The sbbs.ini section whose Options has NO_RECYCLE among those ``server`` covers, or ""."""
    text = read_text(root / "ctrl" / "sbbs.ini")
    for section in ([server] if server else list(SECTION_NAMES)):
        name = SECTION_NAMES[section]
        options = (ini_get(text, name, "Options") or "").upper().replace("|", " ").split()
        if NO_RECYCLE in options:
            return name
    return ""
