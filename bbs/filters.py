"""Synchronet filter files (``text/*.can``) and list files (``ctrl/*.cfg``).

One format serves ``text/ip.can``, ``host.can``, ``name.can``, ``email.can``,
``subject.can`` and the plain lists in ``ctrl/`` (``relay.cfg``,
``dns_blacklist.cfg``, ``dnsbl_exempt.cfg``, ``spamblock.cfg``,
``spamblock_exempt.cfg``, ``spambait.cfg``, ``ipfilter_exempt.cfg``):

* one entry per line; blank lines and lines starting with ``;`` are comments;
* matching is case-insensitive;
* ``*`` is a wildcard for any run of characters, anywhere in the entry
  (``?`` is an ordinary character);
* a leading ``~`` matches values *containing* the rest (``~spam``);
* a leading ``^`` matches values *beginning with* the rest (``^guest``);
* a leading ``!`` negates the entry: ``!~foo`` matches values that do not
  contain ``foo``; the ``!`` comes before ``~`` / ``^``;
* anything else is an exact match;
* for addresses (:meth:`FilterList.match_ip`) an entry may also be an IPv4 or
  IPv6 address (compared as addresses, so ``::1`` equals
  ``0:0:0:0:0:0:0:1``) or a CIDR network (``10.0.0.0/8``, ``2001:db8::/32``);
  wildcards apply to the textual form (``192.168.*``); IPv4-mapped IPv6
  addresses (``::ffff:1.2.3.4``) are treated as the IPv4 address;
* text after the first TAB is metadata: whitespace-separated ``key=value``
  pairs, a value may be double-quoted to hold spaces.  Keys: ``t`` time added,
  ``e`` expiry, ``p`` protocol, ``u`` user, ``r`` reason, ``h`` host.  Times
  are ``YYYYMMDDTHHMMSSZ`` (UTC); a plain integer (Unix seconds) is accepted
  when reading.  An entry whose expiry has passed does not match.

Parsing (:func:`parse_line`) and matching (:func:`pattern_matches`,
:func:`ip_pattern_matches`) are pure functions; :class:`FilterList` adds the
file: loading, cheap change detection and Synchronet-style appending.
"""
from __future__ import annotations

import calendar
import functools
import ipaddress
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from bbs.errors import BBSError, ConfigError, Reason

log = logging.getLogger(__name__)

__all__ = [
    "FilterEntry",
    "FilterList",
    "FilterSet",
    "format_time",
    "ip_pattern_matches",
    "normalize_ip",
    "parse_line",
    "parse_time",
    "pattern_matches",
]

#: Format of ``t=`` / ``e=`` metadata times (UTC), as Synchronet writes them.
TIME_FORMAT = "%Y%m%dT%H%M%SZ"

#: Metadata keys Synchronet writes after the TAB of a filter entry.
META_ADDED = "t"
META_EXPIRES = "e"
META_PROTOCOL = "p"
META_USER = "u"
META_REASON = "r"
META_HOST = "h"

#: Comment lines start with this character (Synchronet list files).
COMMENT_CHAR = ";"
NEGATE_CHAR = "!"
SUBSTRING_CHAR = "~"
PREFIX_CHAR = "^"
WILDCARD_CHAR = "*"

#: Synchronet's file names for an instance's standard filters.
IP_CAN = "ip.can"
HOST_CAN = "host.can"
NAME_CAN = "name.can"
EMAIL_CAN = "email.can"
SUBJECT_CAN = "subject.can"
IPFILTER_EXEMPT_CFG = "ipfilter_exempt.cfg"

_META_TOKEN = re.compile(r'([A-Za-z0-9_]+)=(?:"([^"]*)"|([^\s"]*))(?=\s|$)')
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


# --------------------------------------------------------------------------
# Pure parsing
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class FilterEntry:
    """One entry of a filter or list file.

    ``pattern`` is the entry as written before the TAB *without* a leading
    ``!`` (``~spam``, ``10.0.0.0/8``, ``bob``); ``negate`` records the ``!``.
    ``line`` is the 1-based line number in the file (0 when not from a file).
    ``metadata`` holds the ``key=value`` pairs after the TAB, keys lower-case.
    ``expires`` is the ``e=`` time in epoch seconds, or ``None`` for never.
    """

    pattern: str
    line: int
    negate: bool = False
    metadata: dict[str, str] = field(default_factory=dict, hash=False, compare=True)
    expires: float | None = None

    @property
    def text(self) -> str:
        """The pattern as written in the file, including any ``!``."""
        return (NEGATE_CHAR if self.negate else "") + self.pattern

    @property
    def reason(self) -> str:
        """The ``r=`` metadata (why the entry was added), or ``""``."""
        return self.metadata.get(META_REASON, "")

    def expired(self, now: float) -> bool:
        """Return True when the entry has an expiry at or before ``now``."""
        return self.expires is not None and self.expires <= now

    def matches(self, value: str) -> bool:
        """Return True when the entry (negation applied) matches text ``value``.

        Expiry is not considered; :class:`FilterList` checks it.
        """
        return pattern_matches(self.pattern, value) != self.negate

    def matches_ip(self, addr: str) -> bool:
        """Return True when the entry (negation applied) matches address ``addr``.

        Expiry is not considered; :class:`FilterList` checks it.
        """
        return ip_pattern_matches(self.pattern, addr) != self.negate


def format_time(epoch: float) -> str:
    """Return ``epoch`` (seconds) in the metadata format ``YYYYMMDDTHHMMSSZ``."""
    return time.strftime(TIME_FORMAT, time.gmtime(int(epoch)))


def parse_time(text: str) -> float:
    """Parse a metadata time: ``YYYYMMDDTHHMMSSZ`` (UTC) or Unix epoch seconds.

    Called for ``t=`` and ``e=`` values.  Returns epoch seconds.
    Raises :class:`ValueError` when ``text`` is neither form.
    """
    text = text.strip()
    if text.isdigit():
        return float(int(text))
    parsed = time.strptime(text, TIME_FORMAT)  # ValueError when malformed
    return float(calendar.timegm(parsed))


def _parse_metadata(text: str, where: str) -> dict[str, str]:
    """Split the text after the TAB into ``key=value`` pairs.

    Tokens that are not ``key=value`` are skipped with a warning.
    """
    meta: dict[str, str] = {}
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return meta
        m = _META_TOKEN.match(text, pos)
        if m is None:
            end = pos
            while end < len(text) and not text[end].isspace():
                end += 1
            log.warning("%s: ignoring malformed filter metadata %r", where, text[pos:end])
            pos = end
            continue
        value = m.group(2) if m.group(2) is not None else m.group(3)
        meta[m.group(1).lower()] = value
        pos = m.end()


def parse_line(text: str, lineno: int, *, source: str = "") -> FilterEntry | None:
    """Parse one line of a filter or list file.

    Called by :meth:`FilterList.load` for every line, and usable on its own.
    ``source`` only names the file in warnings.  Returns ``None`` for blank
    lines, ``;`` comments and a lone ``!``.  Never raises: malformed metadata
    is logged as a warning and the entry is kept without that data (a bad
    ``e=`` means "no expiry").
    """
    where = f"{source or '<filter>'}:{lineno}"
    body, tab, meta_text = text.rstrip("\r\n").partition("\t")
    body = body.strip()
    if not body or body.startswith(COMMENT_CHAR):
        return None
    negate = body.startswith(NEGATE_CHAR)
    if negate:
        body = body[1:].strip()
        if not body:
            log.warning("%s: ignoring filter entry with nothing after '!'", where)
            return None
    metadata = _parse_metadata(meta_text, where) if tab else {}
    expires: float | None = None
    raw_expiry = metadata.get(META_EXPIRES)
    if raw_expiry:
        try:
            expires = parse_time(raw_expiry)
        except ValueError:
            log.warning("%s: ignoring malformed expiry e=%r (entry never expires)", where, raw_expiry)
        else:
            if expires == 0:  # time_t 0 is Synchronet's "not set"
                expires = None
    return FilterEntry(pattern=body, line=lineno, negate=negate, metadata=metadata, expires=expires)


# --------------------------------------------------------------------------
# Pure matching
# --------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _glob_regex(glob: str, anchor_start: bool, anchor_end: bool) -> re.Pattern[str]:
    """Compile a case-folded ``*`` glob; only ``*`` is special."""
    core = ".*".join(re.escape(part) for part in glob.split(WILDCARD_CHAR))
    return re.compile(("^" if anchor_start else "") + core + ("$" if anchor_end else ""), re.DOTALL)


def _text_matches(body: str, value: str) -> bool:
    """Match a pattern without ``!`` against a text value (case-insensitive)."""
    body = body.casefold()
    value = value.casefold()
    if body.startswith(SUBSTRING_CHAR):
        body, start, end = body[1:], False, False
    elif body.startswith(PREFIX_CHAR):
        body, start, end = body[1:], True, False
    else:
        start, end = True, True
    if WILDCARD_CHAR not in body:
        if start and end:
            return value == body
        if start:
            return value.startswith(body)
        return body in value
    return _glob_regex(body, start, end).search(value) is not None


def pattern_matches(pattern: str, value: str) -> bool:
    """Return True when text ``value`` matches ``pattern`` (full syntax).

    Understands ``!`` (negation), ``~`` (contains), ``^`` (begins with) and
    ``*`` wildcards; otherwise an exact, case-insensitive match.  Used for
    names, e-mail addresses, subjects and host names.  Never raises.
    """
    if pattern.startswith(NEGATE_CHAR):
        return not _text_matches(pattern[1:].strip(), value)
    return _text_matches(pattern, value)


@functools.lru_cache(maxsize=4096)
def _parse_ip(text: str) -> IPAddress | None:
    """Parse an address (brackets, IPv4-mapped form and a %scope allowed), or
    None. Cached: every accepted connection and data connection parses the
    same few addresses again."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]  # a link-local scope id names our interface, not the host
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


@functools.lru_cache(maxsize=4096)
def normalize_ip(addr: str) -> str:
    """Return the canonical text of an address, so one host is one key.

    IPv4-mapped IPv6 (``::ffff:1.2.3.4``) becomes ``1.2.3.4``; IPv6 is
    compressed and lower-case (``0:0:0:0:0:0:0:1`` -> ``::1``); brackets are
    removed.  Text that is not an address is returned stripped and lower-case.
    """
    ip = _parse_ip(addr)
    return str(ip) if ip is not None else addr.strip().lower()


@functools.lru_cache(maxsize=4096)
def _ip_spec(body: str) -> IPNetwork | IPAddress | None:
    """Classify a pattern body as a network, an address, or neither (text)."""
    if body[:1] in (SUBSTRING_CHAR, PREFIX_CHAR) or WILDCARD_CHAR in body:
        return None
    if "/" in body:
        try:
            net = ipaddress.ip_network(body.replace("[", "").replace("]", ""), strict=False)
        except ValueError:
            return None
        if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96:
            mapped = net.network_address.ipv4_mapped
            if mapped is not None:  # ::ffff:10.0.0.0/104 -> 10.0.0.0/8
                return ipaddress.ip_network(f"{mapped}/{net.prefixlen - 96}", strict=False)
        return net
    return _parse_ip(body)


def _ip_candidates(addr: str, ip: IPAddress | None) -> list[str]:
    """Textual forms of an address that wildcard entries are matched against."""
    forms = [addr.strip()]
    if ip is not None:
        forms.append(str(ip))
        if isinstance(ip, ipaddress.IPv6Address):
            forms.append(ip.exploded)
    return forms


def _ip_body_matches(body: str, addr: str, ip: IPAddress | None) -> bool:
    spec = _ip_spec(body)
    if isinstance(spec, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        if ip is None:
            return False
        if ip.version == spec.version:
            return ip in spec
        if isinstance(ip, ipaddress.IPv4Address):  # v4 against e.g. ::ffff:0:0/96
            return ipaddress.IPv6Address(f"::ffff:{ip}") in spec
        return False
    if spec is not None:
        return ip is not None and ip == spec
    return any(_text_matches(body, form) for form in _ip_candidates(addr, ip))


def ip_pattern_matches(pattern: str, addr: str) -> bool:
    """Return True when address ``addr`` matches ``pattern`` (full syntax).

    An address entry compares as an address, a CIDR entry by membership, and
    anything else (wildcards, ``~``, ``^``) as text against the address's
    textual forms.  ``!`` negates.  ``addr`` that is not an IP address can only
    match textual entries.  Never raises.
    """
    negate = pattern.startswith(NEGATE_CHAR)
    body = pattern[1:].strip() if negate else pattern
    return _ip_body_matches(body, addr, _parse_ip(addr)) != negate


def _clean_meta_value(value: str) -> str:
    """Make a metadata value safe to write: no control characters or quotes."""
    return _CONTROL.sub(" ", value).replace('"', "'").strip()


def _format_metadata(pairs: Iterable[tuple[str, str]]) -> str:
    out = []
    for key, value in pairs:
        value = _clean_meta_value(value)
        if not value:
            continue
        if any(ch.isspace() for ch in value) or "=" in value:
            value = f'"{value}"'
        out.append(f"{key}={value}")
    return " ".join(out)


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------

_Signature = tuple[int, int, int]  # (inode, size, mtime_ns)


def _signature(st: os.stat_result) -> _Signature:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _split_lines(text: str) -> list[str]:
    """Split on ``\\n`` only (not the exotic separators of str.splitlines)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


class FilterList:
    """The entries of one filter or list file, matched in file order.

    Thread-safe for matching while another thread appends or reloads: the
    entries are swapped as one immutable tuple.  ``path`` may be ``None`` for
    an in-memory list (tests, defaults).
    """

    def __init__(self, path: Path | None, entries: Iterable[FilterEntry] = ()) -> None:
        """Hold ``entries`` for ``path`` without reading the file.

        Use :meth:`load` to read a file; a list built here picks the file up
        on the first :meth:`reload_if_changed`.
        """
        self.path = Path(path) if path is not None else None
        self._entries: tuple[FilterEntry, ...] = tuple(entries)
        self._nlines = max((e.line for e in self._entries), default=0)
        self._sig: _Signature | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FilterList({str(self.path)!r}, {len(self._entries)} entries)"

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def entries(self) -> tuple[FilterEntry, ...]:
        """All entries (including expired ones) in file order."""
        return self._entries

    # -- reading -----------------------------------------------------------

    @classmethod
    def load(cls, path: Path) -> "FilterList":
        """Read ``path`` (at start-up or when a server needs the list).

        A missing file gives an empty list, never an error.  Undecodable bytes
        are replaced.  Raises :class:`ConfigError` when the file exists but
        cannot be read (a directory, no permission), so start-up stops with
        ``file: what``.
        """
        flist = cls(path)
        try:
            flist._read_locked()
        except OSError as exc:
            raise ConfigError(path, None, f"cannot read filter file: {exc.strerror or exc}") from exc
        return flist

    def _read_locked(self) -> None:
        """(Re)read the file; the caller holds the lock or owns the object."""
        assert self.path is not None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._entries, self._nlines, self._sig = (), 0, None
            return
        data = self.path.read_bytes()
        lines = _split_lines(data.decode("utf-8", errors="replace"))
        source = str(self.path)
        parsed = (parse_line(line, n, source=source) for n, line in enumerate(lines, 1))
        self._entries = tuple(e for e in parsed if e is not None)
        self._nlines = len(lines)
        self._sig = _signature(st)

    def _current_signature(self) -> _Signature | None:
        assert self.path is not None
        try:
            return _signature(os.stat(self.path))
        except FileNotFoundError:
            return None

    def _reload_locked(self) -> bool:
        if self.path is None:
            return False
        sig = self._current_signature()
        if sig == self._sig:
            return False
        self._read_locked()
        log.info("reloaded %s (%d entries)", self.path, len(self._entries))
        return True

    def reload_if_changed(self) -> bool:
        """Re-read the file when its inode, size or mtime changed.

        Called periodically by the app (one ``stat`` when nothing changed) and
        by :meth:`append` before writing.  Returns True when the entries were
        replaced (also when the file was deleted: the list becomes empty).
        Never raises: a read error is logged and the old entries are kept.
        """
        with self._lock:
            try:
                return self._reload_locked()
            except OSError as exc:
                log.error("cannot re-read %s, keeping %d old entries: %s", self.path, len(self._entries), exc)
                return False

    # -- matching ----------------------------------------------------------

    def match(self, value: str, now: float | None = None) -> FilterEntry | None:
        """Return the first unexpired entry matching text ``value``, or None.

        Called for names, e-mail addresses, subjects and host names.  ``now``
        (epoch seconds) defaults to the current time.  Never raises.
        """
        now = time.time() if now is None else now
        for entry in self._entries:
            if not entry.expired(now) and entry.matches(value):
                return entry
        return None

    def match_ip(self, addr: str, now: float | None = None) -> FilterEntry | None:
        """Return the first unexpired entry matching address ``addr``, or None.

        Address and CIDR entries compare as addresses, wildcard/``~``/``^``
        entries as text (see :func:`ip_pattern_matches`).  Never raises.
        """
        now = time.time() if now is None else now
        ip = _parse_ip(addr)
        for entry in self._entries:
            if entry.expired(now):
                continue
            if _ip_body_matches(entry.pattern, addr, ip) != entry.negate:
                return entry
        return None

    # -- writing -----------------------------------------------------------

    def append(
        self,
        pattern: str,
        *,
        reason: str = "",
        protocol: str = "",
        user: str = "",
        host: str = "",
        expires: float | None = None,
        now: float | None = None,
        comment: str | None = None,
    ) -> FilterEntry:
        """Append one entry to the file and to this list; return the new entry.

        Called when the system adds a filter (failed-login filtering, spam
        bait).  Writes ``pattern<TAB>t=... [e=...] [p=...] [u=...] [r=...]
        [h=...]``, preceded by a ``; comment`` line when ``comment`` is given,
        as a plain append followed by fsync (the sysop's file is never
        rewritten).  Creates the file and its directory when missing.  A file
        changed by someone else is re-read first.  Metadata values are
        cleaned of control characters and double quotes.  Blocking (small
        file I/O): call from a thread when that matters.

        Raises :class:`BBSError` (``BAD_VALUE``) for an empty pattern, one with
        control characters or one starting with ``;``; ``STORAGE`` when the
        file cannot be written.
        """
        pattern = pattern.strip()
        if not pattern or _CONTROL.search(pattern) or pattern.startswith(COMMENT_CHAR):
            raise BBSError(Reason.BAD_VALUE, f"invalid filter pattern {pattern!r}")
        now = time.time() if now is None else now
        meta = _format_metadata(
            [
                (META_ADDED, format_time(now)),
                (META_EXPIRES, format_time(expires) if expires is not None else ""),
                (META_PROTOCOL, protocol),
                (META_USER, user),
                (META_REASON, reason),
                (META_HOST, host),
            ]
        )
        entry_line = f"{pattern}\t{meta}"
        text_lines = []
        if comment is not None:
            text_lines.append(f"{COMMENT_CHAR} {_CONTROL.sub(' ', comment).strip()}")
        text_lines.append(entry_line)
        with self._lock:
            if self.path is not None:
                try:
                    self._reload_locked()
                    self._write_locked(text_lines)
                except OSError as exc:
                    raise BBSError(Reason.STORAGE, f"cannot append to {self.path}: {exc}") from exc
            lineno = self._nlines + len(text_lines)
            entry = parse_line(entry_line, lineno, source=str(self.path or ""))
            assert entry is not None
            self._nlines = lineno
            self._entries = self._entries + (entry,)
        log.info("added %r to %s", entry.text, self.path or "<memory>")
        return entry

    def _write_locked(self, text_lines: list[str]) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            prefix = b""
            if size:
                fh.seek(size - 1)
                if fh.read(1) != b"\n":
                    prefix = b"\n"  # complete the sysop's last line first
            fh.write(prefix + "".join(line + "\n" for line in text_lines).encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
            self._sig = _signature(os.fstat(fh.fileno()))


class FilterSet:
    """The standard filters of one instance.

    ``ip``, ``host``, ``name``, ``email`` and ``subject`` are ``text/*.can``;
    ``ipfilter_exempt`` is ``ctrl/ipfilter_exempt.cfg``.  Built at start-up;
    raises :class:`ConfigError` like :meth:`FilterList.load`.
    """

    def __init__(self, text_dir: Path, ctrl_dir: Path) -> None:
        text_dir, ctrl_dir = Path(text_dir), Path(ctrl_dir)
        self.ip = FilterList.load(text_dir / IP_CAN)
        self.host = FilterList.load(text_dir / HOST_CAN)
        self.name = FilterList.load(text_dir / NAME_CAN)
        self.email = FilterList.load(text_dir / EMAIL_CAN)
        self.subject = FilterList.load(text_dir / SUBJECT_CAN)
        self.ipfilter_exempt = FilterList.load(ctrl_dir / IPFILTER_EXEMPT_CFG)

    def all(self) -> tuple[FilterList, ...]:
        """Every list of the set."""
        return (self.ip, self.host, self.name, self.email, self.subject, self.ipfilter_exempt)

    def reload_if_changed(self) -> bool:
        """Re-read every changed file (called periodically); True if any was."""
        changed = False
        for flist in self.all():
            changed = flist.reload_if_changed() or changed
        return changed

    def is_ip_filtered(self, addr: str, now: float | None = None) -> FilterEntry | None:
        """Return the ``ip.can`` entry that filters ``addr``, or None.

        Called when a connection is accepted.  An address matching
        ``ctrl/ipfilter_exempt.cfg`` is never filtered.
        """
        entry = self.ip.match_ip(addr, now)
        if entry is None or self.ipfilter_exempt.match_ip(addr, now) is not None:
            return None
        return entry
