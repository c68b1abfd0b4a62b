"""A numbered list and a "which one" prompt, and browsing sections of
items with it: the external program and text file screens (Synchronet's
xtrn_sec/text_sec)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Awaitable, Callable, Protocol, Sequence, TypeVar

from nodes import terminal as t

if TYPE_CHECKING:
    from nodes.session import Session


async def pick(session: "Session", heading: str, rows: Sequence[tuple[str, str]], what: str) -> int | None:
    """Show ``rows`` (name, detail) numbered under ``heading`` and ask for
    one; returns its index, or None for Enter, Q or a number out of range."""
    await session.print(f"\r\n\x01n\x01h\x01w{t.printable(heading)}\x01n\r\n")
    for index, (name, detail) in enumerate(rows, 1):
        extra = f"\x01n\x01c  {t.printable(detail)}" if detail else ""
        await session.print(f"\x01n\x01h\x01c{index:>3}\x01n\x01c) \x01h{t.printable(name)[:40]}{extra}\x01n\r\n")
    text = (await session.term.getline(f"\x01n\x01c{what} (1-{len(rows)}, Enter to quit): \x01h",
                                       maxlen=4)).strip()
    if not text.isdigit() or not 1 <= int(text) <= len(rows):
        return None
    return int(text) - 1


class _Section(Protocol):
    name: str
    title: str


S = TypeVar("S", bound=_Section)
I = TypeVar("I")  # noqa: E741


async def browse(session: "Session", *, activity: str, visible: Callable[[], list[tuple[S, list[I]]]],
                 heading: str, empty: str, noun: str, item_name: Callable[[I], str], what: str,
                 run: Callable[[I], Awaitable[None]]) -> None:
    """Synchronet's xtrn_sec/text_sec: choose a section (straight in when
    there is only one), then items of it until Enter; ``run(item)`` for each.
    ``visible()`` is asked again each time (the sysop may edit the file)."""
    while True:
        session.set_activity(activity)
        shown = visible()
        if not shown:
            await session.print(f"\x01n\x01h\x01r{empty}\x01n\r\n")
            return
        section = shown[0][0]
        if len(shown) > 1:
            index = await pick(session, heading, [(s.title, f"{len(items)} {noun}{'s' if len(items) != 1 else ''}")
                                                  for s, items in shown], "Section")
            if index is None:
                return
            section = shown[index][0]
        while True:
            items = next((i for s, i in visible() if s.name == section.name), [])
            index = await pick(session, section.title, [(item_name(i), "") for i in items], what) if items else None
            if index is None:
                break
            await run(items[index])
        if len(shown) == 1:
            return
