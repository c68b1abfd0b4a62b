"""The FTP server driven by ftplib against a real `bbs run` on 127.0.0.1:
logins and guests, passive and active mode, MLSD, REST, SIZE/MDTM, uploads
into the file base, access requirements, sysop commands, ABOR, AUTH TLS."""
from __future__ import annotations

import asyncio
import ftplib
import ipaddress
import io
import socket
import ssl
from pathlib import Path

import pytest

from bbs.filebase import FileBase
from tests.integration.ftpsupport import (BAD_NAME, DENIED, EXISTS, GUEST_LOGGED_IN, LIBRARY,
                                          LOGGED_IN, LOGIN_INCORRECT, NO_GUEST, NOT_FOUND,
                                          PASSWORD, SYSOP, SYSOP_PASSWORD, TRANSFER_COMPLETE,
                                          USER, add_user, ftp_instance, login, start)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = ftp_instance(tmp_path_factory.mktemp("ftp") / "bbs")
    process = start(root)
    yield process
    process.stop()


@pytest.fixture
def port(server) -> int:
    return server.ports["ftp"]


def file_record(root: Path, dir_code: str, name: str):
    async def main():
        base = FileBase(root / "data" / "file.db")
        await base.open()
        try:
            return await base.get(dir_code, name)
        finally:
            await base.close()
    return asyncio.run(main())


def user_stats(root: Path, name: str) -> str:
    from tests.support import run_bbs
    result = run_bbs("user", "show", name, "-d", str(root))
    assert result.returncode == 0, result.stderr
    return result.stdout


def retr(ftp: ftplib.FTP, path: str, rest: int | None = None) -> bytes:
    out = io.BytesIO()
    ftp.retrbinary(f"RETR {path}", out.write, rest=rest)
    return out.getvalue()


# -- login ---------------------------------------------------------------------

def test_login_with_a_bbs_account(port):
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", port, timeout=15)
    assert ftp.getwelcome().startswith("220 New Python BBS FTP Server ready")
    assert ftp.login(USER, PASSWORD) == LOGGED_IN
    assert ftp.pwd() == "/"
    assert ftp.sendcmd("SYST") == "215 UNIX Type: L8"
    ftp.quit()


def test_wrong_password_is_refused_and_the_third_failure_disconnects(port, server):
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", port, timeout=15)
    for _ in range(2):
        with pytest.raises(ftplib.error_perm, match=LOGIN_INCORRECT):
            ftp.login(USER, "wrong-password")
    with pytest.raises(ftplib.error_perm, match=LOGIN_INCORRECT):
        ftp.login("nosuchuser", "whatever")
    with pytest.raises((EOFError, ConnectionError)):
        ftp.sendcmd("NOOP")
    ftp.close()
    assert "!FAILED login attempt" in (server.root / "data" / "logs" / "bbs.log").read_text()
    assert "wrong-password" not in (server.root / "data" / "logs" / "bbs.log").read_text()


def test_commands_need_a_login(port):
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", port, timeout=15)
    for command in ("LIST", "CWD /Main", "RETR x", "PASV", "SIZE x"):
        with pytest.raises(ftplib.error_perm, match="530 Please log in"):
            ftp.sendcmd(command)
    with pytest.raises(ftplib.error_perm, match="503"):
        ftp.sendcmd("PASS secret")
    ftp.quit()


def test_anonymous_is_refused_without_a_guest_account(port):
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", port, timeout=15)
    with pytest.raises(ftplib.error_perm) as err:
        ftp.login()  # anonymous / anonymous@
    assert str(err.value).startswith(NO_GUEST)
    ftp.quit()


def test_guest_login_when_a_guest_account_exists(tmp_path):
    root = ftp_instance(tmp_path / "bbs")
    add_user(root, "Guest", "guestpass1", "--force")
    process = start(root)
    try:
        port = process.ports["ftp"]
        ftp = ftplib.FTP()
        ftp.connect("127.0.0.1", port, timeout=15)
        assert ftp.sendcmd("USER anonymous").startswith("331 User name okay, give your full e-mail")
        with pytest.raises(ftplib.error_perm, match="530 Guests give their e-mail address"):
            ftp.sendcmd("PASS not-an-address")
        assert ftp.login("anonymous", "caller@example.org") == GUEST_LOGGED_IN
        assert retr(ftp, "/Main/TEXT/readme.txt") == LIBRARY["readme.txt"]
        # file.ini: UPLOADS has upload_ars = NOT GUEST
        with pytest.raises(ftplib.error_perm, match=DENIED):
            ftp.storbinary("STOR /Main/UPLOADS/guest.txt", io.BytesIO(b"hi"))
        with pytest.raises(ftplib.error_perm, match=DENIED):
            ftp.delete("/Main/TEXT/readme.txt")
        ftp.quit()
    finally:
        process.stop()


# -- listings and navigation ------------------------------------------------------

def test_tree_lists_libraries_dirs_and_files(port):
    ftp = login(port)
    assert ftp.nlst() == ["Main"]
    assert ftp.nlst("/Main") == ["UPLOADS", "BBSUTIL", "TEXT"]
    ftp.cwd("/Main/TEXT")
    assert ftp.pwd() == "/Main/TEXT"
    assert sorted(ftp.nlst()) == sorted(LIBRARY)
    lines = []
    ftp.retrlines("LIST", lines.append)
    assert any(line.startswith("-r--r--r-- 1 Sysop") and line.endswith(" faq.txt") for line in lines)
    ftp.cwd("..")
    assert ftp.pwd() == "/Main"
    ftp.sendcmd("CDUP")
    assert ftp.pwd() == "/"
    with pytest.raises(ftplib.error_perm, match=NOT_FOUND):
        ftp.cwd("/Main/NOSUCH")
    with pytest.raises(ftplib.error_perm, match=NOT_FOUND):
        ftp.cwd("/Main/TEXT/readme.txt")
    ftp.quit()


def test_mlsd_and_mlst_facts(port):
    ftp = login(port)
    facts = dict(ftp.mlsd("/Main/TEXT"))
    assert set(facts) == set(LIBRARY)
    assert facts["art.ans"]["type"] == "file"
    assert facts["art.ans"]["size"] == str(len(LIBRARY["art.ans"]))
    assert facts["art.ans"]["perm"] == "r"          # level 10: download only
    dirs = dict(ftp.mlsd("/Main"))
    assert dirs["TEXT"]["type"] == "dir" and dirs["UPLOADS"]["perm"] == "elc"
    assert dirs["BBSUTIL"]["perm"] == "el"           # upload_ars = SYSOP
    reply = ftp.sendcmd("MLST /Main/TEXT/faq.txt")
    assert reply.startswith("250-") and f"size={len(LIBRARY['faq.txt'])};" in reply
    feat = ftp.sendcmd("FEAT")
    for feature in ("AUTH TLS", "EPSV", "MLST type*;size*;modify*;perm*;", "REST STREAM", "UTF8"):
        assert f"\n {feature}" in feat
    ftp.quit()


def test_size_mdtm_and_rest(port):
    ftp = login(port)
    data = LIBRARY["art.ans"]
    assert ftp.size("/Main/TEXT/art.ans") == len(data)
    assert ftp.sendcmd("MDTM /Main/TEXT/art.ans").startswith("213 20")
    assert retr(ftp, "/Main/TEXT/art.ans", rest=1000) == data[1000:]
    assert retr(ftp, "/Main/TEXT/art.ans", rest=len(data)) == b""
    with pytest.raises(ftplib.error_perm, match="554"):
        retr(ftp, "/Main/TEXT/art.ans", rest=len(data) + 1)
    with pytest.raises(ftplib.error_perm, match=NOT_FOUND):
        ftp.size("/Main/TEXT")
    ftp.quit()


@pytest.mark.parametrize("passive", [True, False], ids=["passive", "active"])
def test_download_passive_and_active(port, passive):
    ftp = login(port)
    ftp.set_pasv(passive)
    for name, data in LIBRARY.items():
        assert retr(ftp, f"/Main/TEXT/{name}") == data
    assert sorted(ftp.nlst("/Main/TEXT")) == sorted(LIBRARY)
    ftp.quit()


def test_eprt_and_epsv(port):
    ftp = login(port)
    ftp.af = socket.AF_INET6  # makes ftplib use EPSV/EPRT over our IPv4 connection
    ftp.set_pasv(True)
    assert retr(ftp, "/Main/TEXT/faq.txt") == LIBRARY["faq.txt"]
    ftp.set_pasv(False)
    ftp.af = socket.AF_INET
    with socket.create_server(("127.0.0.1", 0)) as sock:
        host, data_port = sock.getsockname()
        assert ftp.sendcmd(f"EPRT |1|{host}|{data_port}|") == "200 PORT command successful."
    with pytest.raises(ftplib.error_perm, match=r"522 .* use \(1\)"):
        ftp.sendcmd("EPSV 2")
    ftp.quit()


# -- uploads --------------------------------------------------------------------

def test_upload_is_listed_recorded_and_credited(port, server):
    ftp = login(port)
    ftp.sendcmd("SITE DESC A fine test upload")
    payload = b"upload body\n" * 5000
    assert ftp.storbinary("STOR /Main/UPLOADS/fine.txt", io.BytesIO(payload)) == TRANSFER_COMPLETE
    ftp.quit()
    other = login(port, SYSOP, SYSOP_PASSWORD)     # another user sees it at once
    assert "fine.txt" in other.nlst("/Main/UPLOADS")
    assert retr(other, "/Main/UPLOADS/fine.txt") == payload
    other.quit()
    record = file_record(server.root, "UPLOADS", "fine.txt")
    assert (record.uploader, record.size, record.description) == (USER, len(payload), "A fine test upload")
    assert record.downloads == 1
    stats = user_stats(server.root, USER)
    assert "Uploads:" in stats and str(len(payload)) in stats
    assert not [p for p in (server.root / "files/main/uploads").iterdir() if p.name.startswith(".")]


def test_upload_of_a_zip_takes_its_file_id_diz(port, server):
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("FILE_ID.DIZ", "Door kit v1.0\r\nfor testing")
        archive.writestr("door.exe", b"MZ" * 100)
    ftp = login(port)
    ftp.storbinary("STOR /Main/UPLOADS/doorkit.zip", io.BytesIO(buf.getvalue()))
    ftp.quit()
    assert file_record(server.root, "UPLOADS", "doorkit.zip").description == "Door kit v1.0\r\nfor testing"


def test_upload_rules(port):
    ftp = login(port)
    with pytest.raises(ftplib.error_perm, match=DENIED):      # BBSUTIL: upload_ars = SYSOP
        ftp.storbinary("STOR /Main/BBSUTIL/x.zip", io.BytesIO(b"x"))
    with pytest.raises(ftplib.error_perm, match=DENIED):      # TEXT: upload_ars = LEVEL 20
        ftp.storbinary("STOR /Main/UPLOADS/../TEXT/new.txt", io.BytesIO(b"x"))
    boss = login(port, SYSOP, SYSOP_PASSWORD)
    boss.storbinary("STOR /Main/UPLOADS/boss.txt", io.BytesIO(b"boss"))
    boss.quit()
    with pytest.raises(ftplib.error_perm, match=EXISTS):      # another user's file
        ftp.storbinary("STOR /Main/UPLOADS/BOSS.TXT", io.BytesIO(b"x"))
    ftp.storbinary("STOR /Main/UPLOADS/mine.txt", io.BytesIO(b"one"))
    ftp.storbinary("STOR /Main/UPLOADS/mine.txt", io.BytesIO(b"two"))  # own file: replaced
    assert retr(ftp, "/Main/UPLOADS/mine.txt") == b"two"
    ftp.storbinary("APPE /Main/UPLOADS/mine.txt", io.BytesIO(b"three"))
    assert retr(ftp, "/Main/UPLOADS/mine.txt") == b"twothree"
    ftp.storbinary("STOR /Main/UPLOADS/mine.txt", io.BytesIO(b"XX"), rest=3)
    assert retr(ftp, "/Main/UPLOADS/mine.txt") == b"twoXX"
    with pytest.raises(ftplib.error_perm, match="553"):
        ftp.storbinary("STOR /Main", io.BytesIO(b"x"))
    reply = ftp.sendcmd("TYPE I")
    assert reply == "200 Type set to I."
    conn = ftp.transfercmd("STOU /Main/UPLOADS/mine.txt")
    conn.sendall(b"unique")
    conn.close()
    assert ftp.voidresp().startswith("226")
    assert retr(ftp, "/Main/UPLOADS/mine.txt.1") == b"unique"
    with pytest.raises(ftplib.error_perm, match=DENIED):      # DELE/RNFR: sysop only
        ftp.delete("/Main/UPLOADS/mine.txt")
    with pytest.raises(ftplib.error_perm, match=DENIED):
        ftp.rename("/Main/UPLOADS/mine.txt", "other.txt")
    ftp.quit()


def test_aborted_upload_leaves_nothing_listed(port, server):
    ftp = login(port)
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("STOR /Main/UPLOADS/half.bin")
    conn.sendall(b"x" * 100_000)
    assert ftp.abort() == "426 Transfer aborted."
    assert ftp.voidresp() == "226 ABOR successful."
    conn.close()
    assert "half.bin" not in ftp.nlst("/Main/UPLOADS")
    ftp.quit()
    folder = server.root / "files/main/uploads"
    assert not [p for p in folder.iterdir() if "half.bin" in p.name]
    assert file_record(server.root, "UPLOADS", "half.bin") is None


def test_sysop_can_delete_and_rename(port, server):
    ftp = login(port, SYSOP, SYSOP_PASSWORD)
    ftp.storbinary("STOR /Main/BBSUTIL/tool.zip", io.BytesIO(b"tool"))
    assert ftp.sendcmd("RNFR /Main/BBSUTIL/tool.zip").startswith("350")
    assert ftp.sendcmd("RNTO /Main/UPLOADS/tool2.zip") == "250 Rename successful."
    assert file_record(server.root, "UPLOADS", "tool2.zip").uploader == SYSOP
    assert file_record(server.root, "BBSUTIL", "tool.zip") is None
    assert ftp.delete("/Main/UPLOADS/tool2.zip") == "250 File deleted."
    assert file_record(server.root, "UPLOADS", "tool2.zip") is None
    assert not (server.root / "files/main/uploads/tool2.zip").exists()
    with pytest.raises(ftplib.error_perm, match="550 Directories are defined in ctrl/file.ini"):
        ftp.mkd("/Main/NEW")
    ftp.quit()


def test_abor_during_a_download(port, server):
    big = b"z" * (32 * 1024 * 1024)
    folder = server.root / "files/main/uploads"
    ftp = login(port)
    ftp.storbinary("STOR /Main/UPLOADS/big.bin", io.BytesIO(big))
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("RETR /Main/UPLOADS/big.bin")
    assert conn.recv(1024)
    assert ftp.abort() == "426 Transfer aborted."  # 32 MB do not fit in the socket buffers
    assert ftp.voidresp() == "226 ABOR successful."
    conn.close()
    assert ftp.sendcmd("NOOP") == "200 NOOP ok."
    ftp.quit()
    assert (folder / "big.bin").stat().st_size == len(big)


# -- active mode safety and passive configuration -------------------------------------

def test_port_to_a_third_party_or_privileged_port_is_refused(port):
    ftp = login(port)
    for command in ("PORT 192,0,2,1,200,0", "PORT 127,0,0,1,0,21", "EPRT |1|192.0.2.1|51200|"):
        with pytest.raises(ftplib.error_perm, match="504"):
            ftp.sendcmd(command)
    with pytest.raises(ftplib.error_perm, match="501"):
        ftp.sendcmd("PORT 1,2,3")
    ftp.quit()


def test_pasv_reply_shows_pasv_ip_address_and_port_range(tmp_path):
    with socket.socket() as probe:                     # a free range of 5 ports
        probe.bind(("127.0.0.1", 0))
        low = min(probe.getsockname()[1], 65000)
    root = ftp_instance(tmp_path / "bbs", PasvIpAddress="192.0.2.10", PasvPortLow=str(low),
                        PasvPortHigh=str(low + 4))
    process = start(root)
    try:
        ftp = login(process.ports["ftp"])
        for _ in range(3):
            reply = ftp.sendcmd("PASV")
            assert reply.startswith("227 Entering Passive Mode (192,0,2,10,")
            numbers = reply.split("(")[1].split(")")[0].split(",")
            assert low <= int(numbers[4]) * 256 + int(numbers[5]) <= low + 4
        epsv = ftp.sendcmd("EPSV")
        assert low <= int(epsv.split("|||")[1].split("|")[0]) <= low + 4
        ftp.quit()
    finally:
        process.stop()


def test_lookup_pasv_ip_advertises_the_hostname_address(tmp_path):
    root = ftp_instance(tmp_path / "bbs", Hostname="192.0.2.77", Options="LOOKUP_PASV_IP | DEBUG_DATA")
    process = start(root)
    try:
        ftp = login(process.ports["ftp"])
        assert ftp.sendcmd("PASV").startswith("227 Entering Passive Mode (192,0,2,77,")
        ftp.quit()
    finally:
        process.stop()
    assert "PASV: listening on 127.0.0.1 port" in (root / "data" / "logs" / "bbs.log").read_text()


def _lpsv(reply: str) -> tuple[str, int]:
    """(address, port) of an RFC 1639 228 reply."""
    assert reply.startswith("228 Entering Long Passive Mode ("), reply
    fields = [int(n) for n in reply.split("(")[1].split(")")[0].split(",")]
    family, length = fields[0], fields[1]
    packed = bytes(fields[2:2 + length])
    assert (family, length, fields[2 + length]) in ((4, 4, 2), (6, 16, 2))
    port = fields[3 + length] * 256 + fields[4 + length]
    return str(ipaddress.ip_address(packed)), port


@pytest.mark.parametrize("configured", ["2001:db8::21", ""], ids=["PasvIp6Address", "unset"])
def test_lpsv_over_ipv6_advertises_pasv_ip6_address_or_the_local_one(tmp_path, configured):
    root = ftp_instance(tmp_path / "bbs", Interface="::1", PasvIp6Address=configured,
                        PasvIpAddress="192.0.2.10", Options="DEBUG_DATA")
    process = start(root)
    try:
        ftp = ftplib.FTP()
        ftp.connect("::1", process.ports["ftp"], timeout=15)
        ftp.login(USER, PASSWORD)
        with pytest.raises(ftplib.error_temp, match="425 PASV is for IPv4"):
            ftp.sendcmd("PASV")
        ftp.voidcmd("TYPE I")
        ftp.cwd("/Main/TEXT")
        address, port = _lpsv(ftp.sendcmd("LPSV"))
        assert address == (configured or "::1")
        with socket.create_connection(("::1", port), timeout=15) as data:  # the NAT's job, done by hand
            ftp.sendcmd("RETR art.ans")
            received = b""
            while chunk := data.recv(65536):
                received += chunk
        assert received == LIBRARY["art.ans"]
        assert ftp.voidresp().startswith("226")
        ftp.quit()
    finally:
        process.stop()
    assert "LPSV: listening on ::1 port" in (root / "data" / "logs" / "bbs.log").read_text()


# -- FTPS ------------------------------------------------------------------------

def test_auth_tls_with_private_data(port):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    ftp = ftplib.FTP_TLS(context=context)
    ftp.connect("127.0.0.1", port, timeout=15)
    with pytest.raises(ftplib.error_perm, match="503"):
        ftp.sendcmd("PROT P")                          # PBSZ and AUTH first
    ftp.auth()
    assert isinstance(ftp.sock, ssl.SSLSocket)
    ftp.login(USER, PASSWORD)
    assert ftp.prot_p().startswith("200")
    assert retr(ftp, "/Main/TEXT/art.ans") == LIBRARY["art.ans"]
    ftp.storbinary("STOR /Main/UPLOADS/secret.txt", io.BytesIO(b"private"))
    assert retr(ftp, "/Main/UPLOADS/secret.txt") == b"private"
    assert "Control connection: TLS; data connections: private" in ftp.sendcmd("STAT")
    ftp.quit()


def test_bad_input_gets_errors_not_a_crash(port, server):
    ftp = login(port)
    with pytest.raises(ftplib.error_perm, match="502"):
        ftp.sendcmd("XYZZY")
    with pytest.raises(ftplib.error_perm, match="501"):
        ftp.sendcmd("CWD")
    with pytest.raises(ftplib.error_perm, match="500"):
        ftp.sendcmd("NOOP " + "x" * 5000)
    assert ftp.sendcmd("NOOP") == "200 NOOP ok."
    assert ftp.sendcmd("OPTS UTF8 ON").startswith("200")
    assert ftp.sendcmd("HELP").startswith("214")
    ftp.quit()
    assert "Traceback" not in server.stderr()


def test_options_index_file_dir_files_and_max_file_size(tmp_path):
    root = ftp_instance(tmp_path / "bbs", Options="INDEX_FILE | DIR_FILES", MaxFileSize="1K",
                        MaxInactivity="3")
    (root / "files/main/text/unlisted.txt").write_bytes(b"placed by the sysop, not in the file base")
    process = start(root)
    try:
        ftp = login(process.ports["ftp"])
        names = ftp.nlst("/Main/TEXT")
        assert names[0] == "00index" and "unlisted.txt" in names        # DIR_FILES shows it
        index = retr(ftp, "/Main/TEXT/00index").decode()
        assert "readme.txt" in index and "about readme.txt" in index
        assert ftp.size("/Main/TEXT/00index") == len(index.encode())
        with pytest.raises(ftplib.error_perm, match=BAD_NAME):
            ftp.storbinary("STOR /Main/UPLOADS/00index", io.BytesIO(b"x"))
        with pytest.raises(ftplib.error_perm, match="552"):
            ftp.storbinary("STOR /Main/UPLOADS/big.bin", io.BytesIO(b"x" * 5000))
        assert "big.bin" not in ftp.nlst("/Main/UPLOADS")
        ftp.storbinary("STOR /Main/UPLOADS/small.bin", io.BytesIO(b"x" * 1000))
        # MaxInactivity = 3 s: an idle control connection is closed with 421
        assert ftp.getline().startswith("421 Inactivity time-out")
        ftp.close()
    finally:
        process.stop()
    assert not [p for p in (root / "files/main/uploads").iterdir() if p.name != "small.bin"]
