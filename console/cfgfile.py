"""Editing the instance's configuration files the way SCFG saves them.

Pure text edits (:func:`ini_set` changes the one line of a key, keeping every
comment and the rest of the sysop's file), validation by the real loaders
(:func:`validate_ini_edit` runs :func:`bbs.instance.load_config` on a copy of
ctrl/ holding the edit; :func:`validate_list` parses a list file as
:class:`bbs.filters.FilterList` does) and an atomic save (:func:`atomic_write`:
temp file, fsync, rename). No urwid here.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from bbs.boardconf import QWK_ID_RE
from bbs.errors import ConfigError
from bbs.filters import parse_line
from bbs.ini import parse_ini, strip_comment
from bbs.instance import load_config

_SECTION_RE = re.compile(r"^\s*\[(.*)\]\s*$")


def ini_get(text: str, section: str, key: str) -> str | None:
    """The value of ``key`` in ``[section]`` of ini ``text`` (None when absent)."""
    current = ""
    for line in text.splitlines():
        stripped = strip_comment(line).strip()
        match = _SECTION_RE.match(stripped)
        if match:
            current = match.group(1).strip()
            continue
        name, sep, value = stripped.partition("=")
        if sep and current.lower() == section.lower() and name.strip().lower() == key.lower():
            return value.strip()
    return None


def ini_set(text: str, section: str, key: str, value: str) -> str:
    """Return ``text`` with ``key = value`` in ``[section]``.

    The key's own line is rewritten in place (its spelling, indentation and a
    trailing ``; comment`` kept); a missing key is added after the section's
    last value line; a missing section is appended. Every other line, comment
    and blank line stays as the sysop wrote it.
    """
    lines = text.splitlines()
    start = end = None  # section header index, index after its last value line
    for index, line in enumerate(lines):
        stripped = strip_comment(line).strip()
        match = _SECTION_RE.match(stripped)
        if match:
            if start is not None:
                break
            if match.group(1).strip().lower() == section.lower():
                start = end = index + 1
            continue
        if start is None or not stripped:
            continue
        name, sep, _ = stripped.partition("=")
        if sep and name.strip().lower() == key.lower():
            indent = line[:len(line) - len(line.lstrip())]
            body = strip_comment(line)
            comment = line[len(body):]
            written = body.split("=", 1)[0].strip()
            lines[index] = f"{indent}{written} = {value}".rstrip() + (f" {comment.lstrip()}" if comment else "")
            return "\n".join(lines) + "\n"
        end = index + 1
    if start is None:
        if lines and lines[-1].strip():
            lines.append("")
        lines += [f"[{section}]", f"{key} = {value}".rstrip()]
    else:
        lines.insert(end, f"{key} = {value}".rstrip())
    return "\n".join(lines) + "\n"


def _is_comment(line: str) -> bool:
    stripped = line.strip()
    return stripped.startswith(";") or stripped.startswith("#")


def ini_section_spans(text: str) -> list[tuple[str, int, int]]:
    """``(name, first, end)`` of each ``[section]`` of ini ``text``: ``first``
    is the index of its header line, ``end`` the index after its last value
    line (comments and blank lines after it belong to what follows)."""
    spans: list[tuple[str, int, int]] = []
    for index, line in enumerate(text.splitlines()):
        stripped = strip_comment(line).strip()
        match = _SECTION_RE.match(stripped)
        if match:
            spans.append((match.group(1).strip(), index, index + 1))
        elif stripped and not stripped.startswith("#") and spans:
            name, first, _ = spans[-1]
            spans[-1] = (name, first, index + 1)
    return spans


def _span(text: str, section: str) -> tuple[int, int]:
    for name, first, end in ini_section_spans(text):
        if name.lower() == section.lower():
            return first, end
    raise KeyError(section)


def ini_section_values(text: str, section: str) -> list[tuple[str, str]]:
    """The ``(key, value)`` pairs of ``[section]`` in file order (KeyError when absent)."""
    first, end = _span(text, section)
    pairs = []
    for line in text.splitlines()[first + 1:end]:
        name, sep, value = strip_comment(line).strip().partition("=")
        if sep and not line.strip().startswith("#"):
            pairs.append((name.strip(), value.strip()))
    return pairs


def ini_add_section(text: str, section: str, values: list[tuple[str, str]], after: str | None = None) -> str:
    """Return ``text`` with a new ``[section]`` holding ``values``, placed
    after the last value line of section ``after`` (None: at the end of the
    file), separated by a blank line. Every other line stays as it was."""
    lines = text.splitlines()
    block = [f"[{section}]"] + [f"{key} = {value}".rstrip() for key, value in values]
    at = len(lines) if after is None else _span(text, after)[1]
    if at == len(lines):
        while lines and not lines[-1].strip():
            lines.pop()
        at = len(lines)
        lines[at:at] = ([""] if lines else []) + block
    else:
        lines[at:at] = [""] + block
    return "\n".join(lines) + "\n"


def ini_remove_section(text: str, section: str) -> str:
    """Return ``text`` without ``[section]``: its header, its value lines and
    the comments among them, and comment lines directly above the header
    (no blank line between: they describe it). Comments after its last
    value belong to what follows and stay; so does everything else."""
    lines = text.splitlines()
    first, end = _span(text, section)
    top = first
    while top > 0 and _is_comment(lines[top - 1]):
        top -= 1
    # A comment block glued to the previous section's last line is that section's.
    if top == 0 or not lines[top - 1].strip():
        first = top
    if end < len(lines) and not lines[end].strip() and (first == 0 or not lines[first - 1].strip()):
        end += 1  # one blank separator goes with it
    del lines[first:end]
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines) + "\n" if lines else ""


def atomic_write(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: a temp file in the same folder, fsync,
    rename (a crash leaves the old or the new file, never half of one).
    Keeps the file's permission bits."""
    path = Path(path)
    mode = path.stat().st_mode & 0o7777 if path.exists() else None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def validate_ini_edit(root: Path, path: Path, text: str) -> str | None:
    """Load the whole configuration of instance ``root`` as it would be with
    ``path`` (a file in ctrl/) holding ``text``. Returns None when it loads,
    else the loader's ``file:line: what`` message, naming the real file."""
    root = Path(root)
    with tempfile.TemporaryDirectory(prefix="scfg-") as tmp:
        copy = Path(tmp)
        shutil.copytree(root / "ctrl", copy / "ctrl")
        (copy / "ctrl" / Path(path).name).write_text(text, encoding="utf-8")
        try:
            load_config(copy)
        except ConfigError as exc:
            return str(exc).replace(str(copy), str(root))
    return None


def _qwk_id(pattern: str) -> str | None:
    # mail/delivery.py compares the first hop of <qwk-id>!<user> with each entry.
    if QWK_ID_RE.fullmatch(pattern):
        return None
    return f"{pattern!r} is not a QWK-ID (1-8 letters, digits, _ or -; no wildcards)"


#: Per-file rules beyond the filter syntax, by file name: what the file's
#: reader needs of an entry (None = fine, else what is wrong).
ENTRY_CHECKS: dict[str, Callable[[str], str | None]] = {"qwknodes.cfg": _qwk_id}


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def validate_list(path: Path, lines: list[str]) -> str | None:
    """Parse list-file ``lines`` as the filter loader does; the first problem
    it would warn about (``file:line: what``), or None."""
    entry_check = ENTRY_CHECKS.get(Path(path).name)
    collector = _Collect()
    logger = logging.getLogger("bbs.filters")
    logger.addHandler(collector)
    propagate, logger.propagate = logger.propagate, False  # never onto the console's screen
    try:
        for number, line in enumerate(lines, 1):
            if "\n" in line or "\r" in line:
                return f"{path}:{number}: one entry per line"
            entry = parse_line(line, number, source=str(path))
            problem = entry_check(entry.pattern) if entry is not None and entry_check else None
            if problem:
                return f"{path}:{number}: {problem}"
    finally:
        logger.removeHandler(collector)
        logger.propagate = propagate
    return collector.messages[0] if collector.messages else None


def read_text(path: Path) -> str:
    """A config file's text ('' when it does not exist yet)."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return ""


def sections(path: Path, prefix: str) -> list[str]:
    """Names of the sections of ini ``path`` starting with ``prefix`` (e.g. ``sub:``)."""
    try:
        ini = parse_ini(Path(path))
    except ConfigError:
        return []
    return [s.name for s in ini.prefixed(prefix)]
