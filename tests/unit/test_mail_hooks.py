"""mail.hooks without a server: mailproc.cfg ``python:`` lines, loading from
a directory, return values, and the thread slots a stuck hook holds."""
from __future__ import annotations

import asyncio
import sys
import threading

import pytest

from mail.hooks import Action, Decision, HookError, HookMessage, HookRunner, check_decision, load_hook
from mail.processors import Command, Hook, MailProcessors, parse_mailproc

MESSAGE = HookMessage(b"Subject: x\r\n\r\nbody\r\n", "a@example.org", ("b@bbs.test",), "127.0.0.1")
HERE = __name__
#: Set by the test to let blocker() return.
RELEASE = threading.Event()


def blocker(message: HookMessage) -> Decision:
    RELEASE.wait(10)
    return Decision.spam()


def quick(message: HookMessage) -> Decision:
    return Decision.reject("no thanks")


def test_mailproc_python_lines():
    text = ("python: pkg.mod:check\n/usr/bin/spamc -E\nPYTHON:mod:Class.method\n"
            "python: mod\npython: mod:fn()\npython: ../evil:fn\n")
    assert parse_mailproc(text) == [Hook("pkg.mod:check", 1), Command(("/usr/bin/spamc", "-E"), 2),
                                    Hook("mod:Class.method", 3)]
    assert Hook("pkg.mod:check", 1).text == "python:pkg.mod:check"


def test_load_from_a_directory_and_clear_errors(tmp_path):
    name = "bbshooks_unit_load"
    (tmp_path / f"{name}.py").write_text("class Filters:\n    @staticmethod\n    def check(m):\n"
                                         "        return None\nvalue = 3\n")
    try:
        assert load_hook(f"{name}:Filters.check", tmp_path)(MESSAGE) is None
        with pytest.raises(HookError, match="is not callable"):
            load_hook(f"{name}:value", tmp_path)
        with pytest.raises(HookError, match=r"has no nothing"):
            load_hook(f"{name}:nothing", tmp_path)
        with pytest.raises(HookError, match="cannot import bbshooks_unit_none"):
            load_hook("bbshooks_unit_none:f", tmp_path)
    finally:
        sys.modules.pop(name, None)


def test_return_values():
    assert check_decision(None) == Decision()
    assert check_decision(Decision.accept(bytearray(b"new"))) == Decision(Action.ACCEPT, b"new")
    assert check_decision(Decision.reject("why")).reason == "why"
    for bad in ("yes", Decision(Action.ACCEPT, "text"), Decision("spam"), Decision.reject(None)):
        with pytest.raises(HookError):
            check_decision(bad)


def test_a_stuck_hook_keeps_its_slot_until_it_returns():
    async def main():
        runner = HookRunner(threads=1)
        with pytest.raises(TimeoutError):
            await runner.call(f"{HERE}:blocker", MESSAGE, 0.2)
        with pytest.raises(TimeoutError):               # waits for the only slot, in vain
            await runner.call(f"{HERE}:quick", MESSAGE, 0.2)
        RELEASE.set()
        decision = await runner.call(f"{HERE}:quick", MESSAGE, 10)
        assert decision == Decision.reject("no thanks")
    RELEASE.clear()
    asyncio.run(main())


def napper(message: HookMessage) -> Decision:
    threading.Event().wait(0.2)
    return Decision.spam(b"Subject: napped\r\n\r\n")


def test_timeout_zero_means_no_limit(tmp_path):
    cfg = tmp_path / "mailproc.cfg"
    cfg.write_text(f"python: {HERE}:napper\n")

    async def main():
        unlimited = await MailProcessors(cfg, 0).run(MESSAGE.raw, "a@b", ["c@d"], "127.0.0.1")
        limited = await MailProcessors(cfg, 0.05).run(MESSAGE.raw, "a@b", ["c@d"], "127.0.0.1")
        return unlimited, limited
    unlimited, limited = asyncio.run(main())
    assert (unlimited.action, unlimited.raw) == (Action.SPAM, b"Subject: napped\r\n\r\n")
    assert (limited.action, limited.raw) == (Action.ACCEPT, MESSAGE.raw)
