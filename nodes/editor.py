"""The line editor for posts and replies (Synchronet's classic line editor).

The caller types lines; commands on a line of their own start with ``/``:
``/S`` save, ``/A`` abort, ``/L`` list, ``/D`` delete the last line,
``/Q`` show the quoted message, ``/?`` help. Words that run past the screen
width wrap to the next line. Nothing is stored until ``/S``: a caller who
hangs up mid-edit leaves no half-saved post.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from nodes import terminal as t

if TYPE_CHECKING:
    from nodes.session import Session

#: Most lines one message may have (ours; Synchronet's default is similar).
MAX_LINES = 200

HELP = ("\x01n\x01c  \x01h/S\x01n\x01c save   \x01h/A\x01n\x01c abort   \x01h/L\x01n\x01c list   "
        "\x01h/D\x01n\x01c delete last line   \x01h/Q\x01n\x01c quote   \x01h/?\x01n\x01c help\x01n\r\n")


def quote(body: str, author: str, width: int = 72) -> list[str]:
    """Lines of ``body`` quoted with the author's initials (``JD> text``)."""
    initials = "".join(w[0] for w in author.split()[:2] if w).upper() or "X"
    return [f" {initials}> {line}" if line.strip() else "" for line in t.wrap_lines(body, width - 6)]


async def edit(session: "Session", *, quoted: list[str] | None = None) -> str | None:
    """Run the editor; returns the text on /S, None on /A or an empty save."""
    term = session.term
    width = max(20, min(term.cols - 1, 79))
    lines: list[str] = []
    await term.write("\r\n\x01n\x01h\x01wEnter your message.\x01n\x01c One blank line is fine; "
                     "\x01h/S\x01n\x01c on a line by itself saves, \x01h/?\x01n\x01c for help.\x01n\r\n")
    if quoted:
        if await term.yesno("Quote the message you are replying to", True):
            lines.extend(quoted)
            for line in quoted:
                await term.write(f"\x01n\x01g{line}\x01n\r\n")
    carry = ""
    while True:
        if len(lines) >= MAX_LINES:
            await term.write(f"\x01n\x01h\x01rThe message is full ({MAX_LINES} lines).\x01n\r\n")
            carry = ""
            line = await term.getline("\x01n\x01h\x01k:\x01n", maxlen=2)
            if line.upper() not in ("/S", "/A", "/L", "/D"):
                continue
        else:
            line = await _wrapped_line(session, carry, width)
        carry = ""
        if isinstance(line, tuple):  # word wrap: keep the line, carry the word
            lines.append(line[0])
            carry = line[1]
            continue
        command = line.strip().upper()
        if command == "/S":
            text = "\n".join(lines).rstrip()
            return text or None
        if command == "/A":
            if await term.yesno("Abort this message", False):
                return None
            continue
        if command == "/L":
            for number, text in enumerate(lines, 1):
                await term.write(f"\x01n\x01c{number:>3}: \x01n{text}\r\n")
            continue
        if command == "/D":
            if lines:
                lines.pop()
                await term.write("\x01n\x01cLast line deleted.\x01n\r\n")
            continue
        if command == "/Q":
            for text in quoted or []:
                await term.write(f"\x01n\x01g{text}\x01n\r\n")
            continue
        if command in ("/?", "/H"):
            await term.write(HELP)
            continue
        lines.append(t.printable(line))


async def _wrapped_line(session: "Session", carry: str, width: int):
    """One editor line. Returns the text, or (line, carried word) when the
    caller typed past the width and the last word moves to the next line."""
    term = session.term
    buf = list(carry)
    await term.write(carry)
    while True:
        key = await term.getkey()
        if key == "\r":
            await term.write("\r\n")
            return "".join(buf)
        if key in (t.KEY_BACKSPACE, t.KEY_LEFT, t.KEY_DELETE):
            if buf:
                buf.pop()
                await term.write("\x08 \x08")
            continue
        if not isinstance(key, str) or len(key) != 1 or not key.isprintable():
            continue
        buf.append(key)
        await term.write(key)
        if len(buf) >= width:
            text = "".join(buf)
            head, sep, word = text.rpartition(" ")
            if not sep or len(word) >= width // 2:
                head, word = text, ""
            await term.write("\x08 \x08" * len(word) + "\r\n")
            return head, word
