"""Pure parsing of SMTP paths and mail addresses (no sockets, no storage).

aiosmtpd's own parser misreads Synchronet's prefixed addresses
(``<local:sysop@bbs>`` becomes ``local`` plus junk), so the SMTP server
uses :func:`parse_path` for ``MAIL FROM``/``RCPT TO`` arguments and
:func:`parse_address` to split what it found.

Relay safety lives here too: :attr:`Address.routed` is true for every form
that could make a local-looking address reach another host (RFC 5321
section 3.6.1 source routes are stripped first, as that section allows):

* the percent hack ``user%remote@bbs``;
* bang paths ``remote!user@bbs`` (UUCP; Synchronet's ``qwk-id!user``);
* quoted local parts hiding an address ``"user@remote"@bbs``;
* several ``@`` in one address.

The server never delivers nor relays such an address on behalf of a client
that may not relay: it is refused like any other relay attempt.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import re

#: RFC 5321 section 4.5.3.1.1: longest local part (octets).
MAX_LOCAL_PART = 64
#: RFC 5321 section 4.5.3.1.2: longest domain (octets).
MAX_DOMAIN = 255
#: RFC 5321 section 4.5.3.1.3: longest path, including the angle brackets.
MAX_PATH = 256

#: Characters that route mail onward when found in a local part.
ROUTING_CHARS = frozenset("@%!")
#: Synchronet's special recipient prefixes (Mail Server page, Special Prefixes).
PREFIXES = ("local:", "forward:", "sub:")

_SOURCE_ROUTE = re.compile(r"^(?:@[^,:@<>\s]+)(?:,@[^,:@<>\s]+)*:")
_DOMAIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}))*$")


@dataclasses.dataclass(frozen=True)
class Address:
    """A mail address split at its last ``@`` outside quotes.

    ``local`` is unquoted (``"a b"@x`` gives ``a b``); ``domain`` is lower
    case without a trailing dot ('' when the address has none, as in
    ``RCPT TO:<sysop>``). ``text`` is the address as given (without the
    source route).
    """

    text: str
    local: str
    domain: str
    quoted: bool = False

    @property
    def routed(self) -> bool:
        """True when the local part itself names another destination."""
        return any(c in ROUTING_CHARS for c in self.local)

    @property
    def literal(self) -> str | None:
        """The IP address of a domain literal (``[192.0.2.1]``), else None."""
        if self.domain.startswith("[") and self.domain.endswith("]"):
            inner = self.domain[1:-1]
            if inner.lower().startswith("ipv6:"):
                inner = inner[5:]
            try:
                return str(ipaddress.ip_address(inner))
            except ValueError:
                return None
        return None


def parse_path(arg: str) -> tuple[str | None, str]:
    """Split a ``MAIL FROM:``/``RCPT TO:`` argument into (address, parameters).

    Accepts ``<addr> PARAMS`` and the bare ``addr PARAMS`` many clients send;
    ``<>`` is the null reverse path (returned as ''). A source route
    (``<@a,@b:user@c>``) is dropped, as RFC 5321 section 3.6.1 allows.
    Returns (None, '') for a malformed path: no closing bracket, an
    over-long path (section 4.5.3.1.3), control characters or spaces
    outside quotes.
    """
    arg = arg.strip()
    if not arg:
        return None, ""
    if arg.startswith("<"):
        end = _closing_bracket(arg)
        if end < 0:
            return None, ""
        inner, rest = arg[1:end], arg[end + 1:]
        if rest and not rest[0].isspace():
            return None, ""
        if len(inner) + 2 > MAX_PATH:
            return None, ""
    else:
        inner, _, rest = arg.partition(" ")
        if len(inner) > MAX_PATH:
            return None, ""
    inner = _SOURCE_ROUTE.sub("", inner, count=1)
    if any(ord(c) < 0x20 or c == "\x7f" for c in inner):
        return None, ""
    if _unquoted_space(inner):
        return None, ""
    return inner, rest.strip()


def _closing_bracket(arg: str) -> int:
    quoted = escaped = False
    for index, char in enumerate(arg):
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ">" and not quoted:
            return index
    return -1


def _unquoted_space(text: str) -> bool:
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char.isspace() and not quoted:
            return True
    return False


def parse_address(text: str) -> Address | None:
    """Split ``text`` into an :class:`Address`; None when it is malformed.

    The split is at the last ``@`` outside a quoted string; a quoted local
    part is unquoted (``\\x`` escapes resolved). The domain must be a host
    name or a domain literal.
    """
    text = text.strip()
    if not text:
        return None
    local_raw, domain, quoted = _split(text)
    if local_raw is None:
        return None
    if quoted:
        local = _unquote(local_raw)
        if local is None:
            return None
    else:
        local = local_raw
    if not local or len(local_raw) > MAX_LOCAL_PART * 2:
        return None
    domain = domain.rstrip(".").lower()
    if domain:
        if len(domain) > MAX_DOMAIN:
            return None
        if domain.startswith("["):
            if not domain.endswith("]"):
                return None
        elif not _DOMAIN.match(domain):
            return None
    return Address(text=text, local=local, domain=domain, quoted=quoted)


def _split(text: str) -> tuple[str | None, str, bool]:
    """(local part as written, domain, quoted?) or (None, '', False)."""
    if text.startswith('"'):
        end = _closing_quote(text)
        if end < 0:
            return None, "", False
        local, rest = text[:end + 1], text[end + 1:]
        if not rest:
            return local, "", True
        if not rest.startswith("@"):
            return None, "", False
        return local, rest[1:], True
    if '"' in text:
        return None, "", False
    local, at, domain = text.rpartition("@")
    if not at:
        return text, "", False
    if at and not domain:
        return None, "", False
    return local, domain, False


def _closing_quote(text: str) -> int:
    escaped = False
    for index in range(1, len(text)):
        char = text[index]
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            return index
    return -1


def _unquote(local: str) -> str | None:
    body = local[1:-1]
    out, escaped = [], False
    for char in body:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            out.append(char)
    return None if escaped else "".join(out)


def split_prefix(local: str) -> tuple[str, str]:
    """Split a Synchronet special prefix off a local part: ("local:", "sysop").

    Returns ('', local) when there is none. Case-insensitive.
    """
    lowered = local.lower()
    for prefix in PREFIXES:
        if lowered.startswith(prefix):
            return prefix, local[len(prefix):].strip()
    return "", local


def split_tag(local: str) -> tuple[str, str]:
    """Split ``name#tag`` (Synchronet Tags) into (name, tag); tag '' if none."""
    name, sep, tag = local.partition("#")
    return (name, tag) if sep and name else (local, "")


#: Synchronet's "virtual" top-level domain of FidoNet netmail (Mail Server
#: page, FidoNet): never looked up in DNS.
FIDONET_SUFFIX = ".fidonet"
_FIDONET = re.compile(r"^(?:p(\d{1,5})\.)?f(\d{1,5})\.n(\d{1,5})\.z(\d{1,5})\.fidonet$")
#: A QWK network id (Synchronet LEN_QWKID: 8; letters, digits, ``-`` and ``_``).
_QWK_ID = re.compile(r"^[A-Za-z0-9_-]{1,8}$")


def parse_fidonet(domain: str) -> str | None:
    """``p<point>.f<node>.n<net>.z<zone>.fidonet`` -> ``zone:net/node[.point]``.

    Returns None when ``domain`` is not a FidoNet netmail host (the point
    part is optional; point 0 is the node itself).
    """
    match = _FIDONET.fullmatch(domain.lower().rstrip("."))
    if match is None:
        return None
    point, node, net, zone = (int(g) if g else 0 for g in match.groups())
    return f"{zone}:{net}/{node}" + (f".{point}" if point else "")


def split_bang_path(local: str) -> tuple[str, str] | None:
    """``QWKID!user`` or ``HUB/NODE!user`` (Synchronet QWK routing) ->
    (route, user); the route's first hop is checked against the QWK node
    list by the caller. None when ``local`` is not such a bang path (also
    for ``a!b!c`` UUCP paths and any ``%``/``@`` in the local part)."""
    route, bang, user = local.partition("!")
    if not bang or not user or "!" in user or any(c in "%@" for c in local):
        return None
    hops = route.split("/")
    if not all(_QWK_ID.fullmatch(hop) for hop in hops):
        return None
    return "/".join(h.upper() for h in hops), user.strip()


def is_local_domain(address: Address, domains: frozenset[str], local_ips: frozenset[str]) -> bool:
    """True when ``address`` is for this system: no domain, one of
    ``domains`` (lower case), or a literal of one of ``local_ips``."""
    if not address.domain:
        return True
    literal = address.literal
    if literal is not None:
        return literal in local_ips
    return address.domain in domains
