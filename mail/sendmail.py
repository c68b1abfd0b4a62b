"""SendMail: delivers the outbound queue (``data/mail.db``) to the Internet.

The Synchronet Mail Server's SendMail thread, as an asyncio task of the Mail
Server (:func:`create_sendmail`; off with ``NO_SENDMAIL``). Specification:
the Synchronet TCP/IP FAQ "Send Mail" and the Mail Server page "SendMail".

* **Direct delivery**: MX look-up (:mod:`mail.mx`, ``DNSServer``,
  ``USE_TCP_DNS``), exchangers in preference order, each address in turn,
  to ``[Mail] DeliveryPort`` (25), from ``OutboundInterface``, each connect
  within ``ConnectTimeout``.
* **Relay** (``RELAY_TX``): every message goes to ``RelayServer:RelayPort``,
  authenticating with ``RELAY_AUTH_PLAIN``/``LOGIN``/``CRAM_MD5`` and
  ``RelayUsername``/``RelayPassword``.
* Opportunistic STARTTLS (RFC 3207/7435): used whenever offered; when the
  handshake fails the same host is tried again in clear text.
* A 4xx reply, a dropped connection or a DNS time-out defers the recipients:
  the next try is ``RetryDelay`` after the attempt, doubling each time, never
  more than ``RescanFrequency``; after ``MaxDeliveryAttempts`` (0 = no limit)
  they bounce. A 5xx reply bounces at once, quoting the peer. Bounces
  (:mod:`mail.dsn`) go to the sending user's BBS mailbox (``from_user``) or,
  queued, to the sender's address; ``<>`` senders are never bounced.
* **In transit** exactly as the FAQ says: a message is claimed
  (``in_transit``) by one worker for its attempt; one left claimed by a
  crash is logged ``SEND Message #N from ... to ... - in transit`` at each
  full scan and not sent again unless ``SEND_INTRANSIT`` (or until ``bbs mail
  clear-transit`` / :meth:`bbs.mailbox.MailStore.clear_in_transit`). A clean
  shutdown releases the claims of interrupted attempts.
* Scans: at start (mail waiting since the last run goes at once), every
  ``RescanFrequency``, when a deferred message becomes due, and at once on a
  ``MailQueued`` event of the bus.
* Concurrency (Synchronet sends one message at a time): up to
  ``MaxConcurrentDeliveries`` messages (= SMTP sessions) at once, at most
  ``MaxDeliveriesPerDomain`` of them to one destination domain (or to the
  relay server).
* Delivered recipients are added to ``ctrl/dnsbl_exempt.cfg`` unless
  ``NO_AUTO_EXEMPT``; ``MailDelivered``/``MailFailed`` go on the bus.

Log lines (grep-able, Synchronet's wording): ``SendMail thread started``,
``SEND using auto-detected DNS server address: ...``, ``!SEND INVALID DNS
server address``, ``!SEND ERROR <errno> connecting to SMTP server: host
[addr]``, ``!ERROR resolving hostname: ...``, ``!Delivery attempt #N FAILED
(host replied with: "..." instead of the expected reply: "250 ...")``.
"""
from __future__ import annotations

import asyncio
import dataclasses
import errno
import ipaddress
import logging
import socket
import ssl
import time
from collections import Counter
from typing import Any, Awaitable, Callable

from bbs.errors import BBSError
from bbs.events import MailDelivered, MailFailed, MailQueued
from bbs.filters import FilterList
from bbs.mailbox import MailStore, QueuedMail
from mail.delivery import is_network_recipient
from mail.dsn import Failure, build_dsn
from mail.mx import Exchanger, MXError, MXResolver
from mail.smtpclient import ReplyError, SMTPClient, SMTPClientError, client_tls_context

log = logging.getLogger(__name__)

#: The destination key of every message under RELAY_TX (politeness counts
#: sessions to the relay server under it).
RELAY_DESTINATION = "<relay>"
#: Longest wait between two scans when RescanFrequency is 0 (never rescan
#: by time) and the first retry delay cap when it is 0 as well.
MAX_RETRY_DELAY = 24 * 3600.0
#: Most characters of a peer's reply kept as a message's ``last_error``.
MAX_ERROR_TEXT = 500
#: Relay AUTH options in the order one is picked when several are set.
RELAY_AUTH_OPTIONS = (("RELAY_AUTH_CRAM_MD5", "CRAM-MD5"), ("RELAY_AUTH_LOGIN", "LOGIN"),
                      ("RELAY_AUTH_PLAIN", "PLAIN"))


@dataclasses.dataclass(frozen=True)
class Settings:
    """What SendMail takes from ``[Mail]`` (parsed once, see :meth:`from_config`)."""

    hostname: str
    relay: bool
    relay_server: str
    relay_port: int
    relay_username: str
    relay_password: str = dataclasses.field(repr=False)
    relay_auth: str | None
    dns_server: str
    use_tcp_dns: bool
    outbound_interface: str | None
    connect_timeout: float
    max_attempts: int
    rescan_frequency: float
    retry_delay: float
    delivery_port: int
    max_concurrent: int
    max_per_domain: int
    send_intransit: bool
    auto_exempt: bool
    enabled: bool

    @classmethod
    def from_config(cls, cfg: Any) -> "Settings":
        """From a :class:`bbs.config.MailConfig`."""
        options = cfg.common.options
        auth = next((mech for flag, mech in RELAY_AUTH_OPTIONS if flag in options), None)
        interface = cfg.outbound_interface.strip()
        return cls(
            hostname=cfg.hostname, relay="RELAY_TX" in options, relay_server=cfg.relay_server.strip(),
            relay_port=cfg.relay_port, relay_username=cfg.relay_username,
            relay_password=cfg.relay_password, relay_auth=auth, dns_server=cfg.dns_server,
            use_tcp_dns="USE_TCP_DNS" in options,
            outbound_interface=None if interface in ("", "0.0.0.0", "::", "*") else interface,
            connect_timeout=cfg.connect_timeout, max_attempts=cfg.max_delivery_attempts,
            rescan_frequency=cfg.rescan_frequency, retry_delay=cfg.retry_delay,
            delivery_port=cfg.delivery_port, max_concurrent=cfg.max_concurrent_deliveries,
            max_per_domain=cfg.max_deliveries_per_domain,
            send_intransit="SEND_INTRANSIT" in options,
            auto_exempt="NO_AUTO_EXEMPT" not in options, enabled="NO_SENDMAIL" not in options)


def retry_delay(attempts: int, first: float, cap: float) -> float:
    """Seconds to wait after failed attempt number ``attempts`` (1-based):
    ``first``, then doubling, never more than ``cap`` (RescanFrequency; a
    cap of 0 means :data:`MAX_RETRY_DELAY`)."""
    cap = cap or MAX_RETRY_DELAY
    delay = first * (2 ** min(max(attempts - 1, 0), 32))
    return max(0.0, min(delay, cap))


def recipient_domain(address: str) -> str:
    """The lower-cased domain of ``address`` ('' when it has none)."""
    _, at, domain = address.rpartition("@")
    return domain.strip().rstrip(".").lower() if at else ""


def group_recipients(recipients: tuple[str, ...] | list[str], relay: bool) -> dict[str, list[str]]:
    """Recipients by destination, in first-seen order: their domain, or
    :data:`RELAY_DESTINATION` for all of them under RELAY_TX."""
    groups: dict[str, list[str]] = {}
    for rcpt in recipients:
        key = RELAY_DESTINATION if relay else recipient_domain(rcpt)
        groups.setdefault(key, []).append(rcpt)
    return groups


@dataclasses.dataclass
class Outcome:
    """The result of one delivery attempt of one message, per recipient."""

    delivered: dict[str, str] = dataclasses.field(default_factory=dict)   # rcpt -> host
    deferred: dict[str, Failure] = dataclasses.field(default_factory=dict)
    failed: dict[str, Failure] = dataclasses.field(default_factory=dict)


class _HostFailed(Exception):
    """This host could not take the message now; try the next one."""

    def __init__(self, reply: str, host: str, smtp: bool, permanent: bool = False) -> None:
        super().__init__(reply)
        self.reply, self.host, self.smtp, self.permanent = reply, host, smtp, permanent


class SendMail:
    """The SendMail task of one Mail Server. :meth:`run` is the task."""

    def __init__(self, app: Any, store: MailStore, *, clock: Callable[[], float] = time.time,
                 resolver: MXResolver | None = None, tls_context: ssl.SSLContext | None = None) -> None:
        """``clock`` gives the epoch time used for next-try values (tests
        inject one); ``resolver`` replaces the one built from DNSServer."""
        self.app = app
        self.store = store
        self.settings = Settings.from_config(app.config.server.mail)
        self.clock = clock
        self._resolver = resolver
        self._tls = tls_context
        self.exempt = FilterList.load(app.instance.ctrl / "dnsbl_exempt.cfg")
        self._exempt_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._pending: dict[int, QueuedMail] = {}
        self._active: dict[int, asyncio.Task] = {}
        self._per_destination: Counter[str] = Counter()
        self._finished_during_scan: set[int] = set()
        self._next_due: float | None = None
        self._no_tls: set[str] = set()
        #: Messages finished (sent, deferred or bounced) since start; for tests and the console.
        self.finished = 0

    # ------------------------------------------------------------ the task

    async def run(self) -> None:
        """The task: scan, deliver, wait; until cancelled (shutdown)."""
        if not self.settings.enabled:
            log.info("SendMail disabled (NO_SENDMAIL): outbound Internet mail stays queued")
            return
        log.info("SendMail thread started")
        if not self.settings.relay and self._resolver is None:
            try:
                self._resolver = MXResolver(self.settings.dns_server, use_tcp=self.settings.use_tcp_dns,
                                            ipv6=_allows_ipv6(self.settings.outbound_interface))
            except ValueError:
                log.error("!SEND INVALID DNS server address: %r (direct delivery is off until fixed)",
                          self.settings.dns_server)
        elif self.settings.relay:
            log.info("SEND relaying all outbound mail through %s port %d",
                     self.settings.relay_server or "(no RelayServer!)", self.settings.relay_port)
        unsubscribe = self.app.bus.subscribe(self._on_queued, MailQueued)
        try:
            await self._main_loop()
        finally:
            unsubscribe()
            workers = list(self._active.values())
            for task in workers:
                task.cancel()
            if workers:
                await asyncio.gather(*workers, return_exceptions=True)

    def _on_queued(self, event: Any) -> None:
        self._wake.set()

    def wake(self) -> None:
        """Scan the queue now (what a MailQueued event does)."""
        self._wake.set()

    async def _main_loop(self) -> None:
        loop = asyncio.get_running_loop()
        full_scan_at = loop.time()
        while True:
            full = loop.time() >= full_scan_at
            if full and self.settings.rescan_frequency:
                full_scan_at = loop.time() + self.settings.rescan_frequency
            elif full:
                full_scan_at = loop.time() + MAX_RETRY_DELAY
            try:
                await self.scan(full=full)
            except BBSError as exc:
                log.error("!SEND cannot read the outbound queue: %s", exc)
            wait = full_scan_at - loop.time()
            if self._next_due is not None:
                wait = min(wait, self._next_due - self.clock())
            if wait > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), wait)
                except asyncio.TimeoutError:
                    pass
            self._wake.clear()

    async def scan(self, *, full: bool = False) -> int:
        """Look for due messages and start workers for them; returns how
        many are waiting for a free slot afterwards. A ``full`` scan also
        logs messages left in transit and learns the next retry time."""
        now = self.clock()
        self._finished_during_scan.clear()
        if full:
            items = await self.store.outbound()
            upcoming = []
            due = []
            for item in items:
                if item.id in self._active:
                    continue
                if item.in_transit and not self.settings.send_intransit:
                    log.warning("SEND Message #%d from %s to %s - in transit", item.id,
                                item.sender or "<>", ", ".join(item.recipients))
                elif item.next_try <= now:
                    due.append(item)
                else:
                    upcoming.append(item.next_try)
            self._next_due = min(upcoming) if upcoming else None
        else:
            due = await self.store.due(now, include_in_transit=self.settings.send_intransit)
            if self._next_due is not None and self._next_due <= now:
                self._next_due = None
        for item in due:
            if all(is_network_recipient(r) for r in item.recipients):
                continue  # qwk:/fidonet: mail waits for its hub (no packet transport here)
            if item.id not in self._active and item.id not in self._finished_during_scan:
                self._pending[item.id] = item
        self._dispatch()
        return len(self._pending)

    def _note_next_due(self, when: float) -> None:
        if self._next_due is None or when < self._next_due:
            self._next_due = when
        self._wake.set()

    def _destinations(self, item: QueuedMail) -> set[str]:
        return set(group_recipients(item.recipients, self.settings.relay))

    def _dispatch(self) -> None:
        """Start workers for pending messages while the limits allow."""
        s = self.settings
        for qid in list(self._pending):
            if len(self._active) >= s.max_concurrent:
                return
            item = self._pending[qid]
            keys = self._destinations(item)
            if any(self._per_destination[k] >= s.max_per_domain for k in keys):
                continue
            del self._pending[qid]
            for key in keys:
                self._per_destination[key] += 1
            task = asyncio.get_running_loop().create_task(self._work(item), name=f"sendmail-{qid}")
            self._active[qid] = task
            task.add_done_callback(lambda t, qid=qid, keys=keys: self._worker_done(t, qid, keys))

    def _worker_done(self, task: asyncio.Task, qid: int, keys: set[str]) -> None:
        self._active.pop(qid, None)
        self._finished_during_scan.add(qid)
        for key in keys:
            self._per_destination[key] -= 1
            if self._per_destination[key] <= 0:
                del self._per_destination[key]
        self.finished += 1
        if not task.cancelled() and task.exception() is not None:
            log.error("!SEND Message #%d: worker failed", qid, exc_info=task.exception())
        try:
            self._dispatch()
        except RuntimeError:  # the loop is closing
            pass

    # ------------------------------------------------------------ one message

    async def _work(self, item: QueuedMail) -> None:
        """One attempt to deliver ``item``: claim, deliver per destination, then
        remove, defer or bounce. Runs as a task per message."""
        claim = asyncio.ensure_future(self.store.claim(item.id, force=self.settings.send_intransit))
        try:
            claimed = await asyncio.shield(claim)
        except asyncio.CancelledError:  # the claim may still land: release it then
            if await claim:
                await self._release_interrupted(item, Outcome())
            raise
        if not claimed:
            log.warning("SEND Message #%d from %s to %s - in transit", item.id, item.sender or "<>",
                        ", ".join(item.recipients))
            return
        attempt = item.attempts + 1
        limit = self.settings.max_attempts
        log.info("SEND Message #%d (attempt %d of %s) from %s to %s", item.id, attempt,
                 limit or "unlimited", item.sender or "<>", ", ".join(item.recipients))
        outcome = Outcome()
        try:
            for destination, recipients in group_recipients(item.recipients, self.settings.relay).items():
                await self._deliver_group(item, attempt, destination, recipients, outcome)
        except asyncio.CancelledError:
            await self._release_interrupted(item, outcome)
            raise
        finish = asyncio.ensure_future(self._finish(item, attempt, outcome))
        try:
            await asyncio.shield(finish)  # the verdict is recorded even at shutdown
        except asyncio.CancelledError:
            await finish
            raise

    async def _release_interrupted(self, item: QueuedMail, outcome: Outcome) -> None:
        """Shutdown during an attempt: clear the claim (a clean stop is not
        the crash the in-transit flag guards against), keeping only the
        recipients not delivered yet."""
        remaining = [r for r in item.recipients if r not in outcome.delivered]
        try:
            if remaining:
                await self.store.retry_later(item.id, "delivery interrupted by shutdown", self.clock(),
                                             recipients=remaining)
            else:
                await self.store.sent(item.id)
        except BBSError as exc:
            log.error("!SEND Message #%d: could not release it at shutdown: %s", item.id, exc)

    async def _finish(self, item: QueuedMail, attempt: int, outcome: Outcome) -> None:
        s = self.settings
        qid = str(item.id)
        for rcpt, failure in outcome.deferred.items():
            self.app.bus.publish(MailFailed(qid, rcpt, failure.reply, False))
        expired = bool(outcome.deferred) and bool(s.max_attempts) and attempt >= s.max_attempts
        failures = list(outcome.failed.values())
        if expired:
            log.warning("!SEND Message #%d: %d delivery attempts failed, bouncing to %s", item.id, attempt,
                        item.sender or "<>")
            failures += list(outcome.deferred.values())
        if failures:
            await self._bounce(item, failures, attempt, expired=expired)
        if outcome.deferred and not expired:
            next_try = self.clock() + retry_delay(attempt, s.retry_delay, s.rescan_frequency)
            last = next(iter(outcome.deferred.values())).reply[:MAX_ERROR_TEXT]
            await self.store.retry_later(item.id, last, next_try, recipients=list(outcome.deferred))
            log.info("SEND Message #%d: %d recipient(s) deferred, next attempt at %s", item.id,
                     len(outcome.deferred), time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(next_try)))
            self._note_next_due(next_try)
        else:
            await self.store.sent(item.id)
        if outcome.delivered and s.auto_exempt:
            await self._auto_exempt(list(outcome.delivered))

    async def _bounce(self, item: QueuedMail, failures: list[Failure], attempt: int, *, expired: bool) -> None:
        """Tell the sender (a DSN) that ``failures`` will not be delivered."""
        qid = str(item.id)
        for failure in failures:
            self.app.bus.publish(MailFailed(qid, failure.recipient, failure.reply, True))
        sender = item.sender.strip("<>")
        if not sender:
            log.warning("SEND Message #%d from <> not delivered to %s; a bounce is never bounced",
                        item.id, ", ".join(f.recipient for f in failures))
            return
        dsn = build_dsn(original=item.raw, sender=sender, failures=failures,
                        reporting_mta=self.settings.hostname, arrival=item.created, queue_id=item.id,
                        attempts=attempt, now=self.clock(), expired=expired)
        try:
            if item.from_user > 0:
                await self.store.deliver([item.from_user], dsn, sender="", recipient=sender)
                log.info("SEND Message #%d bounced to user #%d (%s)", item.id, item.from_user, sender)
                return
            bounce_id = await self.store.enqueue("", [sender], dsn)
        except BBSError as exc:
            log.error("!SEND Message #%d: could not store the bounce for %s: %s", item.id, sender, exc)
            return
        log.info("SEND Message #%d bounced to <%s> (queued as #%d)", item.id, sender, bounce_id)
        self.app.bus.publish(MailQueued(str(bounce_id), "", (sender,)))

    async def _auto_exempt(self, recipients: list[str]) -> None:
        """Add delivered recipients to ctrl/dnsbl_exempt.cfg (Synchronet does,
        unless NO_AUTO_EXEMPT): replies from them are not DNSBL-checked."""
        async with self._exempt_lock:
            await asyncio.to_thread(self._exempt_sync, recipients)

    def _exempt_sync(self, recipients: list[str]) -> None:
        self.exempt.reload_if_changed()
        for rcpt in dict.fromkeys(r.lower() for r in recipients):
            if self.exempt.match(rcpt) is None:
                try:
                    self.exempt.append(rcpt, reason="SendMail recipient", protocol="SMTP")
                except BBSError as exc:
                    log.error("!SEND cannot add %s to %s: %s", rcpt, self.exempt.path, exc)
                    return

    # ------------------------------------------------------------ one destination

    async def _deliver_group(self, item: QueuedMail, attempt: int, destination: str,
                             recipients: list[str], outcome: Outcome) -> None:
        """Deliver ``item`` to the ``recipients`` of one destination, trying its
        hosts in order; records every recipient in ``outcome``."""
        try:
            targets, port = await self._targets(destination)
        except MXError as exc:
            log.warning("!SEND %s", exc)
            bucket = outcome.failed if exc.permanent else outcome.deferred
            for rcpt in recipients:
                bucket[rcpt] = Failure(rcpt, str(exc), "", smtp=False)
            return
        last: _HostFailed | None = None
        permanent_everywhere = True
        for exchanger in targets:
            for address in exchanger.addresses:
                try:
                    await self._session(item, attempt, exchanger.host, address, port, recipients, outcome)
                    return
                except _HostFailed as exc:
                    last = exc
                    permanent_everywhere = permanent_everywhere and exc.permanent
        reply = last.reply if last is not None else f"no host to deliver to for {destination}"
        host = last.host if last is not None else ""
        # Every host refused the session for good (e.g. "554 no service" greetings): bounce now.
        bucket = outcome.failed if permanent_everywhere and last is not None else outcome.deferred
        for rcpt in recipients:
            bucket[rcpt] = Failure(rcpt, reply, host, smtp=bool(last and last.smtp))

    async def _targets(self, destination: str) -> tuple[list[Exchanger], int]:
        s = self.settings
        if destination == RELAY_DESTINATION:
            if not s.relay_server:
                raise MXError("RELAY_TX is set but RelayServer is blank", permanent=False)
            return [Exchanger(s.relay_server, 0, tuple(await self._relay_addresses()))], s.relay_port
        if not destination:
            raise MXError("recipient address has no domain", permanent=True)
        if self._resolver is None:
            raise MXError("!SEND INVALID DNS server address: direct delivery is off", permanent=False)
        return await self._resolver.exchangers(destination), s.delivery_port

    async def _relay_addresses(self) -> list[str]:
        """RelayServer's addresses (system resolver, as Synchronet does)."""
        host = self.settings.relay_server
        try:
            ipaddress.ip_address(host)
            return [host]
        except ValueError:
            pass
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, self.settings.relay_port,
                                                                 type=socket.SOCK_STREAM)
        except OSError as exc:
            log.error("!ERROR resolving hostname: %s (%s)", host, exc)
            raise MXError(f"ERROR resolving hostname: {host}", permanent=False) from None
        return list(dict.fromkeys(info[4][0] for info in infos))

    async def _session(self, item: QueuedMail, attempt: int, host: str, address: str, port: int,
                       recipients: list[str], outcome: Outcome) -> None:
        """One SMTP session to ``address``. Returns after every recipient got a
        verdict; raises _HostFailed when another host should be tried."""
        s = self.settings
        use_tls = address not in self._no_tls
        client = await self._connect(host, address, port)
        try:
            try:
                await client.greeting()
                await client.hello(s.hostname)
                if use_tls and "STARTTLS" in client.extensions:
                    try:
                        await client.starttls(self._tls_context())
                    except ReplyError as exc:  # refused: carry on in clear text
                        log.info("SEND %s [%s] refused STARTTLS (%s); sending in clear text", host,
                                 address, exc.reply.text)
                    except SMTPClientError as exc:
                        log.warning("SEND %s [%s]: %s; retrying in clear text", host, address, exc)
                        self._no_tls.add(address)
                        await client.close()
                        client = await self._connect(host, address, port)
                        await client.greeting()
                        await client.hello(s.hostname)
                    else:
                        await client.hello(s.hostname)  # RFC 3207 4.2: EHLO again after TLS
                if s.relay and s.relay_auth:
                    await client.auth(s.relay_auth, s.relay_username, s.relay_password)
                await client.mail_from(item.sender.strip("<>"), len(item.raw),
                                       not item.raw.isascii())
            except ReplyError as exc:
                self._log_reply_failure(attempt, host, address, exc)
                if exc.permanent and exc.command.startswith("MAIL"):
                    for rcpt in recipients:
                        outcome.failed[rcpt] = Failure(rcpt, exc.reply.text, host)
                    return
                # A 5xx greeting or HELO is this host's final word; a failed AUTH is
                # the sysop's to fix (RelayUsername/RelayPassword), so it is retried.
                permanent = exc.permanent and not exc.command.startswith("AUTH")
                raise _HostFailed(exc.reply.text, host, smtp=True, permanent=permanent) from None
            except SMTPClientError as exc:
                log.warning("!SEND Message #%d: %s [%s]: %s", item.id, host, address, exc)
                raise _HostFailed(f"{host} [{address}]: {exc}", host, smtp=False) from None
            try:
                accepted = []
                for rcpt in recipients:
                    reply = await client.rcpt_to(rcpt)
                    if reply.code in (250, 251):
                        accepted.append(rcpt)
                        continue
                    self._log_reply_failure(attempt, host, address, ReplyError("RCPT TO", reply, 250))
                    bucket = outcome.failed if reply.permanent else outcome.deferred
                    bucket[rcpt] = Failure(rcpt, reply.text, host)
                if not accepted:
                    return
                try:
                    await client.data(item.raw)
                except ReplyError as exc:
                    self._log_reply_failure(attempt, host, address, exc)
                    bucket = outcome.failed if exc.permanent else outcome.deferred
                    for rcpt in accepted:
                        bucket[rcpt] = Failure(rcpt, exc.reply.text, host)
                    return
            except SMTPClientError as exc:  # after RCPT: this host had its chance
                log.warning("!SEND Message #%d: %s [%s]: %s", item.id, host, address, exc)
                for rcpt in recipients:
                    if rcpt not in outcome.failed:
                        outcome.deferred[rcpt] = Failure(rcpt, f"{host} [{address}]: {exc}", host, smtp=False)
                return
            for rcpt in accepted:
                outcome.delivered[rcpt] = host
                log.info("SEND Message #%d successfully delivered to %s via %s [%s]%s", item.id, rcpt,
                         host, address, " (TLS)" if client.tls else "")
                self.app.bus.publish(MailDelivered(str(item.id), rcpt, host))
            await client.quit()
        finally:
            await client.close()

    async def _connect(self, host: str, address: str, port: int) -> SMTPClient:
        s = self.settings
        try:
            client = await SMTPClient.connect(address, port, host=host, timeout=s.connect_timeout,
                                              local_address=s.outbound_interface)
            options = self.app.config.server.mail.common.options
            client.debug_tx, client.debug_rx = "DEBUG_TX" in options, "DEBUG_RX_RSP" in options
            return client
        except (OSError, asyncio.TimeoutError) as exc:
            code = getattr(exc, "errno", None) or errno.ETIMEDOUT
            log.warning("!SEND ERROR %d connecting to SMTP server: %s [%s] port %d (%s)", code, host,
                        address, port, getattr(exc, "strerror", None) or "timed out")
            raise _HostFailed(f"ERROR {code} connecting to SMTP server {host} [{address}]", host,
                              smtp=False) from None

    def _log_reply_failure(self, attempt: int, host: str, address: str, exc: ReplyError) -> None:
        log.warning('!Delivery attempt #%d FAILED (%s replied with: "%s" instead of the expected '
                    'reply: "%d ...")', attempt, host, exc.reply.text, exc.expected)

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = client_tls_context()
        return self._tls


def _allows_ipv6(interface: str | None) -> bool:
    if interface is None:
        return True
    try:
        return ipaddress.ip_address(interface).version == 6
    except ValueError:
        return True


def create_sendmail(app: Any, store: MailStore) -> Callable[[], Awaitable[None]]:
    """The SendMail task for :class:`bbs.runner.ServerParts` ``tasks``
    (called by :func:`mail.server.create`)."""
    return SendMail(app, store).run
