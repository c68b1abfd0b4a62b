"""Access requirement strings (Synchronet ARS), parsed once, checked fail-closed.

Grammar (case-insensitive)::

    expr   := term (("OR" | "|") term)*
    term   := factor (("AND" | "&")? factor)*        adjacency means AND
    factor := ("NOT" | "!") factor | "(" expr ")" | keyword
    keyword:= LEVEL [=|<|>] n | AGE [=|<|>] n | USER n | NODE n
            | FLAG[1-4] X | EXEMPT X | REST X | PROTOCOL name
            | SYSOP | GUEST | ANSI

``LEVEL 20`` means "level 20 or higher" as in Synchronet; ``=`` means equal,
``<`` below and ``>`` above. An empty string allows everyone. Parsing happens
when configuration is loaded, so a bad requirement stops start-up with
``file:line``; evaluation never raises and an evaluation error denies.
"""
from __future__ import annotations

import dataclasses
import logging
import operator
import re
from typing import Callable

log = logging.getLogger(__name__)

#: Security level at which Synchronet treats a user as sysop.
SYSOP_LEVEL = 90

_TOKEN_RE = re.compile(r"\s*(\(|\)|&|\||!|[<>=]|[A-Za-z0-9_.#-]+)")
_NUMERIC = {"LEVEL", "AGE", "USER", "NODE"}
_LETTER = {"FLAG", "FLAG1", "FLAG2", "FLAG3", "FLAG4", "EXEMPT", "REST"}
_BARE = {"SYSOP", "GUEST", "ANSI"}
_COMPARE = {"=": operator.eq, "<": operator.lt, ">": operator.gt, None: operator.ge}


@dataclasses.dataclass(frozen=True)
class AccessContext:
    """What a requirement is checked against (a caller, or an FTP/mail client)."""

    level: int = 0
    flags: str = ""
    exempt: str = ""
    restrict: str = ""
    age: int = 0
    user: int = 0
    node: int = 0
    protocol: str = ""
    guest: bool = False
    ansi: bool = False


Check = Callable[[AccessContext], bool]


@dataclasses.dataclass(frozen=True)
class Requirement:
    """A parsed ARS. ``allows(ctx)`` is the only way to evaluate it."""

    text: str
    check: Check

    def allows(self, ctx: AccessContext) -> bool:
        """True when ``ctx`` meets the requirement; any failure denies."""
        try:
            return bool(self.check(ctx))
        except Exception:  # fail closed (STYLE 10)
            log.exception("access requirement %r failed to evaluate; denying", self.text)
            return False


ALLOW_ALL = Requirement("", lambda ctx: True)


def parse_ars(text: str) -> Requirement:
    """Parse ``text`` into a :class:`Requirement`; raise ValueError if malformed."""
    text = text.strip()
    if not text:
        return ALLOW_ALL
    tokens = _tokenize(text)
    parser = _Parser(tokens, text)
    check = parser.expr()
    if parser.pos != len(tokens):
        raise ValueError(f"unexpected {tokens[parser.pos]!r} in requirement {text!r}")
    return Requirement(text, check)


def _tokenize(text: str) -> list[str]:
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if not match or not match.group(1):
            if text[pos:].strip() == "":
                break
            raise ValueError(f"unexpected character {text[pos:].strip()[0]!r} in requirement {text!r}")
        tokens.append(match.group(1))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[str], text: str) -> None:
        self.tokens, self.text, self.pos = tokens, text, 0

    def peek(self) -> str | None:
        return self.tokens[self.pos].upper() if self.pos < len(self.tokens) else None

    def take(self) -> str:
        if self.pos >= len(self.tokens):
            raise ValueError(f"requirement {self.text!r} ends too early")
        self.pos += 1
        return self.tokens[self.pos - 1]

    def expr(self) -> Check:
        parts = [self.term()]
        while self.peek() in ("OR", "|"):
            self.take()
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else (lambda ctx: any(p(ctx) for p in parts))

    def term(self) -> Check:
        parts = [self.factor()]
        while self.peek() not in (None, "OR", "|", ")"):
            if self.peek() in ("AND", "&"):
                self.take()
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else (lambda ctx: all(p(ctx) for p in parts))

    def factor(self) -> Check:
        word = self.take().upper()
        if word in ("NOT", "!"):
            inner = self.factor()
            return lambda ctx: not inner(ctx)
        if word == "(":
            inner = self.expr()
            if self.peek() != ")":
                raise ValueError(f"missing ')' in requirement {self.text!r}")
            self.take()
            return inner
        if word in _NUMERIC:
            return self.numeric(word)
        if word in _LETTER:
            letters = self.take().upper()
            if not letters.isalpha():
                raise ValueError(f"{word} needs flag letters A-Z, got {letters!r}")
            attr = {"EXEMPT": "exempt", "REST": "restrict"}.get(word, "flags")
            return lambda ctx: all(letter in getattr(ctx, attr).upper() for letter in letters)
        if word == "PROTOCOL":
            name = self.take().lower()
            return lambda ctx: ctx.protocol.lower() == name
        if word == "SYSOP":
            return lambda ctx: ctx.level >= SYSOP_LEVEL
        if word == "GUEST":
            return lambda ctx: ctx.guest
        if word == "ANSI":
            return lambda ctx: ctx.ansi
        raise ValueError(f"unknown keyword {word!r} in requirement {self.text!r}")

    def numeric(self, word: str) -> Check:
        op = self.take() if self.peek() in ("=", "<", ">") else None
        raw = self.take().lstrip("#")
        if not raw.isdigit():
            raise ValueError(f"{word} needs a number, got {raw!r}")
        value = int(raw)
        if word in ("USER", "NODE") and op is None:
            op = "="
        compare = _COMPARE[op]
        attr = word.lower()
        return lambda ctx: compare(getattr(ctx, attr), value)
