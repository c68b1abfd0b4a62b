"""Anti-spam checks of the SMTP server (Synchronet Mail Server page, Anti-SPAM).

* ``ctrl/spamblock.cfg`` / ``spamblock_exempt.cfg``: servers whose mail is
  refused, by IP address, network or host name;
* ``ctrl/spambait.cfg``: honey-pot recipients; a server that mails one is
  appended to ``spamblock.cfg``;
* DNS blacklists listed in ``ctrl/dns_blacklist.cfg`` (queried with
  dnspython), exemptions in ``ctrl/dnsbl_exempt.cfg`` (IP, host or sender
  address); the first listing found stops the search;
* ``data/spam.log`` records every refusal and blacklisting.

The DNS look-ups and list checks are here; what to do about a result
(``DNSBL_REFUSE``, ``DNSBL_BADUSER`` ...) is decided by :mod:`mail.smtp`.
"""
from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import time
from pathlib import Path

import dns.asyncresolver
import dns.exception
import dns.resolver

from bbs.filters import FilterList

log = logging.getLogger(__name__)

#: Seconds one DNSBL query may take before the zone counts as "not listed".
DNSBL_TIMEOUT = 5.0
#: spam.log time format (local time, like Synchronet's logs).
SPAM_LOG_TIME_FORMAT = "%a %b %d %Y %H:%M:%S"


@dataclasses.dataclass(frozen=True)
class Listing:
    """A positive DNSBL answer: ``zone`` listed ``address`` as ``result``."""

    zone: str
    address: str
    result: str


def dnsbl_query_name(address: str, zone: str) -> str | None:
    """The DNSBL query name of ``address`` in ``zone`` (reversed octets for
    IPv4, reversed nibbles for IPv6); None for an unparsable address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv4Address):
        reversed_part = ".".join(reversed(str(ip).split(".")))
    else:
        reversed_part = ".".join(reversed(ip.exploded.replace(":", "")))
    return f"{reversed_part}.{zone.strip('.')}."


def parse_dns_server(text: str) -> tuple[str, int] | None:
    """``DNSServer`` value: "", "<auto>", "ip", "ip:port" or "[v6]:port".

    Returns (address, port) or None for the system's resolver. Raises
    ValueError for anything else.
    """
    text = text.strip()
    if not text or text.lower() == "<auto>":
        return None
    port = 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = int(port_text)
    else:
        host = text
    ipaddress.ip_address(host)
    if not 0 < port < 65536:
        raise ValueError(f"invalid port {port}")
    return host, port


class SpamGuard:
    """The list files and DNSBL resolver of one mail server."""

    def __init__(self, ctrl: Path, data: Path, dns_server: str, use_tcp: bool = False) -> None:
        self.spamblock = FilterList.load(ctrl / "spamblock.cfg")
        self.spamblock_exempt = FilterList.load(ctrl / "spamblock_exempt.cfg")
        self.spambait = FilterList.load(ctrl / "spambait.cfg")
        self.dnsbl_zones = FilterList.load(ctrl / "dns_blacklist.cfg")
        self.dnsbl_exempt = FilterList.load(ctrl / "dnsbl_exempt.cfg")
        self.spam_log = data / "spam.log"
        self.spam_hash = data / "spam.hash"
        self.use_tcp = use_tcp
        try:
            server = parse_dns_server(dns_server)
        except ValueError:
            log.error("DNSServer %r is not an address[:port]; using the system's resolver", dns_server)
            server = None
        self.resolver = dns.asyncresolver.Resolver(configure=server is None)
        if server is not None:
            self.resolver.nameservers = [server[0]]
            self.resolver.port = server[1]
        self.resolver.lifetime = DNSBL_TIMEOUT

    @staticmethod
    def _reload(*lists: FilterList) -> None:
        """Re-read the lists a check is about to use when they changed (one
        ``stat`` each: only those, as checks run several times a message)."""
        for flist in lists:
            flist.reload_if_changed()

    # -- spamblock / spambait ---------------------------------------------

    def blocked(self, address: str, host: str = "") -> str | None:
        """The spamblock.cfg entry refusing this server, unless exempt; else None."""
        self._reload(self.spamblock)
        entry = self.spamblock.match_ip(address) or (self.spamblock.match(host) if host else None)
        if entry is None:
            return None
        self._reload(self.spamblock_exempt)
        if self.spamblock_exempt.match_ip(address) or (host and self.spamblock_exempt.match(host)):
            return None
        return entry.text

    def is_bait(self, recipient: str) -> bool:
        """True when ``recipient`` is a spambait.cfg honey-pot address."""
        self._reload(self.spambait)
        return self.spambait.match(recipient) is not None

    async def block(self, address: str, recipient: str, host: str = "") -> None:
        """Append ``address`` to spamblock.cfg (a server mailed spam bait)."""
        await asyncio.to_thread(self.spamblock.append, address, reason=f"Spam bait: {recipient}",
                                protocol="SMTP", host=host)

    # -- DNSBL ------------------------------------------------------------

    def exempt(self, address: str = "", host: str = "", sender: str = "") -> bool:
        """True when the server or the sender address is in dnsbl_exempt.cfg."""
        self._reload(self.dnsbl_exempt)
        if address and self.dnsbl_exempt.match_ip(address):
            return True
        return any(value and self.dnsbl_exempt.match(value) for value in (host, sender))

    def zones(self) -> list[str]:
        """The DNSBL zones of dns_blacklist.cfg (re-read when changed)."""
        self._reload(self.dnsbl_zones)
        return [e.pattern.strip() for e in self.dnsbl_zones.entries if e.pattern.strip() and not e.negate]

    async def lookup(self, address: str, zones: list[str] | None = None) -> Listing | None:
        """Query each zone (default: :meth:`zones`) for ``address`` until one lists it.

        Time-outs and DNS errors count as "not listed" (logged at debug).
        Loopback is checked too (tests and local networks).
        """
        for zone in self.zones() if zones is None else zones:
            qname = dnsbl_query_name(address, zone)
            if qname is None:
                return None
            try:
                answer = await self.resolver.resolve(qname, "A", tcp=self.use_tcp,
                                                     lifetime=DNSBL_TIMEOUT)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except (dns.exception.DNSException, OSError) as exc:
                log.debug("DNSBL %s: %s", zone, exc)
                continue
            result = ", ".join(sorted(r.to_text() for r in answer))
            return Listing(zone=zone, address=address, result=result)
        return None

    # -- logging ----------------------------------------------------------

    async def log_spam(self, action: str, reason: str, *, host: str, address: str,
                       sender: str = "", recipient: str = "") -> None:
        """Append one entry to data/spam.log (Synchronet ``spamlog``)."""
        stamp = time.strftime(SPAM_LOG_TIME_FORMAT)
        text = (f"SUSPECTED SMTP SPAM {action} on {stamp}\n"
                f"Host: {host or address} [{address}]\n"
                f"From: {sender or '<>'}\n"
                f"  To: {recipient}\n"
                f"Reason: {reason}\n\n")
        await asyncio.to_thread(_append, self.spam_log, text)

    async def store_hash(self, digest: str) -> None:
        """Remember a spam message body hash (``DNSBL_SPAMHASH``) in data/spam.hash."""
        await asyncio.to_thread(_append, self.spam_hash, digest + "\n")


def _append(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = "".join(c if c >= " " or c == "\n" else " " for c in text)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(clean)
