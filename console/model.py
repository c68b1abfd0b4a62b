"""The console's live state, fed by the event bus and handed to the screen in batches.

:class:`ConsoleModel` subscribes to the App's bus. Each event only updates a
dict, a counter or a bounded deque and marks what changed (cheap: the bus
calls subscribers inline, inside the servers' code paths). The first change
after a redraw schedules one :meth:`ConsoleModel.flush` ``REFRESH_INTERVAL``
later; every further event until then joins the same batch. So however many
nodes are busy or log lines arrive, the screen is redrawn at most
``1 / REFRESH_INTERVAL`` times a second. No urwid here: the view
(:mod:`console.live`) receives a :class:`Changes` per batch.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import time
from typing import Any, Callable

from bbs.events import (ConnectionClosed, ConnectionOpened, ConnectionRefused, Event, EventBus, LogEvent,
                        MailDelivered, MailFailed, MailQueued, NodeChanged, SecurityEvent, UserLogoff,
                        UserLogon)
from bbs.spy import SysopPaged

#: Seconds between a change and the redraw that shows it (at most 5 redraws a second).
REFRESH_INTERVAL = 0.2
#: Log lines kept for scroll-back and search.
LOG_SCROLLBACK = 5000

Schedule = Callable[[float, Callable[[], None]], Any]


def _day(when: float) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(when))


#: Stats counters: key -> label, in display order.
STAT_LABELS = {
    "logons": "Logons",
    "connections": "Connections",
    "refused": "Refused connections",
    "failed": "Failed logins",
    "hack": "Hack attempts (hack.log)",
    "tempban": "Temporary bans",
    "filter": "Addresses filtered (ip.can)",
    "mail_queued": "E-mails queued",
    "mail_delivered": "E-mails delivered",
    "mail_failed": "E-mail failures",
}


@dataclasses.dataclass
class Stats:
    """Counters for today (local date, reset at midnight) and since start."""

    day: str
    today: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(STAT_LABELS, 0))
    total: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(STAT_LABELS, 0))

    def count(self, key: str, when: float) -> None:
        day = _day(when)
        if day != self.day:
            self.day = day
            self.today = dict.fromkeys(STAT_LABELS, 0)
        self.today[key] += 1
        self.total[key] += 1


@dataclasses.dataclass
class Changes:
    """What changed since the last batch (handed to the view's refresh)."""

    nodes: dict[int, Any]  # number -> NodeRecord
    connections: bool
    logs: list[LogEvent]
    logs_dropped: int  # log lines that arrived and left the scroll-back within one batch
    stats: bool
    bans: bool
    mail: bool
    tick: bool


def merge_changes(older: Changes, newer: Changes) -> Changes:
    """One batch equivalent to applying ``older`` then ``newer`` (a hidden
    pane keeps one merged batch instead of a growing list): newer node
    records win, log lines concatenate within the scroll-back (what falls
    off counts as dropped), flags are OR-ed."""
    nodes = {**older.nodes, **newer.nodes}
    logs = list(older.logs) + list(newer.logs)
    overflow = max(0, len(logs) - LOG_SCROLLBACK)
    return Changes(nodes=nodes, connections=older.connections or newer.connections,
                   logs=logs[overflow:], logs_dropped=older.logs_dropped + newer.logs_dropped + overflow,
                   stats=older.stats or newer.stats, bans=older.bans or newer.bans,
                   mail=older.mail or newer.mail, tick=older.tick or newer.tick)


class ConsoleModel:
    """Live node table, connections, log scroll-back and counters for one App.

    ``schedule(delay, callback)`` arms a one-shot timer (``loop.call_later``
    in the console; a recorder in tests). ``on_flush(changes)`` is the
    view's redraw, called once per batch.
    """

    def __init__(self, *, nodes: list[Any], connections: dict[int, Any], schedule: Schedule,
                 clock: Callable[[], float] = time.time) -> None:
        self.nodes: dict[int, Any] = {record.number: record for record in nodes}
        self.connections = connections  # the ListenerManager's live dict (read only)
        self.logs: collections.deque[LogEvent] = collections.deque(maxlen=LOG_SCROLLBACK)
        self.stats = Stats(_day(clock()))
        self.on_flush: Callable[[Changes], None] | None = None
        #: Called at once (inline, keep it cheap) when a caller pages the sysop (bbs.spy.SysopPaged).
        self.on_page: Callable[[SysopPaged], None] | None = None
        self.flushes = 0
        self._schedule = schedule
        self._clock = clock
        self._scheduled = False
        self._unsubscribe: Callable[[], None] | None = None
        self._reset()

    def _reset(self) -> None:
        self._nodes_dirty: dict[int, Any] = {}
        self._new_logs: collections.deque[LogEvent] = collections.deque(maxlen=LOG_SCROLLBACK)
        self._logs_arrived = 0
        self._conns_dirty = self._stats_dirty = self._bans_dirty = self._mail_dirty = self._tick = False

    # -- feeding ---------------------------------------------------------
    def attach(self, bus: EventBus) -> None:
        """Subscribe to ``bus`` (once; called when the console starts)."""
        self.detach()
        self._unsubscribe = bus.subscribe(self.on_event)

    def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def on_event(self, event: Event) -> None:
        """Bus callback: record ``event`` and arm the batch timer. Never redraws."""
        when = event.when
        if isinstance(event, LogEvent):
            self.logs.append(event)
            self._new_logs.append(event)
            self._logs_arrived += 1
        elif isinstance(event, NodeChanged):
            self.nodes[event.node.number] = event.node
            self._nodes_dirty[event.node.number] = event.node
        elif isinstance(event, ConnectionOpened):
            self.stats.count("connections", when)
            self._conns_dirty = self._stats_dirty = True
        elif isinstance(event, ConnectionClosed):
            self._conns_dirty = True
        elif isinstance(event, ConnectionRefused):
            self.stats.count("refused", when)
            self._stats_dirty = True
        elif isinstance(event, UserLogon):
            self.stats.count("logons", when)
            self._stats_dirty = self._conns_dirty = True
        elif isinstance(event, UserLogoff):
            self._conns_dirty = True
        elif isinstance(event, SecurityEvent):
            if event.kind in STAT_LABELS:
                self.stats.count(event.kind, when)
            self._stats_dirty = self._bans_dirty = True
        elif isinstance(event, (MailQueued, MailDelivered, MailFailed)):
            key = {MailQueued: "mail_queued", MailDelivered: "mail_delivered", MailFailed: "mail_failed"}
            self.stats.count(key[type(event)], when)
            self._stats_dirty = self._mail_dirty = True
        elif isinstance(event, SysopPaged):
            if self.on_page is not None:
                self.on_page(event)
            return
        else:
            return
        self._arm()

    def tick(self) -> None:
        """Called every second or so: times on nodes and ban expiries move on."""
        self._tick = self._bans_dirty = True
        self._arm()

    def mark(self, *, bans: bool = False, mail: bool = False, connections: bool = False) -> None:
        """Something the bus does not announce changed (a sysop action)."""
        self._bans_dirty |= bans
        self._mail_dirty |= mail
        self._conns_dirty |= connections
        self._arm()

    def _arm(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._schedule(REFRESH_INTERVAL, self.flush)

    # -- draining --------------------------------------------------------
    def flush(self) -> Changes:
        """Hand every change since the last batch to ``on_flush``; returns them."""
        self._scheduled = False
        changes = Changes(nodes=self._nodes_dirty, connections=self._conns_dirty,
                          logs=list(self._new_logs), logs_dropped=self._logs_arrived - len(self._new_logs),
                          stats=self._stats_dirty, bans=self._bans_dirty, mail=self._mail_dirty,
                          tick=self._tick)
        self._reset()
        self.flushes += 1
        if self.on_flush is not None:
            try:
                self.on_flush(changes)
            except Exception:  # a drawing bug must not break the bus or the servers
                logging.getLogger(__name__).exception("console refresh failed")
        return changes
