"""A numbered list and a "which one" prompt, shared by the external program
and text file screens (Synchronet's xtrn_sec/text_sec lists)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from nodes.session import Session


def _plain(text: str) -> str:
    """Sysop-written text shown in a list: no Ctrl-A codes, no control characters."""
    return "".join(ch for ch in text if ch.isprintable())


async def pick(session: "Session", heading: str, rows: Sequence[tuple[str, str]], what: str) -> int | None:
    """Show ``rows`` (name, detail) numbered under ``heading`` and ask for
    one; returns its index, or None for Enter, Q or a number out of range."""
    await session.print(f"\r\n\x01n\x01h\x01w{_plain(heading)}\x01n\r\n")
    for index, (name, detail) in enumerate(rows, 1):
        extra = f"\x01n\x01c  {_plain(detail)}" if detail else ""
        await session.print(f"\x01n\x01h\x01c{index:>3}\x01n\x01c) \x01h{_plain(name)[:40]}{extra}\x01n\r\n")
    text = (await session.term.getline(f"\x01n\x01c{what} (1-{len(rows)}, Enter to quit): \x01h",
                                       maxlen=4)).strip()
    if not text.isdigit() or not 1 <= int(text) <= len(rows):
        return None
    return int(text) - 1
