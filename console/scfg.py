"""SCFG-style configuration menus over the instance's ctrl/ and text/ files.

The menu tree is data (:data:`MENU`, message and file areas read from
msgs.ini / file.ini when opened); :class:`ScfgView` is the screen. Choosing a
setting prompts for its new value; the edit is checked by the real loaders
(:mod:`console.cfgfile`) before the file is replaced atomically, keeping the
sysop's comments, and the status line says whether the change applies now or
needs a recycle. The same widget is the console's Config pane and, alone,
``bbs scfg``.
"""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Awaitable, Callable

import urwid

from bbs.errors import BBSError
from console.cfgfile import (atomic_write, ini_get, ini_set, read_text, sections, validate_ini_edit,
                             validate_list)
from console.cfgapply import APPLIES_LIVE, apply_saved, effect_of  # noqa: F401 (APPLIES_LIVE: re-exported)
from console.panes import Prompt, Row
from console.scfg_areas import FILE_AREAS, MSG_AREAS, Areas
from console.scfg_items import MAIN, SBBS, Field, ListFile, Menu, fields
from console.scfg_listeners import LISTENERS
from console.scfg_users import Users
from console.scfg_xtrn import CHAT_FEATURES, EXTERNAL_PROGRAMS, TEXT_FILE_SECTIONS

log = logging.getLogger(__name__)

_COMMON = "AutoStart Interface MaxClients MaxInactivity ClientReserve ClientNetworks LogLevel Options"

#: List files whose readers re-read them when they change (checked in the servers' code).
LIVE_LISTS = {"text/ip.can", "text/name.can", "text/email.can", "text/subject.can", "ctrl/relay.cfg",
              "ctrl/spamblock.cfg", "ctrl/spamblock_exempt.cfg", "ctrl/spambait.cfg",
              "ctrl/dns_blacklist.cfg", "ctrl/dnsbl_exempt.cfg", "ctrl/domains.cfg", "ctrl/alias.cfg",
              "ctrl/qwknodes.cfg", "ctrl/ipfilter_exempt.cfg", "ctrl/mailproc.cfg", "text/host.can"}


def _services(root: Path) -> tuple:
    """One menu per [Section] of ctrl/services.ini (Finger, ActiveUser, MSP ...)."""
    return tuple(Menu(name, fields("ctrl/services.ini", name, "Enabled Port Interface Options Grant Deny "
                                    "TLS MaxConcurrentConnections"))
                 for name in sections(root / "ctrl" / "services.ini", ""))


def _list_files(root: Path) -> tuple:
    found = sorted({p for folder, pattern in (("ctrl", "*.cfg"), ("text", "*.can"))
                    for p in (root / folder).glob(pattern)})
    return tuple(ListFile(f"{p.parent.name}/{p.name}", f"{p.parent.name}/{p.name}",
                          f"{p.parent.name}/{p.name}" in LIVE_LISTS) for p in found)


#: SCFG Networks: what the mail server reads to route network mail.
NETWORKS = Menu("Networks", (
    Menu("QWK Packet Networks", (
        Field("System QWK-ID", MAIN, "System", "QWKID"),
        ListFile("QWK nodes: qwknodes.cfg", "ctrl/qwknodes.cfg", live=True),
    )),
    Menu("FidoNet", (Field("FidoNet address", SBBS, "Mail", "FidoNetAddress"),)),
    Menu("Internet E-mail", (
        Field("Mail host name", SBBS, "Mail", "HostName"),
        ListFile("Local domains: domains.cfg", "ctrl/domains.cfg", live=True),
        ListFile("Mail aliases: alias.cfg", "ctrl/alias.cfg", live=True),
        Field("Relay server", SBBS, "Mail", "RelayServer"),
        Field("Relay port", SBBS, "Mail", "RelayPort"),
        Field("Relay user name", SBBS, "Mail", "RelayUsername"),
        Field("Relay password", SBBS, "Mail", "RelayPassword", secret=True),
        Field("Options (RELAY_TX ...)", SBBS, "Mail", "Options"),
        Field("DNS server", SBBS, "Mail", "DNSServer"),
        Field("Default charset", SBBS, "Mail", "DefaultCharset"),
    )),
))

MENU = Menu("Configure", (
    Menu("System", fields(MAIN, "System", "Name Operator Location QWKID GuestName")
         + (Menu("New User Values", fields(MAIN, "NewUser", "Level Flags Password")),)),
    Menu("Nodes", fields(MAIN, "Nodes", "FirstNode LastNode")),
    Menu("Servers", (
        Menu("Global Settings", fields(SBBS, "Global", "Hostname Interface BindRetryCount BindRetryDelay "
                                        "LoginAttemptDelay LoginAttemptThrottle LoginAttemptHackThreshold "
                                        "LoginAttemptTempBanThreshold LoginAttemptTempBanDuration "
                                        "LoginAttemptFilterThreshold LoginAttemptFilterDuration "
                                        "MaxConcurrentConnections LogLevel TLSCertificate TLSPrivateKey "
                                        "ShutdownGrace")),
        Menu("Terminal Server", fields(SBBS, "BBS", "TelnetPort SSHPort RLoginPort MaxLoginInactivity "
                                        "MaxNewUserInactivity MaxSessionInactivity " + _COMMON)),
        Menu("Mail Server", fields(SBBS, "Mail", "SMTPPort SubmissionPort TLSSubmissionPort POP3Port "
                                    "TLSPOP3Port HostName MaxDeliveryAttempts RescanFrequency MaxRecipients "
                                    "MaxMsgSize MaxMsgsWaiting ConnectTimeout RelayServer RelayPort "
                                    "DNSServer DefaultUser DNSBlacklistHeader DNSBlacklistSubject " + _COMMON)),
        Menu("FTP Server", fields(SBBS, "FTP", "Port PasvIpAddress PasvIp6Address PasvPortLow PasvPortHigh "
                                   "IndexFileName QwkTimeout " + _COMMON)),
        Menu("Services", fields(SBBS, "Services", _COMMON)
             + (Menu("Service Sockets (services.ini)", _services),)),
        LISTENERS,
    )),
    NETWORKS,
    Areas("Message Areas", MSG_AREAS),
    Areas("File Areas", FILE_AREAS),
    CHAT_FEATURES,
    EXTERNAL_PROGRAMS,
    TEXT_FILE_SECTIONS,
    Menu("List Files and Filters", _list_files),
    Users(),
))


def item_row(root: Path, item: Any) -> str:
    """The text of one menu line (a setting shows its value as written)."""
    if isinstance(item, Field):
        value = ini_get(read_text(root / item.file), item.section, item.key)
        if value and item.secret:
            value = "********"
        return f"{item.label:<30} {'(default)' if value is None else value}"
    if isinstance(item, ListFile):
        lines = [line for line in read_text(root / item.file).splitlines()
                 if line.strip() and not line.lstrip().startswith(";")]
        return f"{item.label:<30} {len(lines)} entr{'y' if len(lines) == 1 else 'ies'}"
    if hasattr(item, "row_text"):
        return item.row_text(root)
    return f"{item.title} ..."


class ScfgView(urwid.WidgetWrap):
    """The menus for instance ``root``; ``on_quit`` runs on Esc at the top
    (``bbs scfg``), None when embedded in the live console. ``stores``
    (:class:`console.scfg_stores.Stores`) are the user, message and file
    bases the user editor and area removal use: the App's in the console,
    opened by :func:`run_scfg` alone. ``redraw`` draws the screen after
    work done in the background (the owner of the urwid loop sets it)."""

    title = "Config"
    help = "Enter open/edit  Esc back  (list files: a add  i insert  d delete)"

    def __init__(self, root: Path, on_quit: Callable[[], None] | None = None, *, stores: Any = None) -> None:
        self.root = Path(root)
        self.on_quit = on_quit
        self.stores = stores
        #: The running App when these menus are the live console's Config pane
        #: (saves then apply or recycle at once); None in `bbs scfg` alone.
        self.app: Any = None
        self.redraw: Callable[[], None] = lambda: None
        self._tasks: set[asyncio.Task] = set()
        self.stack: list[tuple[Any, int]] = []  # (menu or list file, focus) of the screens left
        self.screen: Any = MENU
        self.walker = urwid.SimpleFocusListWalker([])
        self.crumbs = urwid.Text("", wrap="clip")
        self.status_text = urwid.Text("", wrap="clip")
        self.status_bar = urwid.AttrMap(self.status_text, "footer")
        self.frame = urwid.Frame(urwid.ListBox(self.walker), header=urwid.AttrMap(self.crumbs, "menu_title"),
                                 footer=self.status_bar)
        self._question: tuple[str, Callable[[], None]] | None = None
        super().__init__(self.frame)
        self.show()

    # -- screens -----------------------------------------------------------
    def show(self, focus: int = 0) -> None:
        path = " > ".join([s.title if isinstance(s, Menu) else s.label for s, _ in self.stack]
                          + [self.screen.title if isinstance(self.screen, Menu) else self.screen.label])
        self.crumbs.set_text(f" {path}")
        if isinstance(self.screen, ListFile):
            lines = read_text(self.root / self.screen.file).splitlines()
            rows = [Row(f"{n:>4}  {line.expandtabs(8)}", n - 1) for n, line in enumerate(lines, 1)]
            if not rows:
                rows = [Row("      (empty: a adds an entry)", None)]
        else:
            rows = [Row(item_row(self.root, item), item) for item in self.screen.entries(self.root)]
        self.walker[:] = [urwid.AttrMap(r, None, focus_map="focus") for r in rows]
        if rows:
            self.walker.set_focus(min(focus, len(rows) - 1))

    def focused(self) -> Any:
        if not self.walker:
            return None
        widget, index = self.walker.get_focus()
        return widget.original_widget.key

    def open(self, screen: Any) -> None:
        self.stack.append((self.screen, self.walker.get_focus()[1] or 0))
        self.screen = screen
        self.show()
        self.status()

    def back(self) -> bool:
        if not self.stack:
            return False
        self.screen, focus = self.stack.pop()
        self.show(focus)
        self.status()
        return True

    def texts(self) -> list[str]:
        return [w.original_widget.text for w in self.walker]

    # -- footer --------------------------------------------------------------
    def status(self, text: str | None = None, attr: str = "footer") -> None:
        self.frame.footer = self.status_bar
        self.frame.focus_position = "body"
        if text is None:
            text = getattr(getattr(self.screen, "handler", None), "help", None) or self.help
        self.status_text.set_text((attr, text))

    def ask(self, caption: str, default: str, done: Callable[[str], None], error: str | None = None) -> None:
        """Prompt for one line; ``done(text)`` on Enter, Esc cancels. ``error``
        (what was wrong with the last answer) shows above the prompt."""
        def finish(text: str | None) -> None:
            if text is None:
                self.status("cancelled")
            else:
                done(text)
        prompt = urwid.AttrMap(Prompt(caption, default, finish), "footer")
        if error:
            self.frame.footer = urwid.Pile([urwid.AttrMap(urwid.Text(error), "error_msg"), prompt])
            self.frame.footer.focus_position = 1
        else:
            self.frame.footer = prompt
        self.frame.focus_position = "footer"

    def confirm(self, question: str, action: Callable[[], None]) -> None:
        """Ask ``question`` [y/N] on the status line; ``action()`` runs on y."""
        self._question = (question, action)
        self.frame.footer = self.status_bar
        self.frame.focus_position = "body"
        self.status_text.set_text(("ask", f"{question} [y/N]"))

    def replace(self, screen: Any, focus: int = 0) -> None:
        """Show ``screen`` instead of the current one (same place in the path)."""
        self.screen = screen
        self.show(focus)

    def spawn(self, work: Awaitable[Any], done: Callable[[Any], None] | None = None) -> None:
        """Run ``work`` (a call into the stores) on the running loop, then
        ``done(result)``; a BBSError is shown on the status line. The screen
        is drawn again afterwards."""
        async def go() -> None:
            try:
                result = await work
            except BBSError as exc:
                self.status(str(exc), "error_msg")
            except Exception as exc:  # a failing store call must not take the console down
                log.exception("scfg: background work failed")
                self.status(f"failed: {exc}", "error_msg")
            else:
                if done is not None:
                    done(result)
            self.redraw()
        task = asyncio.ensure_future(go())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait until the background work started so far (and what it started) is done."""
        while self._tasks:
            await asyncio.gather(*self._tasks)

    def saved(self, file: str, what: str, live: bool, section: str | None = None, key: str | None = None) -> None:
        """Every save ends here: tell the sysop that ``file`` (relative to the
        instance) was saved by the edit ``what`` (of ``key`` in ``[section]``),
        when it applies, and apply it: in the live console (``self.app``) the
        areas are re-read at once and a yes/no question recycles the server
        that needs it; alone, a BBS running on the instance gets the
        recycle semaphore file (console.cfgapply)."""
        head = f"saved {file}: {what}" if what else f"saved {file}"
        apply_saved(self, head, effect_of(self.root, file, section, key, live))

    # -- editing -------------------------------------------------------------
    def edit_field(self, field: Field) -> None:
        path = self.root / field.file
        current = ini_get(read_text(path), field.section, field.key)

        def done(value: str) -> None:
            text = ini_set(read_text(path), field.section, field.key, value)
            error = validate_ini_edit(self.root, path, text)
            if error:
                self.ask(f"[{field.section}] {field.key} = ", value, done)   # let the sysop fix it
                self.frame.footer = urwid.Pile([urwid.AttrMap(urwid.Text(error), "error_msg"),
                                                self.frame.footer])
                self.frame.footer.focus_position = 1
                return
            atomic_write(path, text)
            self.show(self.walker.get_focus()[1] or 0)
            self.saved(field.file, f"{field.key} = {value}", field.live, field.section, field.key)

        self.ask(f"[{field.section}] {field.key} = ", current or "", done)

    def edit_list(self, index: int | None, mode: str) -> None:
        """Edit (``mode`` "edit"), insert after or append, or delete line ``index``."""
        item: ListFile = self.screen
        path = self.root / item.file
        lines = read_text(path).splitlines()

        def save(new: list[str], focus: int) -> None:
            error = validate_list(path, new)
            if error:
                self.status(error, "error_msg")
                return
            atomic_write(path, "\n".join(new) + "\n" if new else "")
            self.show(focus)
            self.saved(item.file, "", item.live)

        if mode == "delete":
            if index is None:
                return
            self._question = (f"Delete line {index + 1}?", lambda: save(lines[:index] + lines[index + 1:], index))
            self.status_text.set_text(("ask", f"Delete line {index + 1}: {lines[index][:50]!r}? [y/N]"))
            return
        if mode == "edit" and index is not None:
            self.ask(f"line {index + 1}: ", lines[index],
                     lambda text: save(lines[:index] + [text] + lines[index + 1:], index))
            return
        at = len(lines) if mode == "append" or index is None else index + 1
        self.ask("new entry: ", "", lambda text: save(lines[:at] + [text] + lines[at:], at))

    # -- keys ----------------------------------------------------------------
    def keypress(self, size, key):
        if self._question is not None:
            _, action = self._question
            self._question = None
            if key in ("y", "Y"):
                action()
            else:
                self.status("cancelled")
            return None
        key = super().keypress(size, key)
        if key is None:
            return None
        item = self.focused()
        handler = getattr(self.screen, "handler", None)
        if handler is not None and handler.keypress(self, key, item):
            return None
        if isinstance(self.screen, ListFile):
            actions = {"enter": "edit", "a": "append", "insert": "insert", "i": "insert",
                       "delete": "delete", "d": "delete"}
            if key in actions:
                self.edit_list(item, actions[key])
                return None
        elif key in ("enter", "right"):
            if isinstance(item, Field):
                self.edit_field(item)
            elif item is not None:
                self.open(item.screen(self) if hasattr(item, "screen") else item)
            return None
        if key in ("esc", "left", "backspace"):
            if not self.back() and self.on_quit is not None:
                self.on_quit()
            return None
        if key in ("q", "Q") and self.on_quit is not None and not self.stack:
            self.on_quit()
            return None
        if isinstance(self.screen, Menu) and len(key) == 1 and key.isalpha() and key not in "qQ":
            self.jump(key)
            return None
        return key

    def jump(self, letter: str) -> None:
        """Focus the next line that starts with ``letter`` (SCFG's hot letters)."""
        texts = self.texts()
        here = self.walker.get_focus()[1] or 0
        for step in range(1, len(texts) + 1):
            index = (here + step) % len(texts)
            if texts[index].lower().startswith(letter.lower()):
                self.walker.set_focus(index)
                return

    def refresh(self, changes: Any) -> None:
        """(Config pane of the live console: nothing live to show.)"""


async def run_scfg(root: Path, screen: Any = None) -> int:
    """``bbs scfg``: the menus alone on this terminal, no servers started;
    the user editor opens the instance's databases as ``bbs user`` does."""
    from console.live import PALETTE
    from console.scfg_stores import standalone_stores

    done = asyncio.Event()
    async with standalone_stores(root) as stores:
        view = ScfgView(root, on_quit=done.set, stores=stores)
        loop = urwid.MainLoop(view, PALETTE, screen=screen, handle_mouse=False,
                              event_loop=urwid.AsyncioEventLoop(loop=asyncio.get_running_loop()))
        view.redraw = loop.draw_screen
        loop.start()
        try:
            await done.wait()
            await view.settle()
        finally:
            loop.stop()
    return 0
