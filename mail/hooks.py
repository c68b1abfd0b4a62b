"""Python mail processors: ``python: package.module:function`` lines of
``ctrl/mailproc.cfg`` (:mod:`mail.processors` runs the chain).

A hook is a plain function. After DATA it is called in a worker thread (it
may block, read files, talk to a spam daemon: the event loop goes on) with
one :class:`HookMessage`, and returns None (accept unchanged) or a
:class:`Decision`::

    # ~/bbs/myhooks.py, enabled with the line  python: myhooks:check
    from mail.hooks import Decision

    def check(message):
        if b"XJS*C4JDBQADN1" in message.raw:
            return Decision.reject("Virus found: EICAR-Test")
        if message.client_ip.startswith("203.0.113."):
            return Decision.spam()                     # POP3 user#nospam hides it
        return Decision.accept(b"X-Checked: yes\r\n" + message.raw)   # rewritten

The module is imported once per process, in the worker thread, from
Python's path or else from the instance directory (a ``.py`` file or a
package there). A hook that cannot be loaded, raises, returns anything else
or runs longer than ``[Mail] MailProcessorTimeout`` fails like a command
that fails: logged, and the message goes on unchanged. Python cannot stop a
thread: a hook that timed out keeps running and holds one of
:data:`HOOK_THREADS` slots until it returns; when every slot is held, a hook
call waits for one within its time-out.
"""
from __future__ import annotations

import asyncio
import dataclasses
import email.message
import email.parser
import email.policy
import enum
import importlib
import importlib.machinery
import importlib.util
import inspect
import re
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

__all__ = ["HOOK_PREFIX", "HOOK_THREADS", "Action", "Decision", "HookError", "HookMessage",
           "HookRunner", "load_hook", "parse_hook_target"]

#: The mailproc.cfg line prefix of a Python hook.
HOOK_PREFIX = "python:"
#: ``module.path:attribute.path`` (identifiers only: no file names, no calls).
_TARGET = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
#: Hook calls running at once (hooks that time out keep their slot until they
#: return, so a stuck hook cannot pile up threads without bound).
HOOK_THREADS = 8
# Guards sys.modules (process-wide) while a module is loaded from the instance directory.
_IMPORT_LOCK = threading.Lock()


class Action(enum.Enum):
    """What a processor (or the whole chain) decided about a message."""

    ACCEPT = "accept"
    SPAM = "spam"
    REJECT = "reject"


@dataclasses.dataclass(frozen=True)
class Decision:
    """A processor's answer: ``raw`` (bytes) replaces the message when set
    (ACCEPT or SPAM); ``reason`` is the rejection's text (SMTP 554)."""

    action: Action = Action.ACCEPT
    raw: bytes | None = None
    reason: str = ""

    @classmethod
    def accept(cls, raw: bytes | None = None) -> "Decision":
        """Accept; ``raw`` (if given) replaces the message."""
        return cls(Action.ACCEPT, raw)

    @classmethod
    def spam(cls, raw: bytes | None = None) -> "Decision":
        """Accept and tag as spam; ``raw`` (if given) replaces the message."""
        return cls(Action.SPAM, raw)

    @classmethod
    def reject(cls, reason: str = "") -> "Decision":
        """Refuse the message (554 with ``reason``'s first line)."""
        return cls(Action.REJECT, None, reason)


@dataclasses.dataclass(frozen=True)
class HookMessage:
    """What a hook gets: the message as the chain has it so far (our
    ``Return-Path`` and ``Received`` included) and its envelope."""

    raw: bytes
    #: The envelope sender ('' for ``<>``).
    sender: str
    recipients: tuple[str, ...]
    client_ip: str

    def parsed(self) -> email.message.EmailMessage:
        """The message parsed by :mod:`email` (``policy.default``)."""
        return email.parser.BytesParser(policy=email.policy.default).parsebytes(self.raw)


class HookError(Exception):
    """A hook that cannot be loaded, raised, or returned something else; ``str()`` says why."""


def parse_hook_target(text: str) -> str | None:
    """``package.module:function`` after ``python:``, or None when malformed."""
    target = text.strip()
    return target if _TARGET.fullmatch(target) else None


def load_hook(target: str, search: Path | None = None) -> Callable[[HookMessage], object]:
    """Import ``module:attr`` (module from Python's path, else from
    ``search``) and return the plain function it names.

    Called in a worker thread (importing runs the module's code). Raises
    :class:`HookError` when it cannot be imported, lacks the attribute, or
    the attribute is not a plain callable (``async def`` is refused: hooks
    run in a thread, not on the event loop).
    """
    module_name, _, attr = target.partition(":")
    try:
        module = _import(module_name, search)
    except Exception as exc:
        raise HookError(f"cannot import {module_name}: {type(exc).__name__}: {exc}") from exc
    obj: object = module
    try:
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        where = getattr(module, "__file__", None) or module_name
        raise HookError(f"{module_name} ({where}) has no {attr}") from None
    if inspect.iscoroutinefunction(obj) or inspect.isasyncgenfunction(obj):
        raise HookError(f"{target} is async; a hook is a plain function (it runs in a thread)")
    if not callable(obj):
        raise HookError(f"{target} is not callable")
    return obj  # type: ignore[return-value]


def _import(name: str, search: Path | None) -> ModuleType:
    top = name.partition(".")[0]
    with _IMPORT_LOCK:
        if top not in sys.modules and search is not None and importlib.util.find_spec(top) is None:
            spec = importlib.machinery.PathFinder.find_spec(top, [str(search)])
            if spec is not None and spec.loader is not None:
                module = importlib.util.module_from_spec(spec)
                sys.modules[top] = module
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    sys.modules.pop(top, None)
                    raise
        return importlib.import_module(name)


def check_decision(result: object) -> Decision:
    """A hook's return value as a :class:`Decision` (None accepts unchanged).

    Raises :class:`HookError` for anything else or a non-bytes ``raw``.
    """
    if result is None:
        return Decision()
    if not isinstance(result, Decision) or not isinstance(result.action, Action):
        raise HookError(f"returned {type(result).__name__}, not None or a mail.hooks.Decision")
    if result.raw is not None and not isinstance(result.raw, (bytes, bytearray)):
        raise HookError(f"Decision.raw is {type(result.raw).__name__}, not bytes")
    if not isinstance(result.reason, str):
        raise HookError(f"Decision.reason is {type(result.reason).__name__}, not str")
    raw = bytes(result.raw) if result.raw is not None else None
    return Decision(result.action, raw, result.reason)


class HookRunner:
    """Loads hooks and calls them in worker threads; one per mail server."""

    def __init__(self, search: Path | None = None, threads: int = HOOK_THREADS) -> None:
        self.search = search
        self._slots = asyncio.Semaphore(threads)
        self._loaded: dict[str, Callable[[HookMessage], object]] = {}
        self._loaded_lock = threading.Lock()

    async def call(self, target: str, message: HookMessage, timeout: float | None) -> Decision:
        """Run hook ``target`` on ``message`` in a thread; wait at most
        ``timeout`` seconds (None: no limit), a free slot included.

        Returns its :class:`Decision`. Raises :class:`HookError` (could not
        load it, it raised, it returned something else) or ``TimeoutError``.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        async with asyncio.timeout_at(deadline):
            await self._slots.acquire()
        future: asyncio.Future = loop.create_future()

        def finish(outcome: tuple[bool, object]) -> None:  # on the loop
            self._slots.release()
            if not future.done():
                ok, value = outcome
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)  # type: ignore[arg-type]

        def work() -> None:  # in the hook's thread
            try:
                outcome: tuple[bool, object] = (True, check_decision(self._load(target)(message)))
            except HookError as exc:
                outcome = (False, exc)
            except BaseException as exc:  # the hook's own error
                outcome = (False, HookError(f"raised {type(exc).__name__}: {exc}{_where(exc)}"))
            try:
                loop.call_soon_threadsafe(finish, outcome)
            except RuntimeError:  # the loop closed while the hook ran (shutdown)
                pass

        try:
            # A daemon thread: a hook that never returns cannot hold up the process's exit.
            threading.Thread(target=work, name=f"mailproc {target}", daemon=True).start()
        except BaseException:
            self._slots.release()
            raise
        async with asyncio.timeout_at(deadline):
            return await future

    def _load(self, target: str) -> Callable[[HookMessage], object]:
        with self._loaded_lock:
            hook = self._loaded.get(target)
        if hook is None:
            hook = load_hook(target, self.search)
            with self._loaded_lock:
                self._loaded[target] = hook
        return hook


def _where(exc: BaseException) -> str:
    """`` (file.py:12)`` of the innermost frame of ``exc``'s traceback."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    return f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})"
