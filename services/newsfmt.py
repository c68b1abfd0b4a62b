"""Pure NNTP helpers (RFC 3977): wildmats, ranges, dates, article text.

No sockets here; :mod:`services.nntp` drives these from its command table.
"""
from __future__ import annotations

import calendar
import email.utils
import fnmatch
import re

from bbs.msgbase import Message

#: RFC 3977 section 3.1.1: a command line is at most 512 octets with CRLF.
MAX_COMMAND = 512
#: Longest article accepted by POST (the message base's body limit plus headers).
MAX_ARTICLE = 80 * 1024
OVERVIEW_FORMAT = ("Subject:", "From:", "Date:", "Message-ID:", "References:", ":bytes", ":lines")


def wildmat(pattern: str, name: str) -> bool:
    """RFC 3977 section 4: comma-separated wildmats, ``!`` negates; the last
    element that matches decides."""
    result = False
    for part in pattern.split(","):
        negate = part.startswith("!")
        if fnmatch.fnmatchcase(name.lower(), (part[1:] if negate else part).lower()):
            result = not negate
    return result


def parse_range(text: str) -> tuple[int, int | None]:
    """``N``, ``N-`` or ``N-M`` -> (low, high or None for open). ValueError if bad."""
    match = re.fullmatch(r"(\d+)(-(\d*))?", text)
    if not match:
        raise ValueError(text)
    low = int(match.group(1))
    if match.group(2) is None:
        return low, low
    return low, int(match.group(3)) if match.group(3) else None


def parse_date(date: str, time_: str) -> float:
    """NEWNEWS/NEWGROUPS date (yyyymmdd or yymmdd) and hhmmss, UTC -> epoch."""
    if not re.fullmatch(r"\d{6}|\d{8}", date) or not re.fullmatch(r"\d{6}", time_):
        raise ValueError("bad date")
    if len(date) == 6:  # RFC 3977 7.3.2: two-digit years within 50 years of now
        year = int(date[:2])
        date = f"{2000 + year if year < 70 else 1900 + year}{date[2:]}"
    return float(calendar.timegm((int(date[:4]), int(date[4:6]), int(date[6:8]),
                                  int(time_[:2]), int(time_[2:4]), int(time_[4:6]), 0, 0, 0)))


def address(name: str, hostname: str) -> str:
    local = re.sub(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]", ".", name).strip(".") or "user"
    return f"{name} <{local}@{hostname}>"


def headers(message: Message, group: str, hostname: str, references: str = "") -> list[str]:
    """The article's header lines (no CRLF)."""
    lines = [f"Path: {hostname}!not-for-mail",
             f"From: {address(message.from_name, hostname)}",
             f"Newsgroups: {group}",
             f"Subject: {message.subject}",
             f"Date: {email.utils.formatdate(message.posted, usegmt=True)}",
             f"Message-ID: {message.msgid}"]
    if references:
        lines.append(f"References: {references}")
    if message.to_name and message.to_name.lower() != "all":
        lines.append(f"X-Comment-To: {message.to_name}")
    lines += ["Content-Type: text/plain; charset=UTF-8", "Content-Transfer-Encoding: 8bit"]
    return lines


def body_lines(message: Message) -> list[str]:
    return message.body.split("\n") if message.body else []


def overview(message: Message, hostname: str, references: str = "") -> str:
    """One OVER line (RFC 3977 8.3): number, subject, from, date, id, refs, bytes, lines."""
    body = body_lines(message)
    size = sum(len(line.encode()) + 2 for line in body)
    fields = [str(message.number), message.subject, address(message.from_name, hostname),
              email.utils.formatdate(message.posted, usegmt=True), message.msgid, references,
              str(size), str(len(body))]
    return "\t".join(f.replace("\t", " ").replace("\r", " ").replace("\n", " ") for f in fields)


def dot_stuff(lines: list[str]) -> bytes:
    """A multi-line block (RFC 3977 3.1.1), terminated by ".\\r\\n"."""
    out = [("." + line if line.startswith(".") else line) for line in lines]
    return ("\r\n".join(out) + ("\r\n" if out else "") + ".\r\n").encode("utf-8", "replace")


def parse_article(lines: list[str]) -> tuple[dict[str, str], str]:
    """Headers (lower-case names, unfolded) and body of a posted article."""
    fields: dict[str, str] = {}
    index, last = 0, ""
    while index < len(lines) and lines[index] != "":
        line = lines[index]
        if line[:1] in (" ", "\t") and last:
            fields[last] += " " + line.strip()
        elif ":" in line:
            name, _, value = line.partition(":")
            last = name.strip().lower()
            fields.setdefault(last, value.strip())
        index += 1
    return fields, "\n".join(lines[index + 1:])
