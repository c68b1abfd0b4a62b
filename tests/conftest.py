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


@pytest.fixture(autouse=True)
def no_leaked_sockets():
    """Fail a test that leaves sockets of this process open."""
    import gc

    from tests.support import open_sockets

    before = open_sockets()
    yield
    gc.collect()
    leaked = open_sockets() - before
    assert not leaked, f"test leaked {len(leaked)} socket(s)"
