"""The user editor of the SCFG menus (Synchronet's ``uedit``).

Lists the live users, finds one by number, alias or real name, and edits
what the BBS reads from a user record: alias, real name, location, e-mail
address and whether mail is forwarded there, security level, flags,
exemptions and restrictions (the ARS words ``LEVEL``, ``FLAG``, ``EXEMPT``,
``REST``; ``EXEMPT W`` lifts MaxMsgsWaiting, ``REST G``/``M`` stop relaying).
It also adds users, resets a password (generated, shown once, never logged)
and deletes users (the slot is kept, the alias becomes free).

Everything goes through :class:`bbs.users.UserBase` (``view.stores.users``),
so the checks are the user base's own (alias rules, ``text/name.can``,
duplicates, field lengths) and, in the live console, the writer is the
running BBS's own. Changes apply at once for new logons; a caller on line
keeps the record read at logon until the next one.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Awaitable, Callable

from bbs.app import generate_password
from bbs.errors import BBSError
from bbs.instance import load_config
from bbs.users import FORWARD_SETTING, User
from console.scfg_items import Menu


#: (label, User attribute) of the editable fields, in menu order.
USER_FIELDS = (("Alias", "alias"), ("Real name", "real_name"), ("Location", "location"),
               ("E-mail address", "email"), ("Forward e-mail there", FORWARD_SETTING),
               ("Security level", "level"), ("Flags (FLAG x)", "flags"),
               ("Exemptions (EXEMPT x)", "exempt"), ("Restrictions (REST x)", "restrict"))


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp)) if stamp else "never"


def user_row(user: User) -> str:
    """One line of the user list."""
    return (f"#{user.number:<5} {user.alias:<25} level {user.level:>2}  {user.flags or '-':<8} "
            f"last on {_when(user.last_on)}")


async def _attempt(work: Awaitable[Any]) -> tuple[Any, str | None]:
    """(result, None), or (None, what the user base refused)."""
    try:
        return await work, None
    except BBSError as exc:
        return None, str(exc)


@dataclasses.dataclass(frozen=True)
class Note:
    """A line that only informs (e.g. "loading ...")."""

    text: str

    def row_text(self, root: Any) -> str:
        return self.text


@dataclasses.dataclass(frozen=True)
class UserField:
    """One editable field of the user on screen, with its value as shown."""

    label: str
    attr: str
    value: str

    def row_text(self, root: Any) -> str:
        return f"{self.label:<30} {self.value}"


@dataclasses.dataclass(frozen=True)
class UserAction:
    label: str
    action: str  # "password" or "delete"

    def row_text(self, root: Any) -> str:
        return f"{self.label} ..."


@dataclasses.dataclass(frozen=True)
class UserRow:
    """A user in the list; Enter opens the user's record."""

    user: User = dataclasses.field(compare=False)
    number: int = 0
    list_keys: Any = dataclasses.field(default=None, compare=False)

    def row_text(self, root: Any) -> str:
        return user_row(self.user)

    def screen(self, view: Any) -> Menu:
        return record_menu(self.user, self.list_keys)


def record_menu(user: User, list_keys: "UserListKeys") -> Menu:
    keys = UserRecordKeys(user, list_keys)
    return Menu(f"User #{user.number} {user.alias}", lambda root: keys.rows(), handler=keys)


@dataclasses.dataclass(frozen=True)
class Users:
    """The top-level "Users" item."""

    title: str = "Users"

    def row_text(self, root: Any) -> str:
        return f"{self.title} ..."

    def screen(self, view: Any) -> Menu:
        keys = UserListKeys()
        keys.load(view)
        return Menu(self.title, lambda root: tuple(keys.entries), handler=keys)


class UserListKeys:
    """The list of users: Enter opens one, a adds, / finds, d deletes."""

    help = "Enter edit  a add a user  / find  d delete  Esc back"

    def __init__(self) -> None:
        self.entries: list[Any] = [Note("(reading the user base ...)")]

    def load(self, view: Any, then: Callable[[], None] | None = None) -> None:
        """Read the live users in the background, then show them."""
        if view.stores is None:
            self.entries = [Note("(no user base here)")]
            return

        def show(users: list[User]) -> None:
            self.entries = [UserRow(u, u.number, self) for u in users] or [Note("(no users yet: a adds one)")]
            if getattr(view.screen, "handler", None) is self:
                view.show(view.walker.get_focus()[1] or 0)
            if then is not None:
                then()
        view.spawn(view.stores.users.list(), show)

    def focus_user(self, view: Any, number: int) -> None:
        for index, entry in enumerate(self.entries):
            if isinstance(entry, UserRow) and entry.number == number:
                view.show(index)
                return

    def keypress(self, view: Any, key: str, item: Any) -> bool:
        if key == "enter" and isinstance(item, Note):
            return True
        if view.stores is None:
            return False
        if key in ("a", "i", "insert"):
            self.add(view)
        elif key == "/":
            view.ask("Find user (number, alias or real name): ", "", lambda text: self.find(view, text))
        elif key in ("d", "delete") and isinstance(item, UserRow):
            delete(view, item.user, self)
        else:
            return False
        return True

    def add(self, view: Any, default: str = "", error: str | None = None) -> None:
        """Prompt for an alias; the new user gets the [NewUser] level and
        flags and a generated password, shown once."""
        def done(alias: str) -> None:
            system = load_config(view.root).system
            password = generate_password()

            def added(outcome: tuple[User | None, str | None]) -> None:
                user, problem = outcome
                if user is None:
                    self.add(view, alias, problem)
                    return
                view.open(record_menu(user, self))
                self.load(view)
                view.status(f"added user #{user.number} {user.alias}, password: {password}  "
                            "(shown once: write it down)", "ok_msg")
            view.spawn(_attempt(view.stores.users.add(alias, password, level=system.new_user_level,
                                                      flags=system.new_user_flags)), added)
        view.ask("New user's alias: ", default, done, error=error)

    def find(self, view: Any, text: str) -> None:
        """Open the user ``text`` names (as at a logon prompt), else focus the
        first user whose alias, real name or e-mail address contains it."""
        def found(outcome: tuple[User | None, str | None]) -> None:
            user, _ = outcome
            if user is not None:
                view.open(record_menu(user, self))
                return
            wanted = text.casefold()
            for index, entry in enumerate(self.entries):
                if isinstance(entry, UserRow) and any(
                        wanted in value.casefold() for value in (entry.user.alias, entry.user.real_name,
                                                                  entry.user.email)):
                    view.show(index)
                    view.status(f"found #{entry.number} {entry.user.alias}")
                    return
            view.status(f"no user matches {text!r}", "error_msg")
        if text:
            view.spawn(_attempt(view.stores.users.find(text)), found)


def delete(view: Any, user: User, list_keys: UserListKeys, leave: bool = False) -> None:
    """Ask, then mark ``user`` deleted (``leave``: then go back to the list)."""
    def action() -> None:
        def deleted(_: None) -> None:
            if leave:
                view.back()
            list_keys.load(view)
            view.status(f"deleted user #{user.number} {user.alias} (the slot is kept; the alias is free)",
                        "ok_msg")
        view.spawn(view.stores.users.delete(user.number), deleted)
    sysop = " a SYSOP account," if user.is_sysop else ""
    view.confirm(f"Delete user #{user.number} {user.alias},{sysop} so that it can no longer log on?", action)


class UserRecordKeys:
    """One user's record: Enter edits the field (or toggles forwarding)."""

    help = "Enter edit  Esc back to the list"

    def __init__(self, user: User, list_keys: UserListKeys) -> None:
        self.user = user
        self.list_keys = list_keys

    def value(self, attr: str) -> str:
        if attr == FORWARD_SETTING:
            return "Yes" if self.user.settings.get(FORWARD_SETTING) else "No"
        return str(getattr(self.user, attr))

    def rows(self) -> tuple:
        user = self.user
        return (*(UserField(label, attr, self.value(attr)) for label, attr in USER_FIELDS),
                Note(f"{'Created':<30} {_when(user.created)}"),
                Note(f"{'Last on':<30} {_when(user.last_on)}  ({user.logons} logons, {user.posts} posts, "
                     f"{user.emails} e-mails, {user.uploads} uploads, {user.downloads} downloads)"),
                UserAction("Reset the password (a new one is shown once)", "password"),
                UserAction("Delete this user", "delete"))

    def keypress(self, view: Any, key: str, item: Any) -> bool:
        if key != "enter":
            return False
        if isinstance(item, UserField):
            self.edit(view, item)
        elif isinstance(item, UserAction) and item.action == "password":
            self.reset_password(view)
        elif isinstance(item, UserAction):
            delete(view, self.user, self.list_keys, leave=True)
        return True

    def changed(self, view: Any, user: User, what: str) -> None:
        self.user = user
        view.replace(record_menu(user, self.list_keys), view.walker.get_focus()[1] or 0)
        self.list_keys.load(view)
        view.status(f"saved user #{user.number}: {what} (applies at the user's next logon)", "ok_msg")

    def update(self, view: Any, what: str, retry: Callable[[str], None] | None = None, **fields: Any) -> None:
        def done(outcome: tuple[User | None, str | None]) -> None:
            user, problem = outcome
            if user is not None:
                self.changed(view, user, what)
            elif retry is not None:
                retry(problem or "refused")
            else:
                view.status(problem or "refused", "error_msg")
        view.spawn(_attempt(view.stores.users.update(self.user.number, **fields)), done)

    def edit(self, view: Any, item: UserField) -> None:
        if item.attr == FORWARD_SETTING:
            forward = not self.user.settings.get(FORWARD_SETTING)
            if forward and "@" not in self.user.email:
                view.status("forwarding needs an Internet e-mail address (user@host) first", "error_msg")
                return
            self.update(view, f"forward e-mail = {'Yes' if forward else 'No'}",
                        settings={**self.user.settings, FORWARD_SETTING: forward})
            return
        caption = f"{item.label}: "

        def done(text: str) -> None:
            value: Any = text
            if item.attr == "level":
                if not text.isdigit():
                    ask(text, "the security level is a number 0-99")
                    return
                value = int(text)
            self.update(view, f"{item.label} = {text}", lambda problem: ask(text, problem), **{item.attr: value})

        def ask(default: str, error: str | None = None) -> None:
            view.ask(caption, default, done, error=error)
        ask(item.value)

    def reset_password(self, view: Any) -> None:
        user = self.user

        def action() -> None:
            password = generate_password()

            def done(_: None) -> None:
                view.status(f"new password of #{user.number} {user.alias}: {password}  "
                            "(shown once: write it down)", "ok_msg")
            view.spawn(view.stores.users.set_password(user.number, password), done)
        view.confirm(f"Reset the password of #{user.number} {user.alias}?", action)
