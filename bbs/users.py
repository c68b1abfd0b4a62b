"""The user base: accounts, passwords and logon statistics.

Users live in ``data/user.db`` (a :class:`bbs.db.Database` opened with
:data:`USER_MIGRATIONS`).  As in Synchronet, a user is known by a *number*
(the slot, never reused) and an *alias* (the log-on name, also the local part
of the user's Internet address and the FTP/POP3 user name).  Deleting a user
marks the slot deleted; the alias becomes free for a new user.

Passwords are stored as scrypt hashes (memory-hard, RFC 7914) in the format
``scrypt$n$r$p$salt_b64$hash_b64``; hashing runs in a worker thread, never on
the event loop.  The plain password is kept in ``cleartext`` only when the
caller enables it for CRAM-MD5 (RFC 2195) / APOP (RFC 1939 section 7), which
need the shared secret itself.

Every failure is a :class:`bbs.errors.BBSError`: ``NOT_FOUND``, ``EXISTS``,
``BAD_NAME``, ``BAD_PASSWORD``, ``BAD_VALUE``, ``AUTH_FAILED`` or ``STORAGE``.
"""
from __future__ import annotations

import asyncio
import base64
import builtins
import concurrent.futures
import dataclasses
import hashlib
import hmac
import json
import logging
import os
import re
import sqlite3
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bbs.db import Database, Migration
from bbs.errors import BBSError, Reason

__all__ = [
    "DEFAULT_LEVEL", "FORWARD_SETTING", "LEN_ALIAS", "SYSOP_LEVEL", "USER_MIGRATIONS", "User",
    "UserBase", "UserBaseSync", "check_password", "hash_password",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

# ---------------------------------------------------------------- limits
# Field lengths mirror Synchronet's sbbsdefs.h so records round-trip with
# Synchronet tools and fit its screens.
LEN_ALIAS = 25  #: sbbsdefs.h LEN_ALIAS
LEN_NAME = 25  #: sbbsdefs.h LEN_NAME (real name)
LEN_NETMAIL = 60  #: sbbsdefs.h LEN_NETMAIL (e-mail / forwarding address)
LEN_LOCATION = 30  #: sbbsdefs.h LEN_LOCATION
LEN_PHONE = 12  #: sbbsdefs.h LEN_PHONE
LEN_BIRTH = 10  #: sbbsdefs.h LEN_BIRTH (8 = MM/DD/YY in old versions; 10 fits YYYY-MM-DD)

MAX_LEVEL = 99  #: Synchronet security levels are 0..99
SYSOP_LEVEL = 90  #: sbbsdefs.h SYSOP_LEVEL: level 90 and up is a sysop
DEFAULT_LEVEL = 10  #: new-user level when the caller does not give one
#: User setting (bool): forward all of the user's mail to their e-mail address
#: (read by the Mail Server and the nodes' mail sender, set in the user editor).
FORWARD_SETTING = "forward_email"
DEFAULT_MIN_PASSWORD = 4  #: SCFG "Minimum Password Length" default
#: Longest password accepted; ours (Synchronet's LEN_PASS is 40).  Bounds the
#: work a caller can make scrypt's PBKDF2 pass do.
MAX_PASSWORD = 128

#: Characters an alias may not contain: RFC 5322 section 3.2.3 "specials" that
#: would need quoting in user@host, path separators, and the ``*``/``?``
#: wildcards of .can filters and FTP globs.
ALIAS_FORBIDDEN = frozenset('@:;,<>"\\/[]()*?|')

# scrypt parameters (RFC 7914 section 2; n=2**14, r=8, p=1 is the
# interactive-logon recommendation).  Stored with each hash, so they can be
# raised later; check_password reports hashes made with older ones.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
KEY_BYTES = 32
#: scrypt needs 128 * r * n bytes (16 MiB here); OpenSSL's default cap is 32 MiB.
SCRYPT_MAXMEM = 64 * 1024 * 1024
_SCRYPT_LIMITS = {"n": (2, 2**20), "r": (1, 32), "p": (1, 16)}

_FLAG_SET = re.compile(r"[A-Z]*")
_DIGITS = re.compile(r"[0-9]+")
_SQLITE_MAX_INT = 2**63 - 1

# ---------------------------------------------------------------- schema

_SCHEMA_1 = """
CREATE TABLE users (
    number          INTEGER PRIMARY KEY,
    alias           TEXT    NOT NULL COLLATE NOCASE,
    real_name       TEXT    NOT NULL DEFAULT '',
    email           TEXT    NOT NULL DEFAULT '',
    location        TEXT    NOT NULL DEFAULT '',
    phone           TEXT    NOT NULL DEFAULT '',
    birth           TEXT    NOT NULL DEFAULT '',
    level           INTEGER NOT NULL DEFAULT 10 CHECK (level BETWEEN 0 AND 99),
    flags           TEXT    NOT NULL DEFAULT '',
    exempt          TEXT    NOT NULL DEFAULT '',
    "restrict"      TEXT    NOT NULL DEFAULT '',
    password_hash   TEXT    NOT NULL DEFAULT '',
    cleartext       TEXT,
    created         REAL    NOT NULL,
    first_on        REAL,
    last_on         REAL,
    logons          INTEGER NOT NULL DEFAULT 0,
    posts           INTEGER NOT NULL DEFAULT 0,
    emails          INTEGER NOT NULL DEFAULT 0,
    uploads         INTEGER NOT NULL DEFAULT 0,
    upload_bytes    INTEGER NOT NULL DEFAULT 0,
    downloads       INTEGER NOT NULL DEFAULT 0,
    download_bytes  INTEGER NOT NULL DEFAULT 0,
    time_on         INTEGER NOT NULL DEFAULT 0,
    deleted         INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
    terminal        TEXT    NOT NULL DEFAULT '{}',
    settings        TEXT    NOT NULL DEFAULT '{}'
);
-- Only live users need unique aliases; a deleted slot keeps its old alias.
CREATE UNIQUE INDEX users_alias_live ON users (alias COLLATE NOCASE) WHERE deleted = 0;
"""

#: The users database schema history; pass to :class:`bbs.db.Database`.
USER_MIGRATIONS: tuple[Migration, ...] = (_SCHEMA_1,)


# ---------------------------------------------------------------- model


@dataclass(frozen=True)
class User:
    """One user record as read from the database (no password material).

    ``first_on``/``last_on`` are Unix times, ``None`` until the first logon.
    ``flags``/``exempt``/``restrict`` are Synchronet flag sets: upper-case
    letters, sorted, each at most once.  ``terminal`` and ``settings`` are
    free-form JSON objects.
    """

    number: int
    alias: str
    real_name: str = ""
    email: str = ""
    location: str = ""
    phone: str = ""
    birth: str = ""
    level: int = DEFAULT_LEVEL
    flags: str = ""
    exempt: str = ""
    restrict: str = ""
    created: float = 0.0
    first_on: float | None = None
    last_on: float | None = None
    logons: int = 0
    posts: int = 0
    emails: int = 0
    uploads: int = 0
    upload_bytes: int = 0
    downloads: int = 0
    download_bytes: int = 0
    time_on: int = 0
    deleted: bool = False
    terminal: dict[str, Any] = field(default_factory=dict, hash=False)
    settings: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def is_sysop(self) -> bool:
        """True for security level :data:`SYSOP_LEVEL` (90) and up."""
        return self.level >= SYSOP_LEVEL


_COLUMNS = tuple(f.name for f in dataclasses.fields(User))
_SELECT = "SELECT " + ", ".join(f'"{c}"' for c in _COLUMNS) + " FROM users"
_JSON_FIELDS = frozenset({"terminal", "settings"})
_TEXT_LIMITS = {
    "real_name": LEN_NAME,
    "email": LEN_NETMAIL,
    "location": LEN_LOCATION,
    "phone": LEN_PHONE,
    "birth": LEN_BIRTH,
}
_FLAG_FIELDS = frozenset({"flags", "exempt", "restrict"})
_COUNTERS = frozenset(
    {"logons", "posts", "emails", "uploads", "upload_bytes", "downloads",
     "download_bytes", "time_on"}
)
_STAT_COUNTERS = _COUNTERS - {"logons"}
#: Fields :meth:`UserBase.update` accepts.
UPDATABLE = frozenset({"alias", "level"} | _TEXT_LIMITS.keys() | _FLAG_FIELDS
                      | _JSON_FIELDS | _COUNTERS)


def _user_from_row(row: tuple[Any, ...]) -> User:
    values = dict(zip(_COLUMNS, row))
    values["deleted"] = bool(values["deleted"])
    for name in _JSON_FIELDS:
        try:
            decoded = json.loads(values[name] or "{}")
        except ValueError:
            decoded = None
        if not isinstance(decoded, dict):
            log.warning("user #%d: unreadable %s JSON, using {}", values["number"], name)
            decoded = {}
        values[name] = decoded
    return User(**values)


# ---------------------------------------------------------------- passwords


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"),
        salt=salt, n=n, r=r, p=p, maxmem=SCRYPT_MAXMEM, dklen=dklen,
    )


#: Password hashing runs in its own pool, not asyncio's default one: scrypt is
#: CPU-bound (threads beyond the cores only queue), and a burst of logons must
#: not hold up the display-file reads other sessions wait for in the default pool.
_hash_pool: concurrent.futures.ThreadPoolExecutor | None = None


async def _in_hash_pool(fn: Callable[..., T], *args: Any) -> T:
    global _hash_pool
    if _hash_pool is None:
        _hash_pool = concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2,
                                                           thread_name_prefix="password")
    return await asyncio.get_running_loop().run_in_executor(_hash_pool, fn, *args)


def hash_password(password: str) -> str:
    """Hash ``password`` with scrypt and a fresh random salt.

    Blocking and deliberately slow (tens of ms, 16 MiB): call it in a worker
    thread.  Returns ``scrypt$n$r$p$salt_b64$hash_b64``.
    """
    salt = os.urandom(SALT_BYTES)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_BYTES)
    b64 = base64.b64encode
    return (f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}$"
            f"{b64(salt).decode('ascii')}${b64(key).decode('ascii')}")


def _burn(password: str) -> None:
    """Do the work of one verification with nothing to compare against.

    Used for unknown users and unreadable hashes so a failed log-on takes as
    long whether or not the account exists.
    """
    _scrypt(password, os.urandom(SALT_BYTES), SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_BYTES)


def check_password(password: str, stored: str) -> tuple[bool, bool]:
    """Compare ``password`` with a stored scrypt hash in constant time.

    Blocking and slow like :func:`hash_password`: call it in a worker thread.
    Returns ``(matches, needs_rehash)``; ``needs_rehash`` is true when the
    hash was made with other parameters than the current ones.  An empty or
    unreadable ``stored`` never matches (the work is still done).
    """
    try:
        scheme, n_text, r_text, p_text, salt_b64, key_b64 = stored.split("$")
        if scheme != "scrypt":
            raise ValueError(scheme)
        params = {"n": int(n_text), "r": int(r_text), "p": int(p_text)}
        for name, (low, high) in _SCRYPT_LIMITS.items():
            if not low <= params[name] <= high:
                raise ValueError(f"{name}={params[name]}")
        if params["n"] & (params["n"] - 1):
            raise ValueError("n not a power of 2")
        salt = base64.b64decode(salt_b64, validate=True)
        expected = base64.b64decode(key_b64, validate=True)
        if not expected:
            raise ValueError("empty key")
    except ValueError:
        if stored:
            log.warning("unreadable password hash (scheme %r)", stored.split("$", 1)[0])
        _burn(password)
        return False, False
    key = _scrypt(password, salt, params["n"], params["r"], params["p"], len(expected))
    matches = hmac.compare_digest(key, expected)
    current = (params["n"], params["r"], params["p"], len(salt), len(expected)) == (
        SCRYPT_N, SCRYPT_R, SCRYPT_P, SALT_BYTES, KEY_BYTES)
    return matches, matches and not current


# ---------------------------------------------------------------- validation


def _has_control(text: str) -> bool:
    return any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in text)


def _check_text(name: str, value: object) -> str:
    """Validate a free-text field; returns it with outer white-space stripped."""
    if not isinstance(value, str):
        raise BBSError(Reason.BAD_VALUE, f"{name} must be text")
    value = value.strip()
    if len(value) > _TEXT_LIMITS[name]:
        raise BBSError(Reason.BAD_VALUE, f"{name} longer than {_TEXT_LIMITS[name]}")
    if _has_control(value):
        raise BBSError(Reason.BAD_VALUE, f"{name} contains control characters")
    return value


def _check_level(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_LEVEL:
        raise BBSError(Reason.BAD_VALUE, f"level must be an integer 0..{MAX_LEVEL}")
    return value


def _check_flags(name: str, value: object) -> str:
    """Normalise a Synchronet flag set: letters A-Z, upper-cased, sorted, unique."""
    if not isinstance(value, str):
        raise BBSError(Reason.BAD_VALUE, f"{name} must be text")
    letters = value.replace(" ", "").upper()
    if not _FLAG_SET.fullmatch(letters):
        raise BBSError(Reason.BAD_VALUE, f"{name} may hold only the letters A-Z")
    return "".join(sorted(set(letters)))


def _check_counter(name: str, value: object) -> int:
    if (isinstance(value, bool) or not isinstance(value, int)
            or not 0 <= value <= _SQLITE_MAX_INT):
        raise BBSError(Reason.BAD_VALUE, f"{name} must be a non-negative integer")
    return value


def _check_json(name: str, value: object) -> str:
    if not isinstance(value, Mapping):
        raise BBSError(Reason.BAD_VALUE, f"{name} must be a mapping")
    try:
        return json.dumps(dict(value), sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise BBSError(Reason.BAD_VALUE, f"{name} is not JSON-serialisable: {exc}") from exc


def _check_deltas(deltas: dict[str, int]) -> dict[str, int]:
    """``deltas`` when every name is a statistics counter and every value an integer."""
    for name, value in deltas.items():
        if name not in _STAT_COUNTERS:
            raise BBSError(Reason.BAD_VALUE, f"{name!r} is not a statistics counter")
        if isinstance(value, bool) or not isinstance(value, int) or abs(value) > _SQLITE_MAX_INT:
            raise BBSError(Reason.BAD_VALUE, f"{name} must be an integer")
    return deltas


def _check_number(number: object) -> int:
    """A user number usable in SQL; anything else cannot exist (NOT_FOUND)."""
    if isinstance(number, bool) or not isinstance(number, int) or not 0 < number <= _SQLITE_MAX_INT:
        raise BBSError(Reason.NOT_FOUND, f"no user #{number}")
    return number


# ---------------------------------------------------------------- queries
# Each runs in the database worker thread inside one transaction.


def _q_get(conn: sqlite3.Connection, number: int, live_only: bool = False) -> User:
    row = conn.execute(f"{_SELECT} WHERE number = ?", (number,)).fetchone()
    if row is None or (live_only and row[_COLUMNS.index("deleted")]):
        raise BBSError(Reason.NOT_FOUND, f"no user #{number}")
    return _user_from_row(row)


def _q_lookup(conn: sqlite3.Connection, key: str) -> int:
    """Resolve a number, ``#number``, alias or unique real name to a live user number."""
    key = key.strip()
    digits = key[1:] if key.startswith("#") else key
    if _DIGITS.fullmatch(digits):
        number = int(digits)
        if 0 < number <= _SQLITE_MAX_INT:
            row = conn.execute(
                "SELECT number FROM users WHERE number = ? AND deleted = 0", (number,)
            ).fetchone()
            if row:
                return int(row[0])
        raise BBSError(Reason.NOT_FOUND, f"no user #{digits}")
    if key:
        row = conn.execute(
            "SELECT number FROM users WHERE alias = ? AND deleted = 0", (key,)
        ).fetchone()
        if row:
            return int(row[0])
        # Real names may be non-ASCII, where SQLite's NOCASE does not fold case.
        folded = key.casefold()
        matches = [
            number
            for number, real_name in conn.execute(
                "SELECT number, real_name FROM users WHERE deleted = 0 AND real_name != ''"
            )
            if real_name.casefold() == folded
        ]
        if len(matches) == 1:
            return int(matches[0])
    raise BBSError(Reason.NOT_FOUND, "no such user")


def _q_credentials(conn: sqlite3.Connection, key: str) -> tuple[User, str, str | None] | None:
    try:
        number = _q_lookup(conn, key)
    except BBSError:
        return None
    password_hash, cleartext = conn.execute(
        "SELECT password_hash, cleartext FROM users WHERE number = ?", (number,)
    ).fetchone()
    return _q_get(conn, number), password_hash, cleartext


def _q_alias_taken(conn: sqlite3.Connection, alias: str, other_than: int = 0) -> None:
    row = conn.execute(
        "SELECT number FROM users WHERE alias = ? AND deleted = 0 AND number != ?",
        (alias, other_than),
    ).fetchone()
    if row:
        raise BBSError(Reason.EXISTS, f"alias {alias!r} is taken by user #{row[0]}")


def _q_insert(conn: sqlite3.Connection, values: dict[str, Any]) -> User:
    _q_alias_taken(conn, values["alias"])
    names = ", ".join(f'"{name}"' for name in values)
    marks = ", ".join("?" for _ in values)
    cursor = conn.execute(f"INSERT INTO users ({names}) VALUES ({marks})", tuple(values.values()))
    return _q_get(conn, int(cursor.lastrowid or 0))


def _q_update(conn: sqlite3.Connection, number: int, values: dict[str, Any]) -> User:
    _q_get(conn, number)  # NOT_FOUND before anything else
    if "alias" in values:
        _q_alias_taken(conn, values["alias"], other_than=number)
    if values:
        assignments = ", ".join(f'"{name}" = ?' for name in values)
        conn.execute(f"UPDATE users SET {assignments} WHERE number = ?",
                     (*values.values(), number))
    return _q_get(conn, number)


def _q_set_secret(conn: sqlite3.Connection, number: int, password_hash: str,
                  cleartext: str | None) -> None:
    cursor = conn.execute(
        "UPDATE users SET password_hash = ?, cleartext = ? WHERE number = ?",
        (password_hash, cleartext, number),
    )
    if cursor.rowcount == 0:
        raise BBSError(Reason.NOT_FOUND, f"no user #{number}")


def _q_cleartext(conn: sqlite3.Connection, number: int) -> str | None:
    row = conn.execute("SELECT cleartext FROM users WHERE number = ?", (number,)).fetchone()
    if row is None:
        raise BBSError(Reason.NOT_FOUND, f"no user #{number}")
    return row[0]


def _q_delete(conn: sqlite3.Connection, number: int) -> None:
    # The slot and its statistics stay (Synchronet keeps deleted records);
    # the CRAM-MD5/APOP secret has no reason to.
    cursor = conn.execute(
        "UPDATE users SET deleted = 1, cleartext = NULL WHERE number = ?", (number,)
    )
    if cursor.rowcount == 0:
        raise BBSError(Reason.NOT_FOUND, f"no user #{number}")


def _logon(conn: sqlite3.Connection, number: int, when: float) -> bool:
    cursor = conn.execute(
        "UPDATE users SET logons = logons + 1, last_on = ?, first_on = COALESCE(first_on, ?)"
        " WHERE number = ? AND deleted = 0",
        (when, when, number),
    )
    return cursor.rowcount > 0


def _add(conn: sqlite3.Connection, number: int, deltas: dict[str, int]) -> bool:
    if not deltas:
        return conn.execute("SELECT 1 FROM users WHERE number = ?", (number,)).fetchone() is not None
    assignments = ", ".join(f'"{name}" = MAX(0, "{name}" + ?)' for name in deltas)
    cursor = conn.execute(f"UPDATE users SET {assignments} WHERE number = ?", (*deltas.values(), number))
    return cursor.rowcount > 0


def _q_logon(conn: sqlite3.Connection, number: int, when: float) -> User:
    if not _logon(conn, number, when):
        raise BBSError(Reason.NOT_FOUND, f"no user #{number}")
    return _q_get(conn, number)


def _q_add_stats(conn: sqlite3.Connection, number: int, deltas: dict[str, int]) -> User:
    if not _add(conn, number, deltas):
        raise BBSError(Reason.NOT_FOUND, f"no user #{number}")
    return _q_get(conn, number)


def _q_activity(conn: sqlite3.Connection, logons: list[tuple[int, float]],
                stats: list[tuple[int, dict[str, int]]]) -> list[int]:
    missing = [number for number, when in logons if not _logon(conn, number, when)]
    return missing + [number for number, deltas in stats if not _add(conn, number, deltas)]


def _q_list(conn: sqlite3.Connection, include_deleted: bool) -> list[User]:
    where = "" if include_deleted else " WHERE deleted = 0"
    return [_user_from_row(row) for row in conn.execute(f"{_SELECT}{where} ORDER BY number")]


def _q_count(conn: sqlite3.Connection, include_deleted: bool) -> int:
    where = "" if include_deleted else " WHERE deleted = 0"
    return int(conn.execute(f"SELECT COUNT(*) FROM users{where}").fetchone()[0])


def _q_forget_cleartext(conn: sqlite3.Connection) -> int:
    return conn.execute("UPDATE users SET cleartext = NULL WHERE cleartext IS NOT NULL").rowcount


# ---------------------------------------------------------------- service


class UserBase:
    """The user base service, shared by every protocol through the app object.

    ``db`` must be opened with :data:`USER_MIGRATIONS` before use.
    ``name_filter(name)`` returns something truthy when a name is not allowed
    (the app passes ``FilterList.match`` of ``text/name.can``); a CLI that
    creates the first sysop account may pass none.  ``keep_cleartext`` keeps
    the plain password for CRAM-MD5/APOP; ``min_password`` is the shortest
    password accepted.
    """

    def __init__(
        self,
        db: Database,
        *,
        name_filter: Callable[[str], object | None] | None = None,
        keep_cleartext: bool = False,
        min_password: int = DEFAULT_MIN_PASSWORD,
    ) -> None:
        self.db = db
        self.name_filter = name_filter
        self.keep_cleartext = keep_cleartext
        self.min_password = max(1, min_password)

    # ------------------------------------------------------------ validation

    def validate_alias(self, alias: str) -> None:
        """Check that ``alias`` may be a user's log-on name (Synchronet ``check_name``).

        Called by :meth:`add` and :meth:`update`, and by new-user screens to
        re-prompt early.  An alias must be 1..25 printable ASCII characters
        (it is the local part of the user's mail address and SQLite folds
        case only for ASCII), start with a letter (so it never looks like a
        user number), have no outer spaces, none of :data:`ALIAS_FORBIDDEN`,
        and not match ``name_filter``.

        Raises ``BBSError(BAD_NAME)`` saying what is wrong.
        """
        if not isinstance(alias, str):
            raise BBSError(Reason.BAD_NAME, "alias must be text")
        if not alias:
            raise BBSError(Reason.BAD_NAME, "alias is empty")
        if len(alias) > LEN_ALIAS:
            raise BBSError(Reason.BAD_NAME, f"alias longer than {LEN_ALIAS} characters")
        if alias != alias.strip():
            raise BBSError(Reason.BAD_NAME, "alias begins or ends with a space")
        if any(not " " <= c <= "~" for c in alias):
            raise BBSError(Reason.BAD_NAME, "alias may hold only printable ASCII characters")
        if _DIGITS.fullmatch(alias.lstrip("#")):
            raise BBSError(Reason.BAD_NAME, "alias may not be a number")
        if not alias[0].isalpha():
            raise BBSError(Reason.BAD_NAME, "alias must begin with a letter")
        bad = sorted(set(alias) & ALIAS_FORBIDDEN)
        if bad:
            raise BBSError(Reason.BAD_NAME, f"alias may not contain {''.join(bad)!r}")
        if self.name_filter is not None and self.name_filter(alias):
            raise BBSError(Reason.BAD_NAME, "alias is not allowed here")

    def validate_password(self, password: str) -> None:
        """Check a new password; called by :meth:`add` and :meth:`set_password`.

        Raises ``BBSError(BAD_PASSWORD)`` when it is empty, shorter than
        ``min_password``, longer than :data:`MAX_PASSWORD` or holds control
        characters (which line protocols cannot carry).
        """
        if not isinstance(password, str) or not password:
            raise BBSError(Reason.BAD_PASSWORD, "password is empty")
        if len(password) < self.min_password:
            raise BBSError(Reason.BAD_PASSWORD,
                           f"password shorter than {self.min_password} characters")
        if len(password) > MAX_PASSWORD:
            raise BBSError(Reason.BAD_PASSWORD, f"password longer than {MAX_PASSWORD} characters")
        if _has_control(password):
            raise BBSError(Reason.BAD_PASSWORD, "password contains control characters")

    def _validate_fields(self, fields: Mapping[str, object]) -> dict[str, Any]:
        """Validate and normalise updatable fields into column values."""
        values: dict[str, Any] = {}
        for name, value in fields.items():
            if name not in UPDATABLE:
                raise BBSError(Reason.BAD_VALUE, f"field {name!r} cannot be set this way")
            if name == "alias":
                self.validate_alias(value)  # type: ignore[arg-type]
                values[name] = value
            elif name == "level":
                values[name] = _check_level(value)
            elif name in _TEXT_LIMITS:
                values[name] = _check_text(name, value)
            elif name in _FLAG_FIELDS:
                values[name] = _check_flags(name, value)
            elif name in _JSON_FIELDS:
                values[name] = _check_json(name, value)
            else:
                values[name] = _check_counter(name, value)
        return values

    def _secret(self, password: str) -> str | None:
        return password if self.keep_cleartext else None

    # ------------------------------------------------------------ operations

    async def add(
        self,
        alias: str,
        password: str,
        *,
        real_name: str = "",
        email: str = "",
        location: str = "",
        level: int = DEFAULT_LEVEL,
        flags: str = "",
    ) -> User:
        """Create a user; called by the new-user procedure and ``bbs user add``.

        Returns the new :class:`User` (numbers count up from 1 and are never
        reused).  Raises ``BAD_NAME`` for an unfit alias, ``EXISTS`` when a
        live user has it (any case), ``BAD_PASSWORD``, ``BAD_VALUE`` for
        another field, ``STORAGE``.
        """
        values = self._validate_fields(
            {"alias": alias, "real_name": real_name, "email": email,
             "location": location, "level": level, "flags": flags}
        )
        self.validate_password(password)
        values["password_hash"] = await _in_hash_pool(hash_password, password)
        values["cleartext"] = self._secret(password)
        values["created"] = time.time()
        user = await self.db.run(_q_insert, values)
        log.info("user #%d %r added (level %d)", user.number, user.alias, user.level)
        return user

    async def get(self, number: int) -> User:
        """Return user ``number``, deleted or not.

        Raises ``BBSError(NOT_FOUND)`` when the slot does not exist.
        """
        return await self.db.read(_q_get, _check_number(number))

    async def find(self, name_or_number: str) -> User:
        """Resolve what a caller typed at a log-on or "to:" prompt to a live user.

        ``"5"`` or ``"#5"`` is user number 5; anything else is an alias
        (case-insensitive), then a real name (case-insensitive, only when
        exactly one live user has it).  Outer spaces are ignored.
        Raises ``BBSError(NOT_FOUND)``, also for deleted users.
        """
        if not isinstance(name_or_number, str):
            raise BBSError(Reason.NOT_FOUND, "no such user")
        return await self.db.read(lambda conn: _q_get(conn, _q_lookup(conn, name_or_number)))

    async def list(self, *, include_deleted: bool = False) -> builtins.list[User]:
        """Return users in number order (live ones unless ``include_deleted``)."""
        return await self.db.read(_q_list, include_deleted)

    async def count(self, *, include_deleted: bool = False) -> int:
        """Return how many users there are (live ones unless ``include_deleted``)."""
        return await self.db.read(_q_count, include_deleted)

    async def set_password(self, number: int, password: str) -> None:
        """Replace user ``number``'s password (user's own change or sysop reset).

        Stores a fresh hash; ``cleartext`` is set when ``keep_cleartext`` and
        cleared otherwise.  Raises ``BAD_PASSWORD``, ``NOT_FOUND``, ``STORAGE``.
        """
        number = _check_number(number)
        self.validate_password(password)
        password_hash = await _in_hash_pool(hash_password, password)
        await self.db.run(_q_set_secret, number, password_hash, self._secret(password))
        log.info("user #%d password changed", number)

    async def verify(self, name_or_number: str, password: str) -> User:
        """Check log-on credentials; called by every protocol's log-on.

        ``name_or_number`` is resolved as by :meth:`find`.  Returns the
        :class:`User` when the password matches.  Raises
        ``BBSError(AUTH_FAILED)`` for an unknown or deleted user and for a
        wrong password alike, after the same hashing work, so neither the
        reason nor the time taken reveals whether the account exists.  On
        success, upgrades an old-parameter hash and brings ``cleartext`` in
        line with ``keep_cleartext`` (filled in when on, erased when off).
        """
        failed = BBSError(Reason.AUTH_FAILED)
        if not isinstance(password, str):
            password = ""
        candidate = password[:MAX_PASSWORD + 1]
        found = None
        if isinstance(name_or_number, str):
            found = await self.db.run(_q_credentials, name_or_number)
        if found is None:
            await _in_hash_pool(_burn, candidate)
            raise failed
        user, stored, cleartext = found
        matches, needs_rehash = await _in_hash_pool(check_password, candidate, stored)
        if not matches or len(password) > MAX_PASSWORD:
            raise failed
        wanted = self._secret(password)
        if needs_rehash or cleartext != wanted:
            new_hash = await _in_hash_pool(hash_password, password) if needs_rehash else stored
            await self.db.run(_q_set_secret, user.number, new_hash, wanted)
        return user

    async def cleartext(self, number: int) -> str | None:
        """Return the plain password kept for CRAM-MD5/APOP, or ``None``.

        Always ``None`` when ``keep_cleartext`` is off (even if old values
        remain; see :meth:`forget_cleartext`) and for users who have not
        logged on with a password since it was turned on.
        Raises ``NOT_FOUND``.
        """
        value = await self.db.run(_q_cleartext, _check_number(number))
        return value if self.keep_cleartext else None

    async def forget_cleartext(self) -> int:
        """Erase every kept plain password; the app calls it at start-up when
        CRAM-MD5/APOP are off.  Returns how many were erased."""
        erased = await self.db.run(_q_forget_cleartext)
        if erased:
            log.info("erased %d kept cleartext passwords", erased)
        return erased

    async def delete(self, number: int) -> None:
        """Mark user ``number`` deleted; its alias becomes free for a new user.

        The slot keeps its record (Synchronet style).  Deleting a deleted
        user does nothing.  Raises ``NOT_FOUND`` for a slot that never existed.
        """
        await self.db.run(_q_delete, _check_number(number))
        log.info("user #%d deleted", number)

    async def update(self, number: int, /, **fields: Any) -> User:
        """Change profile fields of user ``number`` (user settings, sysop edits).

        Accepts :data:`UPDATABLE`: ``alias``, ``real_name``, ``email``,
        ``location``, ``phone``, ``birth``, ``level``, ``flags``, ``exempt``,
        ``restrict``, ``terminal``, ``settings`` (mappings) and the counters.
        Flag sets are normalised (upper-case, sorted).  Returns the updated
        user.  Raises ``BAD_VALUE`` for an unknown field or bad value,
        ``BAD_NAME``, ``EXISTS`` (alias taken), ``NOT_FOUND``.
        """
        number = _check_number(number)
        values = self._validate_fields(fields)
        user = await self.db.run(_q_update, number, values)
        if values:
            log.info("user #%d updated: %s", number, ", ".join(sorted(values)))
        return user

    async def record_logon(self, number: int, when: float | None = None) -> User:
        """Count a successful log-on of user ``number`` at ``when`` (default now).

        Increments ``logons``, sets ``last_on`` and, the first time,
        ``first_on``.  Returns the updated user.  Raises ``NOT_FOUND`` for a
        missing or deleted user.
        """
        stamp = time.time() if when is None else float(when)
        return await self.db.run(_q_logon, _check_number(number), stamp)

    async def add_stats(self, number: int, /, **deltas: int) -> User:
        """Add to user ``number``'s counters atomically (posts, emails, uploads,
        upload_bytes, downloads, download_bytes, time_on in seconds).

        Called by the message, mail and file services after the fact; a
        counter never goes below 0.  Returns the updated user.  Raises
        ``BAD_VALUE`` for another name or a non-integer, ``NOT_FOUND``.
        """
        number = _check_number(number)
        _check_deltas(deltas)
        return await self.db.run(_q_add_stats, number, dict(deltas))

    async def record_activity(self, logons: Sequence[tuple[int, float]] = (),
                              stats: Sequence[tuple[int, dict[str, int]]] = ()) -> list[int]:
        """Many sessions' logons ``(number, when)`` and counter additions
        ``(number, deltas)`` in one job, as :meth:`record_logon` and
        :meth:`add_stats` would store them one by one (the FTP server stores
        its sessions' statistics in batches). Returns the numbers of users
        that do not exist (any more): their items are skipped. Raises
        ``BAD_VALUE`` as :meth:`add_stats` does, before storing anything.
        """
        logons = [(_check_number(number), float(when)) for number, when in logons]
        stats = [(_check_number(number), dict(_check_deltas(deltas))) for number, deltas in stats]
        return await self.db.run(_q_activity, logons, stats)


class UserBaseSync:
    """Blocking twin of :class:`UserBase` for CLI commands (``bbs user add``).

    Each call runs the async method to completion on a private event loop,
    so it must not be used from inside a running loop.  The database must be
    opened with :meth:`bbs.db.Database.open_sync`.
    """

    def __init__(self, base: UserBase) -> None:
        self.base = base

    @staticmethod
    def _call(coro: Coroutine[Any, Any, T]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(coro)
        coro.close()
        raise RuntimeError("UserBaseSync used inside an event loop; await UserBase instead")

    def add(self, alias: str, password: str, **fields: Any) -> User:
        """See :meth:`UserBase.add`."""
        return self._call(self.base.add(alias, password, **fields))

    def get(self, number: int) -> User:
        """See :meth:`UserBase.get`."""
        return self._call(self.base.get(number))

    def find(self, name_or_number: str) -> User:
        """See :meth:`UserBase.find`."""
        return self._call(self.base.find(name_or_number))

    def list(self, *, include_deleted: bool = False) -> builtins.list[User]:
        """See :meth:`UserBase.list`."""
        return self._call(self.base.list(include_deleted=include_deleted))

    def count(self, *, include_deleted: bool = False) -> int:
        """See :meth:`UserBase.count`."""
        return self._call(self.base.count(include_deleted=include_deleted))

    def set_password(self, number: int, password: str) -> None:
        """See :meth:`UserBase.set_password`."""
        self._call(self.base.set_password(number, password))

    def verify(self, name_or_number: str, password: str) -> User:
        """See :meth:`UserBase.verify`."""
        return self._call(self.base.verify(name_or_number, password))

    def delete(self, number: int) -> None:
        """See :meth:`UserBase.delete`."""
        self._call(self.base.delete(number))

    def update(self, number: int, /, **fields: Any) -> User:
        """See :meth:`UserBase.update`."""
        return self._call(self.base.update(number, **fields))
