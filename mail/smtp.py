"""The SMTP, Submission and SMTPS servers: aiosmtpd protocols in our loop.

One :class:`SMTPSession` (an aiosmtpd ``SMTP`` protocol) and one
:class:`SMTPHandler` per connection; :class:`SMTPService` holds what they
share and builds them for the listener manager. The aiosmtpd traps of
STYLE.md are avoided by construction:

* no ``authenticator`` callback: the handler implements ``auth_PLAIN``,
  ``auth_LOGIN`` and ``auth_CRAM__MD5`` as ``async`` methods (aiosmtpd awaits
  handler auth methods), so password checks run off the loop and a wrong
  password is really refused;
* failures return ``AuthResult(success=False, handled=False)`` so aiosmtpd
  sends the 535 reply;
* implicit TLS (SMTPS) passes ``auth_require_tls=False`` (aiosmtpd cannot see
  TLS it did not start), and no STARTTLS is offered there.

Besides MAIL, a transaction may start with RFC 821's SEND, SAML or SOML
(section 3.4; aiosmtpd knows only MAIL): the message is then delivered as a
telegram to each BBS user named in RCPT TO (SEND: telegram only; SAML:
telegram and mailbox; SOML: telegram when the user is on a node, else
mailbox). Recipients may also be ``sub:<code>`` (the text body is posted to
that message sub), ``<qwk-id>!<user>`` and FidoNet netmail
(``name@f<node>.n<net>.z<zone>.fidonet``), both queued for their network hub.

Every core error becomes a reply in :func:`reply_for` (one place).
Synchronet replies and log lines are kept where the FAQ quotes them
(``550 Relay not allowed.``, ``SMTP ILLEGAL RELAY ATTEMPT from ...``).
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import email.parser
import email.policy
import email.utils
import functools
import hashlib
import inspect
import logging
import re
import secrets
import time
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, Session, syntax

from bbs.errors import BBSError, Reason
from bbs.mailbox import Accepted, header_block
from bbs.telegrams import MAX_TELEGRAM
from bbs.users import User
from mail.address import FIDONET_SUFFIX, Address, is_local_domain, parse_address, parse_fidonet, parse_path
from mail.delivery import Target, UnknownSub
from mail.processors import Action
from mail.smtpdata import DataCollector, read_data
from mail.spam import Listing

log = logging.getLogger(__name__)

# Replies (named so tests and the mapping share them).
RELAY_DENIED = "550 Relay not allowed."
RELAY_NEEDS_AUTH = ("553 Relaying through this server requires authentication. "
                    "Please authenticate before sending.")
UNKNOWN_USER = "550 Unknown User: {name}"
MAILBOX_FULL = "452 4.2.2 Mailbox full: {name}"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
MALFORMED_ADDRESS = "553 5.1.3 Malformed address"
SENDER_REFUSED = "554 Sender not allowed."
SUBJECT_REFUSED = "554 Subject not allowed."
ACCESS_DENIED = "550 Access denied."
DNSBL_REFUSED = "550 Mail from {ip} refused due to listing at {zone}"
NOT_AVAILABLE = "550 Mailbox unavailable: {name}"
STORAGE_FAILED = "451 4.3.0 Local error in processing; try again later"
AUTH_OK = "235 2.7.0 Authentication successful"
AUTH_BANNED = "421 4.7.0 Too many failed logins; closing connection"
UNKNOWN_SUB = "550 Unknown message sub: {code}"
NOT_A_USER = "550 {name} is not a BBS user (SEND, SAML and SOML reach users only)"
NOT_POSTED = "554 5.6.0 Message not posted: {why}"
#: A ctrl/mailproc.cfg processor exited 2; ``reason`` is its stderr's first line.
PROCESSOR_REJECTED = "554 5.7.1 {reason}"
OK = "250 OK"
CRLF = "\r\n"

#: RFC 821 section 3.4: the transaction verbs besides MAIL and what they do.
MODE_MAIL, MODE_SEND, MODE_SAML, MODE_SOML = "MAIL", "SEND", "SAML", "SOML"
#: Subject of a post to a sub from mail without one (Synchronet LEN_TITLE applies).
NO_SUBJECT = "(no subject)"

#: RFC 5321 section 4.5.3.2.7: server timeout for the client's next command is
#: at least 5 minutes; MaxInactivity 0 ("no limit") becomes this.
NO_LIMIT_TIMEOUT = 24 * 60 * 60.0
#: DNSBL_THROTTLE: Synchronet slows blacklisted servers to a line a second.
THROTTLE_DELAY = 1.0
#: RFC 5321 section 4.5.3.1.4: command line length (incl. CRLF) for a client
#: that did not say EHLO; aiosmtpd adds its extension allowances per session.
COMMAND_LINE_LIMIT = 512


def reply_for(exc: BBSError, name: str) -> str:
    """The SMTP reply for a core error about recipient ``name`` (one place)."""
    if isinstance(exc, UnknownSub):
        return UNKNOWN_SUB.format(code=exc.code or "(none)")
    if exc.reason is Reason.NOT_FOUND:
        return UNKNOWN_USER.format(name=name)
    if exc.reason is Reason.LIMIT:
        return MAILBOX_FULL.format(name=name)
    if exc.reason in (Reason.ACCESS_DENIED, Reason.FILTERED, Reason.BANNED):
        return NOT_AVAILABLE.format(name=name)
    return STORAGE_FAILED


#: Name prefixes of the methods aiosmtpd's ``SMTP.__init__`` looks up on the
#: protocol and the handler (commands, AUTH mechanisms, hooks).
_AIOSMTPD_PREFIXES = ("smtp_", "auth_", "handle_")


@functools.cache
def _aiosmtpd_names(cls: type) -> list[str]:
    """The ``smtp_``/``auth_``/``handle_`` attribute names of ``cls`` (once per class)."""
    return [name for name in dir(cls) if name.startswith(_AIOSMTPD_PREFIXES)]


class _ScannedOnce:
    """aiosmtpd 1.4.6's ``SMTP.__init__`` finds commands, AUTH mechanisms and
    hooks with ``inspect.getmembers``/``dir`` on the protocol and the handler
    for every connection, fetching every attribute (about half a millisecond
    a connection, the largest single cost of a short SMTP session). ``dir``
    of these objects lists only the names it looks for, computed once per
    class; everything else about the objects is unchanged."""

    def __dir__(self) -> list[str]:
        return _aiosmtpd_names(type(self))


class BBSEnvelope(Envelope):
    """aiosmtpd's envelope plus where each accepted recipient goes."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[Target] = []
        #: MODE_MAIL, or MODE_SEND/SAML/SOML when the transaction began so.
        self.mode = MODE_MAIL


class SMTPSession(_ScannedOnce, SMTP):
    """aiosmtpd's SMTP protocol with our address parser and a pre-greeting check."""

    def __init__(self, handler: "SMTPHandler", **kwargs: Any) -> None:
        # aiosmtpd keeps this dict on the class and grows MAIL's limit on every
        # EHLO of every session: give each session its own.
        self.command_size_limits = collections.defaultdict(lambda: COMMAND_LINE_LIMIT)
        super().__init__(handler, **kwargs)
        self.bbs_handler = handler
        #: The verb of the MAIL-like command being handled (read by handle_MAIL).
        self.pending_mode = MODE_MAIL

    async def _mail_as(self, mode: str, arg: str | None) -> None:
        """SEND/SAML/SOML: MAIL FROM's checks and hook, with the envelope's mode set."""
        self.pending_mode = mode
        try:
            await self.smtp_MAIL(arg)
        finally:
            self.pending_mode = MODE_MAIL

    @syntax("SEND FROM: <address>")
    async def smtp_SEND(self, arg: str | None) -> None:
        """RFC 821 SEND: deliver to the users' terminals (telegram) only."""
        await self._mail_as(MODE_SEND, arg)

    @syntax("SAML FROM: <address>")
    async def smtp_SAML(self, arg: str | None) -> None:
        """RFC 821 SAML: send (telegram) and mail (mailbox)."""
        await self._mail_as(MODE_SAML, arg)

    @syntax("SOML FROM: <address>")
    async def smtp_SOML(self, arg: str | None) -> None:
        """RFC 821 SOML: telegram when the user is on a node, else mailbox."""
        await self._mail_as(MODE_SOML, arg)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA with the text read in chunks (:mod:`mail.smtpdata`):
        the same checks, replies and hook, a fraction of the time per message."""
        if self._decode_data:  # not used by our servers; aiosmtpd's own handles it
            await super().smtp_DATA(arg)
            return
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        collector = DataCollector(self.data_size_limit, self.line_length_limit)
        try:
            await read_data(self._reader, collector)
        except asyncio.CancelledError:
            log.info("Connection lost during DATA")  # as aiosmtpd: nothing is stored
            self._writer.close()
            raise
        except asyncio.IncompleteReadError:
            return  # the client closed the connection mid-DATA: nothing is stored
        if collector.refusal:
            await self.push(collector.refusal)
            self._set_post_data_state()
            return
        content = collector.content()
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push(OK if status is MISSING else status)

    def _create_envelope(self) -> Envelope:
        return BBSEnvelope()

    def _getaddr(self, arg: str):
        address, rest = parse_path(arg)
        return address, rest

    async def _handle_client(self) -> None:
        refusal = await self.bbs_handler.greeting_check(self)
        if refusal:
            await self.push(refusal)
            if self.transport is not None:
                self.transport.close()
            return
        await super()._handle_client()


class SMTPHandler(_ScannedOnce):
    """aiosmtpd hooks for one connection (see :class:`SMTPService`)."""

    def __init__(self, service: "SMTPService", conn: Any) -> None:
        self.service = service
        self.conn = conn
        self.user: User | None = None
        self.listing: Listing | None = None
        #: Commands delayed so far by DNSBL_THROTTLE.
        self.throttled = 0
        self.log = logging.LoggerAdapter(log, {"tag": "mail"})
        self.prefix = f"SMTP {conn.service} {conn.address}"

    # -- connection ---------------------------------------------------------

    async def greeting_check(self, server: SMTPSession) -> str | None:
        """Before the 220 banner: spamblock.cfg and DNSBL look-ups.

        Returns a refusal reply (the session then ends) or None.
        """
        svc, conn = self.service, self.conn
        blocked = svc.spam.blocked(conn.address, conn.host)
        if blocked is not None:
            self.log.warning("%s !SMTP SPAM BLOCKED SERVER %s (spamblock.cfg %s)", self.prefix,
                             conn.address, blocked)
            await svc.spam.log_spam("BLOCKED", f"spamblock.cfg: {blocked}", host=conn.host,
                                    address=conn.address)
            return ACCESS_DENIED
        zones = svc.spam.zones()
        if not zones or svc.spam.exempt(conn.address, conn.host):
            return None
        listing = await svc.spam.lookup(conn.address, zones)
        if listing is None:
            return None
        self.listing = listing
        self.log.log(25, "%s SMTP BLACKLISTED SERVER on %s: %s [%s] = %s", self.prefix,
                     listing.zone, conn.host or conn.address, conn.address, listing.result)
        action = "REFUSED" if "DNSBL_REFUSE" in svc.options else "TAGGED"
        await svc.spam.log_spam(action, f"listed on {listing.zone} as {listing.result}",
                                host=conn.host, address=conn.address)
        if "DNSBL_REFUSE" in svc.options:
            return DNSBL_REFUSED.format(ip=conn.address, zone=listing.zone)
        return None

    async def _throttle(self) -> None:
        """DNSBL_THROTTLE: delay MAIL and RCPT of a blacklisted client
        (called first by those hooks; logged at the first delay)."""
        if self.listing is not None and "DNSBL_THROTTLE" in self.service.options:
            if not self.throttled:
                self.log.log(25, "%s SMTP THROTTLING blacklisted server %s (%.1fs per command)",
                             self.prefix, self.conn.address, THROTTLE_DELAY)
            self.throttled += 1
            await asyncio.sleep(THROTTLE_DELAY)

    # -- AUTH (async; see module docstring) ---------------------------------

    async def auth_PLAIN(self, server: SMTPSession, args: list[str]) -> AuthResult:
        """RFC 4616: ``authzid NUL authcid NUL passwd``, inline or after 334."""
        if len(args) == 1:
            blob = await server.challenge_auth("")
            if not isinstance(blob, bytes):
                return AuthResult(success=False, handled=True)
        else:
            try:
                blob = base64.b64decode(args[1], validate=True)
            except (binascii.Error, ValueError):
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            await server.push("501 5.5.2 Can't split auth value")
            return AuthResult(success=False, handled=True)
        return await self._check_password(server, "PLAIN", parts[1], parts[2])

    async def auth_LOGIN(self, server: SMTPSession, args: list[str]) -> AuthResult:
        """The LOGIN mechanism (draft-murchison-sasl-login): user, then password."""
        if len(args) == 1:
            login = await server.challenge_auth(server.AuthLoginUsernameChallenge)
        else:
            try:
                login = base64.b64decode(args[1], validate=True)
            except (binascii.Error, ValueError):
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        if not isinstance(login, bytes):
            return AuthResult(success=False, handled=True)
        password = await server.challenge_auth(server.AuthLoginPasswordChallenge)
        if not isinstance(password, bytes):
            return AuthResult(success=False, handled=True)
        return await self._check_password(server, "LOGIN", login, password)

    async def auth_CRAM__MD5(self, server: SMTPSession, args: list[str]) -> AuthResult:
        """RFC 2195: HMAC-MD5 of a fresh challenge, keyed with the password."""
        if len(args) != 1:
            await server.push("501 5.5.4 CRAM-MD5 takes no initial response")
            return AuthResult(success=False, handled=True)
        challenge = f"<{secrets.randbelow(10**12)}.{int(time.time())}@{self.service.hostname}>"
        blob = await server.challenge_auth(challenge)
        if not isinstance(blob, bytes):
            return AuthResult(success=False, handled=True)
        name, _, digest = blob.decode("utf-8", "replace").rpartition(" ")
        user = await self.service.secrets.check_cram(name, challenge.encode(), digest)
        return await self._finish_auth(server, "CRAM-MD5", name, user)

    async def _check_password(self, server: SMTPSession, mechanism: str, login: bytes,
                              password: bytes) -> AuthResult:
        name = login.decode("utf-8", "replace")
        try:
            user = await self.service.secrets.verify(name, password.decode("utf-8", "replace"))
        except BBSError:
            user = None
        return await self._finish_auth(server, mechanism, name, user)

    async def _finish_auth(self, server: SMTPSession, mechanism: str, name: str,
                           user: User | None) -> AuthResult:
        login = self.service.app.login
        if user is None:
            self.log.warning("%s !SMTP AUTH %s FAILURE for %r", self.prefix, mechanism, name[:64])
            outcome = login.failed(self.conn.address, "smtp", name)
            await asyncio.sleep(outcome.delay)
            if outcome.banned:
                await server.push(AUTH_BANNED)
                if server.transport is not None:
                    server.transport.close()
                return AuthResult(success=False, handled=True)
            return AuthResult(success=False, handled=False)
        login.succeeded(self.conn.address)
        self.user = user
        self.conn.user = user.alias
        self.log.info("%s SMTP %s authenticated as %s (#%d)", self.prefix, mechanism, user.alias,
                      user.number)
        return AuthResult(success=True, auth_data=user, message=AUTH_OK)

    # -- transaction hooks --------------------------------------------------

    async def handle_EHLO(self, server: SMTPSession, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        """The EHLO reply in one write (aiosmtpd writes each line apart: a
        send and a wake-up of the client per extension)."""
        session.host_name = hostname  # what aiosmtpd does when there is no hook
        return [CRLF.join(responses)]

    # aiosmtpd runs inspect.signature() on this hook for every connection (to
    # tell its old and new forms apart); a ready signature makes that cheap.
    handle_EHLO.__signature__ = inspect.signature(handle_EHLO)  # type: ignore[attr-defined]

    async def handle_MAIL(self, server: SMTPSession, session: Session, envelope: Envelope,
                          address: str, options: list[str]) -> str:
        await self._throttle()
        if address == "<>":
            address = ""
        svc = self.service
        svc.email_can.reload_if_changed()
        if address and svc.email_can.match(address) is not None:
            self.log.warning("%s !SMTP BLOCKED SENDER %s (email.can)", self.prefix, address)
            await svc.spam.log_spam("REFUSED", "email.can", host=self.conn.host,
                                    address=self.conn.address, sender=address)
            return SENDER_REFUSED
        if address and parse_address(address) is None:
            return MALFORMED_ADDRESS
        envelope.mail_from = address or "<>"
        envelope.mail_options.extend(options)
        if isinstance(envelope, BBSEnvelope):
            envelope.mode = server.pending_mode
        if self.listing is not None and svc.spam.exempt(sender=address):
            self.log.info("%s sender %s is DNSBL-exempt", self.prefix, address)
            self.listing = None
        return OK

    async def handle_RCPT(self, server: SMTPSession, session: Session, envelope: Envelope,
                          address: str, options: list[str]) -> str:
        await self._throttle()
        svc, conn = self.service, self.conn
        assert isinstance(envelope, BBSEnvelope)
        if svc.max_recipients and len(envelope.rcpt_tos) >= svc.max_recipients:
            self.log.warning("%s !SMTP MAXIMUM RECIPIENTS (%d) REACHED", self.prefix, svc.max_recipients)
            return TOO_MANY_RECIPIENTS
        parsed = parse_address(address)
        if parsed is None:
            return MALFORMED_ADDRESS
        if svc.spam.is_bait(address):
            self.log.warning("%s !SMTP SPAM BAIT %s taken by %s: blocking it", self.prefix, address,
                             conn.address)
            await svc.spam.block(conn.address, address, conn.host)
            await svc.spam.log_spam("BLOCKED", f"Spam bait: {address}", host=conn.host,
                                    address=conn.address, sender=envelope.mail_from or "",
                                    recipient=address)
            return UNKNOWN_USER.format(name=address)
        if self.listing is not None and "DNSBL_BADUSER" in svc.options:
            self.log.log(25, "%s !SMTP REFUSED recipient %s from blacklisted server", self.prefix,
                         address)
            return UNKNOWN_USER.format(name=address)
        local = is_local_domain(parsed, svc.domains, frozenset({conn.local_address}))
        try:
            if parsed.domain.endswith(FIDONET_SUFFIX) and not parsed.routed and not parsed.quoted \
                    and (node := parse_fidonet(parsed.domain)) is not None:
                target = svc.resolver.fidonet_target(address, parsed.local, node)
            elif local and parsed.routed and not parsed.quoted \
                    and (qwk := svc.resolver.qwk_target(address, parsed.local)) is not None:
                target = qwk
            elif not local or parsed.routed:
                return await self._remote(envelope, parsed, local)
            else:
                target = await svc.resolver.resolve(parsed.local)
        except BBSError as exc:
            self.log.info("%s !SMTP recipient %s refused: %s", self.prefix, address, exc)
            return reply_for(exc, parsed.local if local else address)
        if envelope.mode != MODE_MAIL and target.user is None:
            return NOT_A_USER.format(name=address)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        envelope.targets.append(target)
        if target.sub:
            self.log.info("%s SMTP RCPT %s -> message sub %s", self.prefix, address, target.sub)
        elif target.network:
            self.log.info("%s SMTP RCPT %s -> network mail %s", self.prefix, address, target.network)
        elif target.user is not None and not target.forward:
            self.log.info("%s SMTP RCPT %s -> user #%d %s", self.prefix, address, target.user.number,
                          target.user.alias)
        else:
            self.log.info("%s SMTP RCPT %s forwarded to %s", self.prefix, address, target.forward)
        return OK

    async def _remote(self, envelope: BBSEnvelope, parsed: Address, local_domain: bool) -> str:
        """A non-local recipient, or a local-looking one that routes elsewhere."""
        svc, conn = self.service, self.conn
        allowed, who = svc.relay.permitted(conn.address, conn.host, self.user)
        if allowed and not parsed.routed:
            envelope.rcpt_tos.append(parsed.text)
            envelope.targets.append(Target(parsed.text, forward=parsed.text))
            self.log.info("%s SMTP %s relaying to external mail service: %s", self.prefix, who,
                          parsed.domain)
            return OK
        if allowed:  # e.g. user%host@bbs from a relay client: not a form we route
            return UNKNOWN_USER.format(name=parsed.text)
        sender = envelope.mail_from or "<>"
        self.log.warning("!SMTP ILLEGAL RELAY ATTEMPT from <%s> [%s] to <%s>",
                         sender.strip("<>"), conn.address, parsed.text)
        await svc.spam.log_spam("REFUSED", f"Relay attempt to: {parsed.text}", host=conn.host,
                                address=conn.address, sender=sender, recipient=parsed.text)
        return RELAY_NEEDS_AUTH if svc.relay.auth_relays and self.user is None else RELAY_DENIED

    async def handle_DATA(self, server: SMTPSession, session: Session, envelope: Envelope) -> str:
        svc, conn = self.service, self.conn
        assert isinstance(envelope, BBSEnvelope)
        raw = envelope.original_content or b""
        headers = _HEADERS.parsebytes(header_block(raw))
        subject = str(headers.get("Subject", "") or "")
        self._debug_rx(raw)
        svc.subject_can.reload_if_changed()
        if subject and svc.subject_can.match(subject) is not None:
            self.log.warning("%s !SMTP BLOCKED SUBJECT %r (subject.can)", self.prefix, subject[:80])
            await svc.spam.log_spam("REFUSED", f"subject.can: {subject[:80]}", host=conn.host,
                                    address=conn.address, sender=envelope.mail_from or "")
            return SUBJECT_REFUSED
        listing = self.listing
        if listing is None and "DNSBL_CHKRECVHDRS" in svc.options:
            listing = await self._check_received(headers)
        spam = listing is not None
        if spam and "DNSBL_SPAMHASH" in svc.options:
            await svc.spam.store_hash(hashlib.sha256(_body(raw)).hexdigest())
        if spam and "DNSBL_IGNORE" in svc.options:
            self.log.log(25, "%s SMTP IGNORED message from blacklisted server (%d bytes)", self.prefix,
                         len(raw))
            return OK
        sender = "" if envelope.mail_from in (None, "<>") else envelope.mail_from
        raw = self._trace(raw, session, sender, envelope, listing, subject)
        verdict = await svc.processors.run(raw, sender, list(envelope.rcpt_tos), conn.address,
                                           self.log, self.prefix)
        if verdict.action is Action.REJECT:
            await svc.spam.log_spam("REFUSED", f"mail processor {verdict.command}: {verdict.reason}",
                                    host=conn.host, address=conn.address, sender=sender)
            return PROCESSOR_REJECTED.format(reason=verdict.reason)
        raw = verdict.raw
        if verdict.action is Action.SPAM and not spam:
            spam = True
            await svc.spam.log_spam("TAGGED", "mail processor", host=conn.host, address=conn.address,
                                    sender=sender)
        if envelope.mode != MODE_MAIL:
            return await self._instant(envelope, raw, sender, spam)
        return await self._store(envelope, envelope.targets, raw, sender, spam)

    async def _store(self, envelope: BBSEnvelope, targets: list[Target], raw: bytes, sender: str,
                     spam: bool, notify: bool = True) -> str:
        """Mailboxes, outbound queue, network queue and subs for ``targets``."""
        svc = self.service
        users = list(dict.fromkeys(t.user.number for t in targets
                                   if t.user is not None and not t.forward))
        remote = list(dict.fromkeys(t.forward for t in targets if t.forward))
        network = list(dict.fromkeys(t.network for t in targets if t.network))
        subs = list(dict.fromkeys(t.sub.upper() for t in targets if t.sub))
        from_user = self.user.number if self.user else 0
        stored = Accepted([])
        try:
            if users or remote or network:
                # One transaction for every mailbox and queue row (all or nothing).
                stored = await svc.store.accept(raw, sender=sender, users=users, remote=remote,
                                                network=network, recipient=", ".join(envelope.rcpt_tos),
                                                spam=spam, from_user=from_user)
        except BBSError as exc:
            self.log.error("%s !SMTP cannot store message: %s", self.prefix, exc)
            return STORAGE_FAILED
        if stored.queued is not None:
            svc.queued(str(stored.queued), sender, remote)
        if stored.network is not None:
            self.log.log(25, "%s SMTP queued #%d for %s: waits for a QWK/FidoNet hub "
                         "(no packet transport)", self.prefix, stored.network, ", ".join(network))
        self.log.info("%s SMTP received %d bytes from <%s>: %d mailbox(es), %d queued", self.prefix,
                      len(raw), sender, len(stored.ids), len(remote) + len(network))
        if subs:
            refusal = await self._post(subs, raw, sender, spam)
            if refusal and not (users or remote or network):
                return refusal
        if notify and "NO_NOTIFY" not in svc.options and not spam:
            await self._notify(envelope, sender)
        return OK

    async def _post(self, subs: list[str], raw: bytes, sender: str, spam: bool) -> str | None:
        """Post the text body to each sub (``sub:`` recipients); a reply on failure."""
        if spam:
            self.log.warning("%s !SMTP spam not posted to %s", self.prefix, ", ".join(subs))
            return None
        from_name, subject, body = _post_parts(raw, sender)
        refusal = None
        for code in subs:
            try:
                message = await self.service.app.msgs.post(
                    code, from_name, subject, body, from_number=self.user.number if self.user else 0)
            except BBSError as exc:
                self.log.error("%s !SMTP cannot post to sub %s: %s", self.prefix, code, exc)
                refusal = (NOT_POSTED.format(why=exc) if exc.reason is Reason.BAD_VALUE
                           else STORAGE_FAILED)
                continue
            self.log.info("%s SMTP posted message from %s to sub %s as #%d", self.prefix, from_name,
                          code, message.number)
        return refusal

    async def _instant(self, envelope: BBSEnvelope, raw: bytes, sender: str, spam: bool) -> str:
        """SEND/SAML/SOML after DATA: telegrams, and mailboxes per the verb."""
        svc = self.service
        online = {r.user_number for r in svc.app.nodes.in_use()}
        _, _, text = _post_parts(raw, sender)
        header = f"Instant message from {sender or 'unknown'}:\r\n"
        text = (header + text.strip())[:MAX_TELEGRAM]
        to_mailbox: list[Target] = []
        seen: set[int] = set()
        for target in envelope.targets:
            user = target.user
            if user is None or user.number in seen:
                continue
            seen.add(user.number)
            telegram = envelope.mode in (MODE_SEND, MODE_SAML) or user.number in online
            if envelope.mode == MODE_SAML or not telegram:
                to_mailbox.append(target)
            if telegram:
                try:
                    await svc.app.telegrams.send(user.number, user.alias, sender or "unknown", text)
                except BBSError as exc:
                    self.log.error("%s !SMTP %s telegram to %s failed: %s", self.prefix, envelope.mode,
                                   user.alias, exc)
                    return STORAGE_FAILED
                self.log.info("%s SMTP %s telegram from <%s> to %s", self.prefix, envelope.mode, sender,
                              user.alias)
        if to_mailbox:
            return await self._store(envelope, to_mailbox, raw, sender, spam, notify=False)
        return OK

    def _debug_rx(self, raw: bytes) -> None:
        """[Mail] DEBUG_RX_HEADER / DEBUG_RX_BODY: log the received message (debug level)."""
        options = self.service.options
        if not ({"DEBUG_RX_HEADER", "DEBUG_RX_BODY"} & options):
            return
        head, _, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
        if "DEBUG_RX_HEADER" in options:
            for line in head.decode("utf-8", "replace").split("\n"):
                self.log.debug("%s RX header: %s", self.prefix, line)
        if "DEBUG_RX_BODY" in options:
            for line in body.decode("utf-8", "replace").split("\n"):
                self.log.debug("%s RX body: %s", self.prefix, line)

    async def _notify(self, envelope: BBSEnvelope, sender: str) -> None:
        """NewMailNotice telegram to each local recipient (Synchronet; off with NO_NOTIFY)."""
        notice = self.service.cfg.new_mail_notice.replace("%s", sender or "unknown", 1)
        seen: set[int] = set()
        for target in envelope.targets:
            user = target.user
            if user is None or target.forward or user.number in seen:
                continue
            seen.add(user.number)
            try:
                await self.service.app.telegrams.send(user.number, user.alias, "Mail Server", notice)
            except BBSError as exc:
                self.log.warning("%s cannot send the new-mail notice to %s: %s", self.prefix, user.alias, exc)

    async def _check_received(self, headers) -> Listing | None:
        for value in headers.get_all("Received", []) or []:
            for ip in _RECEIVED_IP.findall(str(value)):
                if self.service.spam.exempt(ip):
                    continue
                listing = await self.service.spam.lookup(ip)
                if listing is not None:
                    self.log.log(25, "%s SMTP BLACKLISTED SERVER in Received header on %s: [%s] = %s",
                                 self.prefix, listing.zone, ip, listing.result)
                    return listing
        return None

    def _trace(self, raw: bytes, session: Session, sender: str, envelope: BBSEnvelope,
               listing: Listing | None, subject: str) -> bytes:
        """Prepend Return-Path and Received (RFC 5321 section 4.4); tag spam."""
        svc, conn = self.service, self.conn
        proto = "ESMTP" if session.extended_smtp else "SMTP"
        if conn.secure or session.ssl is not None:
            proto += "S"
        if self.user is not None:
            proto += "A"
        helo = _clean(session.host_name or "unknown")
        for_part = f"\r\n\tfor <{_clean(envelope.rcpt_tos[0])}>" if len(envelope.rcpt_tos) == 1 else ""
        received = (f"Received: from {helo} ({_clean(conn.host or conn.address)} [{conn.address}])\r\n"
                    f"\tby {svc.hostname} (pybbs) with {proto}{for_part};\r\n"
                    f"\t{email.utils.formatdate(localtime=True)}\r\n")
        head = f"Return-Path: <{_clean(sender)}>\r\n{received}"
        if listing is not None:
            if svc.dnsbl_header:
                head += f"{svc.dnsbl_header}: {listing.zone}: {listing.address} = {listing.result}\r\n"
            if svc.dnsbl_subject:
                raw = _tag_subject(raw, svc.dnsbl_subject, subject)
        return head.encode("utf-8", "replace") + raw


_HEADERS = email.parser.BytesHeaderParser(policy=email.policy.compat32)
_RECEIVED_IP = re.compile(r"\[(\d{1,3}(?:\.\d{1,3}){3})\]")


def _clean(text: str) -> str:
    return "".join(c for c in text if " " < c <= "~" and c not in "<>")[:200]


_MESSAGE = email.parser.BytesParser(policy=email.policy.default)


def _post_parts(raw: bytes, sender: str) -> tuple[str, str, str]:
    """(from name, subject, text body) of a message posted to a sub or sent
    as a telegram: the From display name (else its address, else
    ``sender``), the decoded Subject and the decoded text/plain part."""
    try:
        message = _MESSAGE.parsebytes(raw)
        name, address = email.utils.parseaddr(str(message.get("From", "") or ""))
        subject = " ".join(str(message.get("Subject", "") or "").split())
        part = message.get_body(preferencelist=("plain",))
        body = part.get_content() if part is not None else ""
    except Exception:  # malformed MIME: fall back to the raw text
        name = address = subject = ""
        body = _body(raw).decode("utf-8", "replace")
    if not isinstance(body, str):
        body = ""
    return (name.strip() or address or sender or "unknown"), (subject or NO_SUBJECT), body


def _body(raw: bytes) -> bytes:
    """What follows the header section of ``raw`` (nothing when it has no end)."""
    return raw[len(header_block(raw)):]


def _tag_subject(raw: bytes, tag: str, subject: str) -> bytes:
    """Prefix the Subject with ``tag`` (DNSBlacklistSubject), adding one if absent."""
    tagged = f"{tag}: {subject}".encode("utf-8", "replace") if subject else tag.encode()
    match = re.search(rb"(?im)^Subject:[^\r\n]*(\r?\n[ \t][^\r\n]*)*", header_block(raw))
    if match:
        return raw[:match.start()] + b"Subject: " + tagged + raw[match.end():]
    return b"Subject: " + tagged + b"\r\n" + raw

