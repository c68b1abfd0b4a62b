"""The POP3 and POP3S servers (RFC 1939) over the BBS mailboxes.

A stream handler per connection (:meth:`POP3Service.handle`). Parsing is in
:mod:`mail.pop3proto`; this module reads lines, runs one ``pop3_VERB``
method per command (table-driven pre-checks first) and writes replies.

* USER/PASS and, with ``[Mail] AllowCramMD5``, APOP (the greeting then
  carries the timestamp);
* ``name#nospam`` hides spam-tagged mail (Synchronet);
* ``KILL_READ_SPAM``: spam-tagged messages retrieved (RETR) are deleted at QUIT;
* DELE marks; deletes happen only at QUIT (RFC 1939 section 6, UPDATE state);
  a dropped connection deletes nothing;
* STLS (RFC 2595) on the clear port; POP3S listeners are TLS from the start;
* one session per mailbox at a time (RFC 1939 section 8: exclusive lock);
* ``DEBUG_POP3`` logs every command (passwords masked);
* RETR/TOP read ahead: a client that retrieves messages in order gets the
  next ones fetched with it, in batches that double up to
  :data:`READ_AHEAD_MESSAGES` messages or :data:`READ_AHEAD_BYTES` (one
  database round trip per batch instead of per message). They are held by
  the session until retrieved, so a message the BBS's e-mail reader deletes
  meanwhile can still be retrieved in that session (as with the message
  list, which is fixed at logon).
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from bbs.errors import BBSError, Reason
from bbs.events import UserLogoff, UserLogon
from bbs.mailbox import MailStore, MessageInfo
from bbs.users import User
from mail.auth import Secrets
from mail.pop3proto import (MAX_COMMAND_LINE, Command, CommandError, State, capabilities,
                            multiline, parse_command, split_user, top)

log = logging.getLogger(__name__)

#: MaxInactivity 0 means no limit; a day stands for it.
NO_LIMIT_TIMEOUT = 24 * 60 * 60.0
#: Junk lines tolerated before the session is dropped (a flood guard).
MAX_BAD_COMMANDS = 20

#: Read-ahead limits of RETR/TOP (see the module docstring).
READ_AHEAD_MESSAGES = 64
READ_AHEAD_BYTES = 1024 * 1024

ERR_AUTH = "-ERR [AUTH] authentication failed"
ERR_LOCKED = "-ERR [IN-USE] mailbox in use by another session"
ERR_NO_MESSAGE = "-ERR no such message"
ERR_TEMP = "-ERR [SYS/TEMP] temporary failure, try again later"


def reply_for(exc: BBSError) -> str:
    """The POP3 reply for a core error (one place)."""
    if exc.reason is Reason.NOT_FOUND:
        return ERR_NO_MESSAGE
    if exc.reason is Reason.AUTH_FAILED:
        return ERR_AUTH
    return ERR_TEMP


class _Session:
    """State of one POP3 connection."""

    def __init__(self, service: "POP3Service", reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, conn: Any) -> None:
        self.service = service
        self.reader, self.writer, self.conn = reader, writer, conn
        self.state = State.AUTHORIZATION
        self.name = ""
        self.user: User | None = None
        self.hide_spam = False
        self.messages: list[MessageInfo] = []
        self.deleted: set[int] = set()
        #: KILL_READ_SPAM: spam-tagged messages retrieved in this session,
        #: deleted at QUIT like DELE'd ones (RSET does not bring them back).
        self.killed: set[int] = set()
        #: Ids of unread messages retrieved: marked read together at QUIT or at
        #: the end of the session (one transaction, not one fsync per RETR).
        self.retrieved: list[int] = []
        #: Messages read ahead, by index; the index last fetched and the
        #: size of the next batch (doubles while the client reads in order).
        self.ahead: dict[int, bytes] = {}
        self.last_fetched = -1
        self.window = 1
        self.timestamp = f"<{os.getpid()}.{time.time_ns()}@{service.hostname}>"
        self.done = False
        self.prefix = f"POP3 {conn.service} {conn.address}"

    async def send(self, line: str) -> None:
        self.writer.write(line.encode("utf-8", "replace") + b"\r\n")
        await self.writer.drain()

    async def send_lines(self, first: str, data: bytes) -> None:
        self.writer.write(first.encode("utf-8", "replace") + b"\r\n" + multiline(data))
        await self.writer.drain()

    def message(self, number: str) -> MessageInfo | None:
        index = int(number) - 1
        if 0 <= index < len(self.messages) and index not in self.deleted:
            return self.messages[index]
        return None


class POP3Service:
    """What every POP3 session shares; :meth:`handle` is the stream handler."""

    def __init__(self, *, app: Any, store: MailStore, secrets: Secrets, hostname: str,
                 options: frozenset[str], inactivity: float, tls_context) -> None:
        self.app = app
        self.store = store
        self.secrets = secrets
        self.hostname = hostname
        self.options = options
        self.inactivity = inactivity or NO_LIMIT_TIMEOUT
        self.tls_context = tls_context
        self.apop = secrets.shared_secret
        self.debug = "DEBUG_POP3" in options
        self._locked: set[int] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: Any) -> None:
        """Serve one POP3 connection until QUIT, time-out or disconnect."""
        session = _Session(self, reader, writer, conn)
        log.info("%s connection accepted", session.prefix)
        greeting = "+OK pybbs POP3 Server ready"
        if self.apop:
            greeting += f" {session.timestamp}"
        try:
            await session.send(greeting)
            await self._loop(session)
        finally:
            if session.user is not None:
                await self._mark_retrieved(session)
                self._locked.discard(session.user.number)
                self.app.bus.publish(UserLogoff(session.user.alias, session.user.number, 0, "pop3"))
            log.info("%s session ended", session.prefix)

    async def _mark_retrieved(self, s: _Session) -> None:
        """Mark what the session retrieved as read (the nodes' "new" mail)."""
        if s.user is None or not s.retrieved:
            return
        ids, s.retrieved = s.retrieved, []
        try:
            await self.store.mark_read(s.user.number, ids)
        except BBSError as exc:
            log.error("%s cannot mark %d message(s) read: %s", s.prefix, len(ids), exc)

    async def _loop(self, session: _Session) -> None:
        bad = 0
        while not session.done:
            try:
                async with asyncio.timeout(self.inactivity):  # no task per line, unlike wait_for
                    line = await session.reader.readuntil(b"\n")
            except TimeoutError:
                log.info("%s inactive for %g seconds; disconnecting", session.prefix, self.inactivity)
                await session.send("-ERR inactivity timeout")
                return
            except asyncio.IncompleteReadError:
                return
            except asyncio.LimitOverrunError as exc:
                await self._discard_long_line(session, exc.consumed)
                line = b""
                bad += 1
                await session.send("-ERR line too long")
                if bad > MAX_BAD_COMMANDS:
                    return
                continue
            if len(line) > MAX_COMMAND_LINE * 4:
                bad += 1
                await session.send("-ERR line too long")
                if bad > MAX_BAD_COMMANDS:
                    return
                continue
            try:
                command = parse_command(line, session.state)
            except CommandError as exc:
                bad += 1
                if self.debug:
                    log.debug("%s bad command %r: %s", session.prefix, line[:40], exc)
                await session.send(f"-ERR {exc}")
                if bad > MAX_BAD_COMMANDS:
                    await session.send("-ERR too many bad commands")
                    return
                continue
            if self.debug:
                shown = " ".join(command.args) if command.verb not in ("PASS", "APOP") else "********"
                log.debug("%s << %s %s", session.prefix, command.verb, shown)
            await getattr(self, f"pop3_{command.verb}")(session, command)

    @staticmethod
    async def _discard_long_line(session: _Session, consumed: int) -> None:
        await session.reader.readexactly(consumed)
        while True:
            try:
                await session.reader.readuntil(b"\n")
                return
            except asyncio.LimitOverrunError as exc:
                await session.reader.readexactly(exc.consumed)

    # -- AUTHORIZATION ------------------------------------------------------

    async def pop3_CAPA(self, s: _Session, cmd: Command) -> None:
        stls = self.tls_context is not None and not s.conn.secure and s.state is State.AUTHORIZATION
        caps = capabilities(stls=stls)
        if s.state is State.TRANSACTION:
            caps = [c for c in caps if c != "USER"]
        await s.send_lines("+OK Capability list follows", "\r\n".join(caps).encode())

    async def pop3_STLS(self, s: _Session, cmd: Command) -> None:
        if self.tls_context is None or s.conn.secure:
            await s.send("-ERR TLS not available")
            return
        await s.send("+OK Begin TLS negotiation")
        try:
            await s.writer.start_tls(self.tls_context)
        except (OSError, ConnectionError, asyncio.TimeoutError) as exc:
            log.info("%s TLS negotiation failed: %s", s.prefix, exc)
            s.done = True
            return
        s.conn.secure = True
        s.name = ""

    async def pop3_USER(self, s: _Session, cmd: Command) -> None:
        s.name = cmd.args[0]
        await s.send("+OK")

    async def pop3_PASS(self, s: _Session, cmd: Command) -> None:
        if not s.name:
            await s.send("-ERR USER first")
            return
        name, hide = split_user(s.name)
        password = cmd.args[0] if cmd.args else ""
        try:
            user = await self.secrets.verify(name, password)
        except BBSError:
            user = None
        await self._logon(s, name, user, hide, "USER/PASS")

    async def pop3_APOP(self, s: _Session, cmd: Command) -> None:
        if not self.apop:
            await s.send("-ERR APOP not available")
            return
        name, hide = split_user(cmd.args[0])
        user = await self.secrets.check_apop(name, s.timestamp, cmd.args[1])
        await self._logon(s, name, user, hide, "APOP")

    async def _logon(self, s: _Session, name: str, user: User | None, hide: bool, how: str) -> None:
        login = self.app.login
        if user is None:
            log.warning("%s !POP3 %s FAILURE for %r", s.prefix, how, name[:64])
            outcome = login.failed(s.conn.address, "pop3", name)
            await asyncio.sleep(outcome.delay)
            await s.send(ERR_AUTH)
            s.name = ""
            if outcome.banned:
                s.done = True
            return
        login.succeeded(s.conn.address)
        if user.number in self._locked:
            await s.send(ERR_LOCKED)
            return
        try:
            messages = await self.store.list(user.number, include_spam=not hide)
        except BBSError as exc:
            log.error("%s cannot list mailbox of #%d: %s", s.prefix, user.number, exc)
            await s.send(reply_for(exc))
            return
        self._locked.add(user.number)
        s.user, s.hide_spam, s.messages = user, hide, messages
        s.state = State.TRANSACTION
        s.conn.user = user.alias
        self.app.bus.publish(UserLogon(user.alias, user.number, 0, "pop3", s.conn.address))
        log.info("%s %s logged on (%s): %d messages%s", s.prefix, user.alias, how, len(messages),
                 " (spam hidden)" if hide else "")
        await s.send(f"+OK {user.alias} has {len(messages)} messages")

    # -- TRANSACTION --------------------------------------------------------

    def _live(self, s: _Session) -> list[tuple[int, MessageInfo]]:
        return [(i + 1, m) for i, m in enumerate(s.messages) if i not in s.deleted]

    async def pop3_STAT(self, s: _Session, cmd: Command) -> None:
        live = self._live(s)
        await s.send(f"+OK {len(live)} {sum(m.size for _, m in live)}")

    async def pop3_LIST(self, s: _Session, cmd: Command) -> None:
        if cmd.args:
            msg = s.message(cmd.args[0])
            await s.send(f"+OK {cmd.args[0]} {msg.size}" if msg else ERR_NO_MESSAGE)
            return
        live = self._live(s)
        body = "\r\n".join(f"{n} {m.size}" for n, m in live).encode()
        await s.send_lines(f"+OK {len(live)} messages", body)

    async def pop3_UIDL(self, s: _Session, cmd: Command) -> None:
        if cmd.args:
            msg = s.message(cmd.args[0])
            await s.send(f"+OK {cmd.args[0]} {msg.id}" if msg else ERR_NO_MESSAGE)
            return
        body = "\r\n".join(f"{n} {m.id}" for n, m in self._live(s)).encode()
        await s.send_lines("+OK", body)

    async def _fetch(self, s: _Session, number: str) -> tuple[MessageInfo, bytes] | None:
        """Message ``number`` and its bytes (read ahead or fetched with the
        next batch), taken out of the read-ahead so the session never holds
        more than a batch; None after an -ERR reply."""
        msg = s.message(number)
        if msg is None:
            await s.send(ERR_NO_MESSAGE)
            return None
        assert s.user is not None
        index = int(number) - 1
        raw = s.ahead.pop(index, None)
        if raw is not None:
            return msg, raw
        s.window = min(s.window * 2, READ_AHEAD_MESSAGES) if index == s.last_fetched + 1 else 1
        batch = self._batch(s, index)
        s.last_fetched = batch[-1]
        try:
            found = await self.store.read_many(s.user.number, [s.messages[i].id for i in batch])
        except BBSError as exc:
            await s.send(reply_for(exc))
            return None
        for i in batch[1:]:
            if s.messages[i].id in found:
                s.ahead[i] = found[s.messages[i].id]
        raw = found.get(msg.id)
        if raw is None:
            await s.send(ERR_NO_MESSAGE)  # deleted by the BBS's e-mail reader meanwhile
            return None
        return msg, raw

    @staticmethod
    def _batch(s: _Session, index: int) -> list[int]:
        """Message ``index`` and the live ones after it not yet read ahead,
        up to the session's window and :data:`READ_AHEAD_BYTES`."""
        batch, size = [index], s.messages[index].size
        for i in range(index + 1, len(s.messages)):
            if len(batch) >= s.window or size + s.messages[i].size > READ_AHEAD_BYTES:
                break
            if i in s.deleted or i in s.ahead:
                continue
            batch.append(i)
            size += s.messages[i].size
        return batch

    async def pop3_RETR(self, s: _Session, cmd: Command) -> None:
        found = await self._fetch(s, cmd.args[0])
        if found is None:
            return
        msg, data = found
        await s.send_lines(f"+OK {len(data)} octets", data)
        if msg.spam and "KILL_READ_SPAM" in self.options:
            s.killed.add(int(cmd.args[0]) - 1)
        if not msg.read:
            s.retrieved.append(msg.id)

    async def pop3_TOP(self, s: _Session, cmd: Command) -> None:
        found = await self._fetch(s, cmd.args[0])
        if found is not None:
            await s.send_lines("+OK", top(found[1], int(cmd.args[1])))

    async def pop3_DELE(self, s: _Session, cmd: Command) -> None:
        msg = s.message(cmd.args[0])
        if msg is None:
            await s.send(ERR_NO_MESSAGE)
            return
        s.deleted.add(int(cmd.args[0]) - 1)
        s.ahead.pop(int(cmd.args[0]) - 1, None)
        await s.send(f"+OK message {cmd.args[0]} deleted")

    async def pop3_RSET(self, s: _Session, cmd: Command) -> None:
        s.deleted.clear()
        await s.send(f"+OK {len(s.messages)} messages")

    async def pop3_NOOP(self, s: _Session, cmd: Command) -> None:
        await s.send("+OK")

    async def pop3_QUIT(self, s: _Session, cmd: Command) -> None:
        s.done = True
        await self._mark_retrieved(s)
        if s.user is None or not (s.deleted or s.killed):
            await s.send("+OK pybbs POP3 Server signing off")
            return
        if s.killed:
            log.info("%s KILL_READ_SPAM: deleting %d read spam message(s) of %s", s.prefix,
                     len(s.killed - s.deleted), s.user.alias)
        ids = [s.messages[i].id for i in sorted(s.deleted | s.killed)]
        try:
            count = await self.store.delete(s.user.number, ids)
        except BBSError as exc:
            log.error("%s !POP3 cannot delete messages: %s", s.prefix, exc)
            await s.send("-ERR [SYS/TEMP] some deleted messages not removed")
            return
        log.info("%s %s deleted %d messages", s.prefix, s.user.alias, count)
        await s.send(f"+OK pybbs POP3 Server signing off ({count} messages deleted)")

