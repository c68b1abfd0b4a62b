from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import BBSProcess, make_instance


@pytest.fixture
def instance(tmp_path: Path) -> Path:
    """A fresh instance directory configured for loopback and port 0."""
    return make_instance(tmp_path / "bbs")


@pytest.fixture
def bbs(instance: Path):
    """A running `bbs run` process on ``instance``; stopped after the test."""
    process = BBSProcess(instance).start()
    yield process
    if process.proc and process.proc.poll() is None:
        process.stop()
