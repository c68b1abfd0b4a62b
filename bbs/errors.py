"""One error tree for the core.

Every failure the core reports to a protocol is a :class:`BBSError` carrying a
:class:`Reason`.  Each protocol maps reasons to its own replies (``550``,
``-ERR``, ``530`` ...) in one place; the core never knows a wire format.
"""
from __future__ import annotations

import enum


class Reason(enum.Enum):
    """Why a core operation failed."""

    NOT_FOUND = "not found"
    EXISTS = "already exists"
    BAD_NAME = "invalid name"
    BAD_PASSWORD = "invalid password"
    AUTH_FAILED = "authentication failed"
    ACCESS_DENIED = "access denied"
    BANNED = "address banned"
    FILTERED = "address filtered"
    LIMIT = "limit reached"
    BAD_VALUE = "invalid value"
    STORAGE = "storage error"


class BBSError(Exception):
    """A core failure with a machine-readable :class:`Reason`.

    ``str(err)`` is the human text for logs; protocols should map ``reason``.
    """

    def __init__(self, reason: Reason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(detail or reason.value)


class ConfigError(Exception):
    """A bad configuration value, located as ``path:line: what``.

    Raised by every loader; the CLI prints it and exits with status 2.
    """

    def __init__(self, path: object, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {message}")
