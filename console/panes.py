"""The live panes of the sysop console: Nodes, Clients, Logs, Stats, Bans, Mail queue.

Row text comes from pure functions (``node_row``, ``client_row``, ``log_row``
...) so tests can check it without a screen. Each pane is a box widget that
updates its rows in place from a :class:`~console.model.Changes` batch and
handles its own action keys, asking the console (``ui``) for confirmations,
prompts and the status line.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterable

import urwid

from bbs import units
from bbs.events import LogEvent
from bbs.nodetable import NodeStatus
from console import actions, spy
from console.model import LOG_SCROLLBACK, STAT_LABELS, Changes

#: Log tags the server filter cycles through (None = every server).
LOG_TAGS = (None, "term", "mail", "ftp", "srvc", "bbs", "con")
#: Minimum levels the level filter cycles through.
LOG_LEVELS = (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR)
#: Default expiry offered when the sysop filters an address.
DEFAULT_FILTER_DURATION = "1d"

NODE_ATTRS = {NodeStatus.WAITING: "node_wait", NodeStatus.LOGON: "node_logon",
              NodeStatus.NEWUSER: "node_logon", NodeStatus.INUSE: "node_inuse",
              NodeStatus.OFFLINE: "node_off"}


def level_attr(level: int) -> str:
    """Palette name for a log level (colour by severity)."""
    if level >= logging.CRITICAL:
        return "critical"
    if level >= logging.ERROR:
        return "error"
    if level >= logging.WARNING:
        return "warning"
    if level >= logging.INFO:
        return "info"
    return "debug"


def duration_text(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def clock_text(when: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(when))


#: Short status words for the Nodes pane (Synchronet's node display).
NODE_STATUS = {NodeStatus.WAITING: "waiting", NodeStatus.LOGON: "logging on",
               NodeStatus.NEWUSER: "new user", NodeStatus.INUSE: "in use", NodeStatus.OFFLINE: "offline"}

NODE_HEADER = f"{'Node':>4}  {'Status':<22} {'User':<14} {'Activity':<16} {'Conn':<7} {'Address':<18} {'Time on':>8}"


def node_row(record: Any, now: float, *, paging: bool = False) -> str:
    """One line of the Nodes pane for a NodeRecord (``paging``: its caller paged the sysop)."""
    status = NODE_STATUS[record.status]
    if paging:
        status += " [page]"
    if record.locked:
        status += " [lock]"
    if record.down_after:
        status += " [down]"
    on = duration_text(now - record.since) if record.since else ""
    return (f"{record.number:>4}  {status:<22.22} {record.user or '-':<14.14} {record.activity:<16.16} "
            f"{record.connection:<7.7} {record.address:<18.18} {on:>8}")


CLIENT_HEADER = f"{'#':>5}  {'Protocol':<10} {'Address':<28} {'User':<16} {'Node':>4}  {'TLS':<3}  {'Since':<8}"


def client_row(conn: Any) -> str:
    """One line of the Clients pane for a listeners.Connection."""
    where = f"{conn.address}:{conn.port}"
    return (f"{conn.id:>5}  {conn.service:<10.10} {where:<28.28} {conn.user or '-':<16.16} "
            f"{conn.node or '':>4}  {'yes' if conn.secure else '':<3}  {clock_text(conn.since):<8}")


def log_row(event: LogEvent) -> str:
    """One line of the Logs pane: time, server tag, level, message."""
    return f"{clock_text(event.when)} {event.tag:<4} {logging.getLevelName(event.level):<7.7} {event.message}"


BAN_HEADER = f"{'Address':<40} {'Until':<8} {'Failures':>8}  {'Protocol':<8} {'User':<16}"


def ban_row(ban: Any) -> str:
    return (f"{ban.addr:<40.40} {clock_text(ban.until):<8} {ban.count:>8}  {ban.protocol:<8.8} "
            f"{ban.user:<16.16}")


QUEUE_HEADER = f"{'#':>5}  {'From':<22} {'To':<24} {'Tries':>5}  {'Next try':<8} {'T':<1}  Last error"


def queue_row(item: Any) -> str:
    """One line of the Mail queue pane for a bbs.mailbox.QueuedMail."""
    to = ", ".join(item.recipients)
    return (f"{item.id:>5}  {item.sender or '<>':<22.22} {to:<24.24} {item.attempts:>5}  "
            f"{clock_text(item.next_try):<8} {'*' if item.in_transit else ' '}  {item.last_error}")


class Prompt(urwid.Edit):
    """The footer's one-line prompt; Enter gives the text, Esc cancels."""

    def __init__(self, caption: str, text: str, done: Callable[[str | None], None]) -> None:
        super().__init__(("ask", caption), text)
        self.done = done

    def keypress(self, size, key):
        if key == "enter":
            self.done(self.edit_text.strip())
            return None
        if key == "esc":
            self.done(None)
            return None
        return super().keypress(size, key)


class Row(urwid.Text):
    """A selectable line that remembers what it shows (``key``)."""

    _selectable = True

    def __init__(self, text: Any, key: Any = None) -> None:
        super().__init__(text, wrap="clip")
        self.key = key

    def keypress(self, size, key):
        return key


def _wrap(row: Row, attr: str | None) -> urwid.AttrMap:
    return urwid.AttrMap(row, attr, focus_map="focus")


class Pane(urwid.WidgetWrap):
    """A titled list: a column header over a ListBox of rows."""

    title = ""
    help = ""

    def __init__(self, ui: Any, header: str = "") -> None:
        self.ui = ui
        self.walker = urwid.SimpleFocusListWalker([])
        self.listbox = urwid.ListBox(self.walker)
        self.header_text = urwid.Text(("colhead", header), wrap="clip")
        super().__init__(urwid.Frame(self.listbox, header=self.header_text))

    def focused_key(self) -> Any:
        if not self.walker:
            return None
        widget, _ = self.walker.get_focus()
        return widget.original_widget.key

    def texts(self) -> list[str]:
        """The rows' text (for tests and captures)."""
        return [w.original_widget.text for w in self.walker]

    def refresh(self, changes: Changes) -> None:
        """Apply a batch; called by the console once per batch."""


class NodesPane(Pane):
    title = "Nodes"
    help = "s spy  c chat  t telegram  i interrupt  k kick  l lock/unlock  d down after logoff (or offline/up)"

    def __init__(self, ui: Any, records: Iterable[Any], clock: Callable[[], float] = time.time) -> None:
        super().__init__(ui, NODE_HEADER)
        self.clock = clock
        self.records = {r.number: r for r in records}
        self.row_of: dict[int, urwid.AttrMap] = {}
        self.pages: dict[int, Any] = {}  # node -> the caller's bbs.spy.SysopPaged, until answered or gone
        model = getattr(ui, "model", None)
        if model is not None:
            model.on_page = self.paged
        now = clock()
        for number in sorted(self.records):
            self.row_of[number] = _wrap(Row(node_row(self.records[number], now), number),
                                      NODE_ATTRS[self.records[number].status])
            self.walker.append(self.row_of[number])

    def _show(self, record: Any, now: float) -> None:
        row = self.row_of.get(record.number)
        if row is None:
            return
        row.original_widget.set_text(node_row(record, now, paging=record.number in self.pages))
        row.set_attr_map({None: NODE_ATTRS[record.status]})

    def paged(self, event: Any) -> None:
        """The caller on ``event.node`` paged the sysop (a bus callback: mark,
        say so in the footer unless the sysop is typing there, redraw batched)."""
        self.pages[event.node] = event
        record = self.records.get(event.node)
        if record is not None:
            self._show(record, self.clock())
        if self.ui.frame.footer is self.ui.footer_bar:
            self.ui.status(f"node {event.node}: {event.user} pages you: {event.reason}   (c on node {event.node} "
                           "answers with a chat)", "ask")
        self.ui.model.mark()

    def refresh(self, changes: Changes) -> None:
        now = self.clock()
        for number, record in changes.nodes.items():
            self.records[number] = record
            page = self.pages.get(number)
            if page is not None and record.user != page.user:  # the caller who paged has gone
                del self.pages[number]
            self._show(record, now)
        if changes.tick:
            for record in self.records.values():
                if record.since and record.number not in changes.nodes:
                    self._show(record, now)

    def keypress(self, size, key):
        key = super().keypress(size, key)
        number = self.focused_key()
        if number is None or key is None:
            return key
        app = self.ui.app
        if key == "k":
            self.ui.confirm(f"Kick the caller off node {number}?", lambda: actions.kick_node(app, number))
        elif key == "l":
            self.ui.run(lambda: actions.toggle_lock(app, number))
        elif key == "d":
            self.ui.run(lambda: actions.toggle_down(app, number))
        elif key == "s" and hasattr(app, "spy"):
            self.ui.run(lambda: spy.spy_on(self.ui, number))
        elif key == "c" and hasattr(app, "spy"):
            self.ui.run(lambda: self._chat(number))
        elif key == "i" and hasattr(app, "spy"):
            self.ui.confirm(f"Interrupt node {number} (log its caller off at the next prompt)?",
                            lambda: spy.interrupt_node(self.ui, number))
        elif key == "t" and hasattr(app, "telegrams"):
            record = self.records[number]
            if not record.user_number:
                self.ui.status(f"node {number} has no user logged on", "error_msg")
            else:
                self.ui.ask(f"Telegram to {record.user}: ", "",
                            lambda text: self.ui.run_later(actions.send_telegram(app, number, text)))
        else:
            return key
        return None

    def _chat(self, number: int) -> str:
        message = spy.chat_with(self.ui, number)
        if self.pages.pop(number, None) is not None:
            self._show(self.records[number], self.clock())
        return message


class ClientsPane(Pane):
    title = "Clients"
    help = "c close socket  f filter (ban) address in ip.can"

    def __init__(self, ui: Any, connections: dict[int, Any]) -> None:
        super().__init__(ui, CLIENT_HEADER)
        self.connections = connections
        self.rebuild()

    def rebuild(self) -> None:
        keep = self.focused_key()
        rows = [_wrap(Row(client_row(c), c.id), None) for c in sorted(self.connections.values(), key=lambda c: c.id)]
        self.walker[:] = rows
        if rows:
            keys = [row.original_widget.key for row in rows]
            self.walker.set_focus(keys.index(keep) if keep in keys else 0)

    def refresh(self, changes: Changes) -> None:
        if changes.connections:
            self.rebuild()

    def keypress(self, size, key):
        key = super().keypress(size, key)
        conn = self.connections.get(self.focused_key()) if key else None
        if conn is None:
            return key
        app = self.ui.app
        if key == "c":
            self.ui.confirm(f"Close the {conn.service} connection from {conn.address}?",
                            lambda: actions.close_connection(app, conn.id))
        elif key == "f":
            def done(text: str) -> str:
                try:
                    seconds = units.parse_duration(text or DEFAULT_FILTER_DURATION)
                except ValueError as exc:
                    raise actions.ActionError(f"{text!r}: {exc}") from None
                return actions.filter_address(app, conn.address, seconds, protocol=conn.service)
            self.ui.ask(f"Filter {conn.address} in ip.can for (30m, 1d, 0 = for ever): ",
                        DEFAULT_FILTER_DURATION, done)
        else:
            return key
        return None


class LogsPane(Pane):
    title = "Logs"
    help = "s server  v level  / search  n next  End follow"

    def __init__(self, ui: Any, history: Iterable[LogEvent] = ()) -> None:
        super().__init__(ui)
        self.tag: str | None = None
        self.level = logging.DEBUG
        self.search = ""
        self.following = True
        self.history = history
        self._update_header()
        self.add(history)

    def _update_header(self) -> None:
        search = f"  search: {self.search}" if self.search else ""
        self.header_text.set_text(("colhead", f"server: {self.tag or 'all'}  level: "
                                   f"{logging.getLevelName(self.level)}+{search}"
                                   f"{'' if self.following else '  (scrolled back; End follows)'}"))

    def wants(self, event: LogEvent) -> bool:
        return event.level >= self.level and (self.tag is None or event.tag == self.tag)

    def add(self, events: Iterable[LogEvent]) -> None:
        rows = [_wrap(Row(log_row(e), e), level_attr(e.level)) for e in events if self.wants(e)]
        if not rows:
            return
        self.walker.extend(rows)
        excess = len(self.walker) - LOG_SCROLLBACK
        if excess > 0:
            del self.walker[:excess]
        if self.following:
            self.walker.set_focus(len(self.walker) - 1)

    def rebuild(self) -> None:
        self.walker[:] = []
        self.add(self.history)
        self._update_header()

    def refresh(self, changes: Changes) -> None:
        self.add(changes.logs)

    def find(self, text: str, backwards: bool = True) -> bool:
        """Move the focus to the next row containing ``text`` (case-insensitive)."""
        if not text or not self.walker:
            return False
        needle = text.lower()
        _, start = self.walker.get_focus()
        order = range(start - 1, -1, -1) if backwards else range(start + 1, len(self.walker))
        for index in order:
            if needle in self.walker[index].original_widget.text.lower():
                self.walker.set_focus(index)
                self.following = False
                self._update_header()
                return True
        return False

    def keypress(self, size, key):
        if key in ("end", "G"):
            self.following = True
            if self.walker:
                self.walker.set_focus(len(self.walker) - 1)
            self._update_header()
            return None
        if key == "s":
            self.tag = LOG_TAGS[(LOG_TAGS.index(self.tag) + 1) % len(LOG_TAGS)]
            self.rebuild()
            return None
        if key == "v":
            self.level = LOG_LEVELS[(LOG_LEVELS.index(self.level) + 1) % len(LOG_LEVELS)]
            self.rebuild()
            return None
        if key == "/":
            def done(text: str) -> str:
                self.search = text
                self._update_header()
                return f"found {text!r}" if self.find(text) else f"{text!r} not found"
            self.ui.ask("Search the log for: ", self.search, done)
            return None
        if key in ("n", "N"):
            if not self.find(self.search, backwards=key == "n"):
                self.ui.status(f"{self.search!r} not found", "error_msg")
            return None
        handled = super().keypress(size, key)
        if key in ("up", "page up", "home") and handled is None:
            self.following = False
            self._update_header()
        elif key in ("down", "page down") and self.walker and self.walker.get_focus()[1] == len(self.walker) - 1:
            self.following = True
            self._update_header()
        return handled


class StatsPane(urwid.WidgetWrap):
    title = "Stats"
    help = "counted from events since the BBS started"

    def __init__(self, ui: Any, model: Any, clock: Callable[[], float] = time.time) -> None:
        self.ui = ui
        self.model = model
        self.clock = clock
        self.started = clock()
        self.text = urwid.Text("")
        super().__init__(urwid.Filler(self.text, valign="top"))
        self.update()

    def lines(self) -> list[str]:
        stats = self.model.stats
        out = [f"{'':<30} {'Today':>8} {'Total':>8}"]
        for key, label in STAT_LABELS.items():
            out.append(f"{label:<30} {stats.today[key]:>8} {stats.total[key]:>8}")
        nodes = self.model.nodes.values()
        busy = sum(1 for r in nodes if r.status in (NodeStatus.LOGON, NodeStatus.NEWUSER, NodeStatus.INUSE))
        out += ["", f"{'Nodes in use':<30} {busy:>8} of {len(self.model.nodes)}",
                f"{'Open connections':<30} {len(self.model.connections):>8}",
                f"{'Active temporary bans':<30} {len(self.ui.app.login.bans()):>8}",
                f"{'Up':<30} {duration_text(self.clock() - self.started):>8}"]
        return out

    def update(self) -> None:
        self.text.set_text("\n".join(self.lines()))

    def refresh(self, changes: Changes) -> None:
        if changes.stats or changes.tick or changes.nodes or changes.connections:
            self.update()


class BansPane(Pane):
    title = "Bans"
    help = "u lift the temporary ban (filters: edit text/ip.can in Config)"

    def __init__(self, ui: Any) -> None:
        super().__init__(ui, BAN_HEADER)
        self.rebuild()

    def rebuild(self) -> None:
        bans = self.ui.app.login.bans()
        keep = self.focused_key()
        self.walker[:] = [_wrap(Row(ban_row(b), b.addr), "warning") for b in bans]
        for index, ban in enumerate(bans):
            if ban.addr == keep:
                self.walker.set_focus(index)

    def refresh(self, changes: Changes) -> None:
        if changes.bans:
            self.rebuild()

    def keypress(self, size, key):
        key = super().keypress(size, key)
        addr = self.focused_key() if key else None
        if key == "u" and addr:
            self.ui.confirm(f"Lift the temporary ban of {addr}?", lambda: self._lift(addr))
            return None
        return key

    def _lift(self, addr: str) -> str:
        message = actions.lift_ban(self.ui.app, addr)
        self.ui.model.mark(bans=True)
        return message


class MailQueuePane(Pane):
    """The outbound Internet mail queue (bbs.mailbox), re-read when mail events arrive."""

    #: Refreshed even when hidden: it only starts a background re-read of the queue.
    always_refresh = True

    title = "Mail"
    help = "re-read on mail events; r re-read now; c clear in-transit flags"

    def __init__(self, ui: Any, read_queue: Callable[[], Any]) -> None:
        super().__init__(ui, QUEUE_HEADER)
        self.read_queue = read_queue  # async () -> list[QueuedMail]
        self.items: list[Any] = []
        self.error = ""

    def show(self, items: list[Any]) -> None:
        keep = self.focused_key()
        self.items = items
        self.walker[:] = [_wrap(Row(queue_row(i), i.id), "warning" if i.attempts else None) for i in items]
        for index, item in enumerate(items):
            if item.id == keep:
                self.walker.set_focus(index)
        self.header_text.set_text(("colhead", f"{QUEUE_HEADER}   ({len(items)} queued)"))

    async def reload(self) -> None:
        try:
            self.show(list(await self.read_queue()))
        except Exception as exc:  # the queue file may be busy or absent
            self.ui.status(f"cannot read the mail queue: {exc}", "error_msg")

    def refresh(self, changes: Changes) -> None:
        if changes.mail:
            self.ui.spawn(self.reload())

    def keypress(self, size, key):
        key = super().keypress(size, key)
        if key == "r":
            self.ui.spawn(self.reload())
            return None
        if key == "c":
            self.ui.confirm("Clear the in-transit flags of the mail queue?",
                            lambda: self.ui.run_later(self._cleared()))
            return None
        return key

    async def _cleared(self) -> str:
        message = await actions.clear_in_transit(self.ui.app)
        await self.reload()
        return message
