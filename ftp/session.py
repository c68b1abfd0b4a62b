"""One FTP control connection: login, the command loop and the commands.

Made by :meth:`ftp.server.FTPService.protocol` for each admitted connection:
the session is the connection's asyncio protocol. Lines are parsed by
:func:`ftp.commands.parse_command`; each command runs through one generic
pre-check (login state, sysop-only verbs, from :data:`ftp.commands.COMMANDS`)
and then its ``ftp_VERB`` method. Core errors (:class:`~bbs.errors.BBSError`)
become replies in :func:`ftp.server.reply_for`.
Data transfers (:mod:`ftp.transfer`) run as a task so ABOR, STAT and NOOP
are answered while a transfer is in progress (RFC 959 section 4.1.3).
"""
from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from typing import Any, Awaitable

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
#: Bytes of a line without its end that are buffered before it is refused
#: as too long (and the rest of it dropped).
MAX_BUFFERED_LINE = 2 ** 16
#: Seconds the AUTH TLS handshake may take.
TLS_HANDSHAKE_TIMEOUT = 30.0

MSG_LOGIN_FIRST = "Please log in with USER and PASS."
MSG_NO_GUEST = ("Anonymous logins are not allowed: this BBS has no Guest account. "
                "Log in with your BBS user name and password.")


class Session(TransferCommands, asyncio.Protocol):
    """One FTP control connection: the protocol on its transport, and its state.

    Lines are served straight from :meth:`data_received`. A command handler
    (``ftp_VERB``) is a plain method that replies at once, or returns an
    awaitable for what must wait (a database look-up, a password check, a
    transfer to finish, TLS): that runs as a task and the lines after it
    wait, in order. Most commands (PWD, CWD, TYPE, EPSV ...) thus cost no
    task and no wake-up of one.
    """

    def __init__(self, service: Any, conn: Any) -> None:
        self.service = service
        self.app = service.app
        self.vfs = service.vfs
        self.conn = conn
        self.transport: asyncio.Transport | None = None
        options = service.options
        self.debug_rx = "DEBUG_RX" in options
        self.debug_tx = "DEBUG_TX" in options
        self.debug_data = "DEBUG_DATA" in options
        self.own_tls = conn.listener.tls is TLSMode.ON
        self.tls_proxy = conn.listener.tls is TLSMode.EXT
        self.done = False
        self.lost = False
        self.eof = False
        self.prefix = f"FTP {conn.address}"
        self.login_failures = 0
        self.bad_commands = 0
        self.bookkeeping: list[asyncio.Future] = []
        self.loop = asyncio.get_running_loop()
        self.buffer = bytearray()
        self.holds: set[str] = set()  # why the client is not read now (see _hold)
        self.skip_line = False  # the rest of an overlong line is dropped
        self.waiting: asyncio.Task | None = None  # the command that must wait
        self.last_input = self.loop.time()
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

    # -- the protocol ------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.service.sessions.add(self)
        log.info("%s connection accepted%s", self.prefix, " (TLS)" if self.own_tls else "")
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Clients send ABOR as urgent data (RFC 959 section 4.1.3, ftplib
            # sends the whole line with MSG_OOB): keep the urgent byte in the
            # stream or the line would lose its LF.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
            # asyncio sets TCP_NODELAY only on sockets created with proto
            # IPPROTO_TCP, and the listener sockets are made with proto 0:
            # without it a 226 after a 150 waits ~40 ms for a delayed ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.service.inactivity:
            self.idle_timer = self.loop.call_later(self.service.inactivity, self._watch_idle)
        self.reply(220, f"{self.app.config.system.name} FTP Server ready.")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiting is None:
            self._serve_lines()
        elif len(self.buffer) > MAX_BUFFERED_LINE:  # lines pile up behind a waiting command
            self._hold("waiting")

    def eof_received(self) -> bool:
        # The client sent everything (a script: printf ... | nc): a command
        # still at work and the lines after it are answered, then the
        # session closes. Otherwise the transport closes now.
        self.eof = True
        return self.waiting is not None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.idle_timer is not None:
            self.idle_timer.cancel()
        if self.waiting is None and (self.transfer is None or self.transfer.done()) and not self._unstored():
            self._ended()  # nothing left to wait for (the usual end after QUIT)
            return
        tasks = self.app.listeners.tasks
        task = self.loop.create_task(self._end())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    # Replies are small: when the client does not read them, stop reading
    # its commands until it does (TCP flow control does the rest).
    def pause_writing(self) -> None:
        self._hold("replies")

    def resume_writing(self) -> None:
        self._release("replies")

    def _hold(self, reason: str) -> None:
        """Stop reading the client for ``reason`` (until :meth:`_release`)."""
        if not self.holds and self.transport is not None and not self.lost:
            self.transport.pause_reading()
        self.holds.add(reason)

    def _release(self, reason: str) -> None:
        if reason in self.holds:
            self.holds.discard(reason)
            if not self.holds and self.transport is not None and not self.lost:
                self.transport.resume_reading()

    # -- I/O -------------------------------------------------------------
    def reply(self, code: int, text: str | list[str]) -> None:
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
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(out.encode("utf-8", "surrogateescape"))

    def close(self) -> None:
        """End the session after the replies sent so far (QUIT, errors)."""
        self.done = True
        if self.transport is not None:
            self.transport.close()

    def _watch_idle(self) -> None:
        """MaxInactivity: one timer per session, re-armed from the time of the
        last line (a timer per line cost more than the command it timed). A
        running transfer, or a command still at work, counts as activity."""
        limit = self.service.inactivity
        now = self.loop.time()
        if self.waiting is not None or (self.transfer is not None and not self.transfer.done()):
            self.last_input = now
        idle = now - self.last_input
        if idle >= limit:
            log.info("%s inactive for %g seconds; disconnecting", self.prefix, limit)
            self.reply(421, "Inactivity time-out; closing the connection.")
            self.close()
            return
        self.idle_timer = self.loop.call_later(limit - idle, self._watch_idle)

    def stored(self, write: asyncio.Future) -> None:
        """Keep a statistics write of the :class:`~ftp.ledger.Ledger` (logon,
        transfer credits); :meth:`settle` waits for it. The client's next
        command does not wait for its fsync."""
        self.bookkeeping = self._unstored()
        if write not in self.bookkeeping:  # writes of one batch share its future
            self.bookkeeping.append(write)

    def _unstored(self) -> list[asyncio.Future]:
        return [w for w in self.bookkeeping if not w.done()]

    async def settle(self) -> None:
        """Wait until the statistics this session handed in are stored."""
        pending = self._unstored()
        if pending:
            await asyncio.wait(pending)
        self.bookkeeping = []

    # -- the commands ------------------------------------------------------
    def _serve_lines(self) -> None:
        """Serve the complete lines received, in order, until a command must
        wait (it serves the rest when it is done) or the session ends."""
        while self.waiting is None and not self.done and not self.lost:
            end = self.buffer.find(b"\n")
            if end < 0:
                if len(self.buffer) > MAX_BUFFERED_LINE:  # refused as too long, once
                    self.buffer.clear()
                    if not self.skip_line:
                        self.skip_line = True
                        self._serve_line(b"\0" * (proto.MAX_COMMAND_LINE + 1))
                return
            line = bytes(self.buffer[:end + 1])
            del self.buffer[:end + 1]
            if self.skip_line:
                self.skip_line = False
                continue
            self.last_input = self.loop.time()
            self._serve_line(line)

    def _serve_line(self, line: bytes) -> None:
        if self.app.shutdown.is_set():
            self.reply(421, "The BBS is shutting down.")
            self.close()
            return
        try:
            command = parse_command(line)
        except CommandError as exc:
            self.bad_commands += 1
            self.reply(exc.code, str(exc))
            if self.bad_commands > MAX_BAD_COMMANDS:
                self.reply(421, "Too many bad commands; closing the connection.")
                self.close()
            return
        if self.debug_rx:
            shown = "********" if command.verb == "PASS" else command.arg
            log.debug("%s << %s %s", self.prefix, command.verb, shown)
        try:
            work = self.dispatch(command)
        except Exception as exc:
            self._failed(command.verb, exc)
            return
        if work is not None:
            self.waiting = self.loop.create_task(self._wait(command.verb, work))
        elif self.done:
            self.close()

    async def _wait(self, verb: str, work: Awaitable[None]) -> None:
        """Finish a command that had to wait, then serve the lines that came meanwhile."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(verb, exc)
        finally:
            self.waiting = None
            self._release("waiting")
        if self.done:
            self.close()
        elif not self.lost:
            self._serve_lines()
            if self.eof and self.waiting is None and not self.done:
                self.close()

    def _failed(self, verb: str, exc: Exception) -> None:
        """A command raised: core errors become replies; a broken connection
        or a bug ends this session only (logged with its traceback)."""
        if isinstance(exc, BBSError):
            code, text = reply_for(exc)
            if exc.reason is Reason.STORAGE:
                log.error("%s %s failed: %s", self.prefix, verb, exc)
            self.reply(code, text)
            return
        if isinstance(exc, (ConnectionError, ssl.SSLError)):
            log.debug("%s connection lost: %s", self.prefix, exc)
        else:
            log.error("%s session crashed in %s; closing it", self.prefix, verb, exc_info=exc)
        self.done = True
        if self.transport is not None:
            self.transport.abort()

    async def _end(self) -> None:
        """After the connection closed: stop what runs, store the statistics."""
        if self.waiting is not None:
            self.waiting.cancel()
            await asyncio.wait([self.waiting])
        await self._end_transfer()
        await self.settle()
        self._ended()

    def _ended(self) -> None:
        self._drop_sized()
        self._close_data_setup()
        self._log_off()
        self.service.sessions.discard(self)
        log.info("%s session ended", self.prefix)

    def dispatch(self, command: Command) -> Awaitable[None] | None:
        """The generic pre-check, then ``ftp_VERB``: None when the command is
        done, else what it still waits for. Core errors are raised."""
        verb, spec = command.verb, command.spec
        if self.transfer is not None and not self.transfer.done() and verb not in ("ABOR", "STAT", "NOOP"):
            return self._after_transfer(command)  # RFC 959: later commands wait for the transfer
        if spec.auth is Auth.LOGIN and self.user is None:
            self.reply(530, MSG_LOGIN_FIRST)
            return None
        if spec.auth is Auth.USER and not self.pending_user:
            self.reply(503, "Send USER first.")
            return None
        if spec.sysop and not self.vfs.is_sysop(self.ctx):
            self.reply(550, "Permission denied.")
            return None
        if verb != "RNTO":
            self.rnfr = None
        if verb not in ("REST", "RETR", "STOR", "APPE"):
            self.rest = 0
        return getattr(self, f"ftp_{verb}")(command)

    async def _after_transfer(self, command: Command) -> None:
        assert self.transfer is not None
        await asyncio.wait([self.transfer])
        work = self.dispatch(command)
        if work is not None:
            await work

    # -- login ------------------------------------------------------------
    def ftp_USER(self, cmd: Command) -> Awaitable[None] | None:
        if self.user is not None:
            self._log_off()
            self._reset_login()
        name = cmd.arg.strip()
        guest_name = self.app.config.system.guest_name
        if name.lower() in GUEST_NAMES or name.lower() == guest_name.lower():
            account = self.service.cached_guest(guest_name)
            if account is None:
                return self._find_guest(guest_name)
            self._guest_user(guest_name, account)
            return None
        self.pending_user, self.guest = name, False
        self.reply(331, "User name okay, need password.")
        return None

    async def _find_guest(self, guest_name: str) -> None:
        try:
            account = await self.service.guest_account(guest_name)
        except BBSError:
            log.info("%s anonymous login refused: no %s account", self.prefix, guest_name)
            self.reply(530, MSG_NO_GUEST)
            return
        self._guest_user(guest_name, account)

    def _guest_user(self, guest_name: str, account: User) -> None:
        self.guest_account = account
        self.pending_user, self.guest = guest_name, True
        self.reply(331, "User name okay, give your full e-mail address as password.")

    def ftp_PASS(self, cmd: Command) -> Awaitable[None] | None:
        name, password = self.pending_user, cmd.arg
        self.pending_user = ""
        if not self.guest:
            return self._check_password(name, password)
        user, self.guest_account = self.guest_account, None  # found by USER a moment ago
        if "@" not in password or user is None:
            self.guest = False
            self.reply(530, "Guests give their e-mail address as the password.")
            return None
        self._logged_in(user, "Guest logged in.", f" as guest ({password[:60]})")
        return None

    async def _check_password(self, name: str, password: str) -> None:
        try:
            user = await self.app.users.verify(name, password)
        except BBSError as exc:
            if exc.reason is not Reason.AUTH_FAILED:
                raise
            self.login_failures += 1
            outcome = self.app.login.failed(self.conn.address, "ftp", name)
            log.warning("%s !FAILED login attempt #%d as '%s'", self.prefix, outcome.count, name[:64])
            await asyncio.sleep(outcome.delay)
            self.reply(530, "Login incorrect.")
            if outcome.banned or self.login_failures >= MAX_LOGIN_ATTEMPTS:
                self.done = True
            return
        self._logged_in(user, "User logged in.")

    def _logged_in(self, user: User, text: str, how: str = "") -> None:
        self.app.login.succeeded(self.conn.address)
        self.stored(self.service.ledger.logon(user.number))
        self.user = user
        self.ctx = AccessContext(level=user.level, flags=user.flags, exempt=user.exempt,
                                 restrict=user.restrict, user=user.number, protocol="ftp",
                                 guest=self.guest)
        self.conn.user = user.alias
        self.prefix = f"FTP {self.conn.address} {user.alias}"
        log.info("%s logged in%s", self.prefix, how)
        self.app.bus.publish(UserLogon(user.alias, user.number, 0, "ftp", self.conn.address))
        self.reply(230, text)

    def _log_off(self) -> None:
        if self.user is not None:
            self.app.bus.publish(UserLogoff(self.user.alias, self.user.number, 0, "ftp"))
            self.conn.user = ""

    def ftp_ACCT(self, cmd: Command) -> None:
        self.reply(202, "ACCT not needed here.")

    async def ftp_REIN(self, cmd: Command) -> None:
        await self._end_transfer()
        self._drop_sized()
        self._close_data_setup()
        self._log_off()
        self._reset_login()
        self._reset_transfer_state()
        self.prefix = f"FTP {self.conn.address}"
        self.reply(220, "Ready for a new user.")

    def ftp_QUIT(self, cmd: Command) -> Awaitable[None] | None:
        if self._unstored():
            return self._quit_settled()
        self.reply(221, "Goodbye.")
        self.done = True
        return None

    async def _quit_settled(self) -> None:
        await self.settle()  # statistics are on disk once the caller sees 221
        self.reply(221, "Goodbye.")
        self.done = True

    # -- TLS (RFC 4217) ------------------------------------------------------
    async def ftp_AUTH(self, cmd: Command) -> None:
        if cmd.arg.strip().upper() not in ("TLS", "TLS-C", "SSL", "TLS-P"):
            self.reply(504, "AUTH TLS only.")
            return
        if self.own_tls or self.tls_proxy:
            self.reply(503, "The connection is already secure.")
            return
        self.reply(234, "AUTH TLS successful.")
        transport = self.transport
        assert transport is not None
        try:
            secured = await self.loop.start_tls(transport, self, self.service.tls_context(), server_side=True,
                                                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT)
            if secured is None:
                raise ConnectionError("TLS handshake gave no transport")
        except (OSError, ssl.SSLError, ConnectionError, asyncio.TimeoutError) as exc:
            log.info("%s AUTH TLS handshake failed: %s", self.prefix, exc)
            self.done = True
            transport.abort()
            return
        self.transport = secured  # type: ignore[assignment]
        self.own_tls = True
        self.pbsz = False
        self.prot_p = False
        self.conn.secure = True
        log.info("%s control connection secured (AUTH TLS)", self.prefix)

    def ftp_PBSZ(self, cmd: Command) -> None:
        if not (self.own_tls or self.tls_proxy):
            self.reply(503, "Use AUTH TLS first.")
            return
        self.pbsz = True
        self.reply(200, "PBSZ=0")

    def ftp_PROT(self, cmd: Command) -> None:
        level = cmd.arg.strip().upper()
        if not self.pbsz:
            self.reply(503, "Use PBSZ first.")
        elif level == "C":
            self.prot_p = False
            self.reply(200, "Protection level Clear.")
        elif level == "P":
            if not self.own_tls:
                self.reply(536, "PROT P needs TLS on this server (this listener's TLS is by a proxy).")
                return
            self.prot_p = True
            self.reply(200, "Protection level Private.")
        elif level in ("S", "E"):
            self.reply(536, "Only PROT C and P are supported.")
        else:
            self.reply(504, "Unknown protection level.")

    def ftp_CCC(self, cmd: Command) -> None:
        self.reply(534, "CCC is refused: the control connection stays secure.")

    # -- information -----------------------------------------------------
    def ftp_SYST(self, cmd: Command) -> None:
        self.reply(215, "UNIX Type: L8")

    def ftp_FEAT(self, cmd: Command) -> None:
        self.reply(211, ["Features:", *proto.FEATURES, "End"])

    def ftp_OPTS(self, cmd: Command) -> None:
        words = cmd.arg.split()
        option = words[0].upper()
        if option == "UTF8" and (len(words) == 1 or words[1].upper() == "ON"):
            self.reply(200, "UTF8 mode is always on.")
        elif option == "MLST":
            self.reply(200, "MLST OPTS " + "".join(f"{f};" for f in proto.MLST_FACTS))
        else:
            self.reply(501, "Option not understood.")

    def ftp_HELP(self, cmd: Command) -> None:
        lines = proto.help_text(cmd.arg or None)
        self.reply(214, [*lines, "Help OK."] if len(lines) > 1 or not cmd.arg else lines)

    def ftp_NOOP(self, cmd: Command) -> None:
        self.reply(200, "NOOP ok.")

    async def ftp_STAT(self, cmd: Command) -> None:
        if cmd.arg and self.user is not None:
            node = self.vfs.resolve(self.cwd, self._path_arg(cmd.arg), self.ctx)
            listing = await self.vfs.entries(node, self.ctx)
            self.reply(213, [f"Status of {node.path}:",
                                   *(proto.list_line(item.entry) for item in listing), "End of status."])
            return
        if self.transfer is not None and not self.transfer.done():
            self.reply(213, f"Status: {self.transfer_bytes()} bytes transferred so far.")
            return
        who = f"Logged in as {self.user.alias}" if self.user else "Not logged in"
        self.reply(211, [
            f"{self.app.config.system.name} FTP Server status:",
            f"Connected from {self.conn.address}", who,
            f"TYPE: {'ASCII' if self.type == 'A' else 'BINARY'}, STRUcture: File, MODE: Stream",
            f"Control connection: {'TLS' if self.own_tls else ('TLS by proxy' if self.tls_proxy else 'clear')}; "
            f"data connections: {'private' if self.prot_p else 'clear'}",
            "End of status."])

    def ftp_SITE(self, cmd: Command) -> None:
        word, _, rest = cmd.arg.strip().partition(" ")
        word = word.upper()
        if word == "HELP":
            self.reply(214, ["SITE commands:", "SITE DESC <text>: description of your next upload",
                                   "SITE HELP", "End."])
        elif word == "DESC" and rest.strip():
            self._set_desc(rest)
        else:
            self.reply(500, "Unknown SITE command; try SITE HELP.")

    def ftp_DESC(self, cmd: Command) -> None:
        self._set_desc(cmd.arg)

    def _set_desc(self, text: str) -> None:
        self.next_desc = " ".join(text.split())
        self.reply(200, "Description saved for your next upload.")

    # -- navigation --------------------------------------------------------
    def _path_arg(self, arg: str) -> str:
        """A LIST/NLST/STAT argument without ls options ("-la", "-a dir")."""
        arg = arg.strip()
        while arg.startswith("-"):
            _, _, arg = arg.partition(" ")
            arg = arg.strip()
        return arg

    def ftp_PWD(self, cmd: Command) -> None:
        quoted = self.cwd.replace('"', '""')  # RFC 959 section 7: double the quotes
        self.reply(257, f'"{quoted}" is the current directory.')

    def ftp_CWD(self, cmd: Command) -> None:
        node = self.vfs.resolve(self.cwd, cmd.arg, self.ctx)
        if node.kind is Kind.FILE:
            raise BBSError(Reason.NOT_FOUND, "not a directory")
        self.cwd = node.path
        self.reply(250, f'Directory changed to "{node.path}".')

    def ftp_CDUP(self, cmd: Command) -> None:
        self.ftp_CWD(Command("CWD", "..", proto.COMMANDS["CWD"]))

    def ftp_MKD(self, cmd: Command) -> None:
        self.reply(550, "Directories are defined in ctrl/file.ini ([dir:LIB:CODE] sections).")

    def ftp_RMD(self, cmd: Command) -> None:
        self.reply(550, "Directories are defined in ctrl/file.ini ([dir:LIB:CODE] sections).")

    # -- representation ----------------------------------------------------
    def ftp_TYPE(self, cmd: Command) -> None:
        words = cmd.arg.upper().split()
        if words in (["A"], ["A", "N"]):
            self.type = "A"
            self.reply(200, "Type set to A (files are sent as stored).")
        elif words in (["I"], ["L", "8"]):
            self.type = "I"
            self.reply(200, "Type set to I.")
        else:
            self.reply(504, "Only TYPE A and I are supported.")

    def ftp_MODE(self, cmd: Command) -> None:
        if cmd.arg.strip().upper() == "S":
            self.reply(200, "Mode set to S.")
        else:
            self.reply(504, "Only MODE S is supported.")

    def ftp_STRU(self, cmd: Command) -> None:
        if cmd.arg.strip().upper() == "F":
            self.reply(200, "Structure set to F.")
        else:
            self.reply(504, "Only STRU F is supported.")

    def ftp_ALLO(self, cmd: Command) -> None:
        self.reply(202, "ALLO not needed here.")
