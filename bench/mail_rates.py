"""SMTP receive and POP3 retrieve rates: our Mail Server against Postfix and Dovecot.

Run from the repository root (as root: Postfix and Dovecot drop privileges):

    .venv/bin/python bench/mail_rates.py

Options: ``--messages N`` (SMTP, default 2000), ``--sessions S`` (concurrent
SMTP sessions, default 20), ``--size BYTES`` (default 5120), ``--pop3 N``
(messages retrieved over POP3, default 1000), ``--rounds R`` (default 1; the
servers are interleaved, the order alternating each round), ``--pause SEC``
(default 15: fsync-heavy runs slow down when run back to back on this machine,
see ../shared/peers/README.md), ``--keep`` (keep the temporary directory and
the servers' logs).

Servers, each its own process on 127.0.0.1 (free ports; nothing leaves the
machine):

* ours: ``python -m bbs run DIR --headless`` on a fresh instance (Hostname
  bbs.test, only the Mail Server, SMTP and POP3 on port 0, SendMail off,
  MaxClients and MaxMsgsWaiting unlimited); the ports come from
  data/listeners.json;
* Postfix 3.7 from ../shared/peers/postfix-*.cf.in (smtpd on a free loopback
  port, virtual(8) maildir delivery of everything for @bbs.test), its master
  started in the foreground (``master -d``) and stopped by PID;
* Dovecot 2.3 POP3 from ../shared/peers/dovecot.conf.in (passwd-file user,
  maildir), ``dovecot -F``, stopped by PID.

SMTP: Postfix's ``smtp-source -s S -m N -l SIZE -f sender@bbs.test -t
sysop@bbs.test`` (one message per session, S sessions at once) sends to each
server. The clock stops when every message is stored: for ours when
smtp-source exits (250 is sent only after the message is fsynced in
data/mail.db; the mailbox count is checked afterwards), for Postfix when N new
files are in the sysop's Maildir (queue -> virtual delivery).

POP3: N messages of SIZE bytes are put in a mailbox before the servers start
(ours: ``MailStore.deliver`` into user Reader's mailbox; Dovecot: maildir
files), then one poplib session logs in, runs STAT and RETRs every message
(each checked for its size) and QUITs, without DELE.

Prints messages/s for each and ours/peer ratios. Exit status 1 when a run
failed or our server logged an error. About a minute with the default pause.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import poplib
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bbs.mailbox import MailStore  # noqa: E402
from tests.support import set_ini  # noqa: E402

from common import START_TIMEOUT, free_port, wait_port  # noqa: E402  (bench/common.py)

PEERS = REPO.parent / "shared" / "peers"
DELIVERY_TIMEOUT = 120.0
READER, READER_PASSWORD = "Reader", "reader-bench-pw"
NOBODY = (65534, 65534)


def stop(proc: subprocess.Popen | None) -> int | None:
    """SIGTERM by PID, SIGKILL after 15 s."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def message(n: int, size: int) -> bytes:
    """A message of exactly ``size`` bytes (CRLF line ends)."""
    head = (f"From: Bench <sender@bbs.test>\r\nTo: Reader <reader@bbs.test>\r\n"
            f"Subject: bench {n}\r\nMessage-ID: <{n}.bench@bbs.test>\r\n\r\n").encode()
    line = b"x" * 74 + b"\r\n"
    body = line * ((size - len(head)) // len(line))
    body += b"y" * max(0, size - len(head) - len(body) - 2) + b"\r\n"
    return head + body


# ------------------------------------------------------------------ servers

class Ours:
    name = "ours"

    def __init__(self, work: Path, pop3_count: int, size: int, log) -> None:
        self.root = work / "bbs"
        python = sys.executable
        subprocess.run([python, "-m", "bbs", "init", str(self.root)], cwd=REPO, check=True,
                       capture_output=True)
        sbbs = self.root / "ctrl" / "sbbs.ini"
        for section, key, value in [
                ("Global", "Interface", "127.0.0.1"), ("Global", "Hostname", "bbs.test"),
                ("Global", "LoginAttemptDelay", "0"), ("Global", "LoginAttemptThrottle", "0"),
                ("Global", "BindRetryCount", "0"),
                ("BBS", "AutoStart", "false"), ("FTP", "AutoStart", "false"),
                ("Services", "AutoStart", "false"),
                ("Mail", "SMTPPort", "0"), ("Mail", "POP3Port", "0"),
                ("Mail", "Options", "ALLOW_POP3 | NO_SENDMAIL"),
                ("Mail", "DNSServer", "127.0.0.1:9"),  # no DNS leaves the machine
                ("Mail", "MaxClients", "0"), ("Mail", "MaxMsgsWaiting", "0")]:
            set_ini(sbbs, section, key, value)
        # The sysop first (so the server does not create one), then the POP3 reader.
        for alias, extra in (("Sysop", ["--level", "90", "--password", "sysop-bench-pw"]),
                             (READER, ["--password", READER_PASSWORD])):
            subprocess.run([python, "-m", "bbs", "user", "add", alias, *extra, "--force",
                            "-d", str(self.root)], cwd=REPO, check=True, capture_output=True)
        self.sysop, self.reader = 1, 2

        async def fill() -> None:
            store = MailStore(self.root / "data" / "mail.db")
            await store.open()
            for n in range(pop3_count):
                await store.deliver([self.reader], message(n, size), sender="sender@bbs.test",
                                    recipient="reader@bbs.test")
            await store.close()
        asyncio.run(fill())
        self.proc = subprocess.Popen([python, "-m", "bbs", "run", str(self.root), "--headless"],
                                     cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        listeners = self.root / "data" / "listeners.json"
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if listeners.exists():
                try:
                    rows = json.loads(listeners.read_text())["listeners"]
                    break
                except ValueError:
                    pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("our server did not start")
            time.sleep(0.05)
        ports = {row["service"]: row["port"] for row in rows}
        self.smtp_port, self.pop3_port = ports["smtp"], ports["pop3"]

    def stored(self) -> int:
        """Messages in the sysop's mailbox (read-only look at data/mail.db)."""
        conn = sqlite3.connect(f"file:{self.root / 'data' / 'mail.db'}?mode=ro", uri=True, timeout=30)
        try:
            return conn.execute("SELECT COUNT(*) FROM messages WHERE user = ?", (self.sysop,)).fetchone()[0]
        finally:
            conn.close()


class Postfix:
    name = "postfix"

    def __init__(self, work: Path, log) -> None:
        top = work / "postfix"
        etc = top / "postfix" / "etc"
        etc.mkdir(parents=True)
        for sub in ("postfix/spool", "postfix/data"):
            (top / sub).mkdir(parents=True)
        self.maildir = top / "mail" / "sysop" / "Maildir"
        for sub in ("new", "cur", "tmp"):
            (self.maildir / sub).mkdir(parents=True)
        for path in [top / "mail", *(top / "mail").rglob("*")]:
            os.chown(path, *NOBODY)
        self.smtp_port = free_port()
        main = (PEERS / "postfix-main.cf.in").read_text().replace("@DIR@", str(top))
        master = (PEERS / "postfix-master.cf.in").read_text().replace("@DIR@", str(top))
        master = master.replace("127.0.0.1:2525 ", f"127.0.0.1:{self.smtp_port} ")
        (etc / "main.cf").write_text(main)
        (etc / "master.cf").write_text(master)
        # Creates the queue directories with their owners (what `postfix start` does
        # before it runs master in the background).
        subprocess.run(["postfix", "-c", str(etc), "set-permissions"], capture_output=True)
        subprocess.run(["postfix", "-c", str(etc), "check"], capture_output=True)
        # Its own process group: at SIGTERM master kills its group (its children).
        self.proc = subprocess.Popen(["/usr/lib/postfix/sbin/master", "-c", str(etc), "-d"],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     start_new_session=True)
        wait_port(self.smtp_port, self.proc, "postfix")

    def stored(self) -> int:
        return sum(len(os.listdir(self.maildir / sub)) for sub in ("new", "cur"))


class Dovecot:
    name = "dovecot"

    def __init__(self, work: Path, count: int, size: int, log) -> None:
        top = work / "dovecot"
        for sub in ("dovecot/run", "dovecot/state"):
            (top / sub).mkdir(parents=True)
        self.pop3_port = free_port()
        conf = (PEERS / "dovecot.conf.in").read_text().replace("@DIR@", str(top))
        conf = conf.replace("port = 1110", f"port = {self.pop3_port}")
        (top / "dovecot" / "dovecot.conf").write_text(conf)
        (top / "dovecot" / "users").write_text(f"sysop:{{PLAIN}}sysop:65534:65534::{top}/popmail/sysop::\n")
        maildir = top / "popmail" / "sysop" / "Maildir"
        for sub in ("new", "cur", "tmp"):
            (maildir / sub).mkdir(parents=True)
        stamp = int(time.time())
        for n in range(count):
            (maildir / "new" / f"{stamp}.M{n}P{os.getpid()}.bench,S={size}").write_bytes(message(n, size))
        for path in [top / "popmail", *(top / "popmail").rglob("*")]:
            os.chown(path, *NOBODY)
        self.proc = subprocess.Popen(["dovecot", "-F", "-c", str(top / "dovecot" / "dovecot.conf")],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        wait_port(self.pop3_port, self.proc, "dovecot")


# ------------------------------------------------------------------ clients

def smtp_round(server, count: int, sessions: int, size: int) -> float:
    """smtp-source into ``server``; messages/s until all ``count`` are stored."""
    before = server.stored()
    source = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    started = time.perf_counter()
    result = subprocess.run([source, "-s", str(sessions), "-m", str(count), "-l", str(size),
                             "-f", "sender@bbs.test", "-t", "sysop@bbs.test",
                             f"127.0.0.1:{server.smtp_port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{server.name}: smtp-source failed ({result.returncode}): {result.stdout[-500:]}")
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while server.stored() - before < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.name}: {server.stored() - before} of {count} stored "
                               f"after {DELIVERY_TIMEOUT:g} s")
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    if server.stored() - before != count:
        raise RuntimeError(f"{server.name}: {server.stored() - before} stored, expected {count}")
    return count / elapsed


def pop3_round(name: str, port: int, user: str, password: str, count: int, size: int) -> float:
    """One poplib session: USER/PASS, STAT, RETR 1..count, QUIT; messages/s (login included)."""
    started = time.perf_counter()
    pop = poplib.POP3("127.0.0.1", port, timeout=60)
    pop.user(user)
    pop.pass_(password)
    messages, _ = pop.stat()
    if messages != count:
        raise RuntimeError(f"{name}: STAT says {messages} messages, expected {count}")
    for n in range(1, count + 1):
        _, lines, _ = pop.retr(n)
        got = sum(len(line) + 2 for line in lines)
        if got != size:
            raise RuntimeError(f"{name}: RETR {n} gave {got} bytes, expected {size}")
    pop.quit()
    return count / (time.perf_counter() - started)


def problems(log: Path) -> list[str]:
    pattern = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback")
    return [line for line in log.read_text(errors="replace").splitlines() if pattern.search(line)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--size", type=int, default=5120)
    parser.add_argument("--pop3", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--pause", type=float, default=15.0)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    for tool in ("smtp-source", "postfix", "dovecot"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            raise SystemExit(f"{tool} is needed (apt-get install postfix dovecot-pop3d)")
    if os.geteuid() != 0:
        raise SystemExit("run as root: the Postfix and Dovecot peers drop privileges to nobody")

    work = Path(tempfile.mkdtemp(prefix="mailbench-"))
    os.chmod(work, 0o755)  # virtual(8) and dovecot's mail processes run as nobody
    logs = {name: open(work / f"{name}.log", "w") for name in ("ours", "postfix", "dovecot")}
    ours = postfix = dovecot = None
    smtp: dict[str, list[float]] = {"ours": [], "postfix": []}
    pop3: dict[str, list[float]] = {"ours": [], "dovecot": []}
    status = 0
    try:
        ours = Ours(work, args.pop3, args.size, logs["ours"])
        postfix = Postfix(work, logs["postfix"])
        dovecot = Dovecot(work, args.pop3, args.size, logs["dovecot"])
        print(f"SMTP: smtp-source -s {args.sessions} -m {args.messages} -l {args.size}; "
              f"POP3: one poplib session, RETR x {args.pop3}; {args.rounds} round(s), "
              f"{args.pause:g} s pauses, loopback")
        first = True
        for round_no in range(args.rounds):
            order = [ours, postfix] if round_no % 2 == 0 else [postfix, ours]
            for server in order:
                if not first:
                    time.sleep(args.pause)
                first = False
                smtp[server.name].append(smtp_round(server, args.messages, args.sessions, args.size))
            pop_order = [("ours", ours.pop3_port, READER, READER_PASSWORD),
                         ("dovecot", dovecot.pop3_port, "sysop", "sysop")]
            if round_no % 2:
                pop_order.reverse()
            time.sleep(args.pause)
            for name, port, user, password in pop_order:
                pop3[name].append(pop3_round(name, port, user, password, args.pop3, args.size))
    except (RuntimeError, OSError, poplib.error_proto) as exc:
        print(f"FAILED: {exc}")
        status = 1
    finally:
        ours_exit = stop(ours.proc if ours else None)
        stop(postfix.proc if postfix else None)
        stop(dovecot.proc if dovecot else None)
        for log in logs.values():
            log.close()
        found = problems(work / "ours.log")
        if ours_exit not in (None, 0) or found:
            print(f"our server: exit {ours_exit}; {len(found)} error line(s)")
            for line in found[:10]:
                print("  " + line)
            status = 1
        if args.keep or status:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    def cell(values: list[float]) -> str:
        return " / ".join(f"{v:,.0f}" for v in values) if values else "-"

    def ratio(a: list[float], b: list[float]) -> str:
        return f"{sum(a) / len(a) / (sum(b) / len(b)):.2f}" if a and b else "-"

    print()
    print(f"| {'benchmark':<44} | {'ours msg/s':>14} | {'peer msg/s':>14} | {'ours/peer':>9} |")
    print(f"|{'-' * 46}|{'-' * 16}|{'-' * 16}|{'-' * 11}|")
    print(f"| {f'SMTP {args.messages} x {args.size} B, {args.sessions} sessions (Postfix)':<44} | "
          f"{cell(smtp['ours']):>14} | {cell(smtp['postfix']):>14} | {ratio(smtp['ours'], smtp['postfix']):>9} |")
    print(f"| {f'POP3 RETR {args.pop3} x {args.size} B, 1 session (Dovecot)':<44} | "
          f"{cell(pop3['ours']):>14} | {cell(pop3['dovecot']):>14} | {ratio(pop3['ours'], pop3['dovecot']):>9} |")
    return status


if __name__ == "__main__":
    sys.exit(main())
