"""One FTP control connection: login, the command loop and the commands.

Built by :meth:`ftp.server.FTPService.handle` for each admitted connection.
Lines are parsed by :func:`ftp.commands.parse_command`; each command runs
through one generic pre-check (login state, sysop-only verbs, from
:data:`ftp.commands.COMMANDS`) and then its ``ftp_VERB`` method. Core errors
(:class:`~bbs.errors.BBSError`) become replies in :func:`ftp.server.reply_for`.
Data transfers (:mod:`ftp.transfer`) run as a task so ABOR, STAT and NOOP
are answered while a transfer is in progress (RFC 959 section 4.1.3).
"""
from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from typing import Any

from bbs.ars import AccessContext
from bbs.errors import BBSError, Reason
from bbs.events import UserLogoff, UserLogon
from bbs.listenconf import TLSMode
from bbs.users import User
from ftp import commands as proto
from ftp.commands import Auth, Command, CommandError, parse_command
from ftp.server import reply_for
from ftp.transfer import TransferCommands
from ftp.vfs import Kind

log = logging.getLogger(__name__)

#: Failed logins one connection may make before it is closed (pyftpdlib's
#: max_login_attempts; the LoginAttempt* rules apply across connections).
MAX_LOGIN_ATTEMPTS = 3
#: Unparsable lines tolerated before the session is dropped (a flood guard).
MAX_BAD_COMMANDS = 20
#: User names that mean the Guest account (RFC 1635 anonymous FTP).
GUEST_NAMES = frozenset({"anonymous", "ftp", "guest"})
#: Seconds the AUTH TLS handshake may take.
TLS_HANDSHAKE_TIMEOUT = 30.0

MSG_LOGIN_FIRST = "Please log in with USER and PASS."
MSG_NO_GUEST = ("Anonymous logins are not allowed: this BBS has no Guest account. "
                "Log in with your BBS user name and password.")


class Session(TransferCommands):
    """State of one FTP control connection."""

    def __init__(self, service: Any, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 conn: Any) -> None:
        self.service = service
        self.app = service.app
        self.vfs = service.vfs
        self.reader, self.writer, self.conn = reader, writer, conn
        options = service.options
        self.debug_rx = "DEBUG_RX" in options
        self.debug_tx = "DEBUG_TX" in options
        self.debug_data = "DEBUG_DATA" in options
        self.own_tls = conn.listener.tls is TLSMode.ON
        self.tls_proxy = conn.listener.tls is TLSMode.EXT
        self.done = False
        self.prefix = f"FTP {conn.address}"
        self.login_failures = 0
        self.bookkeeping: set[asyncio.Task] = set()
        self.loop = asyncio.get_running_loop()
        self.last_input = self.loop.time()
        self.idled_out = False
        self.idle_timer: asyncio.TimerHandle | None = None
        self.pbsz = False
        self.prot_p = False
        self._reset_login()
        self._reset_transfer_state()

    def _reset_login(self) -> None:
        self.pending_user = ""
        self.guest_account: User | None = None
        self.user: User | None = None
        self.guest = False
        self.ctx = AccessContext(protocol="ftp")
        self.cwd = "/"
        self.rnfr = None
        self.next_desc = ""

    # -- I/O -------------------------------------------------------------
    async def reply(self, code: int, text: str | list[str]) -> None:
        """Send a reply; a list makes a multi-line reply (RFC 959 section 4.2),
        whose middle lines are indented by one space."""
        lines = [text] if isinstance(text, str) else text
        if len(lines) == 1:
            out = f"{code} {lines[0]}\r\n"
        else:
            out = f"{code}-{lines[0]}\r\n" + "".join(f" {line}\r\n" for line in lines[1:-1]) \
                + f"{code} {lines[-1]}\r\n"
        if self.debug_tx:
            log.debug("%s >> %s", self.prefix, out.rstrip())
        self.writer.write(out.encode("utf-8", "surrogateescape"))
        await self.writer.drain()

    async def _read_line(self) -> bytes | None:
        """The next control line; None at end of input or after MaxInactivity
        (see :meth:`_watch_idle`)."""
        try:
            line = await self.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            if self.idled_out:
                log.info("%s inactive for %g seconds; disconnecting", self.prefix, self.service.inactivity)
                await self.reply(421, "Inactivity time-out; closing the connection.")
            return None
        except asyncio.LimitOverrunError as exc:
            await self.reader.readexactly(exc.consumed)
            line = b"\0" * (proto.MAX_COMMAND_LINE + 1)
        self.last_input = self.loop.time()
        return line

    def _watch_idle(self) -> None:
        """MaxInactivity: one timer per session, re-armed from the time of the
        last line (a timer per line cost more than the command it timed). A
        running transfer counts as activity. When the limit is reached the
        reader is ended, so :meth:`_read_line` says why and returns None."""
        limit = self.service.inactivity
        now = self.loop.time()
        if self.transfer is not None and not self.transfer.done():
            self.last_input = now
        idle = now - self.last_input
        if idle >= limit:
            self.idled_out = True
            self.reader.feed_eof()
            return
        self.idle_timer = self.loop.call_later(limit - idle, self._watch_idle)

    def later(self, coro: Any, what: str) -> None:
        """Run storage bookkeeping (logon and transfer statistics) after the
        reply, so a client's next command does not wait for its fsync;
        :meth:`settle` waits for it (at QUIT and at the end of the session)."""
        async def run() -> None:
            try:
                await coro
            except Exception:
                log.exception("%s %s failed", self.prefix, what)
        task = asyncio.get_running_loop().create_task(run())
        self.bookkeeping.add(task)
        task.add_done_callback(self.bookkeeping.discard)

    async def settle(self) -> None:
        """Wait for the bookkeeping started by :meth:`later`."""
        if self.bookkeeping:
            await asyncio.wait(set(self.bookkeeping))

    # -- the loop ----------------------------------------------------------
    async def run(self) -> None:
        """Greet, then serve commands until QUIT, a drop or a time-out."""
        log.info("%s connection accepted%s", self.prefix, " (TLS)" if self.own_tls else "")
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            # Clients send ABOR as urgent data (RFC 959 section 4.1.3, ftplib
            # sends the whole line with MSG_OOB): keep the urgent byte in the
            # stream or the line would lose its LF.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
            # asyncio sets TCP_NODELAY only on sockets created with proto
            # IPPROTO_TCP, and the listener sockets are made with proto 0:
            # without it a 226 after a 150 waits ~40 ms for a delayed ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        bad = 0
        if self.service.inactivity:
            self.idle_timer = self.loop.call_later(self.service.inactivity, self._watch_idle)
        try:
            await self.reply(220, f"{self.app.config.system.name} FTP Server ready.")
            while not self.done:
                if self.app.shutdown.is_set():
                    await self.reply(421, "The BBS is shutting down.")
                    return
                line = await self._read_line()
                if line is None:
                    return
                try:
                    command = parse_command(line)
                except CommandError as exc:
                    bad += 1
                    await self.reply(exc.code, str(exc))
                    if bad > MAX_BAD_COMMANDS:
                        await self.reply(421, "Too many bad commands; closing the connection.")
                        return
                    continue
                if self.debug_rx:
                    shown = "********" if command.verb == "PASS" else command.arg
                    log.debug("%s << %s %s", self.prefix, command.verb, shown)
                await self.dispatch(command)
        finally:
            if self.idle_timer is not None:
                self.idle_timer.cancel()
            await self._end_transfer()
            await self.settle()
            self._close_data_setup()
            self._log_off()
            log.info("%s session ended", self.prefix)

    async def dispatch(self, command: Command) -> None:
        """The generic pre-check, then ``ftp_VERB``; core errors become replies."""
        verb, spec = command.verb, command.spec
        if self.transfer is not None and not self.transfer.done() and verb not in ("ABOR", "STAT", "NOOP"):
            await asyncio.wait([self.transfer])  # RFC 959: later commands wait for the transfer
        if spec.auth is Auth.LOGIN and self.user is None:
            await self.reply(530, MSG_LOGIN_FIRST)
            return
        if spec.auth is Auth.USER and not self.pending_user:
            await self.reply(503, "Send USER first.")
            return
        if spec.sysop and not self.vfs.is_sysop(self.ctx):
            await self.reply(550, "Permission denied.")
            return
        if verb != "RNTO":
            self.rnfr = None
        if verb not in ("REST", "RETR", "STOR", "APPE"):
            self.rest = 0
        try:
            await getattr(self, f"ftp_{verb}")(command)
        except BBSError as exc:
            code, text = reply_for(exc)
            if exc.reason is Reason.STORAGE:
                log.error("%s %s failed: %s", self.prefix, verb, exc)
            await self.reply(code, text)

    # -- login ------------------------------------------------------------
    async def ftp_USER(self, cmd: Command) -> None:
        if self.user is not None:
            self._log_off()
            self._reset_login()
        name = cmd.arg.strip()
        guest_name = self.app.config.system.guest_name
        if name.lower() in GUEST_NAMES or name.lower() == guest_name.lower():
            try:
                self.guest_account = await self.app.users.find(guest_name)
            except BBSError:
                log.info("%s anonymous login refused: no %s account", self.prefix, guest_name)
                await self.reply(530, MSG_NO_GUEST)
                return
            self.pending_user, self.guest = guest_name, True
            await self.reply(331, "User name okay, give your full e-mail address as password.")
            return
        self.pending_user, self.guest = name, False
        await self.reply(331, "User name okay, need password.")

    async def ftp_PASS(self, cmd: Command) -> None:
        name, password = self.pending_user, cmd.arg
        self.pending_user = ""
        if self.guest:
            user, self.guest_account = self.guest_account, None  # found by USER a moment ago
            if "@" not in password or user is None:
                self.guest = False
                await self.reply(530, "Guests give their e-mail address as the password.")
                return
            await self._logged_in(user, "Guest logged in.", f" as guest ({password[:60]})")
            return
        try:
            user = await self.app.users.verify(name, password)
        except BBSError as exc:
            if exc.reason is not Reason.AUTH_FAILED:
                raise
            self.login_failures += 1
            outcome = self.app.login.failed(self.conn.address, "ftp", name)
            log.warning("%s !FAILED login attempt #%d as '%s'", self.prefix, outcome.count, name[:64])
            await asyncio.sleep(outcome.delay)
            await self.reply(530, "Login incorrect.")
            if outcome.banned or self.login_failures >= MAX_LOGIN_ATTEMPTS:
                self.done = True
            return
        await self._logged_in(user, "User logged in.")

    async def _logged_in(self, user: User, text: str, how: str = "") -> None:
        self.app.login.succeeded(self.conn.address)
        self.later(self.app.users.record_logon(user.number), "recording the logon")
        self.user = user
        self.ctx = AccessContext(level=user.level, flags=user.flags, exempt=user.exempt,
                                 restrict=user.restrict, user=user.number, protocol="ftp",
                                 guest=self.guest)
        self.conn.user = user.alias
        self.prefix = f"FTP {self.conn.address} {user.alias}"
        log.info("%s logged in%s", self.prefix, how)
        self.app.bus.publish(UserLogon(user.alias, user.number, 0, "ftp", self.conn.address))
        await self.reply(230, text)

    def _log_off(self) -> None:
        if self.user is not None:
            self.app.bus.publish(UserLogoff(self.user.alias, self.user.number, 0, "ftp"))
            self.conn.user = ""

    async def ftp_ACCT(self, cmd: Command) -> None:
        await self.reply(202, "ACCT not needed here.")

    async def ftp_REIN(self, cmd: Command) -> None:
        await self._end_transfer()
        self._close_data_setup()
        self._log_off()
        self._reset_login()
        self._reset_transfer_state()
        self.prefix = f"FTP {self.conn.address}"
        await self.reply(220, "Ready for a new user.")

    async def ftp_QUIT(self, cmd: Command) -> None:
        await self.settle()  # statistics are on disk once the caller sees 221
        await self.reply(221, "Goodbye.")
        self.done = True

    # -- TLS (RFC 4217) ------------------------------------------------------
    async def ftp_AUTH(self, cmd: Command) -> None:
        if cmd.arg.strip().upper() not in ("TLS", "TLS-C", "SSL", "TLS-P"):
            await self.reply(504, "AUTH TLS only.")
            return
        if self.own_tls or self.tls_proxy:
            await self.reply(503, "The connection is already secure.")
            return
        await self.reply(234, "AUTH TLS successful.")
        try:
            await asyncio.wait_for(self.writer.start_tls(self.service.tls_context()), TLS_HANDSHAKE_TIMEOUT)
        except (OSError, ssl.SSLError, ConnectionError, asyncio.TimeoutError) as exc:
            log.info("%s AUTH TLS handshake failed: %s", self.prefix, exc)
            self.done = True
            self.writer.transport.abort()
            return
        self.own_tls = True
        self.pbsz = False
        self.prot_p = False
        self.conn.secure = True
        log.info("%s control connection secured (AUTH TLS)", self.prefix)

    async def ftp_PBSZ(self, cmd: Command) -> None:
        if not (self.own_tls or self.tls_proxy):
            await self.reply(503, "Use AUTH TLS first.")
            return
        self.pbsz = True
        await self.reply(200, "PBSZ=0")

    async def ftp_PROT(self, cmd: Command) -> None:
        level = cmd.arg.strip().upper()
        if not self.pbsz:
            await self.reply(503, "Use PBSZ first.")
        elif level == "C":
            self.prot_p = False
            await self.reply(200, "Protection level Clear.")
        elif level == "P":
            if not self.own_tls:
                await self.reply(536, "PROT P needs TLS on this server (this listener's TLS is by a proxy).")
                return
            self.prot_p = True
            await self.reply(200, "Protection level Private.")
        elif level in ("S", "E"):
            await self.reply(536, "Only PROT C and P are supported.")
        else:
            await self.reply(504, "Unknown protection level.")

    async def ftp_CCC(self, cmd: Command) -> None:
        await self.reply(534, "CCC is refused: the control connection stays secure.")

    # -- information -----------------------------------------------------
    async def ftp_SYST(self, cmd: Command) -> None:
        await self.reply(215, "UNIX Type: L8")

    async def ftp_FEAT(self, cmd: Command) -> None:
        await self.reply(211, ["Features:", *proto.FEATURES, "End"])

    async def ftp_OPTS(self, cmd: Command) -> None:
        words = cmd.arg.split()
        option = words[0].upper()
        if option == "UTF8" and (len(words) == 1 or words[1].upper() == "ON"):
            await self.reply(200, "UTF8 mode is always on.")
        elif option == "MLST":
            await self.reply(200, "MLST OPTS " + "".join(f"{f};" for f in proto.MLST_FACTS))
        else:
            await self.reply(501, "Option not understood.")

    async def ftp_HELP(self, cmd: Command) -> None:
        lines = proto.help_text(cmd.arg or None)
        await self.reply(214, [*lines, "Help OK."] if len(lines) > 1 or not cmd.arg else lines)

    async def ftp_NOOP(self, cmd: Command) -> None:
        await self.reply(200, "NOOP ok.")

    async def ftp_STAT(self, cmd: Command) -> None:
        if cmd.arg and self.user is not None:
            node = self.vfs.resolve(self.cwd, self._path_arg(cmd.arg), self.ctx)
            listing = await self.vfs.entries(node, self.ctx)
            await self.reply(213, [f"Status of {node.path}:",
                                   *(proto.list_line(item.entry) for item in listing), "End of status."])
            return
        if self.transfer is not None and not self.transfer.done():
            await self.reply(213, f"Status: {self.transfer_bytes()} bytes transferred so far.")
            return
        who = f"Logged in as {self.user.alias}" if self.user else "Not logged in"
        await self.reply(211, [
            f"{self.app.config.system.name} FTP Server status:",
            f"Connected from {self.conn.address}", who,
            f"TYPE: {'ASCII' if self.type == 'A' else 'BINARY'}, STRUcture: File, MODE: Stream",
            f"Control connection: {'TLS' if self.own_tls else ('TLS by proxy' if self.tls_proxy else 'clear')}; "
            f"data connections: {'private' if self.prot_p else 'clear'}",
            "End of status."])

    async def ftp_SITE(self, cmd: Command) -> None:
        word, _, rest = cmd.arg.strip().partition(" ")
        word = word.upper()
        if word == "HELP":
            await self.reply(214, ["SITE commands:", "SITE DESC <text>: description of your next upload",
                                   "SITE HELP", "End."])
        elif word == "DESC" and rest.strip():
            await self._set_desc(rest)
        else:
            await self.reply(500, "Unknown SITE command; try SITE HELP.")

    async def ftp_DESC(self, cmd: Command) -> None:
        await self._set_desc(cmd.arg)

    async def _set_desc(self, text: str) -> None:
        self.next_desc = " ".join(text.split())
        await self.reply(200, "Description saved for your next upload.")

    # -- navigation --------------------------------------------------------
    def _path_arg(self, arg: str) -> str:
        """A LIST/NLST/STAT argument without ls options ("-la", "-a dir")."""
        arg = arg.strip()
        while arg.startswith("-"):
            _, _, arg = arg.partition(" ")
            arg = arg.strip()
        return arg

    async def ftp_PWD(self, cmd: Command) -> None:
        quoted = self.cwd.replace('"', '""')  # RFC 959 section 7: double the quotes
        await self.reply(257, f'"{quoted}" is the current directory.')

    async def ftp_CWD(self, cmd: Command) -> None:
        node = self.vfs.resolve(self.cwd, cmd.arg, self.ctx)
        if node.kind is Kind.FILE:
            raise BBSError(Reason.NOT_FOUND, "not a directory")
        self.cwd = node.path
        await self.reply(250, f'Directory changed to "{node.path}".')

    async def ftp_CDUP(self, cmd: Command) -> None:
        await self.ftp_CWD(Command("CWD", "..", proto.COMMANDS["CWD"]))

    async def ftp_MKD(self, cmd: Command) -> None:
        await self.reply(550, "Directories are defined in ctrl/file.ini ([dir:LIB:CODE] sections).")

    async def ftp_RMD(self, cmd: Command) -> None:
        await self.reply(550, "Directories are defined in ctrl/file.ini ([dir:LIB:CODE] sections).")

    # -- representation ----------------------------------------------------
    async def ftp_TYPE(self, cmd: Command) -> None:
        words = cmd.arg.upper().split()
        if words in (["A"], ["A", "N"]):
            self.type = "A"
            await self.reply(200, "Type set to A (files are sent as stored).")
        elif words in (["I"], ["L", "8"]):
            self.type = "I"
            await self.reply(200, "Type set to I.")
        else:
            await self.reply(504, "Only TYPE A and I are supported.")

    async def ftp_MODE(self, cmd: Command) -> None:
        if cmd.arg.strip().upper() == "S":
            await self.reply(200, "Mode set to S.")
        else:
            await self.reply(504, "Only MODE S is supported.")

    async def ftp_STRU(self, cmd: Command) -> None:
        if cmd.arg.strip().upper() == "F":
            await self.reply(200, "Structure set to F.")
        else:
            await self.reply(504, "Only STRU F is supported.")

    async def ftp_ALLO(self, cmd: Command) -> None:
        await self.reply(202, "ALLO not needed here.")
