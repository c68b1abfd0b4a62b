"""The App: one object holding the shared state every server uses.

Passed explicitly to each server (no module-level singletons). Owns the
event bus, node table, filters, failed-login tracker, databases, user base
and listener manager. Built by the composition root (:mod:`bbs.runner`) and
by tests.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
from typing import Any, Awaitable, Callable

from bbs.db import Database
from bbs.events import EventBus, SecurityEvent
from bbs.filters import FilterSet
from bbs.instance import Config
from bbs.listeners import ListenerManager
from bbs.loginattempts import LoginAttemptTracker
from bbs.filebase import FileBase
from bbs.mailbox import MailStore
from bbs.msgbase import MSG_MIGRATIONS, MessageBase
from bbs.nodetable import NodeTable
from bbs.spy import SpyRegistry
from bbs.telegrams import TELEGRAM_MIGRATIONS, TelegramStore
from bbs.tlscert import ensure_certificate, server_context
from bbs.users import USER_MIGRATIONS, User, UserBase

log = logging.getLogger(__name__)

#: Security level of the sysop account created on first start (Synchronet: 90+ is sysop).
SYSOP_ACCOUNT_LEVEL = 99


def generate_password() -> str:
    """A random password that is easy to type: 12 characters, no look-alikes."""
    alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(12))


class App:
    """Shared state of one running BBS instance."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.instance = config.instance
        self.bus = EventBus()
        self.nodes = NodeTable(config.system.nodes, self.bus)
        self.spy = SpyRegistry()  # each live node session, for the console's spy, chat and interrupt
        self.filters = FilterSet(self.instance.text, self.instance.ctrl)
        glob = config.server.global_
        self.login = LoginAttemptTracker(
            glob.login, ip_can=self.filters.ip, exempt=self.filters.ipfilter_exempt,
            hack_log=self.instance.logs / "hack.log",
            on_event=lambda kind, info: self.bus.publish(SecurityEvent(kind, info)))
        self.db = Database(self.instance.data / "user.db", USER_MIGRATIONS, name="user")
        # CRAM-MD5 and APOP need the cleartext: kept only when [Mail] AllowCramMD5 is on.
        self._keep_cleartext = config.server.mail.allow_cram_md5
        self.users = UserBase(self.db, name_filter=self.name_filtered, keep_cleartext=self._keep_cleartext)
        #: Mailboxes and the outbound queue, shared by SMTP, POP3, SendMail and the nodes.
        self.mail = MailStore(self.instance.data / "mail.db")
        #: Message subs (nodes, NNTP, Gopher, mail to sub:) and the file base (FTP, nodes, Gopher).
        self.msg_db = Database(self.instance.data / "msgs.db", MSG_MIGRATIONS, name="msgs")
        self.msgs = MessageBase(self.msg_db)
        self.files = FileBase(self.instance.data / "file.db")
        self.telegram_db = Database(self.instance.data / "telegram.db", TELEGRAM_MIGRATIONS, name="telegram")
        self.telegrams = TelegramStore(self.telegram_db, self.bus)
        #: Set when the BBS begins to stop; sessions may tell their caller and end.
        self.shutdown = asyncio.Event()
        #: ``async (app, channel) -> exit status``: the live console on a remote channel (SSH
        #: ``console`` command), registered by the composition root; None: not offered.
        self.remote_console: Callable[..., Awaitable[int]] | None = None
        #: Start, stop and recycle of the servers (bbs.control.ServerControl), set by
        #: bbs.runner.serve while the BBS runs; None otherwise (e.g. `bbs scfg`).
        self.servers: Any = None
        self._tls: ssl.SSLContext | None = None
        self.listeners = ListenerManager(bus=self.bus, filters=self.filters, login=self.login,
                                         tls_context=self.tls_context)

    def name_filtered(self, name: str) -> object | None:
        """The text/name.can entry that forbids ``name`` (re-read when edited), or None."""
        self.filters.name.reload_if_changed()
        return self.filters.name.match(name)

    def tls_context(self) -> ssl.SSLContext:
        """The server TLS context (certificate generated on first use if absent)."""
        if self._tls is None:
            glob = self.config.server.global_
            ensure_certificate(glob.tls_certificate, glob.tls_private_key, glob.hostname)
            self._tls = server_context(glob.tls_certificate, glob.tls_private_key)
        return self._tls

    def reset_tls(self, context: ssl.SSLContext | None = None) -> ssl.SSLContext | None:
        """Forget the TLS context: the next use reads the certificate files
        again (a recycle after the sysop replaced them); ``context``: use that
        one again (a failed recycle). Returns the context it had."""
        old, self._tls = self._tls, context
        return old

    def prepare_tls(self) -> None:
        """Load the TLS context now when a listener has TLS on: a bad
        certificate fails the start or recycle (not each TLS caller), and a
        missing one is generated here, not in a caller's connection."""
        if any(item.tls.value == "on" for item in self.config.listeners):
            self.tls_context()

    async def open(self, announce_password: Callable[[str, str], None] | None = None) -> None:
        """Open databases, create folders, the TLS certificate and (on the
        first start) the sysop account, whose generated password is given to
        ``announce_password(alias, password)`` once and never logged."""
        self.bus.bind_loop(asyncio.get_running_loop())
        await self.db.open()
        if not self._keep_cleartext:
            forgotten = await self.users.forget_cleartext()
            if forgotten:
                log.info("erased %d kept cleartext password(s): AllowCramMD5 is off", forgotten)
        await self.telegram_db.open()
        await self.mail.open()
        await self.msg_db.open()
        await self.files.open()
        self.instance.logs.mkdir(parents=True, exist_ok=True)
        self.config.make_folders()
        self.prepare_tls()
        await self.ensure_sysop(announce_password)

    async def ensure_sysop(self, announce: Callable[[str, str], None] | None) -> User | None:
        """Create the Operator account when no sysop account (level 90+) exists,
        e.g. on the first start, even if `bbs user add` made callers before."""
        if any(user.is_sysop for user in await self.users.list()):
            return None
        alias = self.config.system.operator
        password = generate_password()
        sysop_base = UserBase(self.db)  # the sysop's own name may be in name.can
        user = await sysop_base.add(alias, password, real_name=alias, level=SYSOP_ACCOUNT_LEVEL)
        log.info("created the sysop account #%d %s", user.number, alias)
        if announce is not None:
            announce(alias, password)
        return user

    async def close(self) -> None:
        await self.files.close()
        await self.msg_db.close()
        await self.mail.close()
        await self.telegram_db.close()
        await self.db.close()
