"""The sysop console: tabs of live panes over the running BBS, in the BBS's own loop.

:class:`SysopConsole` is the top widget: a header with the pane tabs, the
current pane, and a footer that shows the keys, a status line, a yes/no
question or a one-line prompt. It draws from a :class:`~console.model.ConsoleModel`
(batched bus events) and acts through :mod:`console.actions`.

:func:`run_console` runs it on a terminal: urwid's ``MainLoop`` on an
``AsyncioEventLoop`` wrapping the running loop, ``start()``-ed (never
``run()``: its exception handler would stop the servers' loop too), with
:func:`bbs.runner.serve` in the same loop. Quitting sets the stop event that
``serve`` waits on, so the BBS shuts down as on SIGTERM.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from typing import Any, AsyncIterator, Awaitable, Callable

import urwid

from console import actions
from console.model import ConsoleModel, merge_changes
from console.scfg import ScfgView
from console.servers import ServersPane
from console.scfg_stores import Stores
from console.panes import BansPane, ClientsPane, LogsPane, MailQueuePane, NodesPane, Prompt, StatsPane, log_row

log = logging.getLogger(__name__)

#: Seconds between ticks that move "time on" and ban expiries along.
TICK_INTERVAL = 1.0

PALETTE = [
    ("header", "white,bold", "dark blue"),
    ("tab", "light gray", "dark blue"),
    ("tab_on", "yellow,bold", "dark blue"),
    ("footer", "black", "light gray"),
    ("colhead", "white,bold", ""),
    ("focus", "black", "light cyan"),
    ("debug", "dark gray", ""),
    ("info", "", ""),
    ("warning", "yellow", ""),
    ("error", "light red", ""),
    ("critical", "white,bold", "dark red"),
    ("node_wait", "dark gray", ""),
    ("node_logon", "yellow", ""),
    ("node_inuse", "light green", ""),
    ("node_off", "light red", ""),
    ("ok_msg", "black", "dark green"),
    ("error_msg", "white", "dark red"),
    ("ask", "black", "yellow"),
    ("menu_title", "white,bold", "dark blue"),
    ("value", "light cyan", ""),
]


class SysopConsole(urwid.WidgetWrap):
    """The live console for one App. ``stop`` is the event ``serve`` waits on
    (set by :meth:`quit` after the sysop confirms :attr:`quit_question`)."""

    quit_question = "Stop the BBS and quit the console?"

    def __init__(self, app: Any, stop: asyncio.Event, *, model: ConsoleModel,
                 read_queue: Callable[[], Awaitable[list]] | None = None,
                 extra_panes: list[Any] | None = None) -> None:
        self.app = app
        self.stop = stop
        self.model = model
        self.main_loop: urwid.MainLoop | None = None
        self.draws = 0
        self._deferred: dict[int, Any] = {}  # id(pane) -> the merged batch it has not seen
        self._tasks: set[asyncio.Task] = set()
        self._question: tuple[str, Callable[[], str]] | None = None
        self._notice: str | None = None
        self.panes: list[Any] = [
            NodesPane(self, model.nodes.values()),
            ClientsPane(self, model.connections),
            LogsPane(self, model.logs),
            StatsPane(self, model),
            BansPane(self),
        ]
        if read_queue is not None:
            self.panes.append(MailQueuePane(self, read_queue))
        # A class is built with this console as its ``ui`` (the Servers pane).
        self.panes.extend(pane(self) if isinstance(pane, type) else pane for pane in extra_panes or [])
        self.current = 0
        self.tabs = urwid.Text("", wrap="clip")
        self.status_text = urwid.Text("", wrap="clip")
        self.footer_bar = urwid.AttrMap(self.status_text, "footer")
        self.frame = urwid.Frame(self.panes[0], header=urwid.AttrMap(self.tabs, "header"), footer=self.footer_bar)
        super().__init__(self.frame)
        model.on_flush = self.refresh
        self._show_tabs()
        self.status()

    # -- panes -------------------------------------------------------------
    @property
    def pane(self) -> Any:
        return self.panes[self.current]

    def select(self, index: int) -> None:
        self.current = index % len(self.panes)
        self._catch_up(self.pane)
        self.frame.body = self.pane
        self._show_tabs()
        self.status()

    def _show_tabs(self) -> None:
        name = getattr(self.app.config.system, "name", "BBS")
        parts: list[Any] = [("header", f" {name} ")]
        for index, pane in enumerate(self.panes, 1):
            parts.append(("tab_on" if index - 1 == self.current else "tab", f" {index} {pane.title} "))
        self.tabs.set_text(parts)

    def refresh(self, changes: Any) -> None:
        """Apply one batch of changes to the pane on screen, then draw once.

        A hidden pane keeps one merged batch (console.model.merge_changes)
        and applies it when shown: refreshing panes nobody looks at was most
        of a frame's cost, on the servers' loop.
        """
        for index, pane in enumerate(self.panes):
            if index == self.current or getattr(pane, "always_refresh", False):
                self._catch_up(pane)
                pane.refresh(changes)
            else:
                waiting = self._deferred.get(id(pane))
                self._deferred[id(pane)] = changes if waiting is None else merge_changes(waiting, changes)
        self.draw()

    def _catch_up(self, pane: Any) -> None:
        """Apply the merged batch ``pane`` has not seen yet."""
        waiting = self._deferred.pop(id(pane), None)
        if waiting is not None:
            pane.refresh(waiting)

    def draw(self) -> None:
        self.draws += 1
        if self.main_loop is not None:
            self.main_loop.draw_screen()

    # -- footer: status, questions, prompts --------------------------------
    def status(self, text: str | None = None, attr: str = "footer") -> None:
        """Show ``text`` (or the current pane's keys) in the footer."""
        if text is None:
            text = f"{self.pane.help}   Tab/1-{len(self.panes)} panes  q quit"
        self.frame.footer = self.footer_bar
        self.frame.focus_position = "body"
        self.status_text.set_text((attr, text))

    def run(self, action: Callable[[], str]) -> None:
        """Do a sysop action now and show its outcome."""
        try:
            message = action()
        except actions.ActionError as exc:
            self.status(str(exc), "error_msg")
        except Exception as exc:  # a failing action must not take the console down
            log.exception("console action failed")
            self.status(f"failed: {exc}", "error_msg")
        else:
            self.status(message, "ok_msg")

    def run_later(self, action: Awaitable[str]) -> str:
        """Start an async sysop action; its outcome replaces the status line."""
        async def go() -> None:
            try:
                message = await action
            except actions.ActionError as exc:
                self.status(str(exc), "error_msg")
            except Exception as exc:
                log.exception("console action failed")
                self.status(f"failed: {exc}", "error_msg")
            else:
                self.status(message, "ok_msg")
            self.draw()
        self.spawn(go())
        return "working ..."

    def confirm(self, question: str, action: Callable[[], str]) -> None:
        """Ask ``question`` [y/N]; run ``action`` on y."""
        self._question = (question, action)
        self.status_text.set_text(("ask", f"{question} [y/N]"))

    def ask(self, caption: str, default: str, done: Callable[[str], str]) -> None:
        """Prompt for one line; ``done(text)`` runs on Enter, Esc cancels."""
        def finish(text: str | None) -> None:
            if text is None:
                self.status("cancelled")
            else:
                self.status()
                self.run(lambda: done(text))
        self.frame.footer = urwid.AttrMap(Prompt(caption, default, finish), "footer")
        self.frame.focus_position = "footer"

    def notice(self, text: str) -> None:
        """A message that stays on top until a key is pressed (e.g. the sysop password)."""
        self._notice = text
        box = urwid.LineBox(urwid.Filler(urwid.Text(text + "\n\n(press any key)", align="center")))
        self.frame.body = urwid.Overlay(box, self.pane, "center", ("relative", 80), "middle", 9)

    def spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def announce_password(self, alias: str, password: str) -> None:
        """serve()'s first-start hook: the password is shown here, never logged."""
        self.notice(f"Sysop account '{alias}' created. Password: {password}\n"
                    f"Write it down; change it with: bbs user passwd {alias}")

    # -- keys --------------------------------------------------------------
    def keypress(self, size, key):
        if self._notice is not None:
            self._notice = None
            self.frame.body = self.pane
            return None
        if self._question is not None:
            question, action = self._question
            self._question = None
            if key in ("y", "Y"):
                self.status()
                self.run(action)
            else:
                self.status("cancelled")
            return None
        key = super().keypress(size, key)
        if key is None:
            return None
        if key == "tab":
            self.select(self.current + 1)
        elif key == "shift tab":
            self.select(self.current - 1)
        elif isinstance(key, str) and len(key) == 1 and key.isdigit() and 1 <= int(key) <= len(self.panes):
            self.select(int(key) - 1)
        elif key in ("q", "Q", "f10"):
            self.confirm(self.quit_question, self.quit)
        else:
            return key
        return None

    def quit(self) -> str:
        grace = self.app.config.server.global_.shutdown_grace
        self.stop.set()
        return f"stopping the BBS: listeners closed, sessions get {grace:g} seconds ..."

    def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()


def mail_queue_reader(app: Any) -> tuple[Callable[[], Awaitable[list]], Callable[[], Awaitable[None]]] | None:
    """(read, close) for the outbound queue: the App's own MailStore (opened
    with the App), or None for an App without one."""
    store = getattr(app, "mail", None)
    if store is None:
        return None

    async def read() -> list:
        return await store.outbound() if store.db.is_open else []

    async def close() -> None:
        return None  # the App closes its store

    return read, close


@contextlib.asynccontextmanager
async def open_console(app: Any, stop: asyncio.Event, *, screen: Any = None,
                       console_class: type[SysopConsole] = SysopConsole) -> AsyncIterator[SysopConsole]:
    """A ``console_class`` for ``app`` drawn on ``screen`` (None: this
    process's terminal) for the duration of the block: its own
    :class:`ConsoleModel` subscribed to the App's bus, its own urwid
    ``MainLoop`` started on the running loop, the one-second tick. On exit
    everything is undone (bus subscription, timers, tasks, the screen
    restored), whatever happens; ``stop`` is only handed to the console."""
    loop = asyncio.get_running_loop()
    queue = mail_queue_reader(app)
    read_queue = queue[0] if queue else None
    model = ConsoleModel(nodes=app.nodes.records(), connections=app.listeners.connections,
                         schedule=loop.call_later)
    model.attach(app.bus)
    scfg = ScfgView(app.instance.root, stores=Stores.of_app(app))
    scfg.app = app  # saves offer to apply or recycle in this running BBS
    console = console_class(app, stop, model=model, read_queue=read_queue, extra_panes=[ServersPane, scfg])
    scfg.redraw = console.draw
    main_loop = urwid.MainLoop(console, PALETTE, screen=screen, handle_mouse=False,
                               event_loop=urwid.AsyncioEventLoop(loop=loop))
    console.main_loop = main_loop
    ticker: asyncio.TimerHandle | None = None

    def tick() -> None:
        nonlocal ticker
        model.tick()
        ticker = loop.call_later(TICK_INTERVAL, tick)

    try:
        main_loop.start()
        try:
            tick()
            for pane in console.panes:
                if isinstance(pane, MailQueuePane):
                    console.spawn(pane.reload())
            yield console
        finally:
            if ticker is not None:
                ticker.cancel()
            console.main_loop = None
            console.close()
            main_loop.stop()
    finally:
        model.detach()
        model.on_flush = None
        if queue is not None:
            await queue[1]()


async def run_console(app: Any, serve: Callable[..., Awaitable[int]], *, screen: Any = None) -> int:
    """Run ``serve(app, stop=..., announce_password=...)`` under the console
    on this terminal; returns serve's exit status. The screen is restored
    before returning, whatever happens."""
    stop = asyncio.Event()
    console: SysopConsole | None = None
    try:
        async with open_console(app, stop, screen=screen) as console:
            return await serve(app, stop=stop, announce_password=console.announce_password)
    finally:
        # The screen is the terminal's again: a notice nobody dismissed (the
        # sysop password of a first start that failed) and what went wrong.
        if console is not None:
            if console._notice is not None:
                print(console._notice, file=sys.stderr)
            for event in console.model.logs:
                if event.level >= logging.ERROR:
                    print(log_row(event), file=sys.stderr)
