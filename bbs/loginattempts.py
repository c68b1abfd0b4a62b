"""Failed-login tracking shared by every server (Synchronet ``LoginAttempt*``).

Mirrors the ``sbbs.ini [Global]`` keys ``LoginAttemptDelay``,
``LoginAttemptThrottle``, ``LoginAttemptHackThreshold``,
``LoginAttemptTempBanThreshold``, ``LoginAttemptTempBanDuration``,
``LoginAttemptFilterThreshold`` and ``LoginAttemptFilterDuration``:

* every failed login is answered only after ``delay`` seconds;
* a new connection from an address with N recorded failures is accepted only
  after ``throttle * N`` seconds;
* at ``hack_threshold`` failures one line goes to ``data/logs/hack.log``;
* at ``tempban_threshold`` failures the address is banned for
  ``tempban_duration`` seconds (in memory);
* at ``filter_threshold`` failures the address is appended to ``text/ip.can``
  (expiring after ``filter_duration`` seconds, or permanently when 0).

Addresses in ``ctrl/ipfilter_exempt.cfg`` are never banned nor filtered.
One tracker serves every protocol, so failures on POP3 count toward a ban on
Telnet.  The tracker is used from the event loop thread only.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bbs.errors import BBSError
from bbs.filters import FilterList, normalize_ip

log = logging.getLogger(__name__)

__all__ = ["Ban", "FailureOutcome", "LoginAttemptRules", "LoginAttemptTracker", "hack_log_line"]

#: sbbs.ini [Global] LoginAttemptDelay: seconds before replying to a failure.
DEFAULT_DELAY = 5.0
#: sbbs.ini [Global] LoginAttemptThrottle: seconds per recorded failure
#: before a new connection from that address is served.
DEFAULT_THROTTLE = 1.0
#: sbbs.ini [Global] LoginAttemptHackThreshold (0 disables hack.log).
DEFAULT_HACK_THRESHOLD = 10
#: sbbs.ini [Global] LoginAttemptTempBanThreshold (0 disables bans).
DEFAULT_TEMPBAN_THRESHOLD = 20
#: sbbs.ini [Global] LoginAttemptTempBanDuration: seconds (Synchronet: 10m).
DEFAULT_TEMPBAN_DURATION = 600.0
#: sbbs.ini [Global] LoginAttemptFilterThreshold (0 disables ip.can entries).
DEFAULT_FILTER_THRESHOLD = 0
#: sbbs.ini [Global] LoginAttemptFilterDuration: seconds, 0 = permanent.
DEFAULT_FILTER_DURATION = 0.0

#: A record whose last failure is older than this (and not banned) is dropped.
RECORD_LIFETIME = 24 * 60 * 60.0
#: How often (seconds) stale records are swept from memory.
PRUNE_INTERVAL = 60 * 60.0
#: Upper bound on tracked addresses; the least recently failed are evicted
#: first, so a flood from many addresses cannot exhaust memory.
MAX_RECORDS = 100_000
#: Longest user name copied into logs and ip.can metadata.
MAX_LOGGED_NAME = 64

#: ``hack.log`` line time format (local time, like Synchronet's logs).
HACK_LOG_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class LoginAttemptRules:
    """The ``LoginAttempt*`` settings; defaults are Synchronet's."""

    delay: float = DEFAULT_DELAY
    throttle: float = DEFAULT_THROTTLE
    hack_threshold: int = DEFAULT_HACK_THRESHOLD
    tempban_threshold: int = DEFAULT_TEMPBAN_THRESHOLD
    tempban_duration: float = DEFAULT_TEMPBAN_DURATION
    filter_threshold: int = DEFAULT_FILTER_THRESHOLD
    filter_duration: float = DEFAULT_FILTER_DURATION


@dataclass(frozen=True)
class FailureOutcome:
    """What :meth:`LoginAttemptTracker.failed` decided.

    ``count`` failures recorded so far for the address; ``delay`` seconds the
    caller sleeps before replying; ``hack_logged`` when this failure crossed
    the hack threshold; ``banned`` when the address is temporarily banned now
    (the caller should disconnect); ``filtered`` when this failure added the
    address to ``ip.can``.
    """

    count: int
    delay: float
    hack_logged: bool
    banned: bool
    filtered: bool


@dataclass(frozen=True)
class Ban:
    """An active temporary ban: until ``until`` (epoch seconds)."""

    addr: str
    until: float
    count: int
    protocol: str
    user: str


@dataclass
class _Record:
    count: int
    last: float
    protocol: str = ""
    user: str = ""
    hack_logged: bool = False
    ban_until: float | None = None
    filtered_until: float | None = None  # float("inf") for a permanent entry


def _loggable(name: str) -> str:
    """A user-supplied name made safe for a log line (no control characters)."""
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in name)
    if len(cleaned) > MAX_LOGGED_NAME:
        cleaned = cleaned[:MAX_LOGGED_NAME] + "..."
    return cleaned


def hack_log_line(when: float, addr: str, protocol: str, user: str, count: int) -> str:
    """Return the ``hack.log`` line (without newline) for a suspected attack.

    ``when`` is epoch seconds, written in local time.  Never contains a
    password: only the address, protocol, name tried and count.
    """
    stamp = time.strftime(HACK_LOG_TIME_FORMAT, time.localtime(when))
    return (
        f"{stamp} SUSPECTED BRUTE FORCE HACK ATTEMPT from {addr} via {protocol} "
        f"using name '{_loggable(user)}' ({count} failed login attempts)"
    )


class LoginAttemptTracker:
    """Counts failed logins per address and applies the ``LoginAttempt*`` rules.

    Built once by the composition root and passed to every server.  ``ip_can``
    is the instance's ``text/ip.can`` list (appended to at the filter
    threshold); ``exempt`` is ``ctrl/ipfilter_exempt.cfg``; ``hack_log`` the
    path of ``data/logs/hack.log``.  ``clock`` returns epoch seconds (tests
    inject a fake).  ``on_event(kind, info)`` is called with ``"hack"``,
    ``"tempban"`` or ``"filter"`` and a dict (``addr``, ``protocol``,
    ``user``, ``count`` and ``until``/``expires``) so the app can publish it.
    """

    def __init__(
        self,
        rules: LoginAttemptRules,
        *,
        ip_can: FilterList,
        exempt: FilterList,
        hack_log: Path,
        clock: Callable[[], float] = time.time,
        on_event: Callable[[str, dict], None] | None = None,
        max_records: int = MAX_RECORDS,
    ) -> None:
        self.rules = rules
        self._ip_can = ip_can
        self._exempt = exempt
        self._hack_log = Path(hack_log)
        self._clock = clock
        self._on_event = on_event
        self._max_records = max(1, max_records)
        self._records: dict[str, _Record] = {}
        self._last_prune = clock()

    # -- queries -----------------------------------------------------------

    def _record(self, key: str, now: float) -> _Record | None:
        """The live record for a normalised address, dropping a stale one."""
        rec = self._records.get(key)
        if rec is not None and self._stale(rec, now):
            del self._records[key]
            return None
        return rec

    @staticmethod
    def _stale(rec: _Record, now: float) -> bool:
        banned = rec.ban_until is not None and rec.ban_until > now
        return not banned and now - rec.last > RECORD_LIFETIME

    def count(self, addr: str) -> int:
        """Return the failures recorded for ``addr`` (0 when none)."""
        rec = self._record(normalize_ip(addr), self._clock())
        return rec.count if rec else 0

    def throttle_delay(self, addr: str) -> float:
        """Seconds to wait before serving a new connection from ``addr``.

        Called by every listener when a connection is accepted:
        ``throttle * failures`` (``LoginAttemptThrottle``), 0 when none.
        """
        return self.rules.throttle * self.count(addr)

    def is_banned(self, addr: str) -> float | None:
        """Return the seconds left on ``addr``'s temporary ban, or None.

        Called when a connection is accepted; a banned address is refused.
        """
        now = self._clock()
        rec = self._record(normalize_ip(addr), now)
        if rec is None or rec.ban_until is None or rec.ban_until <= now:
            return None
        return rec.ban_until - now

    def bans(self) -> list[Ban]:
        """Active temporary bans, soonest to expire first (for the console)."""
        now = self._clock()
        active = [
            Ban(addr=key, until=rec.ban_until, count=rec.count, protocol=rec.protocol, user=rec.user)
            for key, rec in self._records.items()
            if rec.ban_until is not None and rec.ban_until > now
        ]
        return sorted(active, key=lambda ban: ban.until)

    # -- updates -----------------------------------------------------------

    def lift(self, addr: str) -> bool:
        """Lift ``addr``'s temporary ban (sysop action); True if one was active.

        Also forgets the address's failures, so its next failure does not
        re-ban it at once.  Does not touch ``ip.can``.
        """
        key = normalize_ip(addr)
        now = self._clock()
        rec = self._record(key, now)
        if rec is None or rec.ban_until is None or rec.ban_until <= now:
            return False
        del self._records[key]
        log.info("temporary ban of %s lifted", key)
        return True

    def succeeded(self, addr: str) -> None:
        """Forget ``addr``'s failures after a successful login.

        An active temporary ban stays in force (only the count is reset).
        """
        key = normalize_ip(addr)
        rec = self._record(key, self._clock())
        if rec is None:
            return
        if rec.ban_until is not None and rec.ban_until > self._clock():
            rec.count = 0
            rec.hack_logged = False
        else:
            del self._records[key]

    def failed(self, addr: str, protocol: str, user: str) -> FailureOutcome:
        """Record a failed login from ``addr`` and apply the thresholds.

        Called by a server right after a login is refused; the caller then
        ``await asyncio.sleep(outcome.delay)`` before replying, and closes the
        connection when ``outcome.banned``.  ``user`` is the name tried (never
        pass a password).  Cheap and synchronous, except that crossing the
        hack or filter threshold appends one short line to ``hack.log`` or
        ``ip.can`` (small blocking writes, once per address).  Never raises:
        write errors are logged.
        """
        now = self._clock()
        key = normalize_ip(addr)
        self._maybe_prune(now)
        rec = self._record(key, now)
        if rec is None:
            rec = _Record(count=0, last=now)
        else:
            del self._records[key]  # re-insert: dict order = least recently failed first
        self._records[key] = rec
        rec.count += 1
        rec.last = now
        rec.protocol = protocol
        rec.user = _loggable(user)
        self._evict()
        self._emit("failed", key, rec)  # every failure (the console's Stats count them)

        rules = self.rules
        hack_logged = False
        if rules.hack_threshold > 0 and rec.count >= rules.hack_threshold and not rec.hack_logged:
            rec.hack_logged = True
            hack_logged = True
            self._log_hack(key, rec, now)

        exempt = self._exempt.match_ip(key, now) is not None
        if exempt and (
            (rules.tempban_threshold > 0 and rec.count >= rules.tempban_threshold)
            or (rules.filter_threshold > 0 and rec.count >= rules.filter_threshold)
        ):
            log.info("%s is in ipfilter_exempt: not banned nor filtered (%d failed logins)", key, rec.count)

        banned = rec.ban_until is not None and rec.ban_until > now
        if (
            not exempt
            and not banned
            and rules.tempban_threshold > 0
            and rules.tempban_duration > 0
            and rec.count >= rules.tempban_threshold
        ):
            rec.ban_until = now + rules.tempban_duration
            banned = True
            log.warning(
                "TEMPORARY BAN of %s for %d seconds (%d failed login attempts, last via %s using name '%s')",
                key, rules.tempban_duration, rec.count, protocol, rec.user,
            )
            self._emit("tempban", key, rec, until=rec.ban_until)

        filtered = False
        if not exempt and rules.filter_threshold > 0 and rec.count >= rules.filter_threshold:
            filtered = self._filter(key, rec, now)

        return FailureOutcome(
            count=rec.count, delay=rules.delay, hack_logged=hack_logged, banned=banned, filtered=filtered
        )

    # -- helpers -----------------------------------------------------------

    def _emit(self, kind: str, key: str, rec: _Record, **extra: object) -> None:
        if self._on_event is None:
            return
        info = {"addr": key, "protocol": rec.protocol, "user": rec.user, "count": rec.count, **extra}
        try:
            self._on_event(kind, info)
        except Exception:  # a faulty subscriber must not break logins
            log.exception("login-attempt %s event handler failed", kind)

    def _log_hack(self, key: str, rec: _Record, now: float) -> None:
        line = hack_log_line(now, key, rec.protocol, rec.user, rec.count)
        log.warning("%s", line)
        try:
            self._hack_log.parent.mkdir(parents=True, exist_ok=True)
            with open(self._hack_log, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")
        except OSError as exc:
            log.error("cannot write %s: %s", self._hack_log, exc)
        self._emit("hack", key, rec)

    def _filter(self, key: str, rec: _Record, now: float) -> bool:
        """Append ``key`` to ip.can unless already filtered; True if appended."""
        if rec.filtered_until is not None and rec.filtered_until > now:
            return False
        if self._ip_can.match_ip(key, now) is not None:
            return False
        duration = self.rules.filter_duration
        expires = now + duration if duration > 0 else None
        try:
            self._ip_can.append(
                key,
                reason=f"Too many failed login attempts ({rec.count})",
                protocol=rec.protocol,
                user=rec.user,
                expires=expires,
                now=now,
            )
        except BBSError as exc:
            log.error("cannot filter %s: %s", key, exc)
            return False
        rec.filtered_until = expires if expires is not None else float("inf")
        log.warning(
            "FILTERED %s in %s (%d failed login attempts, last via %s using name '%s')%s",
            key, self._ip_can.path, rec.count, rec.protocol, rec.user,
            f" for {duration:g} seconds" if expires is not None else "",
        )
        self._emit("filter", key, rec, expires=expires)
        return True

    def _maybe_prune(self, now: float) -> None:
        if now - self._last_prune < PRUNE_INTERVAL:
            return
        self._last_prune = now
        stale = [key for key, rec in self._records.items() if self._stale(rec, now)]
        for key in stale:
            del self._records[key]

    def _evict(self) -> None:
        while len(self._records) > self._max_records:
            key = next(iter(self._records))
            del self._records[key]
