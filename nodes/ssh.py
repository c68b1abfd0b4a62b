"""SSH nodes on asyncssh.

How it plugs into the listener manager: asyncssh's :class:`SSHServerConnection`
is an asyncio protocol (``asyncssh.listen`` builds one per accepted socket
with ``SSHServerConnection(loop, options, acceptor, error_handler)``). We
build the same options once and construct one connection per admitted
transport in :meth:`SSHService.factory`; the listener manager then calls its
``connection_made`` on the handed-over transport. So admission (bans, ip.can,
limits, throttling) stays in one place for every service.

Authentication: password against the user base, with the failed-login
rules; the configured new-user name (``[BBS] SSHNewUserName``, default
``new``) needs no password and opens the new-user application. A user who
authenticated is logged straight in (no second prompt). A PTY gives the
terminal type and size; window-change requests resize the session.

Remote console: the exec command ``console`` (``ssh -t -p PORT sysop@host
console``) from a sysop (level 90+) or a user named in ``[BBS]
ConsoleUsers`` runs ``app.remote_console`` on the channel instead of a node
session, when the composition root registered one; anyone else is refused
with exit status 1. Other commands are refused.

Host keys (Ed25519 and RSA) are generated on first start in ``data/ssh/``
with mode 0600. Algorithms: the modern set first, then the configured
legacy names (``[BBS] SSHLegacyAlgorithms``) so cryptlib-based BBS terminals
(SyncTERM, NetRunner) connect.
"""
from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import asyncssh
import asyncssh.encryption
import asyncssh.kex
import asyncssh.mac
import asyncssh.public_key

from bbs.errors import BBSError, Reason
from bbs.listeners import Connection
from nodes.io import QueueLink

if TYPE_CHECKING:
    from nodes.server import NodeServices

log = logging.getLogger(__name__)

#: Modern algorithms, offered first (OpenSSH 9 defaults, strongest first).
MODERN_KEX = ("curve25519-sha256", "curve25519-sha256@libssh.org", "ecdh-sha2-nistp256", "ecdh-sha2-nistp384",
              "ecdh-sha2-nistp521", "diffie-hellman-group-exchange-sha256", "diffie-hellman-group16-sha512",
              "diffie-hellman-group18-sha512", "diffie-hellman-group14-sha256")
MODERN_CIPHERS = ("chacha20-poly1305@openssh.com", "aes256-gcm@openssh.com", "aes128-gcm@openssh.com",
                  "aes256-ctr", "aes192-ctr", "aes128-ctr")
MODERN_MACS = ("hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com", "umac-128-etm@openssh.com",
               "hmac-sha2-256", "hmac-sha2-512")
MODERN_SIGNATURES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256")
#: Host key files under data/ (generated on first start, mode 0600).
HOST_KEYS = (("ssh_host_ed25519_key", "ssh-ed25519", {}), ("ssh_host_rsa_key", "ssh-rsa", {"key_size": 2048}))
#: Seconds a client has to authenticate (OpenSSH's LoginGraceTime is 120).
LOGIN_TIMEOUT = 120
#: The exec command that opens the remote sysop console.
CONSOLE_COMMAND = "console"
CONSOLE_REFUSED = (b"console: only a sysop (security level 90+) or a console user ([BBS] ConsoleUsers) "
                   b"may open the remote console\r\n")
CONSOLE_UNAVAILABLE = b"console: the remote console is not available in this BBS\r\n"


def classify_algorithms(names) -> dict[str, list[str]]:
    """Sort algorithm names into asyncssh's kex/encryption/mac/signature
    lists; raises ValueError naming one asyncssh does not know."""
    known = {
        "kex_algs": {a.decode() for a in asyncssh.kex.get_kex_algs()},
        "encryption_algs": {a.decode() for a in asyncssh.encryption.get_encryption_algs()},
        "mac_algs": {a.decode() for a in asyncssh.mac.get_mac_algs()},
        "signature_algs": {a.decode() for a in asyncssh.public_key.get_public_key_algs()},
    }
    result: dict[str, list[str]] = {k: [] for k in known}
    for name in names:
        kind = next((k for k, v in known.items() if name in v), None)
        if kind is None:
            raise ValueError(f"unknown SSH algorithm {name!r}")
        result[kind].append(name)
    return result


def algorithm_options(legacy) -> dict[str, list[str]]:
    """asyncssh option lists: modern first, then the legacy names."""
    extra = classify_algorithms(legacy)
    options = {"kex_algs": list(MODERN_KEX), "encryption_algs": list(MODERN_CIPHERS),
               "mac_algs": list(MODERN_MACS), "signature_algs": list(MODERN_SIGNATURES)}
    for kind, names in extra.items():
        options[kind] += [n for n in names if n not in options[kind]]
    return options


def load_host_keys(folder: Path) -> list:
    """Read (or generate, 0600) the host keys in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    keys = []
    for filename, alg, kwargs in HOST_KEYS:
        path = folder / filename
        if not path.exists():
            key = asyncssh.generate_private_key(alg, **kwargs)
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(key.export_private_key())
            os.replace(tmp, path)
            path.with_name(filename + ".pub").write_bytes(key.export_public_key())
            log.info("generated SSH host key %s", path)
        os.chmod(path, 0o600)
        keys.append(asyncssh.read_private_key(str(path)))
    return keys


def may_open_console(user, console_users) -> bool:
    """A sysop (level 90+) or a user whose alias ``[BBS] ConsoleUsers`` lists (any case)."""
    return user.is_sysop or user.alias.lower() in {name.lower() for name in console_users}


class SSHLink(QueueLink):
    protocol = "ssh"

    def __init__(self, chan) -> None:
        super().__init__()
        self.chan = chan

    def write(self, data: bytes) -> None:
        if not self.chan.is_closing():
            self.chan.write(data)

    def close(self) -> None:
        if not self.chan.is_closing():
            self.chan.exit(0)


class NodeSSHSession(asyncssh.SSHServerSession):
    """One SSH shell channel: becomes a node session."""

    def __init__(self, server: "NodeSSHServer") -> None:
        self.server = server
        self.link: SSHLink | None = None
        self.task: asyncio.Task | None = None
        self.command: str | None = None

    def connection_made(self, chan) -> None:
        self.link = SSHLink(chan)

    def pty_requested(self, term_type, term_size, term_modes) -> bool:
        self.link.term_type = term_type or ""
        if term_size:
            self.link.cols, self.link.rows = term_size[0], term_size[1]
        return True

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str) -> bool:
        if command.strip() == CONSOLE_COMMAND:
            self.command = CONSOLE_COMMAND
            return True
        return False

    def subsystem_requested(self, subsystem: str) -> bool:
        return False

    def session_started(self) -> None:
        service = self.server.service
        if self.command == CONSOLE_COMMAND:
            self.task = asyncio.ensure_future(service.start_console(self.server, self.link))
        else:
            self.task = asyncio.ensure_future(service.start_session(self.server, self.link))

    def data_received(self, data: bytes, datatype) -> None:
        self.link.feed(data)

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        self.link.resized(width, height)

    def eof_received(self) -> bool:
        self.link.feed_eof()
        return False

    def connection_lost(self, exc) -> None:
        if self.link is not None:
            self.link.feed_eof()


class NodeSSHServer(asyncssh.SSHServer):
    """Per-connection authentication against the user base."""

    def __init__(self, service: "SSHService", conn: Connection) -> None:
        self.service, self.conn = service, conn
        self.user = None
        self.new_user = False
        self.username = ""
        self.sessions = 0
        self.ssh_conn = None

    def connection_made(self, conn) -> None:
        self.ssh_conn = conn

    def begin_auth(self, username: str) -> bool:
        self.username = username
        if self.service.new_user_name and username.lower() == self.service.new_user_name.lower():
            self.new_user = True
            return False  # no authentication: the new-user application follows
        return True

    def password_auth_supported(self) -> bool:
        return True

    def kbdint_auth_supported(self) -> bool:
        return False  # asyncssh would otherwise offer password prompts twice

    async def validate_password(self, username: str, password: str) -> bool:
        app = self.service.services.app
        try:
            self.user = await app.users.verify(username, password)
        except BBSError as exc:
            if exc.reason is not Reason.AUTH_FAILED:
                log.exception("ssh %s: password check failed", self.conn.address)
                return False
            outcome = app.login.failed(self.conn.address, "ssh", username)
            log.warning("ssh %s: failed log-on as %r (%d failures)", self.conn.address, username[:40], outcome.count)
            await asyncio.sleep(outcome.delay)
            if outcome.banned and self.ssh_conn is not None:
                self.ssh_conn.close()
            return False
        app.login.succeeded(self.conn.address)
        return True

    def session_requested(self):
        self.sessions += 1
        if self.sessions > 1:
            return False  # one node per connection
        return NodeSSHSession(self)


class SSHService:
    """Builds the asyncssh options once; one connection per admitted socket."""

    def __init__(self, services: "NodeServices") -> None:
        self.services = services
        bbs = services.app.config.server.bbs
        self.new_user_name = bbs.ssh_new_user_name
        # asyncssh logs every channel at INFO; our own lines say what matters.
        logging.getLogger("asyncssh").setLevel(logging.WARNING)
        try:
            algorithms = algorithm_options(bbs.ssh_legacy_algorithms)
        except ValueError as exc:
            sec = services.app.config.server.ini.section("BBS")
            raise sec.error("SSHLegacyAlgorithms", f"SSHLegacyAlgorithms: {exc}") from None
        keys = load_host_keys(services.app.instance.data / "ssh")
        self.options = asyncssh.SSHServerConnectionOptions(
            server_host_keys=keys, encoding=None, line_editor=False, allow_pty=True, x11_forwarding=False,
            agent_forwarding=False, login_timeout=LOGIN_TIMEOUT, keepalive_interval=0,
            server_version="pybbs", **algorithms)

    def factory(self, conn: Connection) -> asyncio.Protocol:
        """``ServiceHandler(protocol=...)``: an asyncssh server connection."""
        options = asyncssh.SSHServerConnectionOptions(
            options=self.options, server_factory=lambda: NodeSSHServer(self, conn))
        return asyncssh.SSHServerConnection(asyncio.get_running_loop(), options, None, None)

    async def start_session(self, server: NodeSSHServer, link: SSHLink) -> None:
        conn = server.conn
        node = self.services.allocate(conn)
        if node is None:
            link.write(self.services.all_busy_message())
            link.close()
            return
        await self.services.run_session(link, conn, node, preauth=server.user, new_user=server.new_user)

    async def start_console(self, server: NodeSSHServer, link: SSHLink) -> None:
        """The ``console`` command: ``app.remote_console`` on this channel for
        a sysop or console user; a refusal and exit status 1 for anyone else. Takes no node;
        never raises; the channel is closed when it returns."""
        app = self.services.app
        address, user = server.conn.address, server.user
        status = 1
        try:
            if user is None or not may_open_console(user, app.config.server.bbs.console_users):
                log.warning("ssh %s: remote console refused to %r (not a sysop or console user)", address,
                            server.username[:40])
                link.write(CONSOLE_REFUSED)
            elif app.remote_console is None:
                link.write(CONSOLE_UNAVAILABLE)
            else:
                log.info("ssh %s: %s opened the remote console%s", address, user.alias,
                         "" if user.is_sysop else f" (console user, level {user.level})")
                server.conn.user = user.alias
                status = await app.remote_console(app, link)
                log.info("ssh %s: %s closed the remote console", address, user.alias)
        except Exception:
            log.exception("ssh %s: remote console crashed; closing it", address)
        finally:
            if not link.chan.is_closing():
                link.chan.exit(status)
