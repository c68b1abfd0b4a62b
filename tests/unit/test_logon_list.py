"""data/logon.lst: simultaneous logons each keep their line (the lock)."""
from __future__ import annotations

import threading

from nodes.session import read_last_callers, record_caller


def test_concurrent_logons_all_recorded(tmp_path):
    path = tmp_path / "logon.lst"
    threads = [threading.Thread(target=record_caller, args=(path, {"alias": f"user{n}"})) for n in range(60)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(row["alias"] for row in read_last_callers(path)) == sorted(f"user{n}" for n in range(60))
    assert not list(tmp_path.glob("*.tmp"))


def test_previous_callers_are_returned_oldest_first(tmp_path):
    path = tmp_path / "logon.lst"
    assert record_caller(path, {"alias": "a"}) == []
    record_caller(path, {"alias": "b"})
    assert [row["alias"] for row in record_caller(path, {"alias": "c"})] == ["a", "b"]
