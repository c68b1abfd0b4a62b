from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import BBSProcess, make_instance


STDERR_TAIL = 80
"""Lines of each `bbs run` log shown under a failed test."""


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Forget the processes that have ended; one still running (a
    module-scoped server) serves this test too, so its log is shown."""
    BBSProcess.started[:] = [p for p in BBSProcess.started if p.proc is not None and p.proc.poll() is None]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test shows the end of the log of each `bbs run` it used:
    CI keeps no instance directory, so this is all there is to go on."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    for process in BBSProcess.started:
        try:
            lines = process.stderr().splitlines()[-STDERR_TAIL:]
        except OSError as exc:
            lines = [f"(cannot read {process.stderr_path}: {exc})"]
        report.sections.append((f"bbs run {process.root} stderr (last {STDERR_TAIL} lines)", "\n".join(lines)))


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
