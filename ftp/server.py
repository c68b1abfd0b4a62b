"""The FTP Server: wires FTP/FTPS sessions over the BBS file libraries to the App.

:func:`create` is called by the composition root (:mod:`bbs.runner`) after
``App.open`` and returns the :class:`~bbs.runner.ServerParts` for the
``ftp`` service (every ``[Listener:*]`` with ``Service = ftp``, implicit TLS
included). The file base is the App's (``app.files``, ``data/file.db``),
the one the terminal server and Gopher read. Sessions are
:class:`ftp.session.Session`; what they share is an :class:`FTPService`.

``[FTP]`` keys used (Synchronet's names): ``MaxInactivity`` (control
connection idle limit), ``PasvIpAddress`` (advertised in 227 instead of the
local address, for NAT), ``PasvPortLow``/``PasvPortHigh``, ``Hostname``
(looked up with dnspython for ``LOOKUP_PASV_IP``), ``IndexFileName``,
``MinFileSize``/``MaxFileSize``, and the options ``ALLOW_BOUNCE``,
``DEBUG_DATA``, ``DEBUG_RX``, ``DEBUG_TX``, ``DIR_FILES``, ``INDEX_FILE``
and ``LOOKUP_PASV_IP``. ``PasvIp6Address`` is the IPv6 address an LPSV reply
(RFC 1639) advertises on an IPv6 control connection; EPSV replies (RFC 2428)
carry no address, and PASV is IPv4 only.
"""
from __future__ import annotations

import ipaddress
import logging
import ssl
import time
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.resolver

from bbs.errors import BBSError, Reason
from bbs.filebase import FileBase
from bbs.listeners import ServiceHandler
from bbs.tlscert import server_context
from ftp.ledger import Ledger
from ftp.vfs import VFS

log = logging.getLogger(__name__)

#: Seconds a LOOKUP_PASV_IP answer is reused at most (and at least, below),
#: whatever the record's TTL says: one look-up per PASV would be wasteful.
PASV_LOOKUP_MAX_TTL = 300.0
PASV_LOOKUP_MIN_TTL = 30.0
#: Seconds a LOOKUP_PASV_IP query may take before the configured address is used.
PASV_LOOKUP_TIMEOUT = 5.0
#: Seconds the Guest account found for an anonymous login is reused (a
#: sysop's change to it applies to logins after that).
GUEST_CACHE_SECONDS = 1.0


def reply_for(exc: BBSError) -> tuple[int, str]:
    """The FTP reply (RFC 959 section 4.2) for a core error; the one place."""
    return {
        Reason.NOT_FOUND: (550, "No such file or directory."),
        Reason.BAD_NAME: (553, "File name not allowed."),
        Reason.ACCESS_DENIED: (550, "Permission denied."),
        Reason.EXISTS: (553, "File exists."),
        Reason.LIMIT: (552, "Exceeded storage allocation."),
        Reason.AUTH_FAILED: (530, "Login incorrect."),
        Reason.BAD_VALUE: (501, "Invalid argument."),
    }.get(exc.reason, (451, "Local error in processing; try again later."))


class PasvLookup:
    """LOOKUP_PASV_IP: the IPv4 (A) or IPv6 (AAAA) address of ``hostname``
    (the BBS's public name), resolved with dnspython and cached per family
    for the record's TTL; a failed look-up is remembered for
    :data:`PASV_LOOKUP_MIN_TTL` seconds (one warning, and no PASV waits for
    a DNS server that is down)."""

    def __init__(self, hostname: str, resolver: dns.asyncresolver.Resolver | None = None) -> None:
        self.hostname = hostname
        self.resolver = resolver
        self._cached: dict[int, tuple[str | None, float]] = {}

    async def address(self, family: int = 4) -> str | None:
        """The address of that family (4 or 6), or None when the name does
        not resolve to one (logged)."""
        try:
            literal = ipaddress.ip_address(self.hostname)
            return str(literal) if literal.version == family else None
        except ValueError:
            pass
        now = time.monotonic()
        cached = self._cached.get(family)
        if cached and cached[1] > now:
            return cached[0]
        if self.resolver is None:
            self.resolver = dns.asyncresolver.Resolver()
        rdtype = "A" if family == 4 else "AAAA"
        try:
            answer = await self.resolver.resolve(self.hostname, rdtype, lifetime=PASV_LOOKUP_TIMEOUT)
        except (dns.exception.DNSException, OSError) as exc:
            log.warning("FTP LOOKUP_PASV_IP: %s has no %s record (%s); using the configured address "
                        "for %.0f s", self.hostname, rdtype, exc.__class__.__name__, PASV_LOOKUP_MIN_TTL)
            self._cached[family] = (None, now + PASV_LOOKUP_MIN_TTL)
            return None
        address = str(answer[0])
        ttl = min(max(float(answer.rrset.ttl), PASV_LOOKUP_MIN_TTL), PASV_LOOKUP_MAX_TTL)
        self._cached[family] = (address, now + ttl)
        return address


class FTPService:
    """What every FTP session shares; :meth:`protocol` makes the sessions."""

    def __init__(self, app: Any, *, resolver: dns.asyncresolver.Resolver | None = None) -> None:
        cfg = app.config.server.ftp
        self.app = app
        self.cfg = cfg
        self.options = cfg.common.options
        self.files: FileBase = app.files  # the App's file base (data/file.db), shared with the nodes
        self.vfs = VFS(lambda: app.config.files, self.files, dir_files="DIR_FILES" in self.options,
                       index_name=cfg.index_file_name if "INDEX_FILE" in self.options else "")
        self.inactivity = cfg.common.max_inactivity
        self.lookup = PasvLookup(cfg.hostname, resolver) if "LOOKUP_PASV_IP" in self.options else None
        self.sessions: set[Any] = set()
        self.ledger = Ledger(app.users, self.files)
        self._guest: tuple[str, Any, float] | None = None  # (name, User, expiry): see guest_account
        self._data_tls: ssl.SSLContext | None = None

    def tls_context(self):
        """The control connection's TLS context (the App's)."""
        return self.app.tls_context()

    def data_tls_context(self) -> ssl.SSLContext:
        """TLS for data connections: the same certificate, but no TLS 1.3
        session tickets. A client that only uploads never reads the tickets,
        so its close() would reset the connection (unread data) and the
        upload's last bytes and close_notify could be lost."""
        if self._data_tls is None:
            self.app.tls_context()  # makes the certificate on first use
            glob = self.app.config.server.global_
            context = server_context(glob.tls_certificate, glob.tls_private_key)
            context.num_tickets = 0
            self._data_tls = context
        return self._data_tls

    async def pasv_address(self, local: str) -> str:
        """The address a 227 (IPv4) or 228 (LPSV, IPv4 or IPv6) reply
        advertises for a control connection to ``local``: the looked-up
        Hostname (LOOKUP_PASV_IP), else PasvIpAddress / PasvIp6Address, else
        ``local`` itself (the FAQ's "FTP NAT" answer)."""
        family = 6 if ":" in local else 4
        if self.lookup is not None:
            found = await self.lookup.address(family)
            if found:
                return found
        configured = self.cfg.pasv_ip6_address if family == 6 else self.cfg.pasv_ip_address
        return configured or local

    def cached_guest(self, name: str) -> Any:
        """The Guest account ``name`` if it was looked up less than
        :data:`GUEST_CACHE_SECONDS` ago, else None: a burst of anonymous
        logins looks it up once a second, not once each."""
        hit = self._guest
        if hit is not None and hit[0] == name and hit[2] > time.monotonic():
            return hit[1]
        return None

    async def guest_account(self, name: str) -> Any:
        """Look the Guest account up (raises NOT_FOUND) and remember it."""
        user = await self.app.users.find(name)
        self._guest = (name, user, time.monotonic() + GUEST_CACHE_SECONDS)
        return user

    def protocol(self, conn: Any) -> Any:
        """The protocol of one admitted control connection (a new session)."""
        from ftp.session import Session

        return Session(self, conn)


def create(app: Any) -> Any:
    """The FTP server's parts for :mod:`bbs.runner`."""
    from bbs.runner import ServerParts

    service = FTPService(app)
    return ServerParts(handlers={"ftp": ServiceHandler(protocol=service.protocol)})
