"""The in-process event bus: typed events that the console, who's-online,
Finger and SYSTAT read.

``publish`` is synchronous and never blocks: callbacks run inline (they must
be cheap) and async consumers read a bounded queue from :meth:`EventBus.stream`
(the oldest events are dropped when a slow consumer falls behind, and counted).
Publishing from another thread is safe: it is handed to the loop.
"""
from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import threading
import time
from typing import Any, AsyncIterator, Callable

log = logging.getLogger(__name__)

#: Events a slow async consumer may lag behind before the oldest are dropped.
STREAM_QUEUE_LIMIT = 10_000


@dataclasses.dataclass(frozen=True)
class Event:
    """Base of every event; ``when`` is wall-clock time of publication."""

    when: float = dataclasses.field(default_factory=time.time, kw_only=True)


@dataclasses.dataclass(frozen=True)
class NodeChanged(Event):
    node: Any  # bbs.nodetable.NodeRecord (kept loose to avoid an import cycle)


@dataclasses.dataclass(frozen=True)
class UserLogon(Event):
    user: str
    number: int
    node: int
    protocol: str
    address: str


@dataclasses.dataclass(frozen=True)
class UserLogoff(Event):
    user: str
    number: int
    node: int
    protocol: str


@dataclasses.dataclass(frozen=True)
class ConnectionOpened(Event):
    conn: Any  # bbs.listeners.Connection


@dataclasses.dataclass(frozen=True)
class ConnectionClosed(Event):
    conn: Any


@dataclasses.dataclass(frozen=True)
class ConnectionRefused(Event):
    service: str
    address: str
    reason: str


@dataclasses.dataclass(frozen=True)
class MailQueued(Event):
    message_id: str
    sender: str
    recipients: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class MailDelivered(Event):
    message_id: str
    recipient: str
    host: str


@dataclasses.dataclass(frozen=True)
class MailFailed(Event):
    message_id: str
    recipient: str
    error: str
    permanent: bool


@dataclasses.dataclass(frozen=True)
class TelegramSent(Event):
    """A short message for a user (node message, MSP, new-mail notice).

    Sessions of that user show it at once; it stays stored until read."""

    id: int
    to_number: int
    to_alias: str
    sender: str
    text: str


@dataclasses.dataclass(frozen=True)
class SecurityEvent(Event):
    kind: str  # "hack", "tempban", "filter"
    info: dict


@dataclasses.dataclass(frozen=True)
class LogEvent(Event):
    tag: str  # term, mail, ftp, srvc, bbs
    level: int
    logger: str
    message: str


Callback = Callable[[Event], None]


class EventBus:
    """Fan-out of events to callbacks and async streams. One per App."""

    def __init__(self) -> None:
        self._callbacks: list[tuple[tuple[type, ...], Callback]] = []
        self._queues: list[tuple[tuple[type, ...], collections.deque, asyncio.Event]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self.dropped = 0

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Called by the App once its loop runs; later publishes from other
        threads are handed to this loop."""
        self._loop, self._thread = loop, threading.get_ident()

    def subscribe(self, callback: Callback, *types: type) -> Callable[[], None]:
        """Call ``callback(event)`` for each event of ``types`` (all if none).

        Returns a function that unsubscribes.
        """
        entry = (types or (Event,), callback)
        self._callbacks.append(entry)
        return lambda: self._callbacks.remove(entry) if entry in self._callbacks else None

    async def stream(self, *types: type) -> AsyncIterator[Event]:
        """Yield events of ``types`` as they are published, until cancelled."""
        queue: collections.deque = collections.deque(maxlen=STREAM_QUEUE_LIMIT)
        wake = asyncio.Event()
        entry = (types or (Event,), queue, wake)
        self._queues.append(entry)
        try:
            while True:
                while queue:
                    yield queue.popleft()
                wake.clear()
                await wake.wait()
        finally:
            self._queues.remove(entry)

    def wants(self, kind: type) -> bool:
        """Whether anyone subscribed to events of ``kind`` (publishers of
        frequent events skip building them when nobody listens)."""
        return any(issubclass(kind, types) for types, _ in self._callbacks) or \
            any(issubclass(kind, types) for types, _, _ in self._queues)

    def publish(self, event: Event) -> None:
        """Deliver ``event``; safe from any thread, never raises to the caller."""
        if self._loop is not None and threading.get_ident() != self._thread:
            if not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._deliver, event)
            return
        self._deliver(event)

    def _deliver(self, event: Event) -> None:
        for types, callback in list(self._callbacks):
            if isinstance(event, types):
                try:
                    callback(event)
                except Exception:  # a bad subscriber never breaks a publisher
                    if not isinstance(event, LogEvent):
                        log.exception("event subscriber %r failed", callback)
        for types, queue, wake in self._queues:
            if isinstance(event, types):
                if len(queue) == queue.maxlen:
                    self.dropped += 1
                queue.append(event)
                wake.set()
