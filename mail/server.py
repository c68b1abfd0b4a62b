"""The Mail Server: wires SMTP, Submission, SMTPS, POP3 and POP3S to the App.

:func:`create` is called by the composition root (:mod:`bbs.runner`) after
``App.open`` and returns the :class:`~bbs.runner.ServerParts` for the
services ``smtp``, ``submission``, ``smtps``, ``pop3`` and ``pop3s``. The
mailbox store (``data/mail.db``) opens on first use and closes in ``stop``.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiosmtpd.smtp import SMTP

from bbs.events import MailQueued
from bbs.filters import FilterList
from bbs.listeners import ServiceHandler
from bbs.mailbox import MailStore
from mail.auth import Secrets
from mail.delivery import AliasTable, Resolver
from mail.pop3 import POP3Service
from mail.processors import MailProcessors
from mail.relay import LogonsByAddress, RelayPolicy
from mail.sendmail import create_sendmail
from mail.smtp import NO_LIMIT_TIMEOUT, SMTPHandler, SMTPSession
from mail.spam import SpamGuard

log = logging.getLogger(__name__)

#: The banner after the host name (aiosmtpd "ident"); Synchronet says
#: "Synchronet SMTP Server <version> Ready".
SMTP_IDENT = "pybbs SMTP Server Ready"
#: Options that make aiosmtpd's own per-command log lines visible.
_DEBUG_SMTP = frozenset({"DEBUG_RX_RSP", "DEBUG_TX", "DEBUG_RX_HEADER", "DEBUG_RX_BODY"})


class SMTPService:
    """What every SMTP session shares; :meth:`factory` builds a session."""

    def __init__(self, app: Any, store: MailStore, secrets: Secrets, logons: LogonsByAddress) -> None:
        cfg = app.config.server.mail
        inst = app.instance
        self.app = app
        self.store = store
        self.secrets = secrets
        self.cfg = cfg
        self.options = cfg.common.options
        self.hostname = cfg.hostname
        self.max_recipients = cfg.max_recipients
        self.dnsbl_header = cfg.dnsbl_header
        self.dnsbl_subject = cfg.dnsbl_subject
        glob_host = app.config.server.global_.hostname
        domains = {cfg.hostname.lower().rstrip("."), glob_host.lower().rstrip(".")}
        self._domains_cfg = FilterList.load(inst.ctrl / "domains.cfg")
        self._base_domains = frozenset(d for d in domains if d)
        self.relay = RelayPolicy(FilterList.load(inst.ctrl / "relay.cfg"), self.options, logons)
        self.spam = SpamGuard(inst.ctrl, inst.data, cfg.dns_server, "USE_TCP_DNS" in self.options)
        self.processors = MailProcessors(inst.ctrl / "mailproc.cfg", cfg.mail_processor_timeout,
                                         search=inst.root)
        self.email_can = app.filters.email
        self.subject_can = app.filters.subject
        system = app.config.system
        self.resolver = Resolver(
            users=secrets.users, store=store, aliases=AliasTable(inst.ctrl / "alias.cfg"),
            options=self.options, default_user=cfg.default_user, max_msgs_waiting=cfg.max_msgs_waiting,
            sysop_names=frozenset({system.operator, system.qwk_id}), user_dir=inst.data / "user",
            sub_exists=lambda code: app.config.msgs.sub(code) is not None,
            qwk_nodes=FilterList.load(inst.ctrl / "qwknodes.cfg"), fidonet_address=cfg.fidonet_address)
        self.timeout = cfg.common.max_inactivity or NO_LIMIT_TIMEOUT
        self._tls = None

    @property
    def domains(self) -> frozenset[str]:
        """Host names this server takes mail for: HostName, [Global] Hostname
        and ``ctrl/domains.cfg`` (re-read when edited)."""
        self._domains_cfg.reload_if_changed()
        extra = {e.pattern.lower().rstrip(".") for e in self._domains_cfg.entries if not e.negate}
        return self._base_domains | frozenset(extra)

    def tls_context(self):
        if self._tls is None:
            self._tls = self.app.tls_context()
        return self._tls

    def factory(self, conn: Any) -> SMTP:
        """A new aiosmtpd protocol for one admitted connection."""
        handler = SMTPHandler(self, conn)
        secure = conn.secure
        excluded = [] if self.secrets.shared_secret else ["CRAM-MD5"]
        return SMTPSession(
            handler,
            hostname=self.hostname,
            ident=SMTP_IDENT,
            data_size_limit=self.cfg.max_msg_size or None,
            tls_context=None if secure else self.tls_context(),
            timeout=self.timeout,
            # AUTH needs TLS unless the connection is TLS already (SMTPS, or a
            # proxy did TLS) or the sysop allowed clear-text AUTH.
            auth_require_tls=not (secure or self.cfg.auth_without_tls),
            auth_exclude_mechanism=excluded,
            # aiosmtpd looks the loop up itself otherwise, under a
            # warnings.catch_warnings() block: costly once a connection.
            loop=asyncio.get_running_loop(),
        )

    def queued(self, message_id: str, sender: str, recipients: list[str]) -> None:
        """Announce mail queued for SendMail on the bus."""
        self.app.bus.publish(MailQueued(message_id, sender, tuple(recipients)))


def create(app: Any):
    """Build the Mail Server's handlers for the composition root."""
    from bbs.runner import ServerParts  # the root imports us; import it lazily back

    cfg = app.config.server.mail
    store = app.mail
    shared = cfg.allow_cram_md5
    # CRAM-MD5/APOP need the cleartext: the App's user base keeps it when AllowCramMD5 is on.
    secrets = Secrets(app.users, shared)
    logons = LogonsByAddress()
    unsubscribe = logons.attach(app.bus)
    smtp = SMTPService(app, store, secrets, logons)
    if not (_DEBUG_SMTP & cfg.common.options):
        # aiosmtpd logs every command line at INFO and deprecation noise at WARNING.
        logging.getLogger("mail.log").setLevel(logging.ERROR)
    pop3 = POP3Service(app=app, store=store, secrets=secrets, hostname=cfg.hostname,
                       options=cfg.common.options, inactivity=cfg.common.max_inactivity,
                       tls_context=smtp.tls_context())

    async def stop() -> None:
        unsubscribe()

    handlers = {
        "smtp": ServiceHandler(protocol=smtp.factory),
        "submission": ServiceHandler(protocol=smtp.factory),
        "smtps": ServiceHandler(protocol=smtp.factory),
        "pop3": ServiceHandler(stream=pop3.handle),
        "pop3s": ServiceHandler(stream=pop3.handle),
    }
    return ServerParts(handlers=handlers, tasks=[create_sendmail(app, store)], stop=stop)
