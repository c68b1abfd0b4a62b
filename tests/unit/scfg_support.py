"""Shared by the SCFG menu tests: a fresh instance, the screen's text, moving by labels."""
from __future__ import annotations

from pathlib import Path

import pytest
from urwid.testing import press, render_text

from bbs.instance import init_instance
from console.scfg import ScfgView

SIZE = (120, 30)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A fresh instance from the shipped defaults."""
    init_instance(tmp_path)
    return tmp_path


def screen_text(view: ScfgView) -> str:
    """The rendered screen as one line (wrapped lines joined, spaces squeezed)."""
    return " ".join(" ".join(render_text(view, SIZE)).split())


def open_path(view: ScfgView, *labels: str) -> None:
    """Open, one after the other, the lines starting with ``labels``."""
    for label in labels:
        index = next(i for i, t in enumerate(view.texts()) if t.startswith(label))
        press(view, SIZE, "home", *["down"] * index, "enter")
