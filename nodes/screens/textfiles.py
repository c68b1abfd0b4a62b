"""Text file sections for callers (Synchronet's G-files): the sections of
ctrl/text.ini the caller may see (:mod:`bbs.textconf`, re-read when it
changes), their files listed with descriptions, and a file shown with the
display-file rendering (Ctrl-A colours, @-codes, ANSI) and paging.

How a file is read depends on its name: ``.ans`` is CP437 ANSI (the SAUCE
record after Ctrl-Z is dropped), ``.msg``/``.asc`` UTF-8 text with Ctrl-A
codes and @-codes, anything else plain text shown as written; a path
without an extension follows the display-file rule (``.ans`` for ANSI
callers, else ``.msg``/``.asc``). Paths were checked at load (inside text/)
and are checked again here after symlinks are resolved.
"""
from __future__ import annotations

import asyncio
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from bbs.textconf import TextConfig, TextFile, TextSection
from nodes.screens.picker import browse
from nodes.session import decode_display, inside, read_display_file

if TYPE_CHECKING:
    from nodes.session import Session

#: Extensions of display files: ANSI art (CP437) and text whose Ctrl-A
#: codes and @-codes are interpreted.
DISPLAY_SUFFIXES = (".ans", ".msg", ".asc")


def text_settings(session: "Session") -> TextConfig:
    """ctrl/text.ini as in force now."""
    return session.services.live["text.ini"].current()


def read_text_file(text_dir: Path, path: PurePosixPath, ansi: bool) -> tuple[str, bool] | None:
    """(worker thread) The file's text and whether it is a display file
    (codes interpreted); None when it is missing or outside ``text_dir``."""
    if not path.suffix:
        text = read_display_file(text_dir, str(path), ansi)
        return (text, True) if text is not None else None
    target = inside(text_dir, path)
    if target is None:
        return None
    try:
        data = target.read_bytes()
    except OSError:
        return None
    text = decode_display(data, path.suffix)
    if path.suffix.lower() in DISPLAY_SUFFIXES:
        return text, True
    return text.replace("\x01", ""), False  # plain text: no codes


def _visible(session: "Session") -> list[tuple[TextSection, list[TextFile]]]:
    config, ctx = text_settings(session), session.access()
    return [(s, config.in_section(s.name)) for s in config.sections
            if s.ars.allows(ctx) and config.in_section(s.name)]


async def text_sections(session: "Session", args: tuple[str, ...]) -> None:
    """``Action = textfiles``: choose a section (when there are several),
    then files to read, until Enter."""
    await browse(session, activity="reading text files", visible=lambda: _visible(session),
                 heading="Text file sections", empty="There are no text files you may read.", noun="file",
                 item_name=lambda f: f.description, what="Read which", run=lambda item: show_file(session, item))


async def show_file(session: "Session", item: TextFile) -> None:
    """Show one text file with paging."""
    session.set_activity(f"reading {item.description}")
    found = await asyncio.to_thread(read_text_file, session.app.instance.text, item.path, session.term.ansi)
    if found is None:
        session.log.warning("text file %s of section %s is missing from text/", item.path, item.section)
        await session.print("\x01n\x01h\x01rThat file is missing; please tell the sysop.\x01n\r\n")
        return
    text, display = found
    session.log.info("read text file %s", item.path)
    await session.term.page(("\r\n" + session.expand(text) if display else "\r\n" + text) + "\x01n")


SCREENS = {"textfiles": text_sections}
