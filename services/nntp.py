"""NNTP (RFC 3977) over the BBS message subs: each sub is a newsgroup (its
``newsgroup`` name from msgs.ini). Reading and posting follow the sub's
requirements for the logged-in user (AUTHINFO USER/PASS, RFC 4643); without
a login the Guest account (main.ini GuestName) reads, when it exists.

Commands are table-driven (STYLE 3): one :class:`Verb` per command, one
generic pre-check (arguments, authentication), then ``nntp_<VERB>``.
Article text helpers are pure, in :mod:`services.newsfmt`.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Awaitable, Callable

from bbs.app import App
from bbs.ars import AccessContext
from bbs.boardconf import MsgSub
from bbs.errors import BBSError
from bbs.listeners import Connection
from bbs.msgbase import Message
from bbs.users import User
from services import newsfmt

log = logging.getLogger(__name__)


class Reply(Exception):
    """Raised by a command to answer with one status line."""

    def __init__(self, line: str) -> None:
        super().__init__(line)
        self.line = line


NO_GROUP = "412 No newsgroup selected"
NO_SUCH_GROUP = "411 No such newsgroup"
AUTH_REQUIRED = "480 Authentication required"


@dataclasses.dataclass(frozen=True)
class Verb:
    handler: str
    min_args: int = 0
    max_args: int = 0
    reading: bool = True  # needs a reader (a login, or the Guest account)
    help: str = ""


VERBS: dict[str, Verb] = {
    "CAPABILITIES": Verb("capabilities", 0, 1, False, "list capabilities"),
    "MODE": Verb("mode", 1, 1, False, "MODE READER"),
    "QUIT": Verb("quit", 0, 0, False, "close the connection"),
    "HELP": Verb("help", 0, 0, False, "this text"),
    "DATE": Verb("date", 0, 0, False, "the server's time (UTC)"),
    "AUTHINFO": Verb("authinfo", 2, 2, False, "AUTHINFO USER name | AUTHINFO PASS password"),
    "LIST": Verb("list", 0, 2, True, "LIST [ACTIVE|NEWSGROUPS [wildmat]|OVERVIEW.FMT]"),
    "GROUP": Verb("group", 1, 1, True, "GROUP newsgroup"),
    "LISTGROUP": Verb("listgroup", 0, 2, True, "LISTGROUP [newsgroup [range]]"),
    "ARTICLE": Verb("article", 0, 1, True, "ARTICLE [number|<message-id>]"),
    "HEAD": Verb("article", 0, 1, True, "HEAD [number|<message-id>]"),
    "BODY": Verb("article", 0, 1, True, "BODY [number|<message-id>]"),
    "STAT": Verb("article", 0, 1, True, "STAT [number|<message-id>]"),
    "NEXT": Verb("step", 0, 0, True, "next article"),
    "LAST": Verb("step", 0, 0, True, "previous article"),
    "OVER": Verb("over", 0, 1, True, "OVER [range|<message-id>]"),
    "XOVER": Verb("over", 0, 1, True, "XOVER [range]"),
    "NEWGROUPS": Verb("newgroups", 2, 3, True, "NEWGROUPS date time [GMT]"),
    "NEWNEWS": Verb("newnews", 3, 4, True, "NEWNEWS wildmat date time [GMT]"),
    "POST": Verb("post", 0, 0, True, "POST an article"),
}


class NNTPSession:
    """One client connection."""

    def __init__(self, app: App, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 conn: Connection, guest: User | None) -> None:
        self.app, self.reader, self.writer, self.conn = app, reader, writer, conn
        self.hostname = app.config.server.global_.hostname
        self.user: User | None = None
        self.guest = guest
        self.pending_user = ""
        self.sub: MsgSub | None = None
        self.current = 0
        self.done = False
        self.timeout = app.config.server.services.common.max_inactivity or None

    # -- plumbing ------------------------------------------------------
    def send(self, line: str) -> None:
        self.writer.write(line.encode("utf-8", "replace") + b"\r\n")

    async def readline(self) -> bytes:
        line = await asyncio.wait_for(self.reader.readline(), self.timeout)
        if not line:
            raise ConnectionError("closed")
        return line

    async def run(self) -> None:
        self.send(f"200 {self.hostname} NNTP service ready (posting after AUTHINFO)")
        await self.writer.drain()
        while not self.done:
            try:
                raw = await self.readline()
            except ValueError:  # longer than the stream's limit
                self.send("500 Line too long")
                return
            if len(raw) > newsfmt.MAX_COMMAND:
                self.send("501 Command line too long")
                await self.writer.drain()
                continue
            await self.dispatch(raw.decode("utf-8", "replace").strip())
            await self.writer.drain()

    async def dispatch(self, line: str) -> None:
        words = line.split()
        if not words:
            self.send("500 Empty command")
            return
        verb_name = words[0].upper()
        verb = VERBS.get(verb_name)
        if verb is None:
            self.send("500 Unknown command")
            return
        args = words[1:]
        if verb_name == "AUTHINFO" and len(args) > 2:  # passwords may contain spaces
            args = [args[0], line.split(None, 2)[2]]
        if not verb.min_args <= len(args) <= verb.max_args:
            self.send(f"501 Syntax: {verb.help}")
            return
        if verb.reading and self.reader_ctx() is None:
            self.send(AUTH_REQUIRED)
            return
        handler: Callable[[str, list[str]], Awaitable[None]] = getattr(self, f"nntp_{verb.handler}")
        try:
            await handler(verb_name, args)
        except Reply as reply:
            self.send(reply.line)
        except BBSError as exc:
            log.warning("nntp %s: %s failed: %s", self.conn.address, verb_name, exc)
            self.send("403 Internal fault")

    # -- access --------------------------------------------------------
    def reader_ctx(self) -> AccessContext | None:
        user = self.user or self.guest
        if user is None:
            return None
        return AccessContext(level=user.level, flags=user.flags, exempt=user.exempt, restrict=user.restrict,
                             user=user.number, protocol="nntp", guest=self.user is None)

    def groups(self, *, posting: bool = False) -> list[MsgSub]:
        ctx = self.reader_ctx()
        if ctx is None:
            return []
        result = []
        for sub in self.app.config.msgs.subs:
            group = next(g for g in self.app.config.msgs.groups if g.name == sub.group)
            if group.ars.allows(ctx) and sub.ars.allows(ctx) and sub.read_ars.allows(ctx):
                if not posting or (self.user is not None and sub.post_ars.allows(ctx)):
                    result.append(sub)
        return result

    def find_group(self, name: str) -> MsgSub:
        for sub in self.groups():
            if sub.newsgroup.lower() == name.lower():
                return sub
        raise Reply(NO_SUCH_GROUP)

    # -- commands ------------------------------------------------------
    async def nntp_capabilities(self, verb: str, args: list[str]) -> None:
        self.send("101 Capability list:")
        caps = ["VERSION 2", "READER", "LIST ACTIVE NEWSGROUPS OVERVIEW.FMT", "OVER", "NEWNEWS",
                "POST", "IMPLEMENTATION pybbs NNTP"]
        if self.user is None:
            caps.append("AUTHINFO USER")
        self.writer.write(newsfmt.dot_stuff(caps))

    async def nntp_mode(self, verb: str, args: list[str]) -> None:
        if args[0].upper() != "READER":
            raise Reply("501 Unknown MODE")
        self.send("200 Reader mode, posting allowed after AUTHINFO")

    async def nntp_quit(self, verb: str, args: list[str]) -> None:
        self.send("205 Goodbye")
        self.done = True

    async def nntp_help(self, verb: str, args: list[str]) -> None:
        self.send("100 Help text follows")
        self.writer.write(newsfmt.dot_stuff([f"  {name:<12} {v.help}" for name, v in VERBS.items()]))

    async def nntp_date(self, verb: str, args: list[str]) -> None:
        self.send("111 " + time.strftime("%Y%m%d%H%M%S", time.gmtime()))

    async def nntp_authinfo(self, verb: str, args: list[str]) -> None:
        kind, value = args[0].upper(), args[1]
        if self.user is not None:
            raise Reply("502 Already authenticated")
        if kind == "USER":
            self.pending_user = value
            raise Reply("381 Password required")
        if kind != "PASS":
            raise Reply("501 AUTHINFO USER or PASS")
        if not self.pending_user:
            raise Reply("482 Authentication commands issued out of sequence")
        name, self.pending_user = self.pending_user, ""
        try:
            user = await self.app.users.verify(name, value)
        except BBSError:
            outcome = self.app.login.failed(self.conn.address, "nntp", name)
            log.warning("nntp %s: !FAILED login as %r", self.conn.address, name)
            await asyncio.sleep(outcome.delay)
            if outcome.banned:
                self.done = True
            raise Reply("481 Authentication failed") from None
        self.app.login.succeeded(self.conn.address)
        self.user, self.conn.user = user, user.alias
        log.info("nntp %s: %s logged on", self.conn.address, user.alias)
        raise Reply("281 Authentication accepted")

    async def nntp_list(self, verb: str, args: list[str]) -> None:
        keyword = args[0].upper() if args else "ACTIVE"
        pattern = args[1] if len(args) > 1 else "*"
        if keyword == "OVERVIEW.FMT":
            self.send("215 Order of fields in overview database")
            self.writer.write(newsfmt.dot_stuff(list(newsfmt.OVERVIEW_FORMAT)))
            return
        if keyword not in ("ACTIVE", "NEWSGROUPS"):
            raise Reply("501 Unknown LIST keyword")
        postable = {s.code for s in self.groups(posting=True)}
        lines = []
        for sub in self.groups():
            if not newsfmt.wildmat(pattern, sub.newsgroup):
                continue
            if keyword == "NEWSGROUPS":
                lines.append(f"{sub.newsgroup}\t{sub.description}")
            else:
                count, high, _ = await self.app.msgs.stats(sub.code)
                low = (await self.app.msgs.numbers(sub.code) or [high + 1])[0]
                lines.append(f"{sub.newsgroup} {high} {low} {'y' if sub.code in postable else 'n'}")
        self.send("215 Information follows")
        self.writer.write(newsfmt.dot_stuff(lines))

    async def _select(self, name: str) -> list[int]:
        sub = self.find_group(name)
        numbers = await self.app.msgs.numbers(sub.code)
        self.sub, self.current = sub, numbers[0] if numbers else 0
        return numbers

    def _group_line(self, numbers: list[int]) -> str:
        assert self.sub is not None
        if not numbers:
            return f"211 0 0 0 {self.sub.newsgroup}"
        return f"211 {len(numbers)} {numbers[0]} {numbers[-1]} {self.sub.newsgroup}"

    async def nntp_group(self, verb: str, args: list[str]) -> None:
        self.send(self._group_line(await self._select(args[0])))

    async def nntp_listgroup(self, verb: str, args: list[str]) -> None:
        if args:
            numbers = await self._select(args[0])
        elif self.sub is None:
            raise Reply(NO_GROUP)
        else:
            numbers = await self.app.msgs.numbers(self.sub.code)
        low, high = newsfmt.parse_range(args[1]) if len(args) > 1 else (0, None)
        self.send(self._group_line(numbers) + " list follows")
        self.writer.write(newsfmt.dot_stuff([str(n) for n in numbers if n >= low and (high is None or n <= high)]))

    async def _references(self, message: Message) -> str:
        if not message.reply_to:
            return ""
        try:
            return (await self.app.msgs.get(message.sub, message.reply_to)).msgid
        except BBSError:
            return ""

    async def _locate(self, args: list[str]) -> tuple[Message, int]:
        """The article named by ``args`` (number, <id> or current) and its number (0 by id)."""
        if args and args[0].startswith("<"):
            try:
                message = await self.app.msgs.by_msgid(args[0])
            except BBSError:
                raise Reply("430 No article with that message-id") from None
            if message.sub.lower() not in {s.code.lower() for s in self.groups()}:
                raise Reply("430 No article with that message-id")
            return message, 0
        if self.sub is None:
            raise Reply(NO_GROUP)
        if args:
            if not args[0].isdigit():
                raise Reply("501 Bad article number")
            number = int(args[0])
        else:
            number = self.current
            if not number:
                raise Reply("420 Current article number is invalid")
        try:
            message = await self.app.msgs.get(self.sub.code, number)
        except BBSError:
            raise Reply("423 No article with that number") from None
        self.current = number
        return message, number

    async def nntp_article(self, verb: str, args: list[str]) -> None:
        message, number = await self._locate(args)
        code = {"ARTICLE": 220, "HEAD": 221, "BODY": 222, "STAT": 223}[verb]
        self.send(f"{code} {number} {message.msgid}")
        if verb == "STAT":
            return
        group = next((s.newsgroup for s in self.app.config.msgs.subs if s.code.lower() == message.sub.lower()),
                     message.sub)
        head = newsfmt.headers(message, group, self.hostname, await self._references(message))
        lines = head if verb == "HEAD" else newsfmt.body_lines(message)
        if verb == "ARTICLE":
            lines = head + [""] + newsfmt.body_lines(message)
        self.writer.write(newsfmt.dot_stuff(lines))

    async def nntp_step(self, verb: str, args: list[str]) -> None:
        if self.sub is None:
            raise Reply(NO_GROUP)
        if not self.current:
            raise Reply("420 Current article number is invalid")
        numbers = await self.app.msgs.numbers(self.sub.code)
        if verb == "NEXT":
            later = [n for n in numbers if n > self.current]
            if not later:
                raise Reply("421 No next article in this group")
            self.current = later[0]
        else:
            earlier = [n for n in numbers if n < self.current]
            if not earlier:
                raise Reply("422 No previous article in this group")
            self.current = earlier[-1]
        message = await self.app.msgs.get(self.sub.code, self.current)
        self.send(f"223 {self.current} {message.msgid}")

    async def nntp_over(self, verb: str, args: list[str]) -> None:
        if args and args[0].startswith("<"):
            message, _ = await self._locate(args)
            messages = [message]
        else:
            if self.sub is None:
                raise Reply(NO_GROUP)
            if args:
                try:
                    low, high = newsfmt.parse_range(args[0])
                except ValueError:
                    raise Reply("501 Bad range") from None
            elif self.current:
                low, high = self.current, self.current
            else:
                raise Reply("420 Current article number is invalid")
            messages = [m for m in await self.app.msgs.list(self.sub.code, after=low - 1, limit=5000)
                        if high is None or m.number <= high]
            if not messages:
                raise Reply("423 No articles in that range")
        self.send("224 Overview information follows")
        lines = [newsfmt.overview(m, self.hostname, await self._references(m)) for m in messages]
        if args and args[0].startswith("<"):
            lines = ["0" + line[line.index("\t"):] for line in lines]
        self.writer.write(newsfmt.dot_stuff(lines))

    async def nntp_newgroups(self, verb: str, args: list[str]) -> None:
        try:
            newsfmt.parse_date(args[0], args[1])
        except ValueError:
            raise Reply("501 Bad date") from None
        self.send("231 List of new newsgroups follows")  # creation times are not kept
        self.writer.write(newsfmt.dot_stuff([]))

    async def nntp_newnews(self, verb: str, args: list[str]) -> None:
        try:
            since = newsfmt.parse_date(args[1], args[2])
        except ValueError:
            raise Reply("501 Bad date") from None
        ids = []
        for sub in self.groups():
            if newsfmt.wildmat(args[0], sub.newsgroup):
                ids += [m.msgid for m in await self.app.msgs.since(sub.code, since)]
        self.send("230 List of new articles follows")
        self.writer.write(newsfmt.dot_stuff(ids))

    async def nntp_post(self, verb: str, args: list[str]) -> None:
        if self.user is None or not self.groups(posting=True):
            raise Reply("440 Posting not permitted")
        self.send("340 Send article to be posted, end with <CR-LF>.<CR-LF>")
        await self.writer.drain()
        lines, size, too_big = [], 0, False
        while True:
            raw = await self.readline()
            size += len(raw)
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            if text == ".":
                break
            if size > newsfmt.MAX_ARTICLE:
                too_big = True
                continue
            lines.append(text[1:] if text.startswith("..") else text)
        if too_big:
            raise Reply("441 Article too large")
        fields, body = newsfmt.parse_article(lines)
        targets = [g.strip() for g in fields.get("newsgroups", "").split(",") if g.strip()]
        allowed = {s.newsgroup.lower(): s for s in self.groups(posting=True)}
        subs = [allowed[g.lower()] for g in targets if g.lower() in allowed]
        if not targets or len(subs) != len(targets):
            raise Reply("441 Posting to that newsgroup is not permitted")
        reply_to = await self._reply_target(fields.get("references", ""))
        for sub in subs:
            parent = reply_to.number if reply_to is not None and reply_to.sub.lower() == sub.code.lower() else 0
            message = await self.app.msgs.post(sub.code, self.user.alias, fields.get("subject", "(no subject)"),
                                               body, from_number=self.user.number, reply_to=parent,
                                               to_name=fields.get("x-comment-to", "All"))
            log.info("nntp %s: %s posted %s #%d", self.conn.address, self.user.alias, sub.code, message.number)
        await self.app.users.add_stats(self.user.number, posts=len(subs))
        raise Reply("240 Article received OK")

    async def _reply_target(self, references: str) -> Message | None:
        ids = references.split()
        if not ids:
            return None
        try:
            return await self.app.msgs.by_msgid(ids[-1])
        except BBSError:
            return None


def handler(app: App):
    async def nntp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: Connection) -> None:
        try:
            guest = await app.users.find(app.config.system.guest_name)
        except BBSError:
            guest = None
        session = NNTPSession(app, reader, writer, conn, guest)
        try:
            await session.run()
        except (asyncio.TimeoutError, ConnectionError):
            return
        finally:
            if not writer.is_closing():
                await writer.drain()

    return nntp
