"""Real FTP clients against a real `bbs run`: curl (ftp://, explicit FTPS with
--ssl-reqd, implicit FTPS on a TLS listener, upload, download, resume with
-C -) and lftp (mirror a library, FTPS)."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.ftpsupport import LIBRARY, PASSWORD, USER, ftp_instance, start
from tests.support import set_ini

CURL_TIMEOUT = 60


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = ftp_instance(tmp_path_factory.mktemp("ftpclients") / "bbs")
    sbbs = root / "ctrl" / "sbbs.ini"
    for key, value in (("Service", "ftp"), ("Port", "0"), ("TLS", "on")):
        set_ini(sbbs, "Listener:ftps", key, value)
    process = start(root)
    rows = json.loads((root / "data" / "listeners.json").read_text())["listeners"]
    process.implicit_port = next(r["port"] for r in rows if r["service"] == "ftp" and r["tls"] == "on")
    process.plain_port = next(r["port"] for r in rows if r["service"] == "ftp" and r["tls"] == "off")
    yield process
    process.stop()


def curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--max-time", str(CURL_TIMEOUT), "-u", f"{USER}:{PASSWORD}", *args],
                          capture_output=True, timeout=CURL_TIMEOUT + 10)


def url(server, path: str, scheme: str = "ftp") -> str:
    port = server.implicit_port if scheme == "ftps" else server.plain_port
    return f"{scheme}://127.0.0.1:{port}{path}"


def test_curl_lists_and_downloads(server):
    result = curl(url(server, "/Main/TEXT/"))
    assert result.returncode == 0, result.stderr
    names = [line.split()[-1] for line in result.stdout.decode().splitlines()]
    assert sorted(names) == sorted(LIBRARY)
    result = curl("--list-only", url(server, "/"))
    assert result.stdout.decode().split() == ["Main"]
    for name, data in LIBRARY.items():
        result = curl(url(server, f"/Main/TEXT/{name}"))
        assert result.returncode == 0 and result.stdout == data


def test_curl_upload_then_download(server, tmp_path):
    local = tmp_path / "upload.bin"
    local.write_bytes(bytes(range(256)) * 4000)
    result = curl("-T", str(local), url(server, "/Main/UPLOADS/curl-up.bin"))
    assert result.returncode == 0, result.stderr
    assert curl(url(server, "/Main/UPLOADS/curl-up.bin")).stdout == local.read_bytes()


@pytest.mark.parametrize("scheme", ["explicit", "implicit"])
def test_curl_ftps(server, tmp_path, scheme):
    target = url(server, "/Main/UPLOADS/", "ftps" if scheme == "implicit" else "ftp")
    extra = ["--ssl-reqd", "-k"]
    local = tmp_path / "tls.bin"
    local.write_bytes(b"over TLS\n" * 100_000)
    result = curl(*extra, "-v", "-T", str(local), target + f"tls-{scheme}.bin")
    assert result.returncode == 0, result.stderr
    log = result.stderr.decode(errors="replace")
    assert "SSL connection using TLSv1.3" in log or "SSL connection using TLSv1.2" in log
    if scheme == "explicit":
        assert "AUTH " in log and "PROT P" in log
    result = curl(*extra, target + f"tls-{scheme}.bin")
    assert result.returncode == 0 and result.stdout == local.read_bytes()
    # --ssl-reqd against a server that never offers TLS would fail: the
    # plain listener does offer AUTH TLS, and the implicit one is TLS at once.
    result = curl(*extra, target)
    assert f"tls-{scheme}.bin" in result.stdout.decode()


def test_curl_resumes_a_download(server, tmp_path):
    data = LIBRARY["art.ans"]
    partial = tmp_path / "art.ans"
    partial.write_bytes(data[:3000])
    result = curl("-v", "-C", "-", "-o", str(partial), url(server, "/Main/TEXT/art.ans"))
    assert result.returncode == 0, result.stderr
    assert b"REST 3000" in result.stderr
    assert partial.read_bytes() == data


def test_curl_resumes_an_upload(server, tmp_path):
    local = tmp_path / "resume.bin"
    local.write_bytes(b"0123456789" * 50_000)
    first = tmp_path / "first.bin"
    first.write_bytes(local.read_bytes()[:123_456])
    assert curl("-T", str(first), url(server, "/Main/UPLOADS/resume.bin")).returncode == 0
    result = curl("-v", "-C", "-", "-T", str(local), url(server, "/Main/UPLOADS/resume.bin"))
    assert result.returncode == 0, result.stderr
    assert b"APPE resume.bin" in result.stderr
    assert curl(url(server, "/Main/UPLOADS/resume.bin")).stdout == local.read_bytes()
    assert (server.root / "files/main/uploads/resume.bin").stat().st_size == len(local.read_bytes())


def test_curl_anonymous_without_guest_account_is_refused(server):
    result = subprocess.run(["curl", "-sS", "--max-time", "20", url(server, "/")], capture_output=True, timeout=30)
    assert result.returncode == 67                    # CURLE_LOGIN_DENIED
    assert b"530" in result.stderr


@pytest.mark.skipif(shutil.which("lftp") is None, reason="lftp not installed (.ci/run installs it)")
@pytest.mark.parametrize("tls", [False, True], ids=["ftp", "ftps"])
def test_lftp_mirrors_a_library(server, tmp_path, tls):
    target = tmp_path / "mirror"
    settings = ("set ftp:ssl-force true; set ftp:ssl-protect-data true; set ssl:verify-certificate no;"
                if tls else "set ftp:ssl-allow false;")
    script = (f"set net:max-retries 1; set net:timeout 20; {settings} "
              f"open -u {USER},{PASSWORD} ftp://127.0.0.1:{server.plain_port}; "
              f"mirror /Main {target}; bye")
    result = subprocess.run(["lftp", "-c", script], capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr
    mirrored = target / "TEXT"
    assert {p.name: p.read_bytes() for p in mirrored.iterdir()} == LIBRARY
    assert {p.name for p in target.iterdir()} == {"UPLOADS", "BBSUTIL", "TEXT"}


@pytest.mark.skipif(shutil.which("lftp") is None, reason="lftp not installed (.ci/run installs it)")
def test_lftp_reverse_mirror_uploads(server, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    files = {"one.txt": b"1" * 1000, "two.txt": b"2" * 70_000}
    for name, data in files.items():
        (source / name).write_bytes(data)
    script = (f"set net:max-retries 1; set net:timeout 20; set ftp:ssl-allow false; "
              f"open -u {USER},{PASSWORD} ftp://127.0.0.1:{server.plain_port}; "
              f"mirror -R {source} /Main/UPLOADS; bye")
    result = subprocess.run(["lftp", "-c", script], capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for name, data in files.items():
        assert (server.root / "files/main/uploads" / name).read_bytes() == data
