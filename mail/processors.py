"""External mail processors: ``ctrl/mailproc.cfg``.

Each non-comment line of ``ctrl/mailproc.cfg`` is a command line (split with
:func:`shlex.split`, run without a shell). After DATA, :meth:`MailProcessors.run`
runs each command in file order with the whole message (our ``Return-Path``
and ``Received`` included) on stdin and these environment variables:

``MAIL_SENDER``      the envelope sender (empty for ``<>``)
``MAIL_RECIPIENTS``  the envelope recipients, comma-separated
``MAIL_CLIENT_IP``   the SMTP client's IP address

The exit status decides:

* 0: accept; a non-empty stdout replaces the message (a tagging filter);
* 1: mark the message as spam (POP3 ``user#nospam`` hides it); a non-empty
  stdout replaces the message as for 0;
* 2: reject: the first line of stderr is the reason (SMTP 554);
* anything else, a command that cannot start, or one that runs longer than
  ``[Mail] MailProcessorTimeout``: a warning is logged and the message goes
  on unchanged (a broken filter never loses mail).

The next command sees the message as the previous one left it; a rejection
stops the chain. The file is re-read when it changes. The result is a
:class:`Verdict` (no SMTP here: :mod:`mail.smtp` maps it to a reply).
"""
from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import os
import shlex
import signal
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Exit statuses of a processor (see the module docstring).
EXIT_ACCEPT, EXIT_SPAM, EXIT_REJECT = 0, 1, 2
#: Ours (Synchronet's mailproc has no time limit): default MailProcessorTimeout.
DEFAULT_TIMEOUT = 30.0
#: Longest rejection reason taken from a processor's stderr (the 554 line
#: must stay within RFC 5321 section 4.5.3.1.5's 512-octet reply line).
MAX_REASON = 200
#: Reason given when a rejecting processor printed nothing on stderr.
DEFAULT_REASON = "Message rejected by mail processor"


class Action(enum.Enum):
    """What the chain decided about a message."""

    ACCEPT = "accept"
    SPAM = "spam"
    REJECT = "reject"


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The chain's result: ``raw`` is the message to store (possibly
    rewritten), ``reason`` and ``command`` are set for a rejection."""

    action: Action
    raw: bytes
    reason: str = ""
    command: str = ""


@dataclasses.dataclass(frozen=True)
class Command:
    """One line of mailproc.cfg: its argv and where it came from."""

    argv: tuple[str, ...]
    line: int

    @property
    def text(self) -> str:
        return shlex.join(self.argv)


def parse_mailproc(text: str, source: str = "mailproc.cfg") -> list[Command]:
    """The commands in mailproc.cfg ``text``; ``;`` starts a comment line.

    A line shlex cannot split (an unclosed quote) is skipped with a warning
    naming ``source:line``.
    """
    commands = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith(";"):
            continue
        try:
            argv = shlex.split(stripped)
        except ValueError as exc:
            log.warning("%s:%d: mail processor line ignored: %s", source, number, exc)
            continue
        if argv:
            commands.append(Command(tuple(argv), number))
    return commands


class MailProcessors:
    """The processors of ``path`` (re-read when the file changes)."""

    def __init__(self, path: Path, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.path = path
        self.timeout = timeout
        self._sig: tuple[int, int] | None = None
        self._commands: list[Command] = []

    def commands(self) -> list[Command]:
        """The current commands; an absent file means none."""
        try:
            stat = self.path.stat()
        except OSError:
            self._sig, self._commands = None, []
            return []
        sig = (stat.st_mtime_ns, stat.st_size)
        if sig != self._sig:
            try:
                text = self.path.read_text(encoding="utf-8", errors="replace")
            except OSError as exc:
                log.warning("cannot read %s: %s", self.path, exc)
                return self._commands
            self._commands = parse_mailproc(text, str(self.path))
            self._sig = sig
        return self._commands

    async def run(self, raw: bytes, sender: str, recipients: list[str], client_ip: str,
                  logger: Any = log, prefix: str = "") -> Verdict:
        """Run every processor on ``raw``; called by the SMTP server after DATA.

        Returns the :class:`Verdict`; never raises for a processor's failure.
        """
        commands = self.commands()
        if not commands:
            return Verdict(Action.ACCEPT, raw)
        env = dict(os.environ, MAIL_SENDER=sender, MAIL_RECIPIENTS=",".join(recipients),
                   MAIL_CLIENT_IP=client_ip)
        spam = False
        for command in commands:
            result = await self._one(command, raw, env, logger, prefix)
            if result is None:
                continue
            status, out, err = result
            if status == EXIT_REJECT:
                reason = _first_line(err) or DEFAULT_REASON
                logger.warning("%s !SMTP MAIL PROCESSOR %s REJECTED message: %s", prefix,
                               command.text, reason)
                return Verdict(Action.REJECT, raw, reason, command.text)
            if status == EXIT_SPAM:
                logger.log(25, "%s SMTP MAIL PROCESSOR %s marked message as spam", prefix, command.text)
                spam = True
            if out:
                logger.info("%s SMTP MAIL PROCESSOR %s rewrote message (%d -> %d bytes)", prefix,
                            command.text, len(raw), len(out))
                raw = out
        return Verdict(Action.SPAM if spam else Action.ACCEPT, raw)

    async def _one(self, command: Command, raw: bytes, env: dict[str, str], logger: Any,
                   prefix: str) -> tuple[int, bytes, bytes] | None:
        """(exit status, stdout, stderr) of one processor; None if it failed."""
        try:
            proc = await asyncio.create_subprocess_exec(
                *command.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=env, start_new_session=True)
        except OSError as exc:
            logger.warning("%s !SMTP MAIL PROCESSOR %s (%s:%d) cannot start: %s", prefix, command.text,
                           self.path.name, command.line, exc)
            return None
        try:
            out, err = await asyncio.wait_for(proc.communicate(raw), self.timeout)
        except asyncio.TimeoutError:
            _kill_group(proc)
            await proc.wait()
            logger.warning("%s !SMTP MAIL PROCESSOR %s TIMED OUT after %.1fs: message accepted "
                           "unchanged", prefix, command.text, self.timeout)
            return None
        except BaseException:
            _kill_group(proc)
            raise
        status = proc.returncode
        if status not in (EXIT_ACCEPT, EXIT_SPAM, EXIT_REJECT):
            logger.warning("%s !SMTP MAIL PROCESSOR %s FAILED (exit status %s): message accepted "
                           "unchanged%s", prefix, command.text, status,
                           f": {_first_line(err)}" if err.strip() else "")
            return None
        return status, out, err


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """Kill the processor and anything it started (it leads its own session)."""
    if proc.returncode is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            proc.kill()
        except ProcessLookupError:
            pass


def _first_line(err: bytes) -> str:
    for line in err.decode("utf-8", "replace").splitlines():
        text = "".join(c for c in line if " " <= c <= "~" or c > "\x9f").strip()
        if text:
            return text[:MAX_REASON]
    return ""
