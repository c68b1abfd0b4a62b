"""One caller's session on a node: detection, logon, new user, menus, logoff.

Started by the protocol modules once a node is allocated; runs until the
caller logs off, hangs up, idles out or the BBS stops. Every step updates the
node table (status and activity text) and the event bus (UserLogon,
UserLogoff). A crash here is logged and ends only this session.
"""
from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

from bbs.ars import AccessContext
from bbs.errors import BBSError, Reason
from bbs.events import TelegramSent, UserLogoff, UserLogon
from bbs.nodetable import NodeStatus
from bbs.users import LEN_LOCATION, LEN_NAME, LEN_NETMAIL, User
from nodes import terminal as t
from nodes.io import Hangup, Link, Terminal
from nodes.menus import MAIN_MENU
from nodes.sysop import SessionAccess

if TYPE_CHECKING:
    from bbs.app import App
    from nodes.server import NodeServices

log = logging.getLogger(__name__)

#: Log-on attempts per connection before hanging up (ours; Synchronet's
#: SCFG "Maximum Log-on Attempts" plays this role).
MAX_LOGON_ATTEMPTS = 3
#: Callers shown in the last-callers list at logon.
LAST_CALLERS_SHOWN = 8
#: Lines kept in data/logon.lst (Synchronet's last-callers log).
LAST_CALLERS_KEPT = 200
#: The log-on prompt word that starts the new-user application (Synchronet "NEW").
NEW_USER_WORD = "NEW"


class NodeLog(logging.LoggerAdapter):
    """Prefixes log lines with the node, protocol and address (STYLE 7)."""

    def process(self, msg, kwargs):
        return f"Node {self.extra['node']} {self.extra['protocol']} {self.extra['address']}: {msg}", kwargs


class Session:
    """The caller's BBS on one node."""

    def __init__(self, app: "App", services: "NodeServices", link: Link, node: int, address: str) -> None:
        self.app = app
        self.services = services
        self.link = link
        self.node = node
        self.address = address
        self.protocol = link.protocol
        self.term = Terminal(link, app.shutdown)
        self.user: User | None = None
        self.logon_time = 0.0
        self.menu_stack: list[str] = []
        self.log = NodeLog(log, {"node": node, "protocol": link.protocol, "address": address})
        self._unsubscribe = None
        self._telegram_ids: list[int] = []

    # -- helpers used by screens -------------------------------------------
    @property
    def system(self):
        return self.app.config.system

    def access(self) -> AccessContext:
        user = self.user
        if user is None:
            return AccessContext(node=self.node, protocol=self.protocol, ansi=self.term.ansi)
        return AccessContext(level=user.level, flags=user.flags, exempt=user.exempt, restrict=user.restrict,
                             user=user.number, node=self.node, protocol=self.protocol,
                             guest=user.alias.lower() == self.system.guest_name.lower(), ansi=self.term.ansi)

    def set_activity(self, text: str, status: NodeStatus | None = None) -> None:
        changes: dict = {"activity": text}
        if status is not None:
            changes["status"] = status
        self.app.nodes.update(self.node, **changes)

    def atcode(self, code: str) -> str | None:
        """The value of one @-code for this caller (None: unknown code)."""
        user, system = self.user, self.system
        now = time.localtime()
        values = {
            "BBS": system.name, "SYSOP": system.operator, "LOCATION": system.location,
            "QWKID": system.qwk_id, "NODE": str(self.node), "TNODE": str(system.last_node),
            "FIRSTNODE": str(system.first_node), "LASTNODE": str(system.last_node),
            "TIME": time.strftime("%H:%M", now), "DATE": time.strftime("%Y-%m-%d", now),
            "PROTOCOL": self.protocol, "CONN": self.protocol, "IP": self.address,
            "COLS": str(self.term.cols), "ROWS": str(self.term.rows),
            "TERM": self.link.term_type or "unknown",
            "EMULATION": "ANSI" if self.term.ansi else "ASCII", "CHARSET": self.term.charset.upper(),
            "HOSTNAME": self.app.config.server.global_.hostname,
            "PAUSE": "\x01P", "CLS": "\x01L",
            "TIMEON": str(int((time.time() - self.logon_time) // 60)) if self.logon_time else "0",
        }
        if user is not None:
            values.update({
                "USER": user.alias, "ALIAS": user.alias, "NAME": user.real_name or user.alias,
                "REALNAME": user.real_name, "USERNUM": str(user.number), "LEVEL": str(user.level),
                "FROM": user.location, "UL_LOCATION": user.location, "EMAIL": user.email,
                "CALLS": str(user.logons), "LOGONS": str(user.logons), "POSTS": str(user.posts),
                "LASTON": time.strftime("%Y-%m-%d %H:%M", time.localtime(user.last_on)) if user.last_on else "never",
                "FIRSTON": time.strftime("%Y-%m-%d", time.localtime(user.first_on)) if user.first_on else "today",
            })
        else:
            values.update({"USER": "", "ALIAS": ""})
        return values.get(code)

    def expand(self, text: str) -> str:
        return t.expand_atcodes(text, self.atcode)

    async def print(self, text: str) -> None:
        """Write text with Ctrl-A and @-codes."""
        await self.term.write(self.expand(text))

    async def display(self, name: str, *, page: bool = True) -> bool:
        """Show display file text/NAME (.ans for ANSI callers, else .msg/.asc)
        with @-codes and paging. Returns False when there is no such file."""
        text = await asyncio.to_thread(read_display_file, self.app.instance.text, name, self.term.ansi)
        if text is None:
            return False
        text = self.expand(text)
        if page:
            await self.term.page(text)
        else:
            await self.term.write(text)
        return True

    # -- the session -------------------------------------------------------
    async def run(self, *, preauth: User | None = None, new_user: bool = False, name_hint: str = "",
                  password_hint: str = "") -> None:
        """The whole call. ``preauth``: the protocol already authenticated the
        user (SSH password, RLogin quick login); ``new_user``: go straight to
        the application (SSH's new-user name)."""
        started = time.time()
        access = SessionAccess(self)  # the sysop console's spy, chat and interrupt (bbs.spy)
        unregister = self.app.spy.register(access)
        try:
            try:
                await self.detect()
                if preauth is None and name_hint and password_hint:
                    preauth = await self.quick_login(name_hint, password_hint)
                user = preauth
                if user is None:
                    user = await (self.new_user() if new_user else self.logon(name_hint))
                if user is None:
                    return
                await self.logged_on(user)
                await self.menus()
                await self.logoff()
            except Hangup as exc:
                self.log.info("session ends: %s", exc.reason)
                if exc.message and exc.reason != "disconnected":
                    try:
                        await self.term.write(exc.message)
                    except Exception:  # the caller may be gone already
                        pass
                if exc.logoff and self.user is not None:
                    try:
                        await self.logoff()
                    except Exception:  # hung up meanwhile
                        pass
        finally:
            unregister()
            access.close()
            if self._unsubscribe is not None:
                self._unsubscribe()
            self.term.close()
            if self.user is not None:
                self.app.bus.publish(UserLogoff(self.user.alias, self.user.number, self.node, self.protocol))
                self.log.info("%s logged off", self.user.alias)
                try:
                    await self.app.users.add_stats(self.user.number, time_on=int(time.time() - self.logon_time))
                    await self.mark_telegrams()
                except BBSError:
                    self.log.exception("could not record logoff statistics")
            self.log.debug("call lasted %.0f seconds", time.time() - started)

    async def detect(self) -> None:
        """Terminal detection: TTYPE first; when it says nothing, a cursor-
        position probe (ANSI or dumb), and for ANSI terminals a UTF-8 probe
        (a 3-byte UTF-8 character moves the cursor 1 column, or 3 in CP437)."""
        ansi, charset = t.classify_terminal(self.link.term_type)
        if ansi is None:
            report = await self.term.probe_cpr()
            ansi = report is not None
            if ansi and charset is None:
                self.term.write_raw(b"\r\xe2\x94\x80")
                second = await self.term.probe_cpr()
                self.term.write_raw(b"\r   \r")
                charset = "utf-8" if second is not None and second.col == 2 else "cp437"
        self.term.ansi = bool(ansi)
        self.term.set_charset(charset or ("utf-8" if ansi else "ascii"))
        self.log.info("terminal %s: %s, %s, %dx%d", self.link.term_type or "unknown",
                      "ANSI" if self.term.ansi else "dumb", self.term.charset, self.term.cols, self.term.rows)

    def apply_settings(self, user: User) -> None:
        """The caller's saved terminal choices override detection."""
        saved = user.terminal or {}
        if isinstance(saved.get("ansi"), bool):
            self.term.ansi = saved["ansi"]
        if saved.get("charset") in ("utf-8", "cp437", "ascii"):
            self.term.set_charset(saved["charset"])
        for key, attr in (("cols", "fixed_cols"), ("rows", "fixed_rows")):
            value = saved.get(key)
            if isinstance(value, int) and 0 <= value <= 400:
                setattr(self.term, attr, value)

    async def logon(self, name_hint: str = "") -> User | None:
        """The log-on prompt: name or number and password, or NEW.
        Returns the user, or None after too many failures."""
        bbs = self.app.config.server.bbs
        self.term.idle_limit = bbs.max_login_inactivity
        self.set_activity("logging on", NodeStatus.LOGON)
        await self.display("answer")
        for attempt in range(MAX_LOGON_ATTEMPTS):
            await self.print("\r\n\x01n\x01cEnter your \x01hname\x01n\x01c or \x01hnumber\x01n\x01c, "
                             f"or \x01h{NEW_USER_WORD}\x01n\x01c to apply for an account.\r\n")
            name = t.printable(await self.term.getline("\x01n\x01h\x01cLogin: \x01w", maxlen=LEN_NAME,
                                                       default=name_hint if attempt == 0 else "")).strip()
            if not name:
                continue
            if name.upper() == NEW_USER_WORD:
                user = await self.new_user()
                if user is not None:
                    return user
                self.term.idle_limit = bbs.max_login_inactivity
                self.set_activity("logging on", NodeStatus.LOGON)
                continue
            password = await self.term.getline("\x01n\x01h\x01cPassword: \x01w", maxlen=128, mask=True)
            user = await self.check_password(name, password)
            if user is not None:
                return user
        await self.print("\r\n\x01n\x01h\x01rToo many failed log-on attempts.\x01n\r\n")
        return None

    async def check_password(self, name: str, password: str) -> User | None:
        """Verify credentials with the failed-login rules; tells the caller."""
        try:
            user = await self.app.users.verify(name, password)
        except BBSError as exc:
            if exc.reason is not Reason.AUTH_FAILED:
                raise
            outcome = self.app.login.failed(self.address, self.protocol, name)
            self.log.warning("failed log-on as %r (%d failures from this address)", t.printable(name, 40),
                             outcome.count)
            await asyncio.sleep(outcome.delay)
            await self.print("\x01n\x01h\x01rInvalid log-on.\x01n\r\n")
            if outcome.banned:
                raise Hangup("banned", "\x01n\x01rToo many failures from your address. Goodbye.\x01n\r\n")
            return None
        self.app.login.succeeded(self.address)
        return user

    async def quick_login(self, name: str, password: str) -> User | None:
        """RLogin: log straight in when the names and password match."""
        try:
            user = await self.app.users.verify(name, password)
        except BBSError:
            return None
        self.app.login.succeeded(self.address)
        return user

    async def new_user(self) -> User | None:
        """The new-user application: alias, real name, location, e-mail,
        password twice, terminal settings. Returns the new user or None."""
        system = self.system
        self.term.idle_limit = self.app.config.server.bbs.max_newuser_inactivity
        self.set_activity("new user application", NodeStatus.NEWUSER)
        if system.new_user_password:
            word = await self.term.getline("\x01n\x01cNew-user password: \x01h", maxlen=40, mask=True)
            if word != system.new_user_password:
                outcome = self.app.login.failed(self.address, self.protocol, "NEW")
                await asyncio.sleep(outcome.delay)
                await self.print("\x01n\x01h\x01rWrong new-user password.\x01n\r\n")
                return None
        await self.display("newuser")
        while True:
            alias = t.printable(await self.term.getline(
                "\x01n\x01cYour \x01halias\x01n\x01c (the name you will be known by): \x01h\x01w", maxlen=25)).strip()
            if not alias:
                return None
            try:
                self.app.users.validate_alias(alias)
                await self.app.users.find(alias)
            except BBSError as exc:
                if exc.reason is Reason.NOT_FOUND:
                    break
                await self.print(f"\x01n\x01h\x01rSorry, that name cannot be used: {exc}.\x01n\r\n")
                continue
            await self.print("\x01n\x01h\x01rSorry, that name is taken.\x01n\r\n")
        real_name = t.printable(await self.term.getline("\x01n\x01cYour real name: \x01h", maxlen=LEN_NAME)).strip()
        location = t.printable(await self.term.getline("\x01n\x01cWhere are you calling from (city, country): \x01h",
                                                       maxlen=LEN_LOCATION)).strip()
        email = t.printable(await self.term.getline("\x01n\x01cYour e-mail address (optional): \x01h",
                                                    maxlen=LEN_NETMAIL)).strip()
        while True:
            first = await self.term.getline("\x01n\x01cChoose a password: \x01h", maxlen=128, mask=True)
            try:
                self.app.users.validate_password(first)
            except BBSError as exc:
                await self.print(f"\x01n\x01h\x01rThat password will not do: {exc}.\x01n\r\n")
                continue
            again = await self.term.getline("\x01n\x01cThe password again: \x01h", maxlen=128, mask=True)
            if again == first:
                break
            await self.print("\x01n\x01h\x01rThe passwords differ; once more.\x01n\r\n")
        terminal = await self.ask_terminal()
        try:
            user = await self.app.users.add(alias, first, real_name=real_name, email=email, location=location,
                                            level=system.new_user_level, flags=system.new_user_flags)
            user = await self.app.users.update(user.number, terminal=terminal)
        except BBSError as exc:
            self.log.warning("new user %r refused: %s", alias, exc)
            await self.print(f"\x01n\x01h\x01rYour account could not be created: {exc}.\x01n\r\n")
            return None
        self.log.info("new user #%d %s created", user.number, user.alias)
        await self.print(f"\r\n\x01n\x01h\x01gWelcome, {user.alias}! You are user #{user.number}.\x01n\r\n")
        return user

    async def ask_terminal(self) -> dict:
        """Ask ANSI and character set (detected values as defaults). Returns
        only the answers that differ from detection: the rest stays
        automatic, so the same account works from SyncTERM and from xterm."""
        detected = (self.term.ansi, self.term.charset)
        ansi = await self.term.yesno("Does your terminal show ANSI colour", self.term.ansi)
        self.term.ansi = ansi
        charset = self.term.charset
        if ansi:
            key = await self.term.hotkey(
                "\x01n\x01cCharacter set: \x01h1\x01n\x01c) UTF-8  \x01h2\x01n\x01c) CP437 (IBM PC, SyncTERM)"
                f" [\x01h{'1' if charset == 'utf-8' else '2'}\x01n\x01c]: \x01n", "12",
                "1" if charset == "utf-8" else "2")
            charset = "utf-8" if key == "1" else "cp437"
        else:
            charset = "ascii" if charset == "ascii" else charset
        self.term.set_charset(charset)
        saved = {}
        if ansi != detected[0]:
            saved["ansi"] = ansi
        if charset != detected[1]:
            saved["charset"] = charset
        return saved

    async def logged_on(self, user: User) -> None:
        """Record the logon, update the node, greet, show last callers,
        waiting telegrams and the count of new e-mail."""
        user = await self.app.users.record_logon(user.number)
        self.user = user
        self.logon_time = time.time()
        self.apply_settings(user)
        self.term.idle_limit = self.app.config.server.bbs.max_session_inactivity
        self.app.nodes.update(self.node, status=NodeStatus.INUSE, user=user.alias, user_number=user.number,
                              activity="logging on")
        self.app.bus.publish(UserLogon(user.alias, user.number, self.node, self.protocol, self.address))
        self.log.info("%s (#%d) logged on", user.alias, user.number)
        self._unsubscribe = self.app.bus.subscribe(self._on_telegram, TelegramSent)
        await self.display("logon")
        callers = await asyncio.to_thread(record_caller, self.app.instance.data / "logon.lst", {
            "alias": user.alias, "number": user.number, "location": user.location, "node": self.node,
            "protocol": self.protocol, "time": self.logon_time, "calls": user.logons})
        await self.show_last_callers(callers)
        for telegram in await self.app.telegrams.unread(user.number):
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(telegram.sent))
            self.term.notify(f"\x01n\x01h\x01y[Telegram from {telegram.sender} at {when}]\x01n\r\n\x01c{telegram.text}")
            self._telegram_ids.append(telegram.id)
        await self.term.show_notices()
        await self.mark_telegrams()
        from nodes.screens.email import logon_notice  # screens import this module
        await logon_notice(self)

    async def show_last_callers(self, callers: list[dict]) -> None:
        if not callers:
            return
        await self.print("\r\n\x01n\x01h\x01bLast callers\x01n\r\n")
        for row in callers[-LAST_CALLERS_SHOWN:]:
            when = time.strftime("%m-%d %H:%M", time.localtime(row.get("time", 0)))
            await self.print(f"\x01n\x01c{when}  \x01h{str(row.get('alias', ''))[:25]:<25}\x01n\x01c "
                             f"{str(row.get('location', ''))[:24]:<24} \x01gnode {row.get('node', '?')} "
                             f"{row.get('protocol', '')}\x01n\r\n")

    def _on_telegram(self, event: TelegramSent) -> None:
        if self.user is not None and event.to_number == self.user.number:
            self.term.notify(f"\x07\x01n\x01h\x01y[Telegram from {event.sender}]\x01n\r\n\x01c{event.text}")
            self._telegram_ids.append(event.id)

    async def mark_telegrams(self) -> None:
        if self._telegram_ids:
            ids, self._telegram_ids = self._telegram_ids, []
            await self.app.telegrams.mark_read(ids)

    async def menus(self) -> None:
        """The menu loop: show a menu's prompt, run the chosen key's action."""
        from nodes.screens import SCREENS
        menus = self.services.menus
        self.menu_stack = [MAIN_MENU]
        show = True
        while self.menu_stack:
            menu = menus[self.menu_stack[-1]]
            self.set_activity(menu.activity)
            if show and not (self.user and (self.user.settings or {}).get("expert")):
                await self.show_menu(menu)
            show = False
            await self.mark_telegrams()
            visible = [i for i in menu.items if i.require.allows(self.access())]
            keys = "".join(i.key for i in visible if len(i.key) == 1) + "?"
            choice = await self.term.hotkey(self.expand(menu.prompt.replace("@TITLE@", menu.title)), keys,
                                            "ENTER" if any(i.key == "ENTER" for i in visible) else "")
            if choice == "?":
                show = True
                continue
            item = next((i for i in visible if i.key == choice.upper()), None)
            if item is None:
                continue
            if item.action == "menu":
                self.menu_stack.append(item.args[0].lower())
                show = True
            elif item.action == "return":
                self.menu_stack.pop()
                show = bool(self.menu_stack)
            elif item.action == "display":
                await self.display(item.args[0])
            elif item.action == "logoff":
                if await self.term.yesno("Log off now", True):
                    return
            else:
                await SCREENS[item.action](self, item.args)

    async def show_menu(self, menu) -> None:
        if menu.display and await self.display(menu.display):
            return
        await self.print(f"\r\n\x01n\x01h\x01w{menu.title}\x01n\r\n")
        for item in menu.items:
            if item.require.allows(self.access()) and item.help:
                await self.print(f"\x01n\x01h\x01c{item.key}\x01n\x01c) {item.help}\r\n")

    async def logoff(self) -> None:
        self.set_activity("logging off")
        await self.display("logoff", page=False)
        await self.print("\x01n")


# -- files (run in worker threads) ---------------------------------------------
def read_display_file(text_dir: Path, name: str, ansi: bool) -> str | None:
    """Read text/NAME: NAME.ans (CP437, for ANSI callers), else NAME.msg or
    NAME.asc (UTF-8 text with Ctrl-A codes). None when none exists or the
    name tries to leave text/."""
    base = inside(text_dir, name)
    if base is None:
        return None
    for suffix in ([".ans"] if ansi else []) + [".msg", ".asc"]:
        try:
            data = base.with_name(base.name + suffix).read_bytes()
        except OSError:
            continue
        return decode_display(data, suffix)
    return None


def inside(text_dir: Path, name: str | PurePath) -> Path | None:
    """text/NAME resolved, or None when NAME would leave text/."""
    path = (text_dir / name).resolve()
    return path if text_dir.resolve() in path.parents else None


def decode_display(data: bytes, suffix: str) -> str:
    """A display file's text: ``.ans`` is CP437 up to its EOF mark (a SAUCE
    record follows it), the others UTF-8."""
    if suffix.lower() == ".ans":
        return data.split(b"\x1a", 1)[0].decode("cp437", "replace")
    return data.decode("utf-8", "replace")


#: Serialises the read-modify-write of logon.lst (record_caller runs in
#: worker threads; simultaneous logons would otherwise drop each other's line).
_LOGON_LIST_LOCK = threading.Lock()


def record_caller(path: Path, row: dict) -> list[dict]:
    """Append a caller to data/logon.lst (JSON lines) and return the callers
    before this one (oldest first); the file is trimmed to LAST_CALLERS_KEPT."""
    with _LOGON_LIST_LOCK:
        return _record_caller(path, row)


def _record_caller(path: Path, row: dict) -> list[dict]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    previous = []
    for line in lines[-LAST_CALLERS_KEPT:]:
        try:
            previous.append(json.loads(line))
        except ValueError:
            continue
    lines = lines[-(LAST_CALLERS_KEPT - 1):] + [json.dumps(row)]
    tmp = path.with_suffix(f".{id(row)}.tmp")  # one per call: concurrent logons each rename their own
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)
    return previous


def read_last_callers(path: Path) -> list[dict]:
    """The callers recorded in data/logon.lst, oldest first."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    rows = []
    for line in lines[-LAST_CALLERS_KEPT:]:
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows
