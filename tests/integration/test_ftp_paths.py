"""The path-escape matrix: nothing outside a dir's folder is reachable over
FTP (``..``, absolute paths, symlinks, NUL, backslashes, hidden files,
encoded tricks), with ftplib and curl against a real `bbs run`."""
from __future__ import annotations

import ftplib
import io
import os
import subprocess

import pytest

from tests.integration.ftpsupport import LIBRARY, ftp_instance, login, start

SECRET = b"root:x:0:0:the secret outside\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("ftppaths")
    outside = base / "outside"
    outside.mkdir()
    (outside / "passwd").write_bytes(SECRET)
    root = ftp_instance(base / "bbs")
    text = root / "files/main/text"
    os.symlink(outside / "passwd", text / "link.txt")        # a symlink out of the folder
    os.symlink(text / "readme.txt", text / "inside.txt")      # even to a file inside
    os.symlink(outside, text / "sub")                         # a directory symlink
    (text / ".hidden").write_bytes(SECRET)
    (root / "files/main/uploads").mkdir(parents=True, exist_ok=True)
    os.symlink(outside, root / "files/main/uploads/out")
    process = start(root)
    yield process
    process.stop()


ESCAPES = [
    "../../../../etc/passwd",
    "/../../etc/passwd",
    "/etc/passwd",
    "/Main/TEXT/../../../ctrl/sbbs.ini",
    "/Main/TEXT/../../data/user.db",
    "//etc//passwd",
    "/Main/TEXT/link.txt",
    "/Main/TEXT/inside.txt",
    "/Main/TEXT/sub/passwd",
    "/Main/TEXT/sub",
    "/Main/TEXT/.hidden",
    "/Main/TEXT/..\\..\\..\\ctrl\\sbbs.ini",
    "/Main/TEXT/%2e%2e/%2e%2e/ctrl/sbbs.ini",
    "/Main/TEXT/readme.txt/../../../../etc/passwd",
    "/Main/TEXT/readme.txt/x",
    "/Main/UPLOADS/out/passwd",
    "~root/.ssh/id_rsa",
    "/Main/TEXT/" + "a" * 300,
]


@pytest.mark.parametrize("path", ESCAPES)
def test_escape_attempts_are_refused(server, path):
    ftp = login(server.ports["ftp"])
    try:
        for command in ("RETR", "SIZE", "MDTM", "MLST", "CWD"):
            with pytest.raises(ftplib.error_perm) as err:
                if command == "RETR":
                    ftp.retrbinary(f"RETR {path}", lambda data: pytest.fail(f"got data {data!r}"))
                else:
                    ftp.sendcmd(f"{command} {path}")
            assert str(err.value)[:3] in ("550", "553"), (command, str(err.value))
        assert ftp.pwd() == "/"
    finally:
        ftp.close()


def test_nul_and_undecodable_bytes_are_refused(server):
    ftp = login(server.ports["ftp"])
    try:
        ftp.sock.sendall(b"RETR /Main/TEXT/readme.txt\0../../etc/passwd\r\n")
        assert ftp.getline().startswith("501")
        ftp.sock.sendall(b"CWD /Main/TEXT\xff\xff\r\n")      # IAC IAC is a literal 0xFF
        assert ftp.getline().startswith("550")
        ftp.sock.sendall(b"SIZE /Main/TEXT/\xc3\x28readme.txt\r\n")  # not UTF-8
        assert ftp.getline().startswith("553")
    finally:
        ftp.close()


def test_symlinks_and_hidden_files_are_not_listed(server):
    ftp = login(server.ports["ftp"])
    try:
        assert sorted(ftp.nlst("/Main/TEXT")) == sorted(LIBRARY)
        assert ftp.nlst("/Main/UPLOADS") == [] or "out" not in ftp.nlst("/Main/UPLOADS")
        lines: list[str] = []
        ftp.retrlines("LIST /Main/TEXT/../..", lines.append)   # ".." stops at "/"
        assert lines and lines[0].endswith(" Main")
    finally:
        ftp.close()


def test_uploads_cannot_escape_or_replace_symlinks(server):
    ftp = login(server.ports["ftp"])
    try:
        for target in ("/Main/UPLOADS/../../../../tmp/evil", "/Main/UPLOADS/out/evil",
                       "/Main/UPLOADS/.evil", "/Main/UPLOADS/out", "/Main/UPLOADS/a\\b"):
            with pytest.raises(ftplib.error_perm) as err:
                ftp.storbinary(f"STOR {target}", io.BytesIO(b"evil"))
            assert str(err.value)[:3] in ("550", "553"), (target, str(err.value))
        assert not (server.root.parent / "outside" / "evil").exists()
    finally:
        ftp.close()


def test_curl_url_tricks_are_refused(server):
    base = f"ftp://alice:secret12@127.0.0.1:{server.ports['ftp']}"
    for url in (f"{base}/Main/TEXT/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                f"{base}/%2Fetc/passwd",
                f"{base}/Main/TEXT/link.txt",
                f"{base}/Main/TEXT/..%2F..%2F..%2Fetc%2Fpasswd"):
        result = subprocess.run(["curl", "-sS", "--max-time", "20", url], capture_output=True, timeout=30)
        assert result.returncode != 0, url
        assert SECRET not in result.stdout
