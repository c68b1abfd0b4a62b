"""Screens: the Python code behind menu actions (menus are data, STYLE 9).

Each screen is ``async def screen(session, args) -> None``; a menu file's
``Action = NAME ARGS...`` runs ``SCREENS[NAME](session, ("ARGS", ...))``.
"""
from __future__ import annotations

from typing import Awaitable, Callable

from nodes.screens import chat, email, files, general, messages, textfiles, xtrn

Screen = Callable[..., Awaitable[None]]

SCREENS: dict[str, Screen] = {**general.SCREENS, **messages.SCREENS, **email.SCREENS, **files.SCREENS,
                           **chat.SCREENS, **xtrn.SCREENS, **textfiles.SCREENS}
