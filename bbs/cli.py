"""The ``bbs`` command: init, run, console, scfg, config check, user and mail administration.

Exit status: 0 success, 1 runtime failure (bind error, unknown user ...),
2 bad configuration or usage (``path:line: what`` on stderr).
"""
from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import time
from pathlib import Path
from typing import Awaitable, Callable, Sequence

from bbs.errors import BBSError, ConfigError, Reason
from bbs.instance import Instance, default_home, init_instance, load_config

EXIT_OK, EXIT_FAIL, EXIT_CONFIG = 0, 1, 2


def _home(args: argparse.Namespace) -> Path:
    return Path(args.dir).expanduser().resolve() if args.dir else default_home()


def cmd_init(args: argparse.Namespace) -> int:
    root = _home(args)
    created = init_instance(root)
    config = load_config(root)
    config.make_folders()
    print(f"BBS instance at {root}: {len(created)} file(s) created from the shipped defaults.")
    print(f"Edit {root / 'ctrl'} to taste, then start it with: bbs run {root}")
    return EXIT_OK


def _announce(alias: str, password: str) -> None:
    # Printed once to the terminal that started the BBS; never logged.
    print(f"\n*** Sysop account '{alias}' created. Password: {password}\n"
          f"*** Write it down; change it with: bbs user passwd {alias}\n", file=sys.stderr, flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    from bbs import logsetup
    from bbs.app import App
    from bbs.runner import raise_open_file_limit, serve
    from console.remote import run_remote_console

    root = _home(args)
    fresh = not Instance(root).exists()
    created = init_instance(root)  # also adds default files that newer versions ship
    if fresh:
        print(f"created a new BBS instance in {root}", file=sys.stderr)
    elif created:
        print(f"added {len(created)} new default file(s): {', '.join(p.name for p in created)}", file=sys.stderr)
    config = load_config(root)
    raise_open_file_limit()
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    with_console = sys.stdin.isatty() and sys.stdout.isatty() and not args.headless

    async def main() -> int:
        app = App(config)
        app.remote_console = run_remote_console  # sysops' `ssh ... console` (nodes/ssh.py)
        # With the console on the terminal, log lines go to the file and the
        # console's Logs pane only: a write to stderr would tear its screen.
        stream = None if with_console else sys.stderr
        handlers = logsetup.configure(config.server.global_.log_level, app.instance.logs, app.bus, stream)
        try:
            if with_console:
                from console.live import run_console
                return await run_console(app, serve)
            return await serve(app, announce_password=_announce)
        finally:
            logsetup.remove(handlers)

    status = asyncio.run(main())
    if with_console:
        print(f"BBS stopped (exit status {status}); log: {Instance(root).logs / 'bbs.log'}", file=sys.stderr)
    return status


def cmd_scfg(args: argparse.Namespace) -> int:
    from console.scfg import run_scfg

    root = _home(args)
    load_config(root)  # a broken configuration is reported as by `config check`, before the menus
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("bbs scfg: the configuration menus need a terminal", file=sys.stderr)
        return EXIT_FAIL
    return asyncio.run(run_scfg(root))


def cmd_console(args: argparse.Namespace) -> int:
    from console.attach import main as attach_console

    return attach_console(_home(args))


def cmd_config_check(args: argparse.Namespace) -> int:
    root = _home(args)
    config = load_config(root)
    for warning in config.warnings:
        print(f"warning: {warning}")
    for item in config.listeners:
        where = item.address or "*"
        udp = " udp" if item.transport == "udp" else ""
        print(f"{item.service:<10} {where}:{item.port} tls={item.tls.value}{udp}")
    print(f"{root / 'ctrl'}: OK ({len(config.listeners)} listener socket(s), "
          f"{len(config.msgs.subs)} message sub(s), {len(config.files.dirs)} file dir(s), "
          f"nodes {config.system.first_node}-{config.system.last_node})")
    return EXIT_OK


def _read_password(args: argparse.Namespace) -> str:
    if getattr(args, "password", None):
        return args.password
    if sys.stdin.isatty():
        first = getpass.getpass("New password: ")
        if getpass.getpass("Again: ") != first:
            raise BBSError(Reason.BAD_PASSWORD, "the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def _with_users(args: argparse.Namespace, action: Callable[..., Awaitable[int]]) -> int:
    from bbs.db import Database
    from bbs.filters import FilterSet
    from bbs.users import USER_MIGRATIONS, UserBase

    root = _home(args)
    config = load_config(root)
    instance = Instance(root)
    # name.can applies to sysop-made accounts too, unless --force (e.g. a Guest account).
    name_filter = None if getattr(args, "force", False) else FilterSet(instance.text, instance.ctrl).name.match

    async def main() -> int:
        db = Database(instance.data / "user.db", USER_MIGRATIONS, name="user")
        await db.open()
        try:
            return await action(UserBase(db, name_filter=name_filter), config)
        finally:
            await db.close()

    return asyncio.run(main())


def _fmt_time(when: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(when)) if when else "never"


def cmd_user(args: argparse.Namespace) -> int:
    async def add(users, config) -> int:
        user = await users.add(args.name, _read_password(args), real_name=args.real_name or "",
                               email=args.email or "", level=args.level)
        print(f"added user #{user.number} {user.alias} (level {user.level})")
        return EXIT_OK

    async def list_(users, config) -> int:
        print(f"{'#':>4}  {'Alias':<25} {'Level':>5}  {'Last on':<16}  E-mail")
        for user in await users.list():
            print(f"{user.number:>4}  {user.alias:<25} {user.level:>5}  {_fmt_time(user.last_on):<16}  {user.email}")
        return EXIT_OK

    async def passwd(users, config) -> int:
        user = await users.find(args.name)
        await users.set_password(user.number, _read_password(args))
        print(f"password of #{user.number} {user.alias} changed")
        return EXIT_OK

    async def delete(users, config) -> int:
        user = await users.find(args.name)
        await users.delete(user.number)
        print(f"deleted user #{user.number} {user.alias}")
        return EXIT_OK

    async def show(users, config) -> int:
        user = await users.find(args.name)
        rows = [("Number", user.number), ("Alias", user.alias), ("Real name", user.real_name),
                ("E-mail", user.email), ("Location", user.location), ("Level", user.level),
                ("Flags", user.flags or "-"), ("Created", _fmt_time(user.created)),
                ("First on", _fmt_time(user.first_on)), ("Last on", _fmt_time(user.last_on)),
                ("Logons", user.logons), ("Posts", user.posts), ("E-mails", user.emails),
                ("Uploads", f"{user.uploads} ({user.upload_bytes} bytes)"),
                ("Downloads", f"{user.downloads} ({user.download_bytes} bytes)")]
        for label, value in rows:
            print(f"{label + ':':<11} {value}")
        return EXIT_OK

    actions = {"add": add, "list": list_, "passwd": passwd, "del": delete, "show": show}
    return _with_users(args, actions[args.user_command])


def _with_mail(args: argparse.Namespace, action: Callable[..., Awaitable[int]]) -> int:
    from bbs.mailbox import MailStore

    root = _home(args)
    load_config(root)

    async def main() -> int:
        store = MailStore(Instance(root).data / "mail.db")
        await store.open()
        try:
            return await action(store)
        finally:
            await store.close()

    return asyncio.run(main())


def cmd_mail(args: argparse.Namespace) -> int:
    async def queue(store) -> int:
        items = await store.outbound()
        if not items:
            print("The outbound mail queue is empty.")
            return EXIT_OK
        print(f"{'#':>5}  {'From':<24} {'To':<28} {'Tries':>5}  {'Next try':<16} {'':<10} Last error")
        for item in items:
            flag = "in transit" if item.in_transit else ""
            print(f"{item.id:>5}  {item.sender or '<>':<24.24} {', '.join(item.recipients):<28.28} "
                  f"{item.attempts:>5}  {_fmt_time(item.next_try):<16} {flag:<10} {item.last_error}")
        print(f"{len(items)} message(s) queued.")
        return EXIT_OK

    async def clear_transit(store) -> int:
        # Synchronet's exec/notransit.js: after a crash, let SendMail try these again.
        cleared = await store.clear_in_transit()
        print(f"cleared the in-transit flag of {cleared} message(s)")
        return EXIT_OK

    return _with_mail(args, {"queue": queue, "clear-transit": clear_transit}[args.mail_command])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bbs", description="A Synchronet-style BBS host.")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_dir(p: argparse.ArgumentParser, positional: bool = True) -> argparse.ArgumentParser:
        if positional:
            p.add_argument("dir", nargs="?", help="instance directory (default: $BBS_HOME or ~/bbs)")
        else:
            p.add_argument("-d", "--dir", help="instance directory (default: $BBS_HOME or ~/bbs)")
        return p

    with_dir(sub.add_parser("init", help="create an instance from the shipped defaults")).set_defaults(func=cmd_init)
    run = with_dir(sub.add_parser("run", help="start every enabled server"))
    run.add_argument("--headless", action="store_true", help="no console even on a terminal")
    run.set_defaults(func=cmd_run)
    with_dir(sub.add_parser("scfg", help="SCFG-style configuration menus (no servers started)")
             ).set_defaults(func=cmd_scfg)
    with_dir(sub.add_parser("console", help="attach the live console to the BBS running on this instance")
             ).set_defaults(func=cmd_console)
    config = sub.add_parser("config", help="configuration commands")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    with_dir(config_sub.add_parser("check", help="validate ctrl/ without starting")).set_defaults(func=cmd_config_check)

    user = sub.add_parser("user", help="user administration")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = with_dir(user_sub.add_parser("add", help="add a user"), positional=False)
    add.add_argument("name")
    add.add_argument("--level", type=int, default=10)
    add.add_argument("--real-name")
    add.add_argument("--email")
    add.add_argument("--password", help="(visible to other local users; default: prompt or stdin)")
    add.add_argument("--force", action="store_true", help="allow a name listed in text/name.can")
    with_dir(user_sub.add_parser("list", help="list users"), positional=False)
    passwd = with_dir(user_sub.add_parser("passwd", help="set a user's password"), positional=False)
    passwd.add_argument("name")
    passwd.add_argument("--password", help="(visible to other local users; default: prompt or stdin)")
    for name, text in (("del", "delete a user"), ("show", "show a user")):
        with_dir(user_sub.add_parser(name, help=text), positional=False).add_argument("name")
    user.set_defaults(func=cmd_user)

    mail = sub.add_parser("mail", help="the outbound mail queue")
    mail_sub = mail.add_subparsers(dest="mail_command", required=True)
    with_dir(mail_sub.add_parser("queue", help="list queued Internet mail"), positional=False)
    with_dir(mail_sub.add_parser("clear-transit", help="clear in-transit flags (after a crash)"),
             positional=False)
    mail.set_defaults(func=cmd_mail)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"{exc}", file=sys.stderr)
        return EXIT_CONFIG
    except BBSError as exc:
        print(f"bbs: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
