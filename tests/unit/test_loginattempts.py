"""Unit tests for bbs.loginattempts: the LoginAttempt* rules, with a fake clock."""
from __future__ import annotations

import calendar
import logging
import time
from pathlib import Path

import pytest

from bbs.filters import FilterList, format_time
from bbs.loginattempts import (
    Ban,
    FailureOutcome,
    LoginAttemptRules,
    LoginAttemptTracker,
    hack_log_line,
)

T0 = float(calendar.timegm((2026, 11, 23, 9, 40, 1, 0, 0, 0)))
ATTACKER = "203.0.113.9"


class FakeClock:
    """A clock the test moves by hand (no sleeping)."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Env:
    """A tracker over real files in tmp_path, with its clock and events."""

    def __init__(self, tmp_path: Path, rules: LoginAttemptRules, exempt_text: str = "", **kw: object) -> None:
        self.clock = FakeClock()
        self.ip_can_path = tmp_path / "text" / "ip.can"
        exempt_path = tmp_path / "ctrl" / "ipfilter_exempt.cfg"
        if exempt_text:
            exempt_path.parent.mkdir(parents=True, exist_ok=True)
            exempt_path.write_text(exempt_text)
        self.ip_can = FilterList.load(self.ip_can_path)
        self.hack_log = tmp_path / "data" / "logs" / "hack.log"
        self.events: list[tuple[str, dict]] = []  # threshold events
        self.failures: list[dict] = []            # one "failed" event per failure
        self.tracker = LoginAttemptTracker(
            rules,
            ip_can=self.ip_can,
            exempt=FilterList.load(exempt_path),
            hack_log=self.hack_log,
            clock=self.clock,
            on_event=lambda kind, info: (self.failures.append(info) if kind == "failed"
                                         else self.events.append((kind, info))),
            **kw,
        )

    def fail(self, times: int, addr: str = ATTACKER, protocol: str = "telnet", user: str = "bob") -> FailureOutcome:
        outcome = None
        for _ in range(times):
            outcome = self.tracker.failed(addr, protocol, user)
        assert outcome is not None
        return outcome

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]


def test_defaults_are_synchronets() -> None:
    rules = LoginAttemptRules()
    assert (rules.delay, rules.throttle) == (5.0, 1.0)
    assert (rules.hack_threshold, rules.tempban_threshold, rules.tempban_duration) == (10, 20, 600.0)
    assert (rules.filter_threshold, rules.filter_duration) == (0, 0.0)


def test_each_failure_is_delayed_and_counted(tmp_path: Path) -> None:
    env = Env(tmp_path, LoginAttemptRules(delay=2.5))
    outcome = env.fail(1)
    assert outcome == FailureOutcome(count=1, delay=2.5, hack_logged=False, banned=False, filtered=False)
    assert env.fail(1).count == 2
    assert env.tracker.count(ATTACKER) == 2
    assert env.tracker.count("198.51.100.1") == 0


def test_throttle_grows_with_failures(tmp_path: Path) -> None:
    env = Env(tmp_path, LoginAttemptRules(throttle=1.5))
    assert env.tracker.throttle_delay(ATTACKER) == 0
    env.fail(3)
    assert env.tracker.throttle_delay(ATTACKER) == 4.5
    assert env.tracker.throttle_delay("198.51.100.1") == 0


def test_ipv4_mapped_is_the_same_address(tmp_path: Path) -> None:
    env = Env(tmp_path, LoginAttemptRules())
    env.fail(1, addr="::ffff:203.0.113.9")
    env.fail(1, addr=ATTACKER)
    assert env.tracker.count(ATTACKER) == 2
    assert env.tracker.count("::FFFF:203.0.113.9") == 2


def test_succeeded_resets(tmp_path: Path) -> None:
    env = Env(tmp_path, LoginAttemptRules())
    env.fail(4)
    env.tracker.succeeded(ATTACKER)
    assert env.tracker.count(ATTACKER) == 0
    assert env.tracker.throttle_delay(ATTACKER) == 0
    assert env.fail(1).count == 1
    env.tracker.succeeded("198.51.100.1")  # unknown address: no error


def test_hack_log_written_once_at_threshold(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    env = Env(tmp_path, LoginAttemptRules(hack_threshold=3, tempban_threshold=0))
    with caplog.at_level(logging.WARNING, logger="bbs.loginattempts"):
        outcomes = [env.tracker.failed(ATTACKER, "pop3", "bob") for _ in range(2)]
        assert not env.hack_log.exists()
        assert not any(o.hack_logged for o in outcomes)
        env.clock.advance(7)
        third = env.tracker.failed(ATTACKER, "pop3", "bob")
        fourth = env.tracker.failed(ATTACKER, "pop3", "bob")
    assert third.hack_logged and not fourth.hack_logged
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(T0 + 7))
    expected = (
        f"{stamp} SUSPECTED BRUTE FORCE HACK ATTEMPT from {ATTACKER} via pop3 "
        "using name 'bob' (3 failed login attempts)"
    )
    assert env.hack_log.read_text() == expected + "\n"
    assert expected in caplog.text
    assert env.kinds() == ["hack"]
    assert env.events[0][1] == {"addr": ATTACKER, "protocol": "pop3", "user": "bob", "count": 3}


def test_hack_log_line_never_has_control_characters() -> None:
    line = hack_log_line(T0, "1.2.3.4", "ftp", "evil\r\nFAKE LINE", 10)
    assert "\n" not in line and "\r" not in line
    assert "using name 'evil??FAKE LINE' (10 failed login attempts)" in line


def test_hack_log_disabled_with_zero(tmp_path: Path) -> None:
    env = Env(tmp_path, LoginAttemptRules(hack_threshold=0, tempban_threshold=0))
    assert not env.fail(30).hack_logged
    assert not env.hack_log.exists()


def test_temp_ban_start_expiry(tmp_path: Path) -> None:
    env = Env(tmp_path, LoginAttemptRules(hack_threshold=0, tempban_threshold=3, tempban_duration=600))
    assert not env.fail(2).banned
    assert env.tracker.is_banned(ATTACKER) is None
    outcome = env.fail(1, protocol="ssh", user="root")
    assert outcome.banned and outcome.count == 3
    assert env.tracker.is_banned(ATTACKER) == 600
    assert env.tracker.is_banned("::ffff:203.0.113.9") == 600
    assert env.tracker.bans() == [Ban(addr=ATTACKER, until=T0 + 600, count=3, protocol="ssh", user="root")]
    assert env.kinds() == ["tempban"] and env.events[0][1]["until"] == T0 + 600

    env.clock.advance(599)
    assert env.tracker.is_banned(ATTACKER) == 1
    env.clock.advance(1)
    assert env.tracker.is_banned(ATTACKER) is None
    assert env.tracker.bans() == []


def test_ban_renewed_after_expiry_on_next_failure(tmp_path: Path) -> None:
    env = Env(tmp_path, LoginAttemptRules(hack_threshold=0, tempban_threshold=2, tempban_duration=60))
    env.fail(2)
    env.clock.advance(61)
    assert env.tracker.is_banned(ATTACKER) is None
    assert env.fail(1).banned
    assert env.tracker.is_banned(ATTACKER) == 60
    assert env.kinds() == ["tempban", "tempban"]


def test_lift_ban(tmp_path: Path) -> None:
    env = Env(tmp_path, LoginAttemptRules(hack_threshold=0, tempban_threshold=2))
    assert env.tracker.lift(ATTACKER) is False
    env.fail(2)
    assert env.tracker.lift("::ffff:" + ATTACKER) is True
    assert env.tracker.is_banned(ATTACKER) is None
    assert env.tracker.bans() == []
    assert env.tracker.count(ATTACKER) == 0
    assert not env.fail(1).banned  # the next failure starts over
    assert env.tracker.lift(ATTACKER) is False


def test_success_during_ban_keeps_ban(tmp_path: Path) -> None:
    env = Env(tmp_path, LoginAttemptRules(hack_threshold=0, tempban_threshold=2))
    env.fail(2)
    env.tracker.succeeded(ATTACKER)
    assert env.tracker.count(ATTACKER) == 0
    assert env.tracker.is_banned(ATTACKER) == 600


def test_filter_appends_to_ip_can_once_with_expiry(tmp_path: Path) -> None:
    rules = LoginAttemptRules(hack_threshold=0, tempban_threshold=0, filter_threshold=3, filter_duration=3600)
    env = Env(tmp_path, rules)
    assert not env.fail(2).filtered
    assert not env.ip_can_path.exists()
    outcome = env.fail(1, protocol="ftp", user="admin")
    assert outcome.filtered
    assert not env.fail(5, protocol="ftp", user="admin").filtered  # only once

    lines = env.ip_can_path.read_text().splitlines()
    assert lines == [
        f"{ATTACKER}\tt={format_time(T0)} e={format_time(T0 + 3600)} p=ftp u=admin "
        'r="Too many failed login attempts (3)"'
    ]
    entry = env.ip_can.match_ip(ATTACKER, now=T0)
    assert entry is not None and entry.expires == T0 + 3600
    reread = FilterList.load(env.ip_can_path)
    assert reread.match_ip(ATTACKER, now=T0 + 3599) is not None
    assert reread.match_ip(ATTACKER, now=T0 + 3600) is None  # expired: stops matching
    assert env.kinds() == ["filter"] and env.events[0][1]["expires"] == T0 + 3600


def test_filter_again_after_entry_expired(tmp_path: Path) -> None:
    rules = LoginAttemptRules(hack_threshold=0, tempban_threshold=0, filter_threshold=1, filter_duration=60)
    env = Env(tmp_path, rules)
    assert env.fail(1).filtered
    env.clock.advance(61)
    assert env.fail(1).filtered
    assert len(env.ip_can_path.read_text().splitlines()) == 2


def test_filter_permanent_without_duration(tmp_path: Path) -> None:
    env = Env(tmp_path, LoginAttemptRules(hack_threshold=0, tempban_threshold=0, filter_threshold=1))
    assert env.fail(1).filtered
    text = env.ip_can_path.read_text()
    assert "e=" not in text
    assert env.ip_can.match_ip(ATTACKER, now=T0 + 10**9) is not None


def test_already_filtered_address_is_not_appended(tmp_path: Path) -> None:
    ip_can = tmp_path / "text" / "ip.can"
    ip_can.parent.mkdir(parents=True)
    ip_can.write_text("203.0.113.0/24\n")
    env = Env(tmp_path, LoginAttemptRules(hack_threshold=0, tempban_threshold=0, filter_threshold=1))
    assert not env.fail(1).filtered
    assert ip_can.read_text() == "203.0.113.0/24\n"


def test_exempt_address_never_banned_nor_filtered(tmp_path: Path) -> None:
    rules = LoginAttemptRules(delay=5, hack_threshold=2, tempban_threshold=2, filter_threshold=2)
    env = Env(tmp_path, rules, exempt_text="; trusted\n127.0.0.0/8\n")
    outcome = env.fail(5, addr="127.0.0.1")
    assert outcome.delay == 5 and outcome.count == 5
    assert not outcome.banned and not outcome.filtered
    assert env.tracker.is_banned("127.0.0.1") is None
    assert not env.ip_can_path.exists()
    assert env.hack_log.exists()  # still reported to the sysop
    assert env.kinds() == ["hack"]

    other = env.fail(2, addr=ATTACKER)  # a non-exempt address is still handled
    assert other.banned and other.filtered


def test_loopback_not_exempt_by_default(tmp_path: Path) -> None:
    env = Env(tmp_path, LoginAttemptRules(hack_threshold=0, tempban_threshold=2))
    assert env.fail(2, addr="127.0.0.1").banned


def test_stale_records_are_forgotten(tmp_path: Path) -> None:
    env = Env(tmp_path, LoginAttemptRules(hack_threshold=0, tempban_threshold=0))
    env.fail(4)
    env.clock.advance(24 * 3600)
    assert env.tracker.count(ATTACKER) == 4
    env.clock.advance(1)
    assert env.tracker.count(ATTACKER) == 0
    assert env.fail(1).count == 1


def test_record_limit_evicts_least_recent(tmp_path: Path) -> None:
    env = Env(tmp_path, LoginAttemptRules(hack_threshold=0, tempban_threshold=0), max_records=2)
    env.fail(1, addr="192.0.2.1")
    env.fail(1, addr="192.0.2.2")
    env.fail(1, addr="192.0.2.1")  # now the most recent
    env.fail(1, addr="192.0.2.3")
    assert env.tracker.count("192.0.2.2") == 0
    assert env.tracker.count("192.0.2.1") == 2
    assert env.tracker.count("192.0.2.3") == 1


def test_event_handler_error_does_not_break_failed(tmp_path: Path) -> None:
    def boom(kind: str, info: dict) -> None:
        raise RuntimeError("subscriber bug")

    tracker = LoginAttemptTracker(
        LoginAttemptRules(hack_threshold=1, tempban_threshold=1),
        ip_can=FilterList(None),
        exempt=FilterList(None),
        hack_log=tmp_path / "hack.log",
        clock=FakeClock(),
        on_event=boom,
    )
    outcome = tracker.failed(ATTACKER, "telnet", "bob")
    assert outcome.hack_logged and outcome.banned


def test_unwritable_hack_log_is_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "data").write_text("not a directory")
    tracker = LoginAttemptTracker(
        LoginAttemptRules(hack_threshold=1),
        ip_can=FilterList(None),
        exempt=FilterList(None),
        hack_log=tmp_path / "data" / "logs" / "hack.log",
        clock=FakeClock(),
    )
    with caplog.at_level(logging.ERROR, logger="bbs.loginattempts"):
        assert tracker.failed(ATTACKER, "telnet", "bob").hack_logged
    assert "cannot write" in caplog.text


def test_every_failure_is_published(tmp_path):
    h = Env(tmp_path, LoginAttemptRules(hack_threshold=0, tempban_threshold=0))
    h.fail(3, user="zaphod")
    assert len(h.failures) == 3 and h.events == []
