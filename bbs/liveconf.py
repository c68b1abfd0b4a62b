"""Configuration files that apply without a restart: xtrn.ini, text.ini, chat.ini.

:func:`bbs.instance.load_config` checks them at start-up like every other
file (a bad one stops it with ``file:line``). While the BBS runs, a
:class:`LiveConfig` hands out the parsed file and parses it again when it
changed on disk, so the sysop's edit (SCFG, or by hand) applies to the next
caller who uses it. A file broken by hand while running is logged and the
previous settings stay in force.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Callable, Generic, TypeVar

from bbs.errors import ConfigError
from bbs.ini import IniFile, parse_ini

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Seconds after its last change during which a file is compared by content,
#: not only by its stat (two saves within one timestamp tick, same size and a
#: reused inode look alike: git's "racy clean" problem).
RACY_SECONDS = 2.0


def read_optional(path: Path, parse: Callable[[IniFile, Path], T], default: T, instance: Path,
                  text: str | None = None) -> tuple[T, IniFile | None]:
    """Parse ``path`` (or ``text`` read from it) with ``parse(ini, instance)``;
    ``default`` when the file does not exist. Returns the value and the
    IniFile (for unused-key warnings). Raises ConfigError."""
    if text is None and not path.exists():
        return default, None
    ini = parse_ini(path, text)
    return parse(ini, instance), ini


class LiveConfig(Generic[T]):
    """One optional ctrl/ file, parsed again when it changes."""

    def __init__(self, path: Path, parse: Callable[[IniFile, Path], T], default: T, instance: Path,
                 initial: T) -> None:
        self.path = Path(path)
        self._parse = parse
        self._default = default
        self._instance = instance
        self._value = initial
        self._stamp = self._stat()
        self._text: str | None = None  # _read keeps it when the file cannot be read
        self._text = self._read()

    def _stat(self) -> tuple | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def _read(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            log.error("%s: cannot read: %s; the previous settings stay in force", self.path, exc)
            return self._text

    def current(self) -> T:
        """The settings now in force: a stat() per call; the file is read
        only while its change is recent or after its stat changed, and
        parsed only when its text changed."""
        stamp = self._stat()
        if stamp == self._stamp and (stamp is None or time.time() - stamp[1] / 1e9 > RACY_SECONDS):
            return self._value
        self._stamp = stamp
        text = self._read()
        if text == self._text:
            return self._value
        self._text = text
        try:
            self._value = read_optional(self.path, self._parse, self._default, self._instance, text)[0] \
                if text is not None else self._default
            log.info("%s changed: its new settings are in force", self.path)
        except ConfigError as exc:
            log.error("%s; the previous settings stay in force", exc)
        return self._value
