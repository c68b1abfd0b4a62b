"""Unit tests for bbs.listenconf: listener sockets derived from sbbs.ini."""
from __future__ import annotations

import ipaddress
import textwrap
from pathlib import Path

import pytest

from bbs.errors import ConfigError
from bbs.instance import init_instance, load_config
from bbs.listenconf import TLSMode, parse_address, parse_networks, parse_tls_mode


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "bbs"
    init_instance(root)
    (root / "ctrl" / "services.ini").unlink()  # these tests are about sbbs.ini; see test_servicesconf.py
    return root


def write_sbbs(root: Path, text: str) -> Path:
    path = root / "ctrl" / "sbbs.ini"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def line_of(path: Path, needle: str) -> int:
    hits = [n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line]
    assert len(hits) == 1, (needle, hits)
    return hits[0]


def listeners(root: Path, text: str):
    write_sbbs(root, text)
    return load_config(root).listeners


def sockets(items) -> list[tuple[str, str, int]]:
    return [(item.service, item.address, item.port) for item in items]


def error(root: Path, text: str) -> tuple[Path, str]:
    path = write_sbbs(root, text)
    with pytest.raises(ConfigError) as info:
        load_config(root)
    return path, str(info.value)


# --- pure parsers -------------------------------------------------------------------------

@pytest.mark.parametrize("text, address", [
    ("", ""), ("*", ""), ("  ", ""), ("127.0.0.1", "127.0.0.1"), ("[::1]", "::1"),
    ("0:0:0:0:0:0:0:1", "::1"), (" 10.1.2.3 ", "10.1.2.3"), ("0.0.0.0", "0.0.0.0"),
])
def test_parse_address(text, address):
    assert parse_address(text) == address


@pytest.mark.parametrize("text", ["localhost", "1.2.3", "256.0.0.1", "::g", "10.0.0.0/8"])
def test_parse_address_rejects(text):
    with pytest.raises(ValueError, match="invalid interface address"):
        parse_address(text)


def test_parse_networks():
    nets = parse_networks("127.0.0.0/8, ::1, 192.0.2.7, 10.1.2.3/8")
    assert nets == (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"),
                    ipaddress.ip_network("192.0.2.7/32"), ipaddress.ip_network("10.0.0.0/8"))
    assert parse_networks("") == ()
    with pytest.raises(ValueError, match="invalid address or network 'nowhere'"):
        parse_networks("10.0.0.0/8, nowhere")


@pytest.mark.parametrize("text, mode", [("off", TLSMode.OFF), ("ON", TLSMode.ON), (" Ext ", TLSMode.EXT)])
def test_parse_tls_mode(text, mode):
    assert parse_tls_mode(text) is mode


@pytest.mark.parametrize("text", ["yes", "true", "starttls", ""])
def test_parse_tls_mode_rejects(text):
    with pytest.raises(ValueError, match="invalid TLS mode"):
        parse_tls_mode(text)


# --- default listeners ------------------------------------------------------------------------

def test_defaults_of_an_empty_sbbs_ini(root):
    items = listeners(root, "")
    assert sockets(items) == [("telnet", "", 23), ("ssh", "", 22), ("rlogin", "", 513),
                              ("smtp", "", 25), ("pop3", "", 110), ("ftp", "", 21)]
    assert all(item.tls is TLSMode.OFF and item.grant == () and item.deny == () for item in items)
    assert [item.server for item in items] == ["bbs", "bbs", "bbs", "mail", "mail", "ftp"]
    assert all(item.name == item.service for item in items)


def test_shipped_listeners(root):
    items = load_config(root).listeners
    assert sockets(items) == [("telnet", "", 2023), ("ssh", "", 2022), ("rlogin", "", 2513),
                              ("smtp", "", 2025), ("submission", "", 2587),
                              ("smtps", "", 2465), ("pop3", "", 2110), ("pop3s", "", 2995),
                              ("ftp", "", 2021)]
    assert [i.tls for i in items if i.tls is TLSMode.ON] and \
        {i.service for i in items if i.tls is TLSMode.ON} == {"smtps", "pop3s"}


def test_options_switch_services(root):
    items = listeners(root, """
        [BBS]
        Options = ALLOW_SSH
        [Mail]
        Options = USE_SUBMISSION_PORT | TLS_SUBMISSION | TLS_POP3
        """)
    assert [i.service for i in items] == ["telnet", "ssh", "smtp", "submission", "smtps", "pop3s", "ftp"]
    tls = {i.service: i.tls for i in items}
    assert tls["smtps"] is TLSMode.ON and tls["pop3s"] is TLSMode.ON and tls["submission"] is TLSMode.OFF


def test_allow_rlogin_and_pop3_only(root):
    items = listeners(root, "[BBS]\nOptions = ALLOW_RLOGIN\n[Mail]\nOptions = ALLOW_POP3\n")
    assert [i.service for i in items] == ["telnet", "rlogin", "smtp", "pop3", "ftp"]


@pytest.mark.parametrize("section, gone", [
    ("BBS", {"telnet", "ssh", "rlogin"}), ("Mail", {"smtp", "pop3"}), ("FTP", {"ftp"}),
])
def test_autostart_false_removes_a_server(root, section, gone):
    items = listeners(root, f"[{section}]\nAutoStart = false\n")
    services = {i.service for i in items}
    assert not services & gone
    assert services == {"telnet", "ssh", "rlogin", "smtp", "pop3", "ftp"} - gone


def test_blank_interface_is_one_listener_on_all_addresses(root):
    items = listeners(root, "[Global]\nInterface =\n[BBS]\nOptions =\n")
    telnet = [i for i in items if i.service == "telnet"]
    assert len(telnet) == 1 and telnet[0].address == ""


def test_several_interfaces(root):
    items = listeners(root, """
        [Global]
        Interface = 127.0.0.1, [::1], 0:0::2
        [BBS]
        Options =
        [Mail]
        POP3Interface = 127.0.0.2
        [FTP]
        Interface = *
        """)
    assert sockets(items) == [
        ("telnet", "127.0.0.1", 23), ("telnet", "::1", 23), ("telnet", "::2", 23),
        ("smtp", "127.0.0.1", 25), ("smtp", "::1", 25), ("smtp", "::2", 25),
        ("pop3", "127.0.0.2", 110),
        ("ftp", "", 21),
    ]


def test_max_per_address_defaults_from_max_concurrent_connections(root):
    items = listeners(root, "[Global]\nMaxConcurrentConnections = 4\n[FTP]\nMaxConcurrentConnections = 2\n")
    limits = {i.service: i.max_per_address for i in items}
    assert limits == {"telnet": 4, "ssh": 4, "rlogin": 4, "smtp": 4, "pop3": 4, "ftp": 2}


def test_listener_line_is_the_port_key(root):
    path = write_sbbs(root, "[BBS]\nOptions =\nTelnetPort = 2323\n[FTP]\n")
    items = {i.service: i for i in load_config(root).listeners}
    assert items["telnet"].line == line_of(path, "TelnetPort")
    assert items["telnet"].where == f"{path}:{line_of(path, 'TelnetPort')}"
    assert items["ftp"].line == line_of(path, "[FTP]")       # no Port key: the section
    assert items["smtp"].line == 0 and items["smtp"].where == str(path)   # no [Mail] at all


# --- [Listener:SERVICE] overrides -------------------------------------------------------------

def test_listener_override_of_a_service(root):
    path = write_sbbs(root, """
        [Global]
        MaxConcurrentConnections = 9
        [BBS]
        Options =
        TelnetPort = 2023
        [Listener:Telnet]
        Grant = 127.0.0.0/8, ::1
        Deny = 127.0.0.9
        TLS = on
        MaxConcurrentConnections = 3
        """)
    config = load_config(root)
    (telnet,) = [i for i in config.listeners if i.service == "telnet"]
    assert telnet.name == "telnet" and telnet.port == 2023
    assert telnet.grant == (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
    assert telnet.deny == (ipaddress.ip_network("127.0.0.9/32"),)
    assert telnet.tls is TLSMode.ON and telnet.max_per_address == 3
    assert telnet.line == line_of(path, "TelnetPort")
    assert config.warnings == ()


def test_listener_override_port_and_interfaces(root):
    path = write_sbbs(root, """
        [BBS]
        Options =
        [Listener:telnet]
        Service = telnet
        Port = 2323
        Interface = 127.0.0.1, ::1
        TLS = ext
        """)
    items = [i for i in load_config(root).listeners if i.service == "telnet"]
    assert sockets(items) == [("telnet", "127.0.0.1", 2323), ("telnet", "::1", 2323)]
    assert all(i.tls is TLSMode.EXT and i.line == line_of(path, "Port = 2323") for i in items)


def test_override_of_a_disabled_service_is_checked_but_adds_nothing(root):
    items = listeners(root, "[BBS]\nOptions =\n[Listener:ssh]\nPort = 2222\nGrant = 10.0.0.0/8\n")
    assert "ssh" not in {i.service for i in items}
    assert load_config(root).warnings == ()                   # its keys are known, not typos


def test_bad_override_of_a_disabled_service_is_an_error(root):
    # Regression: the section used to be dropped unread when the service was off.
    path, text = error(root, "[BBS]\nOptions =\n[Listener:ssh]\nPort = notaport\n")
    assert text.startswith(f"{path}:4: [Listener:ssh] Port: invalid number 'notaport'"), text


def test_override_service_key_must_match_its_name(root):
    path, text = error(root, "[Listener:telnet]\nService = ssh\n")
    assert text.startswith(f"{path}:2: [Listener:telnet] Service = ssh contradicts the section name"), text


# --- added listeners -------------------------------------------------------------------------

def test_added_listener(root):
    path = write_sbbs(root, """
        [Global]
        MaxConcurrentConnections = 5
        [BBS]
        Options =
        [Listener:telnets]
        Service = Telnet
        Port = 992
        TLS = on
        Deny = 192.0.2.0/24
        """)
    items = load_config(root).listeners
    # Added sockets come after every service's default sockets.
    assert sockets(items) == [("telnet", "", 23), ("smtp", "", 25), ("pop3", "", 110), ("ftp", "", 21),
                              ("telnet", "", 992)]
    added = items[-1]
    assert (added.name, added.service, added.server, added.port) == ("telnets", "telnet", "bbs", 992)
    assert added.tls is TLSMode.ON and added.max_per_address == 5
    assert added.deny == (ipaddress.ip_network("192.0.2.0/24"),)
    assert added.line == line_of(path, "Port = 992")


def test_added_listener_defaults_follow_its_service(root):
    items = listeners(root, """
        [Global]
        Interface = 127.0.0.1
        [Mail]
        POP3Interface = 127.0.0.2
        Options = ALLOW_POP3 | TLS_POP3
        [Listener:pop3x]
        Service = pop3s
        Port = 1995
        [Listener:ftp2]
        Service = ftp
        Port = 2121
        Interface = ::1
        """)
    pop3x = [i for i in items if i.name == "pop3x"]
    assert sockets(pop3x) == [("pop3s", "127.0.0.2", 1995)] and pop3x[0].tls is TLSMode.ON
    assert sockets(i for i in items if i.name == "ftp2") == [("ftp", "::1", 2121)]


def test_added_listener_of_a_service_switched_off_by_its_option_adds_nothing(root):
    items = listeners(root, "[BBS]\nOptions = ALLOW_RLOGIN\n[Listener:ssh2]\nService = ssh\nPort = 2200\n")
    assert "ssh" not in {i.service for i in items} and "rlogin" in {i.service for i in items}


def test_added_listener_of_a_stopped_server_adds_nothing(root):
    items = listeners(root, "[FTP]\nAutoStart = no\n[Listener:ftp2]\nService = ftp\nPort = 2121\n")
    assert "ftp" not in {i.service for i in items}


def test_added_listener_of_a_stopped_server_is_still_checked(root):
    path, text = error(root, "[FTP]\nAutoStart = no\n[Listener:ftp2]\nService = ftp\nPort = 2121\nTLS = maybe\n")
    assert text.startswith(f"{path}:6: [Listener:ftp2] TLS: invalid TLS mode 'maybe'"), text


LISTENER_ERRORS = [
    ("[Listener:x]\nPort = 1\n", "[Listener:x]", "[Listener:x] Service = is required (one of telnet, ssh"),
    ("[Listener:x]\nService =\nPort = 1\n", "Service =", "Service = is required"),
    ("[Listener:x]\nService = gopher\nPort = 70\n", "gopher", "[Listener:x] unknown service 'gopher'"),
    ("[Listener:x]\nService = telnet\n", "[Listener:x]", "[Listener:x] Port = is required for an added listener socket"),
    ("[Listener:x]\nService = telnet\nPort = 99999\n", "99999", "[Listener:x] Port: 99999 is above the maximum 65535"),
    ("[Listener:x]\nService = telnet\nPort = 1\nGrant = 10.0.0.0/33\n", "Grant",
     "[Listener:x] Grant: invalid address or network '10.0.0.0/33'"),
    ("[Listener:telnet]\nDeny = 10.0.0.0/8, evil.example\n", "Deny", "Deny: invalid address or network 'evil.example'"),
    ("[Listener:x]\nService = telnet\nPort = 1\nTLS = yes\n", "TLS", "[Listener:x] TLS: invalid TLS mode 'yes' (use off, on or ext)"),
    ("[Listener:x]\nService = telnet\nPort = 1\nInterface = 1.2.3\n", "Interface",
     "[Listener:x] Interface: invalid interface address '1.2.3'"),
    ("[Listener:telnet]\nInterface = ::1, here\n", "Interface", "Interface: invalid interface address 'here'"),
    ("[Listener:telnet]\nMaxConcurrentConnections = -2\n", "MaxConcurrent", "MaxConcurrentConnections: -2 is below the minimum 0"),
    ("[Listener:]\nService = telnet\n", "[Listener:]", "malformed section [Listener:]"),
    ("[Listener:telnet]\n[Listener: Telnet]\n", "[Listener: Telnet]", "duplicate section [Listener: Telnet] (first at line 1)"),
]


@pytest.mark.parametrize("text, marker, fragment", LISTENER_ERRORS, ids=[e[2][:35] for e in LISTENER_ERRORS])
def test_listener_errors(root, text, marker, fragment):
    path, message = error(root, text)
    assert message.startswith(f"{path}:{line_of(path, marker)}: "), message
    assert fragment in message, message


# --- port conflicts ------------------------------------------------------------------------------

def test_two_services_on_one_port(root):
    path, text = error(root, "[BBS]\nOptions =\nTelnetPort = 2000\n[FTP]\nPort = 2000\n")
    assert text == (f"{path}:5: ftp port 2000 is already used by telnet ({path}:3)")


def test_conflict_within_one_server(root):
    path, text = error(root, "[Mail]\nSMTPPort = 2525\nPOP3Port = 2525\n")
    assert text == f"{path}:3: pop3 port 2525 is already used by smtp ({path}:2)"


def test_same_interface_listed_twice(root):
    path, text = error(root, "[BBS]\nOptions =\nInterface = 127.0.0.1, 127.0.0.1\nTelnetPort = 2323\n")
    assert text == f"{path}:4: telnet port 2323 is already used by telnet ({path}:4)"


def test_all_addresses_conflicts_with_a_specific_one(root):
    path, text = error(root, """
        [BBS]
        Options =
        [Listener:local]
        Service = telnet
        Interface = 127.0.0.1
        Port = 23
        """)
    assert text.startswith(f"{path}:{line_of(path, 'Port = 23')}: telnet port 23 is already used by telnet"), text


def test_specific_conflicts_with_a_later_all_addresses(root):
    path, text = error(root, """
        [BBS]
        Options =
        Interface = ::1
        [FTP]
        Port = 23
        """)
    assert text == f"{path}:{line_of(path, 'Port = 23')}: ftp port 23 is already used by telnet ({path}:1)"


@pytest.mark.parametrize("first, second", [("0.0.0.0", "127.0.0.1"), ("::", "::1"), ("127.0.0.1", "0.0.0.0")])
def test_unspecified_address_conflicts_with_its_family(root, first, second):
    # Regression: 0.0.0.0 (or ::) and a specific address of its family cannot share a port.
    path, text = error(root, f"""
        [BBS]
        Options =
        Interface = {first}
        [Listener:t2]
        Service = telnet
        Interface = {second}
        Port = 23
        """)
    assert text.startswith(f"{path}:{line_of(path, 'Port = 23')}: telnet port 23 is already used"), text


@pytest.mark.parametrize("first, second", [("127.0.0.1", "127.0.0.2"), ("0.0.0.0", "::1"), ("::", "127.0.0.1")])
def test_distinct_addresses_share_a_port(root, first, second):
    items = listeners(root, f"""
        [BBS]
        Options =
        Interface = {first}
        [Listener:t2]
        Service = telnet
        Interface = {second}
        Port = 23
        """)
    assert sockets(i for i in items if i.service == "telnet") == [("telnet", first, 23), ("telnet", second, 23)]


def test_port_zero_never_conflicts(root):
    items = listeners(root, """
        [BBS]
        TelnetPort = 0
        SSHPort = 0
        RLoginPort = 0
        [Mail]
        SMTPPort = 0
        POP3Port = 0
        [FTP]
        Port = 0
        [Listener:more]
        Service = telnet
        Port = 0
        """)
    assert len(items) == 7 and {i.port for i in items} == {0}


def test_disabled_services_do_not_conflict(root):
    items = listeners(root, "[BBS]\nOptions =\nTelnetPort = 2323\nSSHPort = 2323\nRLoginPort = 2323\n")
    assert [i for i in items if i.port == 2323] == [i for i in items if i.service == "telnet"]
