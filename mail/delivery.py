"""Local recipients: from an address's local part to a BBS mailbox.

The rules of the Synchronet Mail Server page, in order:

1. ``ctrl/alias.cfg`` (``ALIAS  TARGET`` lines) maps the name first; a
   target may be a user, a special prefix or an Internet address (a forced
   relay the sysop configured);
2. special prefixes: ``local:<user>`` (never forwarded), ``forward:<user>``
   (to the user's e-mail address), ``sub:<code>`` (posted to that message
   sub; an unknown code raises :class:`UnknownSub`); ``<qwk-id>!<user>``
   (queued as ``qwk:<user>@<route>`` when the first hop is listed in
   ``ctrl/qwknodes.cfg``);
3. ``name#tag``: the tag is refused when listed in the user's
   ``data/user/NNNN.smtptags`` file;
4. ``sysop``/``postmaster``/the operator's name/the QWK id with
   ``ALLOW_SYSOP_ALIASES`` reach the sysop (user 1);
5. a number with ``ALLOW_RX_BY_NUMBER``; otherwise an alias or real name
   (``first.last`` and ``first_last`` match "First Last");
6. ``DefaultUser`` takes mail for unknown names.

Users whose settings say ``forward_email`` (and who have an e-mail address)
get their mail forwarded unless ``local:`` was used. ``MaxMsgsWaiting`` is
checked here (users exempt with flag ``W`` are not limited).

Failures are ``BBSError``: ``NOT_FOUND`` (no such user), ``LIMIT`` (mailbox
full), ``ACCESS_DENIED`` (prefix not supported / refused tag).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import re
from pathlib import Path
from typing import Callable

from bbs.errors import BBSError, Reason
from bbs.mailbox import MailStore
from bbs.users import FORWARD_SETTING, User, UserBase
from bbs.filters import FilterList
from mail.address import parse_address, split_bang_path, split_prefix, split_tag

log = logging.getLogger(__name__)

#: How many alias.cfg hops are followed before giving up (a loop guard).
MAX_ALIAS_DEPTH = 4
#: Names that reach the sysop with ALLOW_SYSOP_ALIASES (Synchronet mailsrvr.c).
SYSOP_ALIASES = frozenset({"sysop", "postmaster"})
#: The exemption flag that lifts MaxMsgsWaiting (Synchronet ``W``).
EXEMPT_MSGS_WAITING = "W"

#: Queue recipient prefixes of messages that wait for a network hub, not for
#: SendMail (no QWK packet nor FTN packet transport yet).
QWK_PREFIX = "qwk:"
FIDONET_PREFIX = "fidonet:"
NETWORK_PREFIXES = (QWK_PREFIX, FIDONET_PREFIX)

_NUMBER = re.compile(r"#?[0-9]+")


def is_network_recipient(recipient: str) -> bool:
    """True for queued ``qwk:``/``fidonet:`` recipients (SendMail skips them)."""
    return recipient.lower().startswith(NETWORK_PREFIXES)


class UnknownSub(BBSError):
    """``sub:<code>`` names no message sub (reason ``NOT_FOUND``)."""

    def __init__(self, code: str) -> None:
        super().__init__(Reason.NOT_FOUND, f"no message sub {code!r}")
        self.code = code


@dataclasses.dataclass(frozen=True)
class Target:
    """Where one accepted recipient goes.

    ``user`` is set for a mailbox delivery; ``forward`` is an Internet
    address for queued delivery (forwarding, aliases to outside addresses,
    relaying). ``name`` is what the client gave.
    """

    name: str
    user: User | None = None
    forward: str = ""
    #: Message sub code for ``sub:`` recipients (the body is posted there).
    sub: str = ""
    #: Queued network recipient (``qwk:user@ROUTE``, ``fidonet:name@z:n/f``).
    network: str = ""


class AliasTable:
    """``ctrl/alias.cfg``: ``ALIAS  TARGET`` lines, ``;`` comments, re-read when changed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sig: tuple | None = None
        self._map: dict[str, str] = {}

    def _reload(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._sig, self._map = None, {}
            return
        sig = (st.st_ino, st.st_size, st.st_mtime_ns)
        if sig == self._sig:
            return
        mapping: dict[str, str] = {}
        text = self.path.read_text(encoding="utf-8", errors="replace")
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith(";"):
                continue
            parts = line.split(None, 1)
            if len(parts) == 2:
                mapping.setdefault(parts[0].lower(), parts[1].strip())
        self._sig, self._map = sig, mapping

    def lookup(self, name: str) -> str | None:
        """The target of alias ``name`` (case-insensitive), or None."""
        try:
            self._reload()
        except OSError as exc:
            log.error("cannot read %s: %s", self.path, exc)
        return self._map.get(name.lower())


class Resolver:
    """Resolves local parts to :class:`Target`; one per mail server."""

    def __init__(self, *, users: UserBase, store: MailStore, aliases: AliasTable,
                 options: frozenset[str], default_user: str, max_msgs_waiting: int,
                 sysop_names: frozenset[str], user_dir: Path,
                 sub_exists: Callable[[str], bool] | None = None,
                 qwk_nodes: FilterList | None = None, fidonet_address: str = "") -> None:
        self.users = users
        self.store = store
        self.aliases = aliases
        self.options = options
        self.default_user = default_user
        self.max_msgs_waiting = max_msgs_waiting
        self.sysop_names = frozenset(n.lower() for n in sysop_names) | SYSOP_ALIASES
        self.user_dir = user_dir
        self.sub_exists = sub_exists
        self.qwk_nodes = qwk_nodes
        self.fidonet_address = fidonet_address

    def qwk_target(self, given: str, local: str) -> Target | None:
        """A ``<qwk-id>!<user>`` local part whose first hop is a configured
        QWK node (``ctrl/qwknodes.cfg``) -> a queued ``qwk:`` Target; None
        for any other local part (the caller treats it as a relay attempt)."""
        split = split_bang_path(local)
        if split is None or self.qwk_nodes is None:
            return None
        route, user = split
        self.qwk_nodes.reload_if_changed()
        first = route.split("/")[0]
        if not any(e.pattern.upper() == first for e in self.qwk_nodes.entries if not e.negate):
            return None
        return Target(given, network=f"{QWK_PREFIX}{user}@{route}")

    def fidonet_target(self, given: str, name: str, node: str) -> Target:
        """Netmail to ``name`` at FTN address ``node``: a queued ``fidonet:``
        Target. Raises ``NOT_FOUND`` when no FidoNetAddress is configured."""
        if not self.fidonet_address:
            raise BBSError(Reason.NOT_FOUND, "FidoNet netmail needs [Mail] FidoNetAddress")
        ftn_name = " ".join(name.replace(".", " ").replace("_", " ").split())
        if not ftn_name:
            raise BBSError(Reason.NOT_FOUND, "empty netmail name")
        return Target(given, network=f"{FIDONET_PREFIX}{ftn_name}@{node}")

    async def resolve(self, local: str) -> Target:
        """Return the target of local part ``local`` (domain already checked).

        Raises ``BBSError``: ``NOT_FOUND``, ``LIMIT``, ``ACCESS_DENIED``.
        """
        given = local
        forced_local = forced_forward = False
        for _ in range(MAX_ALIAS_DEPTH):
            name, tag = split_tag(local)
            target = self.aliases.lookup(name)
            if target is None:
                break
            log.debug("alias %s -> %s", name, target)
            address = parse_address(target)
            if address is not None and address.domain:
                return Target(given, forward=target)  # forced relay by the sysop's alias
            local = target
        qwk = self.qwk_target(given, local)
        if qwk is not None:
            return qwk
        prefix, rest = split_prefix(local)
        if prefix == "sub:":
            if not rest or self.sub_exists is None or not self.sub_exists(rest):
                raise UnknownSub(rest)
            return Target(given, sub=rest)
        if prefix:
            forced_local, forced_forward = prefix == "local:", prefix == "forward:"
            local = rest
        name, tag = split_tag(local)
        user = await self._find(name)
        if tag and self._tag_refused(user.number, tag):
            raise BBSError(Reason.NOT_FOUND, f"tag {tag!r} refused by user #{user.number}")
        wants_forward = forced_forward or (not forced_local and user.settings.get(FORWARD_SETTING))
        if wants_forward:
            if "@" in user.email:
                return Target(given, user=user, forward=user.email)
            if forced_forward:
                raise BBSError(Reason.NOT_FOUND, f"user #{user.number} has no forwarding address")
        await self._check_room(user)
        return Target(given, user=user)

    async def _find(self, name: str) -> User:
        name = name.strip()
        if not name:
            raise BBSError(Reason.NOT_FOUND, "empty name")
        if "ALLOW_SYSOP_ALIASES" in self.options and name.lower() in self.sysop_names:
            return await self.users.get(1)
        if _NUMBER.fullmatch(name):
            if "ALLOW_RX_BY_NUMBER" not in self.options:
                return await self._default(name)
            try:
                return await self.users.find(name)
            except BBSError:
                return await self._default(name)
        for candidate in dict.fromkeys((name, name.replace(".", " "), name.replace("_", " "))):
            try:
                return await self.users.find(candidate)
            except BBSError as exc:
                if exc.reason is not Reason.NOT_FOUND:
                    raise
        return await self._default(name)

    async def _default(self, name: str) -> User:
        if self.default_user:
            try:
                user = await self.users.find(self.default_user)
            except BBSError:
                log.warning("DefaultUser %r does not exist", self.default_user)
            else:
                log.info("unknown recipient %r delivered to DefaultUser %s", name, user.alias)
                return user
        raise BBSError(Reason.NOT_FOUND, f"no user {name!r}")

    def _tag_refused(self, number: int, tag: str) -> bool:
        path = self.user_dir / f"{number:04d}.smtptags"
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.error("cannot read %s: %s", path, exc)
            return False
        wanted = tag.strip().lower()
        return any(line.strip().lower() == wanted for line in lines
                   if line.strip() and not line.lstrip().startswith(";"))

    async def _check_room(self, user: User) -> None:
        if not self.max_msgs_waiting or EXEMPT_MSGS_WAITING in user.exempt:
            return
        waiting = await self.store.count(user.number)
        if waiting >= self.max_msgs_waiting:
            raise BBSError(Reason.LIMIT, f"{user.alias} has {waiting} messages waiting "
                           f"(MaxMsgsWaiting {self.max_msgs_waiting})")
