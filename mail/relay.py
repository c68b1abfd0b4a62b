"""Who may relay mail through this server (Synchronet relay rules).

A client may send mail to a non-local recipient only when (TCP/IP FAQ,
"Relay Mail"):

* its IP address or host name is listed in ``ctrl/relay.cfg``; or
* it authenticated (SMTP AUTH) and ``ALLOW_RELAY`` is set; or
* ``SMTP_AUTH_VIA_IP`` is set and a user logged on from its IP address in the
  last hour (telnet, POP3 ... "POP before SMTP"), and ``ALLOW_RELAY`` is set.

Users restricted with flag ``G`` (guest) or ``M`` (no netmail) never relay
(Synchronet ``relay_user.rest & (FLAG('G')|FLAG('M'))``).
"""
from __future__ import annotations

import time
from typing import Callable

from bbs.events import EventBus, UserLogon
from bbs.filters import FilterList
from bbs.users import User

#: Synchronet: a logon from the client's IP counts for SMTP_AUTH_VIA_IP when
#: it happened within the last hour (``relay_user.laston < time(NULL)-(60*60)``).
AUTH_VIA_IP_WINDOW = 60 * 60.0
#: Restriction flags that forbid relaying (guest, no netmail).
NO_RELAY_RESTRICTIONS = frozenset("GM")
#: Bound on remembered logon addresses (oldest dropped first).
MAX_LOGON_ADDRESSES = 10_000

#: sbbs.ini [Mail] Options: the relay-related flags.
ALLOW_RELAY = "ALLOW_RELAY"
SMTP_AUTH_VIA_IP = "SMTP_AUTH_VIA_IP"


class LogonsByAddress:
    """Recent user logons per IP address, fed by ``UserLogon`` bus events.

    Used for ``SMTP_AUTH_VIA_IP``. Lives on the event loop thread.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._seen: dict[str, tuple[float, int, str]] = {}

    def attach(self, bus: EventBus) -> Callable[[], None]:
        """Start listening on ``bus``; returns the unsubscribe function."""
        return bus.subscribe(self._on_logon, UserLogon)

    def _on_logon(self, event: UserLogon) -> None:  # type: ignore[override]
        if not isinstance(event, UserLogon) or event.protocol in ("smtp", "submission", "smtps"):
            return
        self.record(event.address, event.number, event.user)

    def record(self, address: str, number: int, alias: str) -> None:
        self._seen.pop(address, None)
        self._seen[address] = (self._clock(), number, alias)
        while len(self._seen) > MAX_LOGON_ADDRESSES:
            self._seen.pop(next(iter(self._seen)))

    def recent(self, address: str) -> tuple[int, str] | None:
        """(user number, alias) of a logon from ``address`` in the window, or None."""
        item = self._seen.get(address)
        if item is None or self._clock() - item[0] > AUTH_VIA_IP_WINDOW:
            return None
        return item[1], item[2]


class RelayPolicy:
    """Decides whether one SMTP client may relay."""

    def __init__(self, relay_cfg: FilterList, options: frozenset[str], logons: LogonsByAddress) -> None:
        self.relay_cfg = relay_cfg
        self.options = options
        self.logons = logons

    @property
    def auth_relays(self) -> bool:
        """True when authenticating can earn relaying (``ALLOW_RELAY``)."""
        return ALLOW_RELAY in self.options

    def listed(self, address: str, host: str = "") -> bool:
        """True when ``address`` or ``host`` is in ``ctrl/relay.cfg``."""
        self.relay_cfg.reload_if_changed()
        if self.relay_cfg.match_ip(address) is not None:
            return True
        return bool(host) and self.relay_cfg.match(host) is not None

    def permitted(self, address: str, host: str, user: User | None) -> tuple[bool, str]:
        """(may relay?, who) for a client at ``address``/``host``, authenticated
        as ``user`` (None when not). ``who`` names the relaying user for the log."""
        if self.listed(address, host):
            return True, user.alias if user else "Unknown User"
        if not self.auth_relays:
            return False, ""
        if user is not None:
            if NO_RELAY_RESTRICTIONS & set(user.restrict):
                return False, ""
            return True, user.alias
        if SMTP_AUTH_VIA_IP in self.options:
            recent = self.logons.recent(address)
            if recent is not None:
                return True, recent[1]
        return False, ""
