"""External mail processors: ``ctrl/mailproc.cfg``.

Each non-comment line of ``ctrl/mailproc.cfg`` is a command line (split with
:func:`shlex.split`, run without a shell) or a Python hook,
``python: package.module:function`` (see :mod:`mail.hooks`). After DATA,
:meth:`MailProcessors.run` runs each in file order. A command gets the whole
message (our ``Return-Path`` and ``Received`` included) on stdin and these
environment variables:

``MAIL_SENDER``      the envelope sender (empty for ``<>``)
``MAIL_RECIPIENTS``  the envelope recipients, comma-separated
``MAIL_CLIENT_IP``   the SMTP client's IP address

The exit status decides:

* 0: accept; a non-empty stdout replaces the message (a tagging filter);
* 1: mark the message as spam (POP3 ``user#nospam`` hides it); a non-empty
  stdout replaces the message as for 0;
* 2: reject: the first line of stderr is the reason (SMTP 554);
* anything else, a command that cannot start, or one that runs longer than
  ``[Mail] MailProcessorTimeout`` (0: no limit): a warning is logged and the
  message goes on unchanged (a broken filter never loses mail).

A hook gets the same in a :class:`~mail.hooks.HookMessage` and answers with
a :class:`~mail.hooks.Decision` (accept, rewrite, spam, reject with a
reason); one that cannot be loaded, raises or times out fails as a command
does.

The next processor sees the message as the previous one left it; a
rejection stops the chain. The file is re-read when it changes. The result
is a :class:`Verdict` (no SMTP here: :mod:`mail.smtp` maps it to a reply).
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import shlex
import signal
from pathlib import Path
from typing import Any

from mail.hooks import HOOK_PREFIX, Action, Decision, HookError, HookMessage, HookRunner, parse_hook_target

__all__ = ["Action", "Command", "Hook", "MailProcessors", "Verdict", "parse_mailproc"]

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


@dataclasses.dataclass(frozen=True)
class Hook:
    """A ``python: module:function`` line of mailproc.cfg."""

    target: str
    line: int

    @property
    def text(self) -> str:
        return f"{HOOK_PREFIX}{self.target}"


def parse_mailproc(text: str, source: str = "mailproc.cfg") -> list[Command | Hook]:
    """The processors in mailproc.cfg ``text``; ``;`` starts a comment line.

    A line shlex cannot split (an unclosed quote) or a ``python:`` line that
    is not ``module.path:function`` is skipped with a warning naming
    ``source:line``.
    """
    commands: list[Command | Hook] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith(";"):
            continue
        if stripped.lower().startswith(HOOK_PREFIX):
            target = parse_hook_target(stripped[len(HOOK_PREFIX):])
            if target is None:
                log.warning("%s:%d: mail processor line ignored: expected %s package.module:function",
                            source, number, HOOK_PREFIX)
            else:
                commands.append(Hook(target, number))
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

    def __init__(self, path: Path, timeout: float = DEFAULT_TIMEOUT, search: Path | None = None) -> None:
        """``timeout``: MailProcessorTimeout (0: no limit); ``search``: where
        hook modules not on Python's path are looked for (the instance directory)."""
        self.path = path
        self.timeout = timeout or None
        self.hooks = HookRunner(search)
        self._sig: tuple[int, int] | None = None
        self._commands: list[Command | Hook] = []

    def commands(self) -> list[Command | Hook]:
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
            if isinstance(command, Hook):
                message = HookMessage(raw, sender, tuple(recipients), client_ip)
                decision = await self._hook(command, message, logger, prefix)
            else:
                decision = await self._one(command, raw, env, logger, prefix)
            if decision is None:
                continue
            if decision.action is Action.REJECT:
                reason = _first_line(decision.reason) or DEFAULT_REASON
                logger.warning("%s !SMTP MAIL PROCESSOR %s REJECTED message: %s", prefix,
                               command.text, reason)
                return Verdict(Action.REJECT, raw, reason, command.text)
            if decision.action is Action.SPAM:
                logger.log(25, "%s SMTP MAIL PROCESSOR %s marked message as spam", prefix, command.text)
                spam = True
            if decision.raw:
                logger.info("%s SMTP MAIL PROCESSOR %s rewrote message (%d -> %d bytes)", prefix,
                            command.text, len(raw), len(decision.raw))
                raw = decision.raw
        return Verdict(Action.SPAM if spam else Action.ACCEPT, raw)

    async def _hook(self, hook: Hook, message: HookMessage, logger: Any, prefix: str) -> Decision | None:
        """One Python hook's :class:`Decision`; None (logged) if it failed."""
        try:
            return await self.hooks.call(hook.target, message, self.timeout)
        except TimeoutError:
            self._timed_out(hook, logger, prefix)
        except HookError as exc:
            logger.warning("%s !SMTP MAIL PROCESSOR %s (%s:%d) FAILED: %s: message accepted unchanged",
                           prefix, hook.text, self.path.name, hook.line, exc)
        return None

    def _timed_out(self, command: Command | Hook, logger: Any, prefix: str) -> None:
        logger.warning("%s !SMTP MAIL PROCESSOR %s TIMED OUT after %.1fs: message accepted "
                       "unchanged", prefix, command.text, self.timeout)

    async def _one(self, command: Command, raw: bytes, env: dict[str, str], logger: Any,
                   prefix: str) -> Decision | None:
        """What one command's exit status decided; None (logged) if it failed."""
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
            self._timed_out(command, logger, prefix)
            return None
        except BaseException:
            _kill_group(proc)
            raise
        status = proc.returncode
        text = err.decode("utf-8", "replace")
        if status == EXIT_REJECT:
            return Decision.reject(text)
        if status in (EXIT_ACCEPT, EXIT_SPAM):
            return Decision(Action.SPAM if status == EXIT_SPAM else Action.ACCEPT, out or None)
        logger.warning("%s !SMTP MAIL PROCESSOR %s FAILED (exit status %s): message accepted "
                       "unchanged%s", prefix, command.text, status,
                       f": {_first_line(text)}" if text.strip() else "")
        return None


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


def _first_line(text: str) -> str:
    """The first non-blank line of ``text``, printable characters only, cut
    to :data:`MAX_REASON` (what may go into a reply line)."""
    for line in text.splitlines():
        text = "".join(c for c in line if " " <= c <= "~" or c > "\x9f").strip()
        if text:
            return text[:MAX_REASON]
    return ""
