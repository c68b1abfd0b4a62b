"""General screens: who's online, telegrams, settings, user info, sysop."""
from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from bbs.errors import BBSError, Reason
from bbs.nodetable import NodeStatus
from nodes import terminal as t
from nodes.session import read_last_callers

if TYPE_CHECKING:
    from nodes.session import Session


async def who(session: "Session", args: tuple[str, ...]) -> None:
    """Who's online: every node with its caller and activity."""
    session.set_activity("viewing who's online")
    await session.print("\r\n\x01n\x01h\x01wNode  User                       Activity                         Via\x01n\r\n"
                        "\x01b" + "─" * 74 + "\x01n\r\n")
    for record in session.app.nodes.records():
        if record.status is NodeStatus.INUSE:
            who_, what = record.user, record.activity
        elif record.status in (NodeStatus.LOGON, NodeStatus.NEWUSER):
            who_, what = "", record.status.value
        else:
            who_, what = "", record.status.value
        mine = " \x01h\x01y<- you" if record.number == session.node else ""
        await session.print(f"\x01n\x01h\x01c{record.number:>4}  \x01w{who_[:25]:<25}  \x01n\x01c{what[:31]:<31}  "
                            f"\x01g{record.connection}{mine}\x01n\r\n")


async def _resolve_user(session: "Session", text: str):
    try:
        return await session.app.users.find(text)
    except BBSError as exc:
        if exc.reason is Reason.NOT_FOUND:
            return None
        raise


async def _compose_telegram(session: "Session", to_number: int, to_alias: str) -> None:
    text = t.printable(await session.term.getline("\x01n\x01cMessage: \x01h", maxlen=200)).strip()
    if not text:
        await session.print("\x01n\x01cNothing sent.\r\n")
        return
    try:
        await session.app.telegrams.send(to_number, to_alias, session.user.alias, text)
    except BBSError as exc:
        await session.print(f"\x01n\x01h\x01rNot sent: {exc}.\x01n\r\n")
        return
    online = any(r.user_number == to_number for r in session.app.nodes.in_use())
    await session.print(f"\x01n\x01h\x01gTelegram sent to {to_alias}"
                        f"{'' if online else ' (shown at their next logon)'}.\x01n\r\n")


async def telegram(session: "Session", args: tuple[str, ...]) -> None:
    """Send a telegram to a user by name or number (shown at once or at logon)."""
    session.set_activity("sending a telegram")
    name = t.printable(await session.term.getline("\x01n\x01cSend a telegram to (name or number): \x01h",
                                                  maxlen=25)).strip()
    if not name:
        return
    user = await _resolve_user(session, name)
    if user is None:
        await session.print("\x01n\x01h\x01rNo such user.\x01n\r\n")
        return
    await _compose_telegram(session, user.number, user.alias)


async def nodemsg(session: "Session", args: tuple[str, ...]) -> None:
    """Send a node message: a telegram to whoever is logged on at a node."""
    session.set_activity("sending a node message")
    await who(session, ())
    text = (await session.term.getline("\x01n\x01cSend a message to node: \x01h", maxlen=3)).strip()
    if not text.isdigit():
        return
    number = int(text)
    record = next((r for r in session.app.nodes.records() if r.number == number), None)
    if record is None or record.status is not NodeStatus.INUSE or not record.user_number:
        await session.print(f"\x01n\x01h\x01rNobody is logged on at node {number}.\x01n\r\n")
        return
    await _compose_telegram(session, record.user_number, record.user)


async def last_callers(session: "Session", args: tuple[str, ...]) -> None:
    callers = await asyncio.to_thread(read_last_callers, session.app.instance.data / "logon.lst")
    await session.show_last_callers(callers)


async def user_list(session: "Session", args: tuple[str, ...]) -> None:
    session.set_activity("listing users")
    users = await session.app.users.list()
    lines = ["\x01n\x01h\x01w  #  Alias                      Location                       Last on\x01n"]
    for user in users:
        last = time.strftime("%Y-%m-%d", time.localtime(user.last_on)) if user.last_on else "never"
        lines.append(f"\x01n\x01c{user.number:>3}  \x01h{user.alias:<25}\x01n\x01c  {user.location[:30]:<30} {last}")
    await session.term.page("\r\n" + "\n".join(lines) + "\n")


async def your_info(session: "Session", args: tuple[str, ...]) -> None:
    """The caller's account and terminal (screen size follows resizes)."""
    user = session.user = await session.app.users.get(session.user.number)
    term = session.term
    await session.print(
        f"\r\n\x01n\x01h\x01wYour account\x01n\r\n"
        f"\x01cAlias      \x01h{user.alias}\x01n \x01c(#{user.number}, level {user.level})\r\n"
        f"\x01cReal name  \x01h{user.real_name}\x01n\r\n"
        f"\x01cLocation   \x01h{user.location}\x01n\r\n"
        f"\x01cE-mail     \x01h{user.email}\x01n\r\n"
        f"\x01cCalls      \x01h{user.logons}\x01n\x01c, posts \x01h{user.posts}\x01n\r\n"
        f"\x01cTerminal   \x01h{session.link.term_type or 'unknown'}\x01n\x01c, "
        f"{'ANSI' if term.ansi else 'ASCII'}, {term.charset.upper()}\r\n"
        f"\x01cScreen     \x01h{term.cols}x{term.rows}\x01n\x01c ({session.protocol})\x01n\r\n")


async def system_info(session: "Session", args: tuple[str, ...]) -> None:
    system = session.system
    users = await session.app.users.count()
    await session.print(
        f"\r\n\x01n\x01h\x01w{system.name}\x01n\r\n"
        f"\x01cSysop      \x01h{system.operator}\x01n\r\n"
        f"\x01cLocation   \x01h{system.location}\x01n\r\n"
        f"\x01cNodes      \x01h{system.first_node}-{system.last_node}\x01n\r\n"
        f"\x01cUsers      \x01h{users}\x01n\r\n")


async def settings(session: "Session", args: tuple[str, ...]) -> None:
    """Terminal and account settings; saved in the user record."""
    session.set_activity("changing settings")
    term = session.term
    while True:
        user = session.user
        expert = bool((user.settings or {}).get("expert"))
        await session.print(
            "\r\n\x01n\x01h\x01wYour settings\x01n\r\n"
            f"\x01h\x01cA\x01n\x01c) Terminal          \x01h{'ANSI' if term.ansi else 'ASCII (no colour)'}\r\n"
            f"\x01h\x01cC\x01n\x01c) Character set     \x01h{term.charset.upper()}\r\n"
            f"\x01h\x01cW\x01n\x01c) Screen width      \x01h{term.fixed_cols or 'auto'} ({term.cols})\r\n"
            f"\x01h\x01cH\x01n\x01c) Screen height     \x01h{term.fixed_rows or 'auto'} ({term.rows})\r\n"
            f"\x01h\x01cX\x01n\x01c) Expert mode       \x01h{'on' if expert else 'off'}\x01n\x01c (no menus shown)\r\n"
            f"\x01h\x01cE\x01n\x01c) E-mail address    \x01h{user.email}\r\n"
            f"\x01h\x01cL\x01n\x01c) Location          \x01h{user.location}\r\n"
            "\x01h\x01cD\x01n\x01c) Detect the terminal at each call (forget the choices above)\r\n"
            "\x01h\x01cP\x01n\x01c) Change password\r\n"
            "\x01h\x01cQ\x01n\x01c) Quit\x01n\r\n")
        choice = await term.hotkey("\x01n\x01h\x01cSettings: \x01n", "ACWHXELDPQ", "Q")
        if choice == "Q":
            return
        if choice == "A":
            term.ansi = not term.ansi
            if not term.ansi and term.charset == "utf-8":
                pass
        elif choice == "C":
            order = ["utf-8", "cp437", "ascii"]
            term.set_charset(order[(order.index(term.charset) + 1) % 3])
        elif choice in "WH":
            text = (await term.getline(f"\x01n\x01c{'Columns' if choice == 'W' else 'Rows'} (0 = as your "
                                       "terminal reports): \x01h", maxlen=3)).strip()
            if text.isdigit() and (int(text) == 0 or 10 <= int(text) <= 400):
                setattr(term, "fixed_cols" if choice == "W" else "fixed_rows", int(text))
            else:
                await session.print("\x01n\x01h\x01rA number from 10 to 400, or 0.\x01n\r\n")
        elif choice == "X":
            session.user = await session.app.users.update(user.number, settings={**(user.settings or {}),
                                                                                 "expert": not expert})
            continue
        elif choice in "EL":
            field = "email" if choice == "E" else "location"
            value = t.printable(await term.getline(f"\x01n\x01cNew {'e-mail address' if choice == 'E' else 'location'}: \x01h",
                                                   maxlen=60)).strip()
            try:
                session.user = await session.app.users.update(user.number, **{field: value})
            except BBSError as exc:
                await session.print(f"\x01n\x01h\x01r{exc}.\x01n\r\n")
            continue
        elif choice == "P":
            await change_password(session, ())
            continue
        elif choice == "D":
            term.fixed_cols = term.fixed_rows = 0
            session.user = await session.app.users.update(user.number, terminal={})
            await session.print("\x01n\x01cYour terminal will be detected at each call.\r\n")
            continue
        session.user = await session.app.users.update(user.number, terminal={
            **(user.terminal or {}), "ansi": term.ansi, "charset": term.charset,
            "cols": term.fixed_cols, "rows": term.fixed_rows})


async def change_password(session: "Session", args: tuple[str, ...]) -> None:
    term = session.term
    current = await term.getline("\x01n\x01cCurrent password: \x01h", maxlen=128, mask=True)
    if await session.check_password(str(session.user.number), current) is None:
        return
    new = await term.getline("\x01n\x01cNew password: \x01h", maxlen=128, mask=True)
    again = await term.getline("\x01n\x01cNew password again: \x01h", maxlen=128, mask=True)
    if new != again:
        await session.print("\x01n\x01h\x01rThe passwords differ; unchanged.\x01n\r\n")
        return
    try:
        await session.app.users.set_password(session.user.number, new)
    except BBSError as exc:
        await session.print(f"\x01n\x01h\x01rUnchanged: {exc}.\x01n\r\n")
        return
    await session.print("\x01n\x01h\x01gPassword changed.\x01n\r\n")


async def sysop_nodes(session: "Session", args: tuple[str, ...]) -> None:
    """Sysop: the node table with addresses and times."""
    await session.print("\r\n\x01n\x01h\x01wNode  Status                  User                 Address          Since\x01n\r\n")
    for r in session.app.nodes.records():
        since = time.strftime("%H:%M:%S", time.localtime(r.since)) if r.since else ""
        await session.print(f"\x01n\x01c{r.number:>4}  {r.status.value[:22]:<22}  \x01h{r.user[:20]:<20}\x01n\x01c "
                            f"{r.address[:16]:<16} {since}\x01n\r\n")


async def sysop_users(session: "Session", args: tuple[str, ...]) -> None:
    """Sysop: every account with level and flags."""
    users = await session.app.users.list()
    lines = ["\x01n\x01h\x01w  #  Alias                      Lvl Flags      Real name\x01n"]
    for u in users:
        lines.append(f"\x01n\x01c{u.number:>3}  \x01h{u.alias:<25}\x01n\x01c  {u.level:>3} {u.flags[:10]:<10} {u.real_name}")
    await session.term.page("\r\n" + "\n".join(lines) + "\n")


SCREENS = {
    "who": who, "telegram": telegram, "nodemsg": nodemsg, "lastcallers": last_callers,
    "userlist": user_list, "yourinfo": your_info, "sysinfo": system_info, "settings": settings,
    "password": change_password, "sysop_nodes": sysop_nodes, "sysop_users": sysop_users,
}
