"""Where to deliver a domain's mail: MX look-up (RFC 5321 5.1) with dnspython.

:class:`MXResolver` asks the configured ``DNSServer`` (``ip``, ``ip:port``
or ``[v6]:port``; blank or ``<auto>`` = the system's resolver config, logged
as ``SEND using auto-detected DNS server address: ...``), over TCP with
``USE_TCP_DNS``. :meth:`MXResolver.exchangers` returns the mail exchangers in
preference order (equal preferences shuffled, RFC 5321 5.1), each with its
addresses, resolved through the same server:

* no MX record -> the domain itself is the implicit MX (its A/AAAA records);
* a "null MX" (RFC 7505: one MX with the root as exchange) -> permanent;
* NXDOMAIN -> permanent (the domain does not exist);
* time-outs, SERVFAIL, refused -> temporary (retry later);
* an address literal ``[192.0.2.1]`` is used as it is (RFC 5321 4.1.3).

The choice of order is pure (:func:`order_exchangers`); only the resolver
touches the network.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import logging
import random
from pathlib import Path
from typing import Sequence

import dns.asyncresolver
import dns.exception
import dns.rdatatype
import dns.resolver

from mail.spam import parse_dns_server

log = logging.getLogger(__name__)

#: Seconds one MX or address query may take in total (all retries).
MX_LOOKUP_TIMEOUT = 20.0
#: Names whose answers the resolver keeps (for their TTL).
DNS_CACHE_SIZE = 10_000
#: At most this many exchangers are tried per attempt (a hostile zone with
#: hundreds of MX records must not tie up a delivery slot).
MAX_EXCHANGERS = 10


class MXError(Exception):
    """The domain's exchangers could not be found; ``permanent`` says whether
    a retry can help (NXDOMAIN, null MX) or not (time-out, SERVFAIL)."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclasses.dataclass(frozen=True)
class Exchanger:
    """One mail exchanger: its name, MX preference and addresses to try."""

    host: str
    preference: int
    addresses: tuple[str, ...]


def order_exchangers(records: Sequence[tuple[int, str]], rng: random.Random | None = None) -> list[tuple[int, str]]:
    """Sort (preference, host) pairs lowest preference first; hosts of equal
    preference are shuffled (RFC 5321 5.1) and duplicates dropped."""
    rng = rng or random.Random()
    groups: dict[int, list[str]] = {}
    seen = set()
    for preference, host in records:
        key = host.lower().rstrip(".")
        if key in seen:
            continue
        seen.add(key)
        groups.setdefault(preference, []).append(host.rstrip("."))
    ordered = []
    for preference in sorted(groups):
        hosts = groups[preference]
        rng.shuffle(hosts)
        ordered.extend((preference, host) for host in hosts)
    return ordered


def address_literal(domain: str) -> str | None:
    """The IP address of a domain literal (``[192.0.2.1]``, ``[IPv6:::1]``), or None."""
    if not (domain.startswith("[") and domain.endswith("]")):
        return None
    text = domain[1:-1]
    if text.lower().startswith("ipv6:"):
        text = text[5:]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


class MXResolver:
    """dnspython resolver for SendMail. One per SendMail task."""

    def __init__(self, dns_server: str, *, use_tcp: bool = False, ipv6: bool = True,
                 resolv_conf: Path | None = None, timeout: float = MX_LOOKUP_TIMEOUT,
                 rng: random.Random | None = None) -> None:
        """``dns_server`` is the ``DNSServer`` value; ``resolv_conf`` replaces
        /etc/resolv.conf for auto-detection (tests). ``ipv6`` False skips
        AAAA records (an IPv4 ``OutboundInterface``). Raises ValueError for
        a ``DNSServer`` that is neither blank, ``<auto>`` nor an address[:port]
        (Synchronet: ``!SEND INVALID DNS server address``)."""
        server = parse_dns_server(dns_server)
        if server is None:
            if resolv_conf is not None:
                self.resolver = dns.asyncresolver.Resolver(filename=str(resolv_conf))
            else:
                self.resolver = dns.asyncresolver.Resolver(configure=True)
            shown = self.resolver.nameservers[0] if self.resolver.nameservers else "(none)"
            log.info("SEND using auto-detected DNS server address: %s", shown)
        else:
            self.resolver = dns.asyncresolver.Resolver(configure=False)
            self.resolver.nameservers = [server[0]]
            self.resolver.port = server[1]
        # Answers are kept for their TTL: a queue full of mail to one domain
        # asks once (as a caching resolver would); at most this many names.
        self.resolver.cache = dns.resolver.LRUCache(DNS_CACHE_SIZE)
        self.resolver.lifetime = timeout
        self.resolver.timeout = min(timeout, 5.0)
        self.use_tcp = use_tcp
        self.ipv6 = ipv6
        self.rng = rng or random.Random()

    @property
    def server(self) -> str:
        """The name server in use (for log lines)."""
        return ", ".join(str(n) for n in self.resolver.nameservers)

    async def _query(self, name: str, rdtype: str):
        return await self.resolver.resolve(name, rdtype, tcp=self.use_tcp, search=False)

    async def exchangers(self, domain: str) -> list[Exchanger]:
        """The exchangers of ``domain`` in the order to try them (RFC 5321 5.1).

        Exchangers whose addresses cannot be found are left out; raises
        :class:`MXError` when none is left or the look-up fails.
        """
        literal = address_literal(domain)
        if literal is not None:
            return [Exchanger(literal, 0, (literal,))]
        name = domain.rstrip(".") + "."
        try:
            answer = await self._query(name, "MX")
            records = [(int(r.preference), r.exchange.to_text(omit_final_dot=True)) for r in answer]
        except dns.resolver.NXDOMAIN:
            raise MXError(f"domain {domain} does not exist (NXDOMAIN)", permanent=True) from None
        except dns.resolver.NoAnswer:
            records = []
        except (dns.exception.DNSException, OSError) as exc:
            raise MXError(f"ERROR obtaining MX records for {domain} from {self.server}: "
                          f"{_dns_error(exc)}", permanent=False) from None
        if not records:  # RFC 5321 5.1: the domain itself is the implicit MX
            addresses = await self.addresses(domain)
            if not addresses:
                raise MXError(f"domain {domain} has no MX, A or AAAA record", permanent=True)
            return [Exchanger(domain.rstrip("."), 0, tuple(addresses))]
        if any(host in ("", ".") for _, host in records):
            raise MXError(f"domain {domain} accepts no mail (null MX, RFC 7505)", permanent=True)
        result = []
        temporary = None
        for preference, host in order_exchangers(records, self.rng)[:MAX_EXCHANGERS]:
            try:
                addresses = await self.addresses(host)
            except MXError as exc:
                temporary = exc
                continue
            if addresses:
                result.append(Exchanger(host, preference, tuple(addresses)))
        if not result:
            if temporary is not None:
                raise temporary
            raise MXError(f"no address for any mail exchanger of {domain}", permanent=False)
        return result

    async def addresses(self, host: str) -> list[str]:
        """A then AAAA addresses of ``host`` (IPv4 first: a BBS is more often
        without IPv6 routing than without IPv4). Empty when it has none;
        raises a temporary :class:`MXError` when the server does not answer."""
        literal = _ip(host)
        if literal is not None:
            return [literal]
        found: list[str] = []
        kinds = ("A", "AAAA") if self.ipv6 else ("A",)
        failure = None
        for rdtype in kinds:
            try:
                answer = await self._query(host.rstrip(".") + ".", rdtype)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except (dns.exception.DNSException, OSError) as exc:
                failure = exc
                continue
            found.extend(r.address for r in answer)
        if not found and failure is not None:
            raise MXError(f"ERROR resolving hostname {host}: {_dns_error(failure)}", permanent=False)
        return found


def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _dns_error(exc: BaseException) -> str:
    if isinstance(exc, dns.exception.Timeout):
        return "timed out"
    if isinstance(exc, dns.resolver.NoNameservers):
        return "no name server answered (SERVFAIL or refused)"
    return str(exc) or type(exc).__name__
