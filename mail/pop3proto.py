"""POP3 (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS) without sockets.

Pure functions and tables used by :mod:`mail.pop3`: the command table (one
:class:`CommandSpec` per verb), command-line parsing, the multi-line
response encoding (dot-stuffing) and the TOP cut. Bytes in, values or bytes
out; tested without a server.
"""
from __future__ import annotations

import dataclasses
import enum
import re


class State(enum.Enum):
    """RFC 1939 section 3 session states."""

    AUTHORIZATION = "authorization"
    TRANSACTION = "transaction"


@dataclasses.dataclass(frozen=True)
class CommandSpec:
    """One POP3 verb: the states it is allowed in and its argument count."""

    verb: str
    states: frozenset[State]
    min_args: int = 0
    max_args: int = 0
    numeric: bool = False  #: arguments are message numbers / line counts
    help: str = ""


_AUTH = frozenset({State.AUTHORIZATION})
_TRANS = frozenset({State.TRANSACTION})
_BOTH = _AUTH | _TRANS

#: The command table (RFC 1939 sections 4-7, RFC 2449, RFC 2595).
COMMANDS: dict[str, CommandSpec] = {spec.verb: spec for spec in (
    CommandSpec("USER", _AUTH, 1, 1, help="USER name"),
    CommandSpec("PASS", _AUTH, 0, 1, help="PASS password"),
    CommandSpec("APOP", _AUTH, 2, 2, help="APOP name digest"),
    CommandSpec("STLS", _AUTH, help="STLS"),
    CommandSpec("CAPA", _BOTH, help="CAPA"),
    CommandSpec("QUIT", _BOTH, help="QUIT"),
    CommandSpec("NOOP", _BOTH, help="NOOP"),
    CommandSpec("STAT", _TRANS, help="STAT"),
    CommandSpec("LIST", _TRANS, 0, 1, True, help="LIST [msg]"),
    CommandSpec("UIDL", _TRANS, 0, 1, True, help="UIDL [msg]"),
    CommandSpec("RETR", _TRANS, 1, 1, True, help="RETR msg"),
    CommandSpec("DELE", _TRANS, 1, 1, True, help="DELE msg"),
    CommandSpec("TOP", _TRANS, 2, 2, True, help="TOP msg lines"),
    CommandSpec("RSET", _TRANS, help="RSET"),
)}

#: RFC 2449 section 4: a command line is at most 255 octets with CRLF.
MAX_COMMAND_LINE = 255
#: Longest numeric argument accepted (keeps int() cheap).
MAX_NUMBER_DIGITS = 9


@dataclasses.dataclass(frozen=True)
class Command:
    verb: str
    args: tuple[str, ...]
    spec: CommandSpec


class CommandError(Exception):
    """A line that is not a usable command; ``str()`` is the -ERR text."""


def parse_command(line: bytes, state: State) -> Command:
    """Parse one command line (CRLF or LF optional) for the current state.

    Raises :class:`CommandError` for unknown verbs, verbs not allowed in
    ``state``, wrong argument counts and non-numeric message numbers.
    PASS keeps everything after the verb (passwords may contain spaces).
    """
    text = line.rstrip(b"\r\n").decode("utf-8", "replace")
    if "\x00" in text:
        raise CommandError("NUL in command")
    verb, _, rest = text.strip(" ").partition(" ")
    verb = verb.upper()
    spec = COMMANDS.get(verb)
    if spec is None:
        raise CommandError("unknown command")
    if state not in spec.states:
        raise CommandError(f"{verb} not allowed now")
    if verb == "PASS":
        args: tuple[str, ...] = (rest,) if rest else ()
    else:
        args = tuple(rest.split())
    if not spec.min_args <= len(args) <= spec.max_args:
        raise CommandError(f"syntax: {spec.help}")
    if spec.numeric:
        for arg in args:
            if not arg.isdigit() or len(arg) > MAX_NUMBER_DIGITS:
                raise CommandError(f"syntax: {spec.help}")
    return Command(verb, args, spec)


def split_user(name: str) -> tuple[str, bool]:
    """Strip Synchronet's ``#nospam`` suffix: (name, hide_spam)."""
    base, sep, tag = name.rpartition("#")
    if sep and tag.lower() == "nospam" and base:
        return base, True
    return name, False


_LINE_END = re.compile(rb"\r?\n")


def multiline(data: bytes) -> bytes:
    """Encode ``data`` as an RFC 1939 section 3 multi-line body: CRLF line
    ends (a lone LF becomes CRLF; a lone CR stays), dot-stuffed, ending
    with the termination line ``.``. Whole-buffer replaces, no line loop
    (RETR sends every message through here)."""
    if not data:
        return b".\r\n"
    data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    data = data.replace(b"\r\n.", b"\r\n..")
    if data.startswith(b"."):
        data = b"." + data
    return data + b".\r\n"


def top(data: bytes, count: int) -> bytes:
    """The header, the blank line and the first ``count`` body lines (TOP)."""
    lines = _LINE_END.split(data)
    out: list[bytes] = []
    in_body = False
    body_lines = 0
    for line in lines:
        if in_body:
            if body_lines >= count:
                break
            body_lines += 1
        elif line == b"":
            in_body = True
        out.append(line)
    return b"\r\n".join(out) + b"\r\n"


def capabilities(*, stls: bool, user: bool = True) -> list[str]:
    """RFC 2449 CAPA lines for the current session."""
    caps = ["TOP", "UIDL", "RESP-CODES", "PIPELINING"]
    if user:
        caps.append("USER")
    if stls:
        caps.append("STLS")
    caps.append("IMPLEMENTATION pybbs")
    return caps
