"""Gopher (RFC 1436) with curl against `bbs run`: menus, messages, file
download, requirements, path tricks and bad selectors."""
from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from tests.integration.test_nntp import seed
from tests.integration.test_services import add_user
from tests.support import BBSProcess


def curl(port: int, path: str) -> bytes:
    result = subprocess.run(["curl", "-s", "--max-time", "10", f"gopher://127.0.0.1:{port}{path}"],
                            capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


def menu(data: bytes) -> list[list[str]]:
    lines = data.decode().split("\r\n")
    assert lines[-2:] == [".", ""]
    return [line.split("\t") for line in lines[:-2]]


@pytest.fixture
def gopher_bbs(instance: Path):
    (instance / "data").mkdir(exist_ok=True)
    seed(instance)
    (instance / "files" / "main" / "text").mkdir(parents=True, exist_ok=True)
    (instance / "files" / "main" / "text" / "towel.txt").write_bytes(b"A towel is about the most massively useful thing.\n")
    (instance / "files" / "main" / "uploads").mkdir(parents=True, exist_ok=True)
    (instance / "files" / "main" / "uploads" / "secret.zip").write_bytes(b"PK\x03\x04")
    process = BBSProcess(instance).start()
    yield process
    if process.proc.poll() is None:
        assert process.stop() == 0
    assert "Traceback" not in process.stderr()


def test_menus_and_messages(gopher_bbs: BBSProcess):
    port = gopher_bbs.ports["gopher"]
    root = menu(curl(port, "/"))
    assert root[0][0] == "iNew Python BBS"
    assert ["1Message areas", "/msgs", "localhost", str(port)] in root
    groups = menu(curl(port, "/1/msgs"))
    assert [g[0] for g in groups] == ["1Local message areas", "1Games and chatter"]
    subs = menu(curl(port, "/1/msgs/Local"))
    assert ["1General - General discussion", "/msgs/Local/GENERAL", "localhost", str(port)] in subs
    listing = menu(curl(port, "/1/msgs/Local/GENERAL"))
    assert listing[0][0] == "iGeneral: 2 message(s)"
    assert listing[1][0].startswith("0Re: Where is my towel? (Ford, ") and listing[1][1] == "/msgs/Local/GENERAL/2"
    text = curl(port, "/0/msgs/Local/GENERAL/1").decode()
    assert "Subject: Where is my towel?\r\nFrom: Arthur\r\n" in text
    assert "Has anyone seen it?\r\n..hidden dot\r\n.\r\n" in text        # dot-stuffed text item
    assert "Nobody is online." in curl(port, "/0/who").decode()


def test_files_download_and_requirements(gopher_bbs: BBSProcess):
    port = gopher_bbs.ports["gopher"]
    dirs = menu(curl(port, "/1/files/Main"))
    assert ["1Text Files - Articles, FAQs and ANSI art", "/files/Main/TEXT", "localhost", str(port)] in dirs
    files = menu(curl(port, "/1/files/Main/TEXT"))
    assert files[1][:2] == ["9towel.txt (50 bytes)", "/files/Main/TEXT/towel.txt"]
    assert curl(port, "/9/files/Main/TEXT/towel.txt") == b"A towel is about the most massively useful thing.\n"
    # UPLOADS needs LEVEL 10 to download: an anonymous (no Guest account) caller may not.
    assert curl(port, "/9/files/Main/UPLOADS/secret.zip").startswith(b"3Access denied")


def test_guest_account_level_opens_downloads(gopher_bbs: BBSProcess):
    add_user(gopher_bbs.root, "Guest")                  # level 10
    port = gopher_bbs.ports["gopher"]
    assert curl(port, "/9/files/Main/UPLOADS/secret.zip") == b"PK\x03\x04"


@pytest.mark.parametrize("selector", [
    "/files/Main/TEXT/../../../ctrl/sbbs.ini", "/files/Main/TEXT/..", "/files/Main/TEXT/%2e%2e%2fsbbs.ini",
    "/files/Main/TEXT//etc/passwd", "/files/Main/NOPE/x", "/msgs/Local/GENERAL/999", "/nothing/here",
])
def test_unknown_and_escaping_selectors_are_not_found(gopher_bbs: BBSProcess, selector: str):
    with socket.create_connection(("127.0.0.1", gopher_bbs.ports["gopher"]), timeout=10) as sock:
        sock.sendall(selector.encode() + b"\r\n")
        data = sock.makefile("rb").read()
    assert data.startswith(b"3Not found") or data.startswith(b"3Access denied")
    assert b"[BBS]" not in data and b"root:" not in data


def test_bad_input_keeps_the_service_up(gopher_bbs: BBSProcess):
    port = gopher_bbs.ports["gopher"]
    for payload in (b"\x00\xff\xfe binary\r\n", b"x" * 100_000 + b"\r\n"):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(payload)
            assert sock.makefile("rb").read().startswith(b"3Invalid selector")
    assert menu(curl(port, "/"))[0][0] == "iNew Python BBS"
