"""Pure terminal handling: key decoding, Ctrl-A colours, @-codes, output encoding.

Nothing here touches a socket (STYLE 4): bytes or text in, keys or bytes out.
The session (:mod:`nodes.io`) wires these to a connection.

* :class:`KeyDecoder` turns the caller's bytes into characters and named keys
  (arrows, Home/End, PgUp/PgDn, Insert/Delete, Backspace) from the VT100/xterm,
  rxvt, ANSI-BBS (SyncTERM, NetRunner) and SCO encodings, and cursor-position
  reports (``ESC [ row ; col R``, ECMA-48 8.3.14 CPR) used for detection.
* :func:`render` turns Synchronet Ctrl-A attribute codes into ANSI SGR
  sequences (or drops them for a dumb terminal).
* :func:`expand_atcodes` fills ``@USER@``-style codes from a mapping.
* :func:`encode_output` produces CP437, UTF-8 or plain-ASCII bytes.
"""
from __future__ import annotations

import codecs
import dataclasses
import re
import unicodedata
from typing import Callable, Iterable, Mapping

# -- named keys ----------------------------------------------------------
KEY_UP = "KEY_UP"
KEY_DOWN = "KEY_DOWN"
KEY_LEFT = "KEY_LEFT"
KEY_RIGHT = "KEY_RIGHT"
KEY_HOME = "KEY_HOME"
KEY_END = "KEY_END"
KEY_PGUP = "KEY_PGUP"
KEY_PGDN = "KEY_PGDN"
KEY_INSERT = "KEY_INSERT"
KEY_DELETE = "KEY_DELETE"
KEY_BACKSPACE = "KEY_BACKSPACE"
KEY_ENTER = "KEY_ENTER"
KEY_ESCAPE = "KEY_ESCAPE"

ESC = "\x1b"
#: Cursor-position request (ECMA-48 8.3.35 DSR 6); answered with CPR.
CPR_REQUEST = "\x1b[6n"

#: CSI final byte (with its parameter, when it matters) -> key.
_CSI_KEYS = {
    "A": KEY_UP, "B": KEY_DOWN, "C": KEY_RIGHT, "D": KEY_LEFT,
    "H": KEY_HOME, "F": KEY_END,
    "K": KEY_END,      # ANSI-BBS / SyncTERM End
    "@": KEY_INSERT,   # ANSI-BBS / SyncTERM Insert
    "V": KEY_PGUP, "U": KEY_PGDN,  # ANSI-BBS / SyncTERM PgUp/PgDn
    "L": KEY_INSERT,   # SCO console Insert
    "G": KEY_PGDN,     # SCO console PgDn
    "I": KEY_PGUP,     # SCO console PgUp
}
#: ``ESC [ n ~`` (VT220, xterm, rxvt).
_TILDE_KEYS = {"1": KEY_HOME, "2": KEY_INSERT, "3": KEY_DELETE, "4": KEY_END,
               "5": KEY_PGUP, "6": KEY_PGDN, "7": KEY_HOME, "8": KEY_END}
#: ``ESC O x`` (SS3: VT100 application cursor mode, xterm Home/End).
_SS3_KEYS = {"A": KEY_UP, "B": KEY_DOWN, "C": KEY_RIGHT, "D": KEY_LEFT,
             "H": KEY_HOME, "F": KEY_END, "w": KEY_END, "q": KEY_END, "y": KEY_PGUP,
             "s": KEY_PGDN, "p": KEY_INSERT, "n": KEY_DELETE}
#: Longest escape sequence kept while waiting for its final byte; longer is junk.
MAX_SEQUENCE = 32


@dataclasses.dataclass(frozen=True)
class CursorReport:
    """A cursor-position report (CPR): the terminal answered ``ESC [ 6 n``."""

    row: int
    col: int



class KeyDecoder:
    """Incremental decoder of a caller's keystrokes.

    ``feed(data)`` returns what is complete: one-character strings for text,
    ``KEY_*`` names for special keys (Enter is ``"\\r"``; CR LF and CR NUL
    count once, RFC 854 NVT) and :class:`CursorReport`. A lone ESC is held
    until :meth:`flush` (called by the session after a short pause) makes it
    ``KEY_ESCAPE``. ``charset`` is ``"utf-8"`` or ``"cp437"`` (bytes 128-255
    are CP437 characters).
    """

    def __init__(self, charset: str = "utf-8") -> None:
        self._pending = ""
        self._last_cr = False
        self.set_charset(charset)

    def set_charset(self, charset: str) -> None:
        """Switch the input encoding (after detection or a settings change)."""
        self.charset = charset
        self._text = codecs.getincrementaldecoder("utf-8" if charset == "utf-8" else "cp437")("replace")

    def feed(self, data: bytes) -> list:
        """Decode ``data``; return the complete keys in order."""
        return self._parse(self._pending + self._text.decode(data))

    def flush(self) -> list:
        """No more input for a while: a held ESC (or partial sequence) is ESC."""
        pending, self._pending = self._pending, ""
        return [KEY_ESCAPE] if pending else []

    @property
    def holding(self) -> bool:
        """True while part of an escape sequence waits for more bytes."""
        return bool(self._pending)

    def _parse(self, text: str) -> list:
        keys: list = []
        self._pending = ""
        i = 0
        while i < len(text):
            ch = text[i]
            if self._last_cr:
                self._last_cr = False
                if ch in "\n\x00":
                    i += 1
                    continue
            if ch == ESC:
                key, used = _escape(text, i)
                if used == 0:
                    self._pending = text[i:]
                    break
                if key is not None:
                    keys.append(key)
                i += used
                continue
            if ch == "\r":
                self._last_cr = True
                keys.append("\r")
            elif ch == "\n":
                keys.append("\r")
            elif ch in "\x08\x7f":
                keys.append(KEY_BACKSPACE)
            elif ch == "\x00":
                pass
            else:
                keys.append(ch)
            i += 1
        return keys


def _escape(text: str, i: int) -> tuple:
    """Parse an escape sequence at ``text[i]``: (key or None, length), or
    (None, 0) when incomplete."""
    if i + 1 >= len(text):
        return None, 0
    kind = text[i + 1]
    if kind == "O":
        if i + 2 >= len(text):
            return None, 0
        return _SS3_KEYS.get(text[i + 2]), 3
    if kind != "[":
        if kind == ESC:
            return KEY_ESCAPE, 1
        return KEY_ESCAPE, 1  # ESC then an ordinary key: the key follows on its own
    j = i + 2
    while j < len(text) and "\x30" <= text[j] <= "\x3f":
        j += 1
    while j < len(text) and "\x20" <= text[j] <= "\x2f":
        j += 1
    if j >= len(text):
        if j - i > MAX_SEQUENCE:
            return None, j - i  # junk: drop it
        return None, 0
    final, params = text[j], text[i + 2:j]
    used = j - i + 1
    if not "\x40" <= final <= "\x7e":
        return None, used
    if final == "R" and ";" in params:
        row, _, col = params.partition(";")
        if row.isdigit() and col.isdigit():
            return CursorReport(int(row), int(col)), used
        return None, used
    if final == "~":
        return _TILDE_KEYS.get(params.split(";")[0]), used
    return _CSI_KEYS.get(final), used


# -- terminal types ------------------------------------------------------
#: TTYPE prefixes of terminals that understand ANSI X3.64 sequences.
ANSI_TERMINALS = ("xterm", "vt1", "vt2", "vt3", "vt4", "vt5", "ansi", "linux", "screen",
                  "tmux", "putty", "rxvt", "syncterm", "netrunner", "cygwin", "konsole",
                  "gnome", "alacritty", "kitty", "foot", "wezterm", "st-", "pcansi", "qansi",
                  "scoansi", "mtelnet", "netterm", "cterm")
#: TTYPE prefixes of BBS terminals that speak CP437 by default.
CP437_TERMINALS = ("syncterm", "netrunner", "ansi", "pcansi", "qansi", "scoansi", "cterm",
                   "mtelnet", "netterm")


def classify_terminal(ttype: str) -> tuple:
    """What a terminal-type name says: (ansi, charset), each None when unknown.

    ``dumb`` and ``unknown`` are definitely not ANSI; other unknown names are
    left to the cursor-position probe.
    """
    name = (ttype or "").strip().lower()
    if not name or name in ("unknown", "network"):
        return None, None
    if name in ("dumb", "tty", "glasstty", "none"):
        return False, "ascii"
    ansi = True if name.startswith(ANSI_TERMINALS) else None
    charset = "cp437" if name.startswith(CP437_TERMINALS) else ("utf-8" if ansi else None)
    return ansi, charset


# -- Ctrl-A attribute codes ------------------------------------------------
#: Ctrl-A colour letters -> ANSI colour numbers (0 black ... 7 white).
_FG = {"K": 0, "R": 1, "G": 2, "Y": 3, "B": 4, "M": 5, "C": 6, "W": 7}
CTRL_A = "\x01"


class Pause:
    """Marker in rendered output: wait for a key here (Ctrl-A P, @PAUSE@)."""

    def __repr__(self) -> str:
        return "PAUSE"


PAUSE = Pause()


@dataclasses.dataclass
class Attr:
    """A text attribute: colours 0-7, high intensity, blink."""

    fg: int = 7
    bg: int = 0
    bright: bool = False
    blink: bool = False

    def sgr(self) -> str:
        parts = ["0"]
        if self.bright:
            parts.append("1")
        if self.blink:
            parts.append("5")
        parts.append(str(30 + self.fg))
        parts.append(str(40 + self.bg))
        return f"\x1b[{';'.join(parts)}m"


@dataclasses.dataclass
class RenderState:
    """The attribute a caller's text should have (``attr``) and the one last
    sent (``shown``): SGR sequences go out only when text follows a change.
    ``raw``: the text's own ANSI sequences (an .ans file) set the colours
    since; ours are sent again only once a Ctrl-A code sets one."""

    attr: Attr = dataclasses.field(default_factory=Attr)
    shown: Attr = dataclasses.field(default_factory=Attr)
    raw: bool = False


def render(text: str, ansi: bool, state: RenderState | None = None) -> list:
    """Turn Synchronet Ctrl-A codes into output: a list of strings and PAUSE.

    Colour codes (K R G Y B M C W, backgrounds 0-7, H bright, I blink,
    N/- normal) become ANSI SGR sequences when ``ansi`` (sent lazily, once
    before the text they colour) and vanish otherwise; L clears the screen,
    ``[`` is CR, ``]`` LF, ``>`` clears to end of line, ``/`` is a newline,
    P pauses. Bare LF becomes CR LF. Unknown codes are dropped. ``state``
    (updated in place) carries the attribute across calls.
    """
    state = state if state is not None else RenderState()
    attr = state.attr
    out: list = []
    buf: list[str] = []

    def emit(chunk: str) -> None:
        if ansi and state.shown != attr and not state.raw:
            buf.append(attr.sgr())
            state.shown = dataclasses.replace(attr)
        buf.append(chunk)

    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == CTRL_A and i + 1 < n:
            code = text[i + 1]
            i += 2
            up = code.upper()
            if state.raw and (up in _FG or code in "01234567" or up in "HIN-"):
                state.raw, state.shown = False, Attr(-1)  # the screen's colour is not ours: send ours
            if up in _FG:
                attr.fg = _FG[up]
            elif code in "01234567":
                attr.bg = int(code)
            elif up == "H":
                attr.bright = True
            elif up == "I":
                attr.blink = True
            elif up in "N-":
                attr.fg, attr.bg, attr.bright, attr.blink = 7, 0, False, False
            elif up == "L":
                if ansi:
                    emit("\x1b[2J\x1b[H")
                else:
                    buf.append("\r\n")
            elif code == "[":
                buf.append("\r")
            elif code == "]":
                buf.append("\n")
            elif code == "/":
                buf.append("\r\n")
            elif code == ">":
                if ansi:
                    emit("\x1b[K")
            elif up == "P":
                if buf:
                    out.append("".join(buf))
                    buf = []
                out.append(PAUSE)
            continue
        if ch == CTRL_A:
            i += 1
            continue
        if ch == "\n" and (i == 0 or text[i - 1] != "\r"):
            buf.append("\r\n")
        elif ch in "\r\n\x07\x08":
            buf.append(ch)
        elif ch == ESC:
            match = _ANSI_SEQUENCE.match(text, i)
            if match:
                if ansi:
                    buf.append(match.group(0))
                    if match.group(0).endswith("m"):
                        state.raw = True  # the text's own colours until a Ctrl-A code sets ours
                    elif not state.raw:
                        state.shown = Attr(-1)  # a cursor move: resend ours before our text
                i = match.end()
                continue
        else:
            emit(ch)
        i += 1
    if buf:
        out.append("".join(buf))
    return out


_ANSI_SEQUENCE = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|[@-Z\\-_])")


def strip_codes(text: str) -> str:
    """Text without Ctrl-A codes and ANSI sequences (for lengths, logs)."""
    text = re.sub(r"\x01.", "", text, flags=re.DOTALL)
    return _ANSI_SEQUENCE.sub("", text)


def visible_len(text: str) -> int:
    return len(strip_codes(text))


# -- @-codes -----------------------------------------------------------------
_ATCODE = re.compile(r"@([A-Z][A-Z0-9_]*)(?:-([LRC])(\d{1,3}))?@")


def expand_atcodes(text: str, lookup: Callable[[str], str | None] | Mapping[str, str]) -> str:
    """Replace ``@CODE@`` (and ``@CODE-L20@``/``-R``/``-C`` padded to a
    width) with ``lookup(CODE)``; unknown codes are left as written."""
    get = lookup.get if isinstance(lookup, Mapping) else lookup

    def repl(match: re.Match) -> str:
        value = get(match.group(1))
        if value is None:
            return match.group(0)
        value = str(value)
        if match.group(2):
            width = int(match.group(3))
            value = value[:width]
            value = {"L": value.ljust, "R": value.rjust, "C": value.center}[match.group(2)](width)
        return value

    return _ATCODE.sub(repl, text)


# -- output encoding -------------------------------------------------------------
#: Plain-ASCII stand-ins for the CP437 graphics in display files.
_ASCII_FALLBACK = {}
for _chars, _sub in (("─━═┄┈╌", "-"), ("│┃║┆┊╎", "|"), ("░▒▓█▄▀▌▐■", "#"),
                     ("┌┐└┘├┤┬┴┼╔╗╚╝╠╣╦╩╬╒╓╕╖╘╙╛╜╞╟╡╢╤╥╧╨╪╫", "+"),
                     ("•·∙", "*"), ("«", "<<"), ("»", ">>"), ("►▶→", ">"), ("◄◀←", "<"),
                     ("▲↑", "^"), ("▼↓", "v"), ("“”", '"'), ("‘’", "'"), ("–—", "-"), ("…", "...")):
    for _ch in _chars:
        _ASCII_FALLBACK[ord(_ch)] = _sub


def to_ascii(text: str) -> str:
    """Best plain-ASCII rendering: box drawing to + - |, accents dropped, ? else."""
    text = text.translate(_ASCII_FALLBACK)
    if text.isascii():
        return text
    out = []
    for ch in text:
        if ch.isascii():
            out.append(ch)
            continue
        base = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
        out.append(base or "?")
    return "".join(out)


def encode_output(text: str, charset: str) -> bytes:
    """Encode output text for the caller: ``cp437``, ``utf-8`` or ``ascii``."""
    if charset == "utf-8":
        return text.encode("utf-8", "replace")
    if charset == "cp437":
        return text.encode("cp437", "replace")
    return to_ascii(text).encode("ascii", "replace")


def wrap_lines(text: str, width: int) -> list[str]:
    """Split message text into lines no wider than ``width`` (words kept whole
    where possible); blank lines and leading quote marks are kept."""
    import textwrap
    lines: list[str] = []
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if len(raw) <= width:
            lines.append(raw)
        else:
            lines.extend(textwrap.wrap(raw, width, break_long_words=True, replace_whitespace=False) or [""])
    return lines


def printable(text: str, limit: int | None = None) -> str:
    """Caller-typed text made safe to store and echo: no control characters."""
    cleaned = "".join(ch for ch in text if ch.isprintable())
    return cleaned[:limit] if limit is not None else cleaned


def join_keys(keys: Iterable) -> str:
    """The text of the plain characters among ``keys`` (for tests and paste)."""
    return "".join(k for k in keys if isinstance(k, str) and len(k) == 1)
