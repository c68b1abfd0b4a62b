"""FTP without sockets: command parsing, telnet stripping, PORT/EPRT,
reply formats, listings, and the virtual tree's path rules."""
from __future__ import annotations

import asyncio
import os
from pathlib import Path

import dns.asyncresolver
import dns.message
import dns.rrset
import pytest

from bbs.ars import AccessContext, parse_ars
from bbs.boardconf import FileAreas, FileDir, FileLib
from bbs.errors import BBSError, Reason
from ftp import commands as proto
from ftp.commands import CommandError, Entry, parse_command
from ftp.server import PasvLookup, reply_for
from ftp.vfs import VFS, Kind, normalize, real_file
from tests.support import run_async


# -- parsing ---------------------------------------------------------------------

@pytest.mark.parametrize("line, verb, arg", [
    (b"USER alice\r\n", "USER", "alice"),
    (b"user alice\n", "USER", "alice"),
    (b"PASS  spaced secret \r\n", "PASS", " spaced secret "),     # passwords kept as sent
    (b"RETR my file.txt \r\n", "RETR", "my file.txt "),           # trailing space is part of the name
    (b"LIST\r\n", "LIST", ""),
    (b"LIST -la\r\n", "LIST", "-la"),
    (b"XPWD\r\n", "PWD", ""),
    (b"XCUP\r\n", "CDUP", ""),
    (b"\xff\xf4\xff\xf2ABOR\r\n", "ABOR", ""),                     # IAC IP IAC DM before ABOR
    (b"\xff\xf4\xffABOR\r\n", "ABOR", ""),                         # DM went out of band
    (b"CWD caf\xc3\xa9\r\n", "CWD", "café"),
    (b"CWD a\xff\xffb\r\n", "CWD", "a\udcffb"),                    # IAC IAC is a literal 0xFF
])
def test_parse_command(line, verb, arg):
    command = parse_command(line)
    assert (command.verb, command.arg) == (verb, arg)
    assert command.spec is proto.COMMANDS[verb]


@pytest.mark.parametrize("line, code", [
    (b"\r\n", 500), (b"   \r\n", 500), (b"XYZZY\r\n", 502), (b"RETR\r\n", 501), (b"RETR   \r\n", 501),
    (b"PWD extra\r\n", 501), (b"RETR a\0b\r\n", 501), (b"NOOP " + b"x" * 5000 + b"\r\n", 500),
])
def test_parse_errors(line, code):
    with pytest.raises(CommandError) as err:
        parse_command(line)
    assert err.value.code == code


def test_every_verb_has_a_handler_and_help():
    from ftp.session import Session
    for verb, spec in proto.COMMANDS.items():
        assert callable(getattr(Session, f"ftp_{verb}")), verb
        assert spec.help
    assert proto.help_text("retr") == [proto.COMMANDS["RETR"].help]
    assert any("RETR" in line for line in proto.help_text())


def test_strip_telnet():
    assert proto.strip_telnet(b"plain") == b"plain"
    assert proto.strip_telnet(b"a\xff\xfb\x01b") == b"ab"          # IAC WILL ECHO
    assert proto.strip_telnet(b"a\xff\xff") == b"a\xff"
    assert proto.strip_telnet(b"a\xff") == b"a"


@pytest.mark.parametrize("arg, expected", [
    ("127,0,0,1,4,1", ("127.0.0.1", 1025)), (" 10,1,2,3,255,255 ", ("10.1.2.3", 65535)),
])
def test_parse_port(arg, expected):
    assert proto.parse_port(arg) == expected


@pytest.mark.parametrize("arg", ["1,2,3,4,5", "1,2,3,4,5,6,7", "256,0,0,1,4,1", "a,b,c,d,e,f",
                                 "127,0,0,1,0,0", "-1,0,0,1,4,1", "1,2,3,4,0005,6"])
def test_parse_port_errors(arg):
    with pytest.raises(ValueError):
        proto.parse_port(arg)


@pytest.mark.parametrize("arg, expected", [
    ("|1|132.235.1.2|6275|", ("132.235.1.2", 6275)),
    ("|2|::1|5282|", ("::1", 5282)),
    ("!2!1080::8:800:200C:417A!5282!", ("1080::8:800:200c:417a", 5282)),
])
def test_parse_eprt(arg, expected):
    assert proto.parse_eprt(arg) == expected


@pytest.mark.parametrize("arg", ["|3|1.2.3.4|1|", "|1|::1|1|", "|2|1.2.3.4|1|", "|1|1.2.3.4|0|",
                                 "|1|1.2.3.4|70000|", "|1|1.2.3.4|x|", "1|1.2.3.4|1|", "|1|1.2.3.4|1", " "])
def test_parse_eprt_errors(arg):
    with pytest.raises(ValueError):
        proto.parse_eprt(arg)


def test_replies():
    assert proto.pasv_reply("192.0.2.10", 1025) == "Entering Passive Mode (192,0,2,10,4,1)."
    assert proto.epsv_reply(40000) == "Entering Extended Passive Mode (|||40000|)."
    # RFC 1639's own example, and an IPv6 address (af 6, 16 address bytes).
    assert proto.lpsv_reply("132.235.1.2", 6156) == "Entering Long Passive Mode (4,4,132,235,1,2,2,24,12)."
    assert proto.lpsv_reply("2001:db8::1", 1025) == (
        "Entering Long Passive Mode (6,16,32,1,13,184,0,0,0,0,0,0,0,0,0,0,0,1,2,4,1).")
    assert proto.mdtm(0) == "19700101000000"
    assert reply_for(BBSError(Reason.NOT_FOUND)) == (550, "No such file or directory.")
    assert reply_for(BBSError(Reason.STORAGE))[0] == 451


def test_listing_formats():
    now = 1_700_000_000.0
    entry = Entry("a file.zip", False, size=1234, mtime=now - 3600, perm="r", owner="Some User")
    line = proto.list_line(entry, now)
    assert line.startswith("-r--r--r-- 1 Some_User")
    assert line.endswith(" 1234 Nov 14 21:13 a file.zip")
    old = proto.list_line(Entry("x", False, mtime=0.0), now)
    assert " Jan  1  1970 x" in old
    assert proto.list_line(Entry("UPLOADS", True, perm="elc"), now).startswith("drwxr-xr-x")
    facts = proto.mlst_facts(entry)
    assert facts == "type=file;size=1234;modify=20231114211320;perm=r; a file.zip"
    assert proto.mlst_facts(Entry("D", True, perm="el")).startswith("type=dir;modify=")
    index = proto.index_text([entry, Entry("sub", True)]).decode()
    assert index.startswith("a file.zip") and "1234 2023-11-14" in index and "sub" not in index


# -- the virtual tree ---------------------------------------------------------------

@pytest.mark.parametrize("cwd, arg, parts", [
    ("/", "Main", ("Main",)),
    ("/Main", "TEXT/a.txt", ("Main", "TEXT", "a.txt")),
    ("/Main/TEXT", "..", ("Main",)),
    ("/Main/TEXT", "../../../../..", ()),
    ("/Main/TEXT", "/", ()),
    ("/Main/TEXT", "//Main//./TEXT/", ("Main", "TEXT")),
    ("/", "../../etc/passwd", ("etc", "passwd")),
    ("/Main", "%2e%2e/x", ("Main", "%2e%2e", "x")),
    ("/", "...", ("...",)),
])
def test_normalize(cwd, arg, parts):
    assert normalize(cwd, arg) == parts


@pytest.mark.parametrize("arg", ["a\\..\\b", "a\0b"])
def test_normalize_refuses(arg):
    with pytest.raises(BBSError):
        normalize("/", arg)


def test_real_file_refuses_separators_parents_and_hidden_names(tmp_path):
    folder = tmp_path / "dir"
    folder.mkdir()
    assert real_file(folder, "ok.txt") == folder / "ok.txt"
    for name in (".hidden", "..", "a/b", "../dir/x", "a\\b", "x\0", ""):
        with pytest.raises(BBSError):
            real_file(folder, name)
    link = tmp_path / "link"
    os.symlink(tmp_path, link)
    assert real_file(link, "x") == link / "x"     # the folder itself may be a symlink


def areas(tmp_path: Path) -> FileAreas:
    def fdir(code, **ars):
        return FileDir(lib="Main", code=code, name=code, description=code, path=tmp_path / code,
                       ars=parse_ars(ars.get("ars", "")), upload_ars=parse_ars(ars.get("up", "")),
                       download_ars=parse_ars(ars.get("down", "")), max_files=0, line=1)
    return FileAreas(
        libs=(FileLib("Main", "", parse_ars(""), 1), FileLib("Sysop", "", parse_ars("SYSOP"), 2)),
        dirs=(fdir("PUB", up="NOT GUEST"), fdir("HIDDEN", ars="LEVEL 50"), fdir("DL", down="LEVEL 20")))


def test_resolve_checks_access_and_hides_what_is_not_allowed(tmp_path):
    vfs = VFS(areas(tmp_path), files=None)  # type: ignore[arg-type]
    caller = AccessContext(level=10, protocol="ftp")
    sysop = AccessContext(level=99, protocol="ftp")
    guest = AccessContext(level=10, guest=True, protocol="ftp")
    assert vfs.resolve("/", "", caller).kind is Kind.ROOT
    assert [lib.name for lib in vfs.libs(caller)] == ["Main"]
    assert [lib.name for lib in vfs.libs(sysop)] == ["Main", "Sysop"]
    node = vfs.resolve("/", "main/pub/x.zip", caller)
    assert (node.kind, node.path, node.name) == (Kind.FILE, "/Main/PUB/x.zip", "x.zip")
    for path in ("/Sysop", "/Main/HIDDEN", "/Main/HIDDEN/x", "/Main/PUB/x/y", "/Nope"):
        with pytest.raises(BBSError) as err:
            vfs.resolve("/", path, caller)
        assert err.value.reason is Reason.NOT_FOUND
    assert vfs.resolve("/", "/Main/HIDDEN", sysop).kind is Kind.DIR
    pub, dl = vfs.areas.dirs[0], vfs.areas.dirs[2]
    assert vfs.can_upload(pub, caller) and not vfs.can_upload(pub, guest)
    assert not vfs.can_download(dl, caller) and vfs.can_download(dl, sysop)
    assert vfs.perm(pub, sysop) == ("elc", "radf") and vfs.perm(pub, guest) == ("el", "r")
    assert not vfs.is_sysop(AccessContext(level=99, guest=True))


# -- LOOKUP_PASV_IP with dnspython against a DNS responder on 127.0.0.1 --------------

class _Responder(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queries: list[str] = []

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        query = dns.message.from_wire(data)
        name = query.question[0].name.to_text()
        self.queries.append(name)
        reply = dns.message.make_response(query)
        if name == "bbs.example.":
            reply.answer.append(dns.rrset.from_text(name, 3600, "IN", "A", "192.0.2.55"))
        else:
            reply.set_rcode(3)  # NXDOMAIN
        self.transport.sendto(reply.to_wire(), addr)


def test_pasv_lookup_resolves_the_hostname_with_dnspython():
    async def main():
        loop = asyncio.get_running_loop()
        transport, responder = await loop.create_datagram_endpoint(_Responder, local_addr=("127.0.0.1", 0))
        try:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = ["127.0.0.1"]
            resolver.port = transport.get_extra_info("sockname")[1]
            lookup = PasvLookup("bbs.example", resolver)
            assert await lookup.address() == "192.0.2.55"
            assert await lookup.address() == "192.0.2.55"
            assert responder.queries == ["bbs.example."]       # cached for the record's TTL
            missing = PasvLookup("nosuch.example", resolver)
            assert await missing.address() is None
            assert await missing.address() is None
            assert await PasvLookup("198.51.100.4", resolver).address() == "198.51.100.4"
            assert responder.queries == ["bbs.example.", "nosuch.example."]   # the failure is remembered too
        finally:
            transport.close()
    run_async(main())
