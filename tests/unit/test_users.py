"""Unit tests for bbs.users against a real data/user.db in tmp_path.

The database is opened with the synchronous twin in a fixture (it is not tied
to any event loop); each test drives the async API with ``asyncio.run``.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import sqlite3
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bbs.db import Database
from bbs.errors import BBSError, Reason
from bbs.users import (
    LEN_ALIAS,
    USER_MIGRATIONS,
    User,
    UserBase,
    UserBaseSync,
    check_password,
    hash_password,
)

T = TypeVar("T")
SECRET = "Sw0rdf1sh-Qx7"  # distinctive, so a search of the file cannot hit by chance


def run(awaitable: Awaitable[T]) -> T:
    async def wrapper() -> T:
        return await awaitable

    return asyncio.run(wrapper())


def user_db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "user.db"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(user_db_path(tmp_path), USER_MIGRATIONS, name="user")
    database.open_sync()
    yield database
    database.close_sync()


@pytest.fixture
def users(db: Database) -> UserBase:
    return UserBase(db)


def stored_secrets(path: Path, number: int) -> tuple[str, str | None]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT password_hash, cleartext FROM users WHERE number = ?", (number,)
        ).fetchone()
    finally:
        conn.close()


def expect(reason: Reason, awaitable: Awaitable[Any]) -> BBSError:
    with pytest.raises(BBSError) as info:
        run(awaitable)
    assert info.value.reason is reason, info.value
    return info.value


# ---------------------------------------------------------------- add / get / find


def test_schema_is_version_1_in_wal_mode(db: Database) -> None:
    assert db.version == 1
    assert db.run_sync(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0]) == "wal"


def test_add_and_get(users: UserBase) -> None:
    first = run(users.add("Digital Man", SECRET, real_name="Rob Swindell",
                          email="rob@example.com", location="Irvine, CA",
                          level=90, flags="ba"))
    second = run(users.add("Guest", "guest"))
    assert (first.number, second.number) == (1, 2)
    assert first.alias == "Digital Man"
    assert first.flags == "AB"
    assert first.is_sysop and not second.is_sysop
    assert second.level == 10
    assert first.first_on is None and first.logons == 0 and first.created > 0
    assert not hasattr(first, "password_hash")
    assert run(users.get(1)) == first
    assert run(users.count()) == 2
    assert [u.alias for u in run(users.list())] == ["Digital Man", "Guest"]
    expect(Reason.NOT_FOUND, users.get(3))
    expect(Reason.NOT_FOUND, users.get(0))


def test_find_by_alias_number_and_real_name(users: UserBase) -> None:
    run(users.add("Digital Man", SECRET, real_name="Rob Swindell"))
    run(users.add("Deuce", SECRET, real_name="Jörg Müller"))
    assert run(users.find("digital MAN")).number == 1
    assert run(users.find("2")).alias == "Deuce"
    assert run(users.find("#2")).alias == "Deuce"
    assert run(users.find("  #1 ")).alias == "Digital Man"
    assert run(users.find("ROB SWINDELL")).number == 1
    assert run(users.find("JÖRG MÜLLER")).number == 2  # non-ASCII case folding
    for missing in ("Nobody", "3", "#0", "", "#", "99999999999999999999999"):
        expect(Reason.NOT_FOUND, users.find(missing))


def test_find_by_real_name_only_when_unique(users: UserBase) -> None:
    run(users.add("One", SECRET, real_name="John Smith"))
    run(users.add("Two", SECRET, real_name="john smith"))
    expect(Reason.NOT_FOUND, users.find("John Smith"))
    run(users.delete(2))
    assert run(users.find("JOHN SMITH")).alias == "One"


def test_duplicate_alias_refused_case_insensitively(users: UserBase) -> None:
    run(users.add("Digital Man", SECRET))
    err = expect(Reason.EXISTS, users.add("DIGITAL man", "other1"))
    assert "#1" in err.detail
    assert run(users.count()) == 1


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "alias",
    [
        "",
        "x" * (LEN_ALIAS + 1),
        " Bob",
        "Bob ",
        "Bo\x07b",
        "Bob\tSmith",
        "bob@example.com",
        "a:b",
        "Bob<b>",
        "Who?",
        "12345",
        "#5",
        "9Lives",
        "_under",
        "Zoë",
    ],
)
def test_unfit_aliases_are_refused(users: UserBase, alias: str) -> None:
    with pytest.raises(BBSError) as info:
        users.validate_alias(alias)
    assert info.value.reason is Reason.BAD_NAME
    expect(Reason.BAD_NAME, users.add(alias, SECRET))


@pytest.mark.parametrize("alias", ["Digital Man", "x" * LEN_ALIAS, "R2-D2", "Mr. T", "A"])
def test_fit_aliases_are_accepted(users: UserBase, alias: str) -> None:
    users.validate_alias(alias)
    assert run(users.add(alias, SECRET)).alias == alias


def test_name_filter_refuses_matching_aliases(db: Database) -> None:
    seen: list[str] = []

    def name_can(name: str) -> object | None:
        seen.append(name)
        return "SYSOP" if name.upper() in {"SYSOP", "ALL"} else None

    filtered = UserBase(db, name_filter=name_can)
    expect(Reason.BAD_NAME, filtered.add("Sysop", SECRET))
    assert run(filtered.add("Alice", SECRET)).number == 1
    expect(Reason.BAD_NAME, filtered.update(1, alias="all"))
    assert seen == ["Sysop", "Alice", "all"]
    # Without a filter (the CLI creating the sysop account) the name is fine.
    assert run(UserBase(db).add("Sysop", SECRET)).alias == "Sysop"


def test_bad_passwords_are_refused(db: Database) -> None:
    users = UserBase(db, min_password=6)
    for password in ("", "abc", "abcde", "abc\r\ndef", "x" * 200):
        expect(Reason.BAD_PASSWORD, users.add("Alice", password))
    assert run(users.count()) == 0
    assert run(users.add("Alice", "abcdef")).number == 1
    expect(Reason.BAD_PASSWORD, users.set_password(1, "short"))


def test_bad_field_values_are_refused(users: UserBase) -> None:
    expect(Reason.BAD_VALUE, users.add("Alice", SECRET, level=100))
    expect(Reason.BAD_VALUE, users.add("Alice", SECRET, flags="A1"))
    expect(Reason.BAD_VALUE, users.add("Alice", SECRET, real_name="x" * 26))
    expect(Reason.BAD_VALUE, users.add("Alice", SECRET, location="Here\x1b[2J"))
    assert run(users.count()) == 0


# ---------------------------------------------------------------- passwords


def test_verify_right_wrong_and_unknown(users: UserBase) -> None:
    run(users.add("Alice", SECRET))
    assert run(users.verify("alice", SECRET)).number == 1
    assert run(users.verify("#1", SECRET)).alias == "Alice"
    wrong = expect(Reason.AUTH_FAILED, users.verify("Alice", SECRET + "x"))
    unknown = expect(Reason.AUTH_FAILED, users.verify("Mallory", SECRET))
    assert str(wrong) == str(unknown)  # nothing tells the two apart
    expect(Reason.AUTH_FAILED, users.verify("Alice", ""))
    expect(Reason.AUTH_FAILED, users.verify("Alice", SECRET.lower()))


def test_verify_unknown_user_does_the_hash_work(
    users: UserBase, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(users.add("Alice", SECRET))
    calls: list[int] = []
    real_scrypt = hashlib.scrypt

    def counting_scrypt(*args: Any, **kwargs: Any) -> bytes:
        calls.append(kwargs["n"])
        return real_scrypt(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counting_scrypt)
    expect(Reason.AUTH_FAILED, users.verify("Alice", "wrong-password"))
    known = list(calls)
    calls.clear()
    expect(Reason.AUTH_FAILED, users.verify("Mallory", "wrong-password"))
    assert calls == known == [2**14]


def test_password_is_stored_hashed_not_plain(users: UserBase, tmp_path: Path) -> None:
    run(users.add("Alice", SECRET))
    run(users.set_password(1, SECRET + "2"))
    path = user_db_path(tmp_path)
    password_hash, cleartext = stored_secrets(path, 1)
    assert cleartext is None
    scheme, n, r, p, salt, key = password_hash.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    assert len(base64.b64decode(salt)) == 16 and len(base64.b64decode(key)) == 32
    for file in path.parent.iterdir():  # user.db, -wal, -shm
        assert SECRET.encode() not in file.read_bytes(), file.name
    expect(Reason.AUTH_FAILED, users.verify("Alice", SECRET))
    assert run(users.verify("Alice", SECRET + "2")).number == 1


def test_hashes_are_salted(users: UserBase, tmp_path: Path) -> None:
    run(users.add("Alice", SECRET))
    run(users.add("Bob", SECRET))
    path = user_db_path(tmp_path)
    assert stored_secrets(path, 1)[0] != stored_secrets(path, 2)[0]


def test_cleartext_kept_only_when_enabled(db: Database, tmp_path: Path) -> None:
    path = user_db_path(tmp_path)
    plain = UserBase(db)
    keeping = UserBase(db, keep_cleartext=True)
    run(plain.add("Alice", SECRET))
    run(keeping.add("Bob", SECRET))
    assert stored_secrets(path, 1)[1] is None
    assert run(keeping.cleartext(1)) is None
    assert run(keeping.cleartext(2)) == SECRET
    assert run(plain.cleartext(2)) is None  # never handed out when disabled

    # Turned on later: filled in at the next successful logon.
    run(keeping.verify("Alice", SECRET))
    assert run(keeping.cleartext(1)) == SECRET
    run(keeping.set_password(2, "newpass1"))
    assert run(keeping.cleartext(2)) == "newpass1"

    # Turned off: set_password and verify clear it, forget_cleartext sweeps.
    run(plain.set_password(2, "newpass2"))
    assert stored_secrets(path, 2)[1] is None
    run(plain.verify("Alice", SECRET))
    assert stored_secrets(path, 1)[1] is None
    run(keeping.set_password(1, "again123"))
    assert run(plain.forget_cleartext()) == 1
    assert stored_secrets(path, 1)[1] is None
    expect(Reason.NOT_FOUND, keeping.cleartext(9))


def test_verify_upgrades_old_scrypt_parameters(users: UserBase, db: Database,
                                               tmp_path: Path) -> None:
    run(users.add("Alice", "placeholder"))
    salt = b"0123456789abcdef"
    key = hashlib.scrypt(SECRET.encode(), salt=salt, n=2**10, r=8, p=1, dklen=32)
    old = f"scrypt$1024$8$1${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"
    db.run_sync(lambda c: c.execute("UPDATE users SET password_hash = ? WHERE number = 1", (old,)))
    assert run(users.verify("Alice", SECRET)).number == 1
    upgraded = stored_secrets(user_db_path(tmp_path), 1)[0]
    assert upgraded.startswith("scrypt$16384$8$1$")
    assert run(users.verify("Alice", SECRET)).number == 1


def test_check_password_rejects_unreadable_hashes() -> None:
    good = hash_password(SECRET)
    assert check_password(SECRET, good) == (True, False)
    assert check_password("other", good) == (False, False)
    for stored in ("", "plain", "md5$x", "scrypt$16384$8$1$!!$!!",
                   "scrypt$3$8$1$AAAA$AAAA", "scrypt$" + "$".join(["9" * 30] * 3) + "$AA$AA"):
        assert check_password(SECRET, stored) == (False, False)


# ---------------------------------------------------------------- delete / update / logon


def test_delete_hides_user_and_frees_alias(users: UserBase) -> None:
    run(users.add("Alice", SECRET))
    run(users.delete(1))
    for key in ("Alice", "1", "#1"):
        expect(Reason.NOT_FOUND, users.find(key))
    expect(Reason.AUTH_FAILED, users.verify("Alice", SECRET))
    expect(Reason.NOT_FOUND, users.record_logon(1))
    assert run(users.get(1)).deleted  # the slot is kept
    assert run(users.count()) == 0
    assert run(users.count(include_deleted=True)) == 1
    assert run(users.list()) == []
    run(users.delete(1))  # again: nothing to do

    again = run(users.add("ALICE", "another1"))
    assert again.number == 2
    assert run(users.find("alice")).number == 2
    assert [u.number for u in run(users.list(include_deleted=True))] == [1, 2]
    expect(Reason.NOT_FOUND, users.delete(3))


def test_update_validates_fields(users: UserBase) -> None:
    run(users.add("Alice", SECRET))
    run(users.add("Bob", SECRET))
    user = run(users.update(1, real_name=" Alice Liddell ", level=50, flags="zA",
                            exempt="t", terminal={"charset": "cp437", "rows": 25},
                            posts=3))
    assert (user.real_name, user.level, user.flags, user.exempt) == ("Alice Liddell", 50, "AZ", "T")
    assert user.terminal == {"charset": "cp437", "rows": 25}
    assert user.posts == 3
    assert run(users.get(1)) == user
    assert run(users.update(1, alias="ALICE")).alias == "ALICE"  # own alias, new case
    expect(Reason.EXISTS, users.update(1, alias="bob"))
    expect(Reason.BAD_VALUE, users.update(1, password_hash="x"))
    expect(Reason.BAD_VALUE, users.update(1, number=5))
    expect(Reason.BAD_VALUE, users.update(1, deleted=1))
    expect(Reason.BAD_VALUE, users.update(1, level=-1))
    expect(Reason.BAD_VALUE, users.update(1, level=True))
    expect(Reason.BAD_VALUE, users.update(1, settings={"x": object()}))
    expect(Reason.BAD_NAME, users.update(1, alias="1234"))
    expect(Reason.NOT_FOUND, users.update(7, level=20))
    assert run(users.get(1)).level == 50


def test_record_logon(users: UserBase) -> None:
    run(users.add("Alice", SECRET))
    first = run(users.record_logon(1, when=1000.0))
    assert (first.logons, first.first_on, first.last_on) == (1, 1000.0, 1000.0)
    second = run(users.record_logon(1, when=2000.0))
    assert (second.logons, second.first_on, second.last_on) == (2, 1000.0, 2000.0)
    now = run(users.record_logon(1))
    assert now.logons == 3 and now.last_on is not None and now.last_on > 2000.0
    expect(Reason.NOT_FOUND, users.record_logon(2))


def test_add_stats(users: UserBase) -> None:
    run(users.add("Alice", SECRET))
    user = run(users.add_stats(1, posts=2, uploads=1, upload_bytes=4096))
    assert (user.posts, user.uploads, user.upload_bytes) == (2, 1, 4096)
    assert run(users.add_stats(1, posts=-5)).posts == 0
    expect(Reason.BAD_VALUE, users.add_stats(1, logons=1))
    expect(Reason.BAD_VALUE, users.add_stats(1, posts=1.5))
    expect(Reason.NOT_FOUND, users.add_stats(2, posts=1))


def test_record_activity_stores_many_logons_and_counters_at_once(users: UserBase) -> None:
    run(users.add("Alice", SECRET))
    run(users.add("Bob", SECRET))
    missing = run(users.record_activity(
        logons=[(1, 1000.0), (2, 1500.0), (1, 2000.0), (9, 2000.0)],
        stats=[(1, {"downloads": 1, "download_bytes": 100}), (2, {"uploads": 1}), (1, {"downloads": 1}),
               (7, {"posts": 1})]))
    assert missing == [9, 7]                      # skipped, the rest stored
    alice, bob = run(users.get(1)), run(users.get(2))
    assert (alice.logons, alice.first_on, alice.last_on, alice.downloads, alice.download_bytes) == \
        (2, 1000.0, 2000.0, 2, 100)
    assert (bob.logons, bob.uploads) == (1, 1)
    expect(Reason.BAD_VALUE, users.record_activity(stats=[(1, {"posts": 1}), (2, {"logons": 1})]))
    assert run(users.get(1)).posts == 0           # nothing of a refused batch is stored


# ---------------------------------------------------------------- persistence / sync


def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    path = user_db_path(tmp_path)

    async def create() -> User:
        db = Database(path, USER_MIGRATIONS, name="user")
        await db.open()
        try:
            users = UserBase(db)
            await users.add("Alice", SECRET, real_name="Alice Liddell", flags="A")
            return await users.record_logon(1, when=42.0)
        finally:
            await db.close()

    async def reopen() -> User:
        db = Database(path, USER_MIGRATIONS, name="user")
        await db.open()
        try:
            assert db.version == 1
            return await UserBase(db).verify("Alice Liddell", SECRET)
        finally:
            await db.close()

    before = run(create())
    after = run(reopen())
    assert after == before
    assert (after.logons, after.last_on, after.flags) == (1, 42.0, "A")


def test_sync_wrapper_for_the_cli(db: Database) -> None:
    cli = UserBaseSync(UserBase(db, keep_cleartext=True))
    user = cli.add("Sysop", SECRET, level=99)
    assert user.is_sysop
    assert cli.find("sysop") == user
    assert cli.verify("1", SECRET).number == 1
    cli.set_password(1, "changed1")
    assert cli.update(1, location="Basement").location == "Basement"
    assert cli.count() == 1 and [u.alias for u in cli.list()] == ["Sysop"]
    cli.delete(1)
    assert cli.list(include_deleted=True)[0].deleted
    with pytest.raises(BBSError):
        cli.get(2)

    async def inside_a_loop() -> None:
        with pytest.raises(RuntimeError):
            cli.count()

    asyncio.run(inside_a_loop())
