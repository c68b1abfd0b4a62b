"""`bbs user add|list|show|passwd|del` as a sysop runs them."""
from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

import pytest

from bbs.db import Database
from bbs.errors import BBSError, Reason
from bbs.users import USER_MIGRATIONS, UserBase
from tests.support import run_bbs


def verify(root: Path, name: str, password: str) -> bool:
    async def main() -> bool:
        db = Database(root / "data" / "user.db", USER_MIGRATIONS)
        await db.open()
        try:
            await UserBase(db).verify(name, password)
            return True
        except BBSError as exc:
            assert exc.reason is Reason.AUTH_FAILED
            return False
        finally:
            await db.close()
    return asyncio.run(main())


def user(root: Path, *args: str, input: str | None = None):
    return run_bbs("user", *args, "-d", str(root), input=input)


def test_user_lifecycle(instance: Path):
    added = user(instance, "add", "Zaphod", "--level", "50", "--email", "zaphod@example.org",
                 "--real-name", "Zaphod Beeblebrox", input="towel42\n")
    assert added.returncode == 0, added.stderr
    assert re.match(r"added user #(\d+) Zaphod \(level 50\)", added.stdout)
    assert verify(instance, "zaphod", "towel42") and not verify(instance, "Zaphod", "towel43")

    listing = user(instance, "list")
    assert listing.returncode == 0
    assert re.search(r"\d+\s+Zaphod\s+50\s+never\s+zaphod@example.org", listing.stdout)

    shown = user(instance, "show", "Zaphod Beeblebrox")        # by real name
    assert re.search(r"Alias:\s+Zaphod\n", shown.stdout) and re.search(r"Level:\s+50\n", shown.stdout)

    changed = user(instance, "passwd", "zaphod", input="heartofgold\n")
    assert changed.returncode == 0 and "password of" in changed.stdout
    assert verify(instance, "Zaphod", "heartofgold") and not verify(instance, "Zaphod", "towel42")

    deleted = user(instance, "del", "Zaphod")
    assert deleted.returncode == 0
    missing = user(instance, "show", "Zaphod")
    assert missing.returncode == 1 and missing.stderr == "bbs: no such user\n"
    assert "Zaphod" not in user(instance, "list").stdout


def test_passwords_are_stored_hashed(instance: Path):
    assert user(instance, "add", "Trillian", input="secretpassword\n").returncode == 0
    raw = (instance / "data" / "user.db").read_bytes()
    for path in (instance / "data").glob("user.db*"):
        raw += path.read_bytes()
    assert b"secretpassword" not in raw
    with sqlite3.connect(instance / "data" / "user.db") as conn:
        (stored,) = conn.execute("SELECT password_hash FROM users WHERE alias = 'Trillian'").fetchone()
    assert stored.startswith("scrypt$")


@pytest.mark.parametrize("name, message", [
    ("root", "alias is not allowed here"),            # text/name.can: exact
    ("administrator", "alias is not allowed here"),   # text/name.can: admin*
    ("1234", "alias may not be a number"),
    ("a@b", "alias may not contain '@'"),
    ("", "alias is empty"),
])
def test_bad_names_are_refused(instance: Path, name: str, message: str):
    result = user(instance, "add", name, input="password1\n")
    assert (result.returncode, result.stderr, result.stdout) == (1, f"bbs: {message}\n", "")


def test_name_can_can_be_overridden_for_special_accounts(instance: Path):
    refused = user(instance, "add", "Guest", input="guest\n")
    assert refused.returncode == 1 and "added user" not in refused.stdout
    forced = user(instance, "add", "Guest", "--force", input="guestpass\n")
    assert forced.returncode == 0 and "added user" in forced.stdout


def test_duplicate_alias_and_short_password(instance: Path):
    assert user(instance, "add", "Marvin", input="paranoid\n").returncode == 0
    dup = user(instance, "add", "MARVIN", input="android\n")
    assert (dup.returncode, dup.stderr) == (1, "bbs: alias 'MARVIN' is taken by user #1\n")
    short = user(instance, "add", "Arthur", input="ab\n")
    assert (short.returncode, short.stderr) == (1, "bbs: password shorter than 4 characters\n")
