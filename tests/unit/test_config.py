"""Unit tests for bbs.config (ctrl/sbbs.ini) through bbs.instance.load_config."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bbs.config import LOG_LEVELS, parse_log_level
from bbs.errors import ConfigError
from bbs.instance import init_instance, load_config

MIB = 1024 * 1024


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "bbs"
    init_instance(root)
    return root


def write_sbbs(root: Path, text: str) -> Path:
    path = root / "ctrl" / "sbbs.ini"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def line_of(path: Path, needle: str) -> int:
    """1-based number of the only line of ``path`` containing ``needle``."""
    hits = [n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line]
    assert len(hits) == 1, (needle, hits)
    return hits[0]


def config_error(root: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(root)
    return info.value


def assert_located(err: ConfigError, path: Path, line: int, *fragments: str) -> None:
    text = str(err)
    assert text.startswith(f"{path}:{line}: "), text
    assert err.path == str(path) and err.line == line
    for fragment in fragments:
        assert fragment in text, (fragment, text)


# --- Synchronet defaults when keys are absent ---------------------------------------------

def test_defaults_of_an_empty_sbbs_ini(root):
    write_sbbs(root, "")
    config = load_config(root).server
    glob = config.global_
    assert glob.hostname == "localhost"
    assert glob.interfaces == ()
    assert (glob.bind_retry_count, glob.bind_retry_delay) == (2, 15.0)
    assert glob.max_concurrent_connections == 0
    assert glob.log_level == 20
    assert glob.shutdown_grace == 5.0
    assert glob.login.delay == 5.0                   # LoginAttemptDelay 5000 ms
    assert glob.login.throttle == 1.0                # LoginAttemptThrottle 1000 ms
    assert glob.login.hack_threshold == 10
    assert glob.login.tempban_threshold == 20
    assert glob.login.tempban_duration == 600.0      # LoginAttemptTempBanDuration 10m
    assert glob.login.filter_threshold == 0
    assert glob.tls_certificate == root / "data/tls/server.crt"
    assert glob.tls_private_key == root / "data/tls/server.key"

    bbs = config.bbs
    assert (bbs.telnet_port, bbs.ssh_port, bbs.rlogin_port) == (23, 22, 513)
    assert bbs.common.options == {"ALLOW_RLOGIN", "ALLOW_SSH"}
    assert bbs.max_login_inactivity == 600.0 and bbs.max_newuser_inactivity == 3600.0

    mail = config.mail
    assert mail.smtp_port == 25 and mail.submission_port == 587 and mail.tls_submission_port == 465
    assert mail.pop3_port == 110 and mail.tls_pop3_port == 995 and mail.relay_port == 25
    assert mail.common.max_clients == 10
    assert mail.common.max_inactivity == 120.0
    assert mail.max_msg_size == 20 * MIB
    assert mail.max_recipients == 100 and mail.max_delivery_attempts == 50
    assert mail.common.options == {"ALLOW_POP3"}
    assert mail.hostname == "localhost" and mail.pop3_interfaces == ()

    ftp = config.ftp
    assert ftp.port == 21 and (ftp.pasv_port_low, ftp.pasv_port_high) == (1024, 65535)
    assert ftp.common.max_clients == 10 and ftp.common.max_inactivity == 300.0
    assert ftp.common.options == frozenset() and ftp.index_file_name == "00index"

    assert config.services.common.options == frozenset()
    for server in (bbs, mail, ftp, config.services):
        assert server.common.autostart is True
        assert server.common.bind_retry_count == 2
        assert server.common.log_level == 20


def test_shipped_sbbs_ini(root):
    config = load_config(root)
    assert config.warnings == ()
    server = config.server
    assert server.global_.login.delay == 5.0                   # 5000 (ms)
    assert server.global_.login.throttle == 1.0                # 1000 (ms)
    assert server.global_.login.tempban_duration == 600.0      # 10m
    assert server.global_.login.filter_duration == 86400.0     # 1d
    assert server.bbs.telnet_port == 2023
    assert server.bbs.common.options == {"ALLOW_SSH", "ALLOW_RLOGIN"}
    assert server.mail.max_msg_size == 20 * MIB
    assert server.mail.common.options == {"ALLOW_POP3", "USE_SUBMISSION_PORT", "TLS_SUBMISSION", "TLS_POP3"}
    assert server.mail.common.max_inactivity == 120.0          # 2m
    assert server.ftp.common.max_inactivity == 300.0           # 5m


# --- [Global] inheritance -------------------------------------------------------------------

def test_global_values_are_inherited_and_overridden(root):
    write_sbbs(root, """
        [Global]
        Interface = 127.0.0.1, ::1
        BindRetryCount = 7
        BindRetryDelay = 1m
        MaxConcurrentConnections = 3
        LogLevel = Debug
        Hostname = bbs.example.org
        [BBS]
        [Mail]
        BindRetryDelay = 3
        [FTP]
        Interface = 10.0.0.1
        BindRetryCount = 1
        MaxConcurrentConnections = 0
        LogLevel = Error
        [Services]
        LogLevel = Warning
        """)
    server = load_config(root).server
    bbs, mail, ftp, services = (s.common for s in (server.bbs, server.mail, server.ftp, server.services))
    assert bbs.interfaces == ("127.0.0.1", "::1")
    assert (bbs.bind_retry_count, bbs.bind_retry_delay) == (7, 60.0)
    assert bbs.max_concurrent_connections == 3 and bbs.log_level == 10
    assert mail.bind_retry_delay == 3.0 and mail.bind_retry_count == 7
    assert server.mail.hostname == "bbs.example.org"
    assert server.mail.pop3_interfaces == ("127.0.0.1", "::1")    # POP3Interface defaults to Interface
    assert ftp.interfaces == ("10.0.0.1",)
    assert (ftp.bind_retry_count, ftp.bind_retry_delay) == (1, 60.0)
    assert ftp.max_concurrent_connections == 0 and ftp.log_level == 40
    assert services.log_level == 30 and services.interfaces == ("127.0.0.1", "::1")
    assert server.global_.log_level == 10


def test_blank_interface_in_a_section_means_all(root):
    write_sbbs(root, """
        [Global]
        Interface = 127.0.0.1
        [BBS]
        Interface =
        [Mail]
        POP3Interface = ::1
        """)
    server = load_config(root).server
    assert server.bbs.common.interfaces == ()
    assert server.mail.common.interfaces == ("127.0.0.1",)
    assert server.mail.pop3_interfaces == ("::1",)


def test_mail_hostname_overrides_global(root):
    write_sbbs(root, "[Global]\nHostname = a.example\n[Mail]\nHostName = mail.example\n")
    assert load_config(root).server.mail.hostname == "mail.example"


# --- values -------------------------------------------------------------------------------------

def test_options_per_section(root):
    write_sbbs(root, """
        [BBS]
        Options = allow_ssh | NO_DOS
        [Mail]
        Options = ALLOW_RELAY|DNSBL_REFUSE
        [FTP]
        Options = DIR_FILES | ALLOW_QWK
        [Services]
        Options = NO_HOST_LOOKUP
        """)
    server = load_config(root).server
    assert server.bbs.common.options == {"ALLOW_SSH", "NO_DOS"}
    assert server.mail.common.options == {"ALLOW_RELAY", "DNSBL_REFUSE"}
    assert server.ftp.common.options == {"DIR_FILES", "ALLOW_QWK"}
    assert server.services.common.options == {"NO_HOST_LOOKUP"}


def test_empty_options_means_no_flags(root):
    write_sbbs(root, "[BBS]\nOptions =\n[Mail]\nOptions =\n")
    server = load_config(root).server
    assert server.bbs.common.options == frozenset()
    assert server.mail.common.options == frozenset()


@pytest.mark.parametrize("value, seconds", [("5000", 5.0), ("250", 0.25), ("2s", 2.0), ("1m", 60.0), ("0", 0.0)])
def test_login_attempt_delay_is_milliseconds_when_bare(root, value, seconds):
    write_sbbs(root, f"[Global]\nLoginAttemptDelay = {value}\nLoginAttemptThrottle = {value}\n")
    login = load_config(root).server.global_.login
    assert login.delay == pytest.approx(seconds)
    assert login.throttle == pytest.approx(seconds)


@pytest.mark.parametrize("value, seconds", [("600", 600.0), ("10m", 600.0), ("1h", 3600.0), ("1.5h", 5400.0)])
def test_seconds_durations(root, value, seconds):
    write_sbbs(root, f"[Global]\nLoginAttemptTempBanDuration = {value}\n[BBS]\nMaxSessionInactivity = {value}\n")
    server = load_config(root).server
    assert server.global_.login.tempban_duration == seconds
    assert server.bbs.max_session_inactivity == seconds


@pytest.mark.parametrize("value, size", [("20M", 20 * MIB), ("20MB", 20 * MIB), ("512K", 512 * 1024),
                                         ("1000", 1000), ("1G", 1024**3)])
def test_max_msg_size(root, value, size):
    write_sbbs(root, f"[Mail]\nMaxMsgSize = {value}\n")
    assert load_config(root).server.mail.max_msg_size == size


@pytest.mark.parametrize("value, level", [
    ("Debug", 10), ("DEBUGGING", 10), ("info", 20), ("Informational", 20), ("Notice", 25),
    ("Warning", 30), ("warn", 30), ("Error", 40), ("err", 40), ("Critical", 50), ("crit", 50),
    ("Alert", 50), ("Emergency", 50), ("emerg", 50),
    ("7", 10), ("6", 20), ("5", 25), ("4", 30), ("3", 40), ("0", 50),   # syslog numbers
])
def test_log_levels_with_synchronet_names(value, level):
    assert parse_log_level(value) == level


@pytest.mark.parametrize("value", ["", "Verbose", "8", "-1", "10", "Informationally"])
def test_bad_log_levels(value):
    with pytest.raises(ValueError, match="unknown log level"):
        parse_log_level(value)


def test_log_level_table_is_python_levels():
    assert LOG_LEVELS["INFO"] == 20 and LOG_LEVELS["DEBUG"] == 10


def test_tls_paths_relative_to_instance_absolute_kept(root, tmp_path):
    absolute = tmp_path / "elsewhere" / "key.pem"
    write_sbbs(root, f"[Global]\nTLSCertificate = certs/my.crt\nTLSPrivateKey = {absolute}\n")
    glob = load_config(root).server.global_
    assert glob.tls_certificate == root / "certs" / "my.crt"
    assert glob.tls_private_key == absolute


def test_pasv_range_equal_is_fine(root):
    write_sbbs(root, "[FTP]\nPasvPortLow = 5000\nPasvPortHigh = 5000\n")
    ftp = load_config(root).server.ftp
    assert (ftp.pasv_port_low, ftp.pasv_port_high) == (5000, 5000)


# --- warnings -----------------------------------------------------------------------------------

def test_unknown_keys_are_located_warnings(root):
    path = write_sbbs(root, """
        Stray = 1
        [BBS]
        TelnetPrt = 2323
        [Mail]
        POP3Sound = ding.wav
        JavaScriptMaxBytes = 8M
        MaxMsgSize = 1M
        """)
    config = load_config(root)
    assert config.warnings == (
        f"{path}:1: unknown key Stray in [root] (ignored)",
        f"{path}:3: unknown key TelnetPrt in [BBS] (ignored)",
    )
    assert config.server.bbs.telnet_port == 23


# --- every error path, located --------------------------------------------------------------

ERRORS = [
    # (sbbs.ini text, marker on the bad line, fragments of the message)
    ("[BBS]\nTelnetPort = 70000\n", "70000", ["[BBS] TelnetPort: 70000 is above the maximum 65535"]),
    ("[BBS]\nSSHPort = -1\n", "-1", ["[BBS] SSHPort: -1 is below the minimum 0"]),
    ("[BBS]\nRLoginPort = rlogin\n", "rlogin", ["[BBS] RLoginPort: invalid number 'rlogin'"]),
    ("[Mail]\nSMTPPort = 25.0\n", "25.0", ["[Mail] SMTPPort: invalid number"]),
    ("[Mail]\nSubmissionPort = 65536\n", "65536", ["SubmissionPort", "above the maximum"]),
    ("[Mail]\nTLSSubmissionPort = x\n", "= x", ["TLSSubmissionPort"]),
    ("[Mail]\nPOP3Port = 1e2\n", "1e2", ["POP3Port: invalid number"]),
    ("[Mail]\nTLSPOP3Port =\n", "TLSPOP3Port", ["TLSPOP3Port: invalid number ''"]),
    ("[Mail]\nRelayPort = 99999\n", "99999", ["RelayPort"]),
    ("[FTP]\nPort = ftp\n", "Port = ftp", ["[FTP] Port: invalid number 'ftp'"]),
    ("[FTP]\nPasvPortLow = 70000\n", "70000", ["PasvPortLow"]),
    ("[BBS]\nMaxLoginInactivity = 10 minutes\n", "10 minutes", ["[BBS] MaxLoginInactivity: invalid duration"]),
    ("[Global]\nLoginAttemptDelay = 5 sec\n", "5 sec", ["[Global] LoginAttemptDelay: invalid duration"]),
    ("[Global]\nLoginAttemptTempBanDuration = -10m\n", "-10m", ["LoginAttemptTempBanDuration: invalid duration"]),
    ("[Global]\nBindRetryDelay = 1x\n", "1x", ["BindRetryDelay: invalid duration '1x'"]),
    ("[Global]\nShutdownGrace = soon\n", "soon", ["ShutdownGrace"]),
    ("[Mail]\nMaxInactivity = 2mins\n", "2mins", ["[Mail] MaxInactivity: invalid duration"]),
    ("[Mail]\nRescanFrequency = 1h30m\n", "1h30m", ["RescanFrequency"]),
    ("[FTP]\nQwkTimeout = forever\n", "forever", ["QwkTimeout"]),
    ("[Mail]\nMaxMsgSize = 20 megabytes\n", "megabytes", ["[Mail] MaxMsgSize: invalid size"]),
    ("[Mail]\nMaxMsgSize = 20X\n", "20X", ["MaxMsgSize: invalid size '20X'"]),
    ("[BBS]\nOptions = ALLOW_SSH | ALLOW_TELEPORT\n", "TELEPORT", ["[BBS] Options: unknown option ALLOW_TELEPORT"]),
    ("[BBS]\nOptions = ALLOW_RELAY\n", "ALLOW_RELAY", ["[BBS] Options: unknown option ALLOW_RELAY"]),
    ("[Mail]\nOptions = ALLOW_POP3 | ALLOW_SSH\n", "ALLOW_SSH", ["[Mail] Options: unknown option ALLOW_SSH"]),
    ("[FTP]\nOptions = ALLOW_POP3\n", "ALLOW_POP3", ["[FTP] Options: unknown option ALLOW_POP3"]),
    ("[Services]\nOptions = DEBUG_RX\n", "DEBUG_RX", ["[Services] Options: unknown option DEBUG_RX"]),
    ("[Global]\n[Web]\nPort = 80\n", "[Web]", ["unknown section [Web]"]),
    ("[BBS]\n[bbs2]\n", "[bbs2]", ["unknown section [bbs2]"]),
    ("[FTP]\nPasvPortLow = 5000\nPasvPortHigh = 4000\n", "4000",
     ["[FTP] PasvPortHigh 4000 is below PasvPortLow 5000"]),
    ("[FTP]\nPasvPortHigh = 1000\n", "1000", ["PasvPortHigh 1000 is below PasvPortLow 1024"]),
    ("[Global]\nLogLevel = Verbose\n", "Verbose", ["[Global] LogLevel: unknown log level 'Verbose'"]),
    ("[Mail]\nLogLevel = loud\n", "loud", ["[Mail] LogLevel: unknown log level"]),
    ("[Mail]\nAutoStart = maybe\n", "maybe", ["[Mail] AutoStart: invalid boolean 'maybe'"]),
    ("[BBS]\nAutoStart = 2\n", "= 2", ["[BBS] AutoStart: invalid boolean"]),
    ("[FTP]\nAutoStart =\n", "AutoStart", ["[FTP] AutoStart: invalid boolean ''"]),
    ("[BBS]\nTelnetPort = 23\nSSHPort = 22\nTelnetPort = 2323\n", "2323", ["duplicate key TelnetPort (first at line 2)"]),
    ("[Mail]\nSMTPPort = 25\n[BBS]\n[MAIL]\n", "[MAIL]", ["duplicate section [MAIL] (first at line 1)"]),
    ("[Global]\nMaxConcurrentConnections = -1\n", "-1", ["MaxConcurrentConnections: -1 is below the minimum 0"]),
    ("[Mail]\nMaxClients = lots\n", "lots", ["[Mail] MaxClients: invalid number 'lots'"]),
    ("[Global]\nBindRetryCount = x\n", "= x", ["BindRetryCount"]),
    ("[Global]\nLoginAttemptHackThreshold = -2\n", "-2", ["LoginAttemptHackThreshold"]),
    ("[Mail]\nMaxRecipients = 1.5\n", "1.5", ["MaxRecipients"]),
    ("[BBS]\nClientReserve = some\n", "some", ["ClientReserve"]),
    ("[Global]\nInterface = 10.0.0.256\n[BBS]\n", "10.0.0.256",
     ["[Global] Interface: invalid interface address '10.0.0.256'"]),
    ("[BBS]\n[Mail]\nInterface = 127.0.0.1, localhost\n", "localhost", ["[Mail] Interface: invalid interface address 'localhost'"]),
    ("[Mail]\nPOP3Interface = pop.example.com\n", "pop.example.com",
     ["[Mail] POP3Interface: invalid interface address 'pop.example.com'"]),
    ("[BBS]\nClientNetworks = 10.0.0.0/33\n", "10.0.0.0/33", ["[BBS] ClientNetworks: invalid address or network '10.0.0.0/33'"]),
    ("[BBS]\nTelnetPort 23\n", "TelnetPort 23", ["expected 'key = value'"]),
    ("[BBS\n", "[BBS", ["malformed section header"]),
]


@pytest.mark.parametrize("text, marker, fragments", ERRORS, ids=[e[1] + "-" + str(i) for i, e in enumerate(ERRORS)])
def test_errors_are_located(root, text, marker, fragments):
    path = write_sbbs(root, text)
    err = config_error(root)
    assert_located(err, path, line_of(path, marker), *fragments)


def test_error_in_a_big_file_has_the_right_line(root):
    # The shipped file with one bad value deep inside it.
    path = root / "ctrl" / "sbbs.ini"
    text = path.read_text().replace("MaxMsgSize = 20M", "MaxMsgSize = 20 M B")
    path.write_text(text)
    err = config_error(root)
    line = line_of(path, "MaxMsgSize")
    assert line > 40
    assert str(err) == f"{path}:{line}: [Mail] MaxMsgSize: invalid size '20 M B' (use e.g. 1000, 512K, 20M, 1G)"


def test_error_message_exact_form(root):
    path = write_sbbs(root, "[Global]\nHostname = x\n\n[BBS]\nTelnetPort = 99999\n")
    assert str(config_error(root)) == f"{path}:5: [BBS] TelnetPort: 99999 is above the maximum 65535"


def test_missing_instance(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nothing")
    assert str(info.value).startswith(f"{tmp_path / 'nothing' / 'ctrl' / 'sbbs.ini'}: not found")


@pytest.mark.parametrize("name", ["main.ini", "msgs.ini", "file.ini"])
def test_missing_ctrl_file(root, name):
    path = root / "ctrl" / name
    path.unlink()
    assert str(config_error(root)) == f"{path}: file not found"
