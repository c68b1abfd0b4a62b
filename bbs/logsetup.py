"""Logging: one stream, tagged by server, to data/logs/, stderr and the bus.

Each record gets a ``tag`` from its logger name (nodes -> term, mail -> mail,
ftp -> ftp, services -> srvc, everything else -> bbs), as Synchronet's log
prefixes do. Records go to ``data/logs/bbs.log`` (rotated daily, 30 kept), to
stderr when headless, and onto the event bus as :class:`~bbs.events.LogEvent`
for the console.
"""
from __future__ import annotations

import functools
import logging
import logging.handlers
import time
from pathlib import Path
from typing import TextIO

from bbs.events import EventBus, LogEvent

#: Logger-name prefix -> Synchronet-style server tag.
TAGS = (("nodes", "term"), ("mail", "mail"), ("ftp", "ftp"), ("services", "srvc"),
        ("console", "con"))
FORMAT = "%(asctime)s %(tag)-4s %(levelname)-7s %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
#: Days of daily log files kept.
LOG_BACKUPS = 30
#: Seconds between two "out of file descriptors" accept errors in the log.
ACCEPT_STORM_INTERVAL = 10.0


@functools.lru_cache(maxsize=512)
def tag_for(name: str) -> str:
    for prefix, tag in TAGS:
        if name == prefix or name.startswith(prefix + "."):
            return tag
    return "bbs"


def _tag_of(record: logging.LogRecord) -> str:
    """The record's tag: from ``extra=`` (the listeners, mail), else from the logger name."""
    return record.__dict__.get("tag") or tag_for(record.name)


class _AcceptStormFilter(logging.Filter):
    """Python 3.11's accept loop logs one error (with traceback) per pending
    connection when out of file descriptors (cpython#151615): keep one line
    every ACCEPT_STORM_INTERVAL seconds instead of a flood."""

    def __init__(self) -> None:
        super().__init__()
        self.last = 0.0
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        if not (text.startswith("socket.accept() out of system resource")
                or "_accept_connection" in text or "_start_serving" in text):
            return True
        if record.created - self.last < ACCEPT_STORM_INTERVAL:
            self.suppressed += 1
            return False
        record.msg = (f"{record.msg} (out of file descriptors; {self.suppressed} more like this "
                      "suppressed; raise the open-file limit)")
        record.exc_info = None
        self.last, self.suppressed = record.created, 0
        return True


class _LineFormatter(logging.Formatter):
    """:data:`FORMAT`, made once per record for every handler that writes
    lines (the log file and stderr), with the time text made once a second."""

    def __init__(self) -> None:
        super().__init__(FORMAT, DATE_FORMAT)
        self._stamp: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second, text = self._stamp
        if int(record.created) != second:
            second = int(record.created)
            text = time.strftime(DATE_FORMAT, self.converter(record.created))
            self._stamp = (second, text)  # one tuple: threads see a matching pair
        return text

    def format(self, record: logging.LogRecord) -> str:
        line = record.__dict__.get("_line")
        if line is None:
            # FORMAT, written out: the generic Formatter.format costs more
            # than the rest of a log call.
            line = f"{self.formatTime(record)} {_tag_of(record):<4} {record.levelname:<7} {record.getMessage()}"
            if record.exc_info and not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
            if record.exc_text:
                line = f"{line}\n{record.exc_text}"
            if record.stack_info:
                line = f"{line}\n{self.formatStack(record.stack_info)}"
            record._line = line  # type: ignore[attr-defined]
        return line


class _LogFile(logging.handlers.TimedRotatingFileHandler):
    """``data/logs/bbs.log``, rotated at midnight; when headless each line
    also goes to stderr, from the same handler (one pass through logging's
    machinery for both)."""

    def __init__(self, path: Path, echo: TextIO | None) -> None:
        super().__init__(path, when="midnight", backupCount=LOG_BACKUPS, encoding="utf-8")
        self.echo = echo

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        if self.echo is not None:
            try:
                self.echo.write(self.format(record) + self.terminator)  # formatted once (_LineFormatter)
                self.echo.flush()
            except Exception:
                self.handleError(record)


class BusHandler(logging.Handler):
    """Publishes every record as a LogEvent (the console's Logs pane)."""

    def __init__(self, bus: EventBus) -> None:
        super().__init__()
        self.bus = bus

    def emit(self, record: logging.LogRecord) -> None:
        if not self.bus.wants(LogEvent):  # no console attached
            return
        try:
            self.bus.publish(LogEvent(tag=_tag_of(record), level=record.levelno,
                                      logger=record.name, message=record.getMessage(),
                                      when=record.created))
        except Exception:
            self.handleError(record)


def configure(level: int, log_dir: Path | None, bus: EventBus | None,
              stream: TextIO | None) -> list[logging.Handler]:
    """Install the handlers on the root logger; returns them (for removal)."""
    root = logging.getLogger()
    root.setLevel(min(level, logging.INFO) if level else logging.INFO)
    handlers: list[logging.Handler] = []
    formatter = _LineFormatter()
    # The Logging HOWTO's "Optimization": no record needs where it was made
    # (FORMAT has no %(lineno)s ...), so skip the stack walk of every call.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(_LogFile(log_dir / "bbs.log", stream))
    elif stream is not None:
        handlers.append(logging.StreamHandler(stream))
    if bus is not None:
        handlers.append(BusHandler(bus))
    for handler in handlers:
        handler.setLevel(level)
        handler.setFormatter(formatter)
        root.addHandler(handler)
    asyncio_log = logging.getLogger("asyncio")
    asyncio_log.setLevel(logging.WARNING)
    if not any(isinstance(f, _AcceptStormFilter) for f in asyncio_log.filters):
        asyncio_log.addFilter(_AcceptStormFilter())
    return handlers


def remove(handlers: list[logging.Handler]) -> None:
    root = logging.getLogger()
    for handler in handlers:
        root.removeHandler(handler)
        handler.close()
