"""sbbs.ini: the servers' configuration, with Synchronet's sections and keys.

:func:`load_server_config` parses ``ctrl/sbbs.ini`` once into frozen
dataclasses. Defaults are Synchronet's (one place: the ``get`` calls below);
every bad value raises :class:`~bbs.errors.ConfigError` located at its line.
Listener sockets (CommuniGate semantics) are derived here too: see
:mod:`bbs.listenconf`.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import re
from pathlib import Path

from bbs import options, units
from bbs.errors import ConfigError
from bbs.ini import IniFile, IniSection
from bbs.loginattempts import LoginAttemptRules
from bbs.users import LEN_ALIAS

#: Log levels accepted by ``LogLevel`` (Synchronet uses syslog names).
LOG_LEVELS = {"DEBUG": 10, "INFO": 20, "NOTICE": 25, "WARNING": 30, "WARN": 30,
              "ERROR": 40, "ERR": 40, "CRITICAL": 50, "CRIT": 50}
#: Synchronet's own level names (xpdev ``logLevelStringList``), in syslog
#: order 0-7, with the Python level each maps to. Synchronet also accepts a
#: prefix of a name ("Info", "Debug") or the syslog number.
SYSLOG_LEVELS = (("EMERGENCY", 50), ("ALERT", 50), ("CRITICAL", 50), ("ERROR", 40),
                 ("WARNING", 30), ("NOTICE", 25), ("INFORMATIONAL", 20), ("DEBUGGING", 10))


def parse_log_level(text: str) -> int:
    """Return the Python logging level of a ``LogLevel`` value.

    Accepts the names above, Synchronet's names or a prefix of them, and the
    syslog numbers 0 (Emergency) to 7 (Debugging); raises ValueError otherwise.
    """
    word = text.strip().upper()
    if word in LOG_LEVELS:
        return LOG_LEVELS[word]
    if word.isdigit() and int(word) < len(SYSLOG_LEVELS):
        return SYSLOG_LEVELS[int(word)][1]
    for name, level in SYSLOG_LEVELS:
        if word and name.startswith(word):
            return level
    raise ValueError(f"unknown log level {text!r} (use {', '.join(n.title() for n, _ in SYSLOG_LEVELS)})")


def parse_interfaces(text: str) -> tuple[str, ...]:
    """Parse an ``Interface`` list: IP addresses, ``*`` or blank for all.

    Checked here, at the key's own line ([Global] values are inherited, so a
    later check would point at the wrong section). Values are kept as
    written; :mod:`bbs.listenconf` normalizes them.
    """
    values = units.parse_list(text)
    for value in values:
        address = value.strip("[]")
        if address == "*":
            continue
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ValueError(f"invalid interface address {value!r}") from None
    return values


def parse_network_list(text: str) -> tuple[str, ...]:
    """Parse a list of networks ("10.0.0.0/8, ::1"), kept as written.

    Checked here so a typo stops start-up with ``file:line`` rather than
    failing when the listeners are bound.
    """
    values = units.parse_list(text)
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(f"invalid address or network {value!r}") from None
    return values


@dataclasses.dataclass(frozen=True)
class GlobalConfig:
    """[Global]: defaults the server sections inherit."""

    hostname: str
    interfaces: tuple[str, ...]
    bind_retry_count: int
    bind_retry_delay: float
    max_concurrent_connections: int
    login: LoginAttemptRules
    log_level: int
    tls_certificate: Path
    tls_private_key: Path
    shutdown_grace: float
    #: Seconds between checks for the ctrl/recycle semaphore files (Synchronet's
    #: SemFileCheckFrequency, 2 by default).
    sem_file_check_frequency: float = 2.0


@dataclasses.dataclass(frozen=True)
class ServerCommon:
    """Keys every server section has ([BBS], [Mail], [FTP], [Services])."""

    autostart: bool
    interfaces: tuple[str, ...]
    max_clients: int
    max_inactivity: float
    bind_retry_count: int
    bind_retry_delay: float
    max_concurrent_connections: int
    client_reserve: int
    client_networks: tuple[str, ...]
    log_level: int
    options: frozenset[str]


@dataclasses.dataclass(frozen=True)
class BBSConfig:
    """[BBS]: the terminal server (telnet, SSH, RLogin nodes)."""

    common: ServerCommon
    telnet_port: int
    ssh_port: int
    rlogin_port: int
    max_login_inactivity: float
    max_newuser_inactivity: float
    max_session_inactivity: float
    #: Ours: the SSH login name that opens the new-user application without
    #: a password (Synchronet callers type NEW at the logon prompt).
    ssh_new_user_name: str = "new"
    #: Ours: SSH algorithms offered after the modern set, for old and
    #: cryptlib-based BBS terminals (SyncTERM, NetRunner); any kex, cipher,
    #: MAC or host-key signature name asyncssh knows.
    ssh_legacy_algorithms: tuple[str, ...] = (
        "diffie-hellman-group14-sha1", "diffie-hellman-group-exchange-sha1", "ssh-rsa",
        "aes256-cbc", "aes128-cbc", "3des-cbc", "hmac-sha1")
    #: Ours: aliases of users below the sysop level (90) who may open the
    #: live sysop console (``ssh ... console``); sysops always may.
    console_users: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class MailConfig:
    """[Mail]: every key of the Synchronet Mail Server page."""

    common: ServerCommon
    pop3_interfaces: tuple[str, ...]
    outbound_interface: str
    smtp_port: int
    submission_port: int
    tls_submission_port: int
    pop3_port: int
    tls_pop3_port: int
    max_delivery_attempts: int
    rescan_frequency: float
    sem_file_check_frequency: float
    lines_per_yield: int
    max_recipients: int
    max_msg_size: int
    max_msgs_waiting: int
    connect_timeout: float
    hostname: str
    relay_server: str
    relay_port: int
    relay_username: str
    relay_password: str = dataclasses.field(repr=False)
    dns_server: str = ""
    default_user: str = ""
    default_charset: str = ""
    dnsbl_header: str = "X-DNSBL"
    dnsbl_subject: str = "SPAM"
    new_mail_notice: str = "New e-mail from <%s>\r\n"
    forward_notice: str = "and it was forwarded to: %s\r\n"
    #: Ours (Synchronet has no key): offer CRAM-MD5 (SMTP) and APOP (POP3),
    #: which makes the mail server keep users' cleartext passwords.
    allow_cram_md5: bool = False
    #: Ours: offer SMTP AUTH on the clear SMTP/Submission ports before
    #: STARTTLS (off: AUTH only over TLS).
    auth_without_tls: bool = False
    #: Ours (Synchronet sends one message at a time): SMTP sessions SendMail
    #: may run at once, over all destinations.
    max_concurrent_deliveries: int = 10
    #: Ours: politeness, sessions at once to one destination domain (or to
    #: the RelayServer with RELAY_TX).
    max_deliveries_per_domain: int = 2
    #: Ours: TCP port of direct (MX) delivery; 25 on the Internet. Other
    #: values are for tests and smart set-ups (a local filter on another port).
    delivery_port: int = 25
    #: Ours: wait before the first retry of a deferred message; it doubles
    #: for each further attempt, never beyond RescanFrequency.
    retry_delay: float = 300.0
    #: Ours (Synchronet takes it from SCFG Networks->FidoNet): this system's
    #: FTN address ``zone:net/node[.point]``; set, netmail to
    #: ``name@f<node>.n<net>.z<zone>.fidonet`` is accepted and queued.
    fidonet_address: str = ""
    #: Ours: seconds one external mail processor (ctrl/mailproc.cfg) may run
    #: before it is killed and the message accepted unchanged.
    mail_processor_timeout: float = 30.0


@dataclasses.dataclass(frozen=True)
class FTPConfig:
    """[FTP]: the FTP/FTPS server."""

    common: ServerCommon
    port: int
    pasv_ip_address: str
    pasv_ip6_address: str
    pasv_port_low: int
    pasv_port_high: int
    index_file_name: str
    qwk_timeout: float
    #: The BBS's public host name; LOOKUP_PASV_IP resolves it for 227 replies.
    hostname: str = "localhost"
    #: Smallest and largest upload accepted, in bytes (0: no limit).
    min_file_size: int = 0
    max_file_size: int = 0


@dataclasses.dataclass(frozen=True)
class ServicesConfig:
    """[Services]: the small services (Finger, SYSTAT, MSP ...)."""

    common: ServerCommon


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """All of sbbs.ini."""

    path: Path
    global_: GlobalConfig
    bbs: BBSConfig
    mail: MailConfig
    ftp: FTPConfig
    services: ServicesConfig
    ini: IniFile = dataclasses.field(repr=False, compare=False)


def _nonneg_duration(text: str) -> float:
    return units.parse_duration(text)


def _ms_duration(text: str) -> float:
    return units.parse_duration(text, bare_unit=0.001)


def _positive_duration(text: str) -> float:
    seconds = units.parse_duration(text)
    if seconds <= 0:
        raise ValueError("must be more than 0 seconds")
    return seconds


def _count(text: str) -> int:
    return units.parse_int(text, minimum=0)


def _positive(text: str) -> int:
    return units.parse_int(text, minimum=1)


def _load_global(ini: IniFile, instance: Path) -> GlobalConfig:
    sec = ini.section("Global")
    login = LoginAttemptRules(
        delay=sec.get("LoginAttemptDelay", 5.0, _ms_duration),
        throttle=sec.get("LoginAttemptThrottle", 1.0, _ms_duration),
        hack_threshold=sec.get("LoginAttemptHackThreshold", 10, _count),
        tempban_threshold=sec.get("LoginAttemptTempBanThreshold", 20, _count),
        tempban_duration=sec.get("LoginAttemptTempBanDuration", 600.0, _nonneg_duration),
        filter_threshold=sec.get("LoginAttemptFilterThreshold", 0, _count),
        filter_duration=sec.get("LoginAttemptFilterDuration", 0.0, _nonneg_duration),
    )
    return GlobalConfig(
        hostname=sec.get("Hostname", "localhost"),
        interfaces=sec.get("Interface", (), parse_interfaces),
        bind_retry_count=sec.get("BindRetryCount", 2, _count),
        bind_retry_delay=sec.get("BindRetryDelay", 15.0, _nonneg_duration),
        max_concurrent_connections=sec.get("MaxConcurrentConnections", 0, _count),
        login=login,
        log_level=sec.get("LogLevel", 20, parse_log_level),
        tls_certificate=instance / sec.get("TLSCertificate", "data/tls/server.crt"),
        tls_private_key=instance / sec.get("TLSPrivateKey", "data/tls/server.key"),
        shutdown_grace=sec.get("ShutdownGrace", 5.0, _nonneg_duration),
        sem_file_check_frequency=sec.get("SemFileCheckFrequency", 2.0, _positive_duration),
    )


def _load_common(sec: IniSection, glob: GlobalConfig, known: frozenset[str], *,
                 max_clients: int, max_inactivity: float, default_options: str) -> ServerCommon:
    return ServerCommon(
        autostart=sec.get("AutoStart", True, units.parse_bool),
        interfaces=sec.get("Interface", glob.interfaces, parse_interfaces),
        max_clients=sec.get("MaxClients", max_clients, _count),
        max_inactivity=sec.get("MaxInactivity", max_inactivity, _nonneg_duration),
        bind_retry_count=sec.get("BindRetryCount", glob.bind_retry_count, _count),
        bind_retry_delay=sec.get("BindRetryDelay", glob.bind_retry_delay, _nonneg_duration),
        max_concurrent_connections=sec.get("MaxConcurrentConnections",
                                           glob.max_concurrent_connections, _count),
        client_reserve=sec.get("ClientReserve", 0, _count),
        client_networks=sec.get("ClientNetworks", (), parse_network_list),
        log_level=sec.get("LogLevel", glob.log_level, parse_log_level),
        options=sec.get("Options", units.parse_flags(default_options, known),
                        lambda text: units.parse_flags(text, known)),
    )


def _load_bbs(ini: IniFile, glob: GlobalConfig) -> BBSConfig:
    sec = ini.section("BBS")
    return BBSConfig(
        common=_load_common(sec, glob, options.BBS_OPTIONS, max_clients=0,
                            max_inactivity=0.0, default_options="ALLOW_RLOGIN | ALLOW_SSH"),
        telnet_port=sec.get("TelnetPort", 23, units.parse_port),
        ssh_port=sec.get("SSHPort", 22, units.parse_port),
        rlogin_port=sec.get("RLoginPort", 513, units.parse_port),
        max_login_inactivity=sec.get("MaxLoginInactivity", 600.0, _nonneg_duration),
        max_newuser_inactivity=sec.get("MaxNewUserInactivity", 3600.0, _nonneg_duration),
        max_session_inactivity=sec.get("MaxSessionInactivity", 600.0, _nonneg_duration),
        ssh_new_user_name=sec.get("SSHNewUserName", "new", _ssh_user_name),
        ssh_legacy_algorithms=sec.get("SSHLegacyAlgorithms", BBSConfig.ssh_legacy_algorithms, units.parse_list),
        console_users=sec.get("ConsoleUsers", (), _user_names),
    )


def _ssh_user_name(text: str) -> str:
    """An SSH login name: blank (no new-user login over SSH) or one word."""
    text = text.strip()
    if text and (len(text) > 25 or not all(c.isalnum() or c in "-_." for c in text)):
        raise ValueError(f"{text!r} is not a login name (letters, digits, - _ . up to 25)")
    return text


def _user_names(text: str) -> tuple[str, ...]:
    """A list of user aliases ("Alice, Bob Smith"), each at most LEN_ALIAS characters."""
    names = units.parse_list(text)
    for name in names:
        if len(name) > LEN_ALIAS:
            raise ValueError(f"{name!r} is longer than an alias ({LEN_ALIAS} characters)")
    return names


_MAIL_IGNORED = ("POP3Sound", "InboundSound", "OutboundSound", "TempDirectory")


def _load_mail(ini: IniFile, glob: GlobalConfig) -> MailConfig:
    sec = ini.section("Mail")
    for key in _MAIL_IGNORED:  # Windows-only or not applicable: accepted, unused
        sec.raw(key)
    for item in list(sec.values.values()):
        if item.key.lower().startswith("javascript"):
            sec.raw(item.key)
    common = _load_common(sec, glob, options.MAIL_OPTIONS, max_clients=10,
                          max_inactivity=120.0, default_options="ALLOW_POP3")
    return MailConfig(
        common=common,
        pop3_interfaces=sec.get("POP3Interface", common.interfaces, parse_interfaces),
        outbound_interface=sec.get("OutboundInterface", "0.0.0.0"),
        smtp_port=sec.get("SMTPPort", 25, units.parse_port),
        submission_port=sec.get("SubmissionPort", 587, units.parse_port),
        tls_submission_port=sec.get("TLSSubmissionPort", 465, units.parse_port),
        pop3_port=sec.get("POP3Port", 110, units.parse_port),
        tls_pop3_port=sec.get("TLSPOP3Port", 995, units.parse_port),
        max_delivery_attempts=sec.get("MaxDeliveryAttempts", 50, _count),
        rescan_frequency=sec.get("RescanFrequency", 3600.0, _nonneg_duration),
        sem_file_check_frequency=sec.get("SemFileCheckFrequency", 2.0, _nonneg_duration),
        lines_per_yield=sec.get("LinesPerYield", 10, _count),
        max_recipients=sec.get("MaxRecipients", 100, _count),
        max_msg_size=sec.get("MaxMsgSize", 20 * 1024 * 1024, units.parse_size),
        max_msgs_waiting=sec.get("MaxMsgsWaiting", 100, _count),
        connect_timeout=sec.get("ConnectTimeout", 30.0, _nonneg_duration),
        hostname=sec.get("HostName", glob.hostname),
        relay_server=sec.get("RelayServer", ""),
        relay_port=sec.get("RelayPort", 25, units.parse_port),
        relay_username=sec.get("RelayUsername", ""),
        relay_password=sec.get("RelayPassword", ""),
        dns_server=sec.get("DNSServer", ""),
        default_user=sec.get("DefaultUser", ""),
        default_charset=sec.get("DefaultCharset", ""),
        dnsbl_header=sec.get("DNSBlacklistHeader", "X-DNSBL"),
        dnsbl_subject=sec.get("DNSBlacklistSubject", "SPAM"),
        new_mail_notice=sec.get("NewMailNotice", "New e-mail from <%s>\r\n"),
        forward_notice=sec.get("ForwardNotice", "and it was forwarded to: %s\r\n"),
        allow_cram_md5=sec.get("AllowCramMD5", False, units.parse_bool),
        auth_without_tls=sec.get("AuthWithoutTLS", False, units.parse_bool),
        max_concurrent_deliveries=sec.get("MaxConcurrentDeliveries", 10, _positive),
        max_deliveries_per_domain=sec.get("MaxDeliveriesPerDomain", 2, _positive),
        delivery_port=sec.get("DeliveryPort", 25, units.parse_port),
        retry_delay=sec.get("RetryDelay", 300.0, _nonneg_duration),
        fidonet_address=sec.get("FidoNetAddress", "", _ftn_address),
        mail_processor_timeout=sec.get("MailProcessorTimeout", 30.0, _nonneg_duration),
    )


_FTN_ADDRESS = re.compile(r"^(\d{1,5}):(\d{1,5})/(\d{1,5})(?:\.(\d{1,5}))?$")


def _ftn_address(text: str) -> str:
    """A FidoNet address ``zone:net/node[.point]`` (blank: none), normalised."""
    text = text.strip()
    if not text:
        return ""
    match = _FTN_ADDRESS.fullmatch(text)
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a FidoNet address (zone:net/node[.point], zone 1 or more)")
    zone, net, node, point = (int(g) if g else 0 for g in match.groups())
    return f"{zone}:{net}/{node}" + (f".{point}" if point else "")


def _load_ftp(ini: IniFile, glob: GlobalConfig) -> FTPConfig:
    sec = ini.section("FTP")
    config = FTPConfig(
        common=_load_common(sec, glob, options.FTP_OPTIONS, max_clients=10,
                            max_inactivity=300.0, default_options=""),
        port=sec.get("Port", 21, units.parse_port),
        pasv_ip_address=sec.get("PasvIpAddress", ""),
        pasv_ip6_address=sec.get("PasvIp6Address", ""),
        pasv_port_low=sec.get("PasvPortLow", 1024, units.parse_port),
        pasv_port_high=sec.get("PasvPortHigh", 65535, units.parse_port),
        index_file_name=sec.get("IndexFileName", "00index"),
        qwk_timeout=sec.get("QwkTimeout", 600.0, _nonneg_duration),
        hostname=sec.get("Hostname", glob.hostname),
        min_file_size=sec.get("MinFileSize", 0, units.parse_size),
        max_file_size=sec.get("MaxFileSize", 0, units.parse_size),
    )
    for key, value, version in (("PasvIpAddress", config.pasv_ip_address, 4),
                                ("PasvIp6Address", config.pasv_ip6_address, 6)):
        try:
            if value and ipaddress.ip_address(value).version != version:
                raise ValueError
        except ValueError:
            raise sec.error(key, f"{key}: {value!r} is not an IPv{version} address") from None
    if config.pasv_port_low > config.pasv_port_high:
        raise sec.error("PasvPortHigh", f"PasvPortHigh {config.pasv_port_high} is below "
                        f"PasvPortLow {config.pasv_port_low}")
    return config


def _load_services(ini: IniFile, glob: GlobalConfig) -> ServicesConfig:
    sec = ini.section("Services")
    return ServicesConfig(common=_load_common(sec, glob, options.SERVICES_OPTIONS,
                                              max_clients=0, max_inactivity=120.0,
                                              default_options=""))


def load_server_config(ini: IniFile, instance: Path) -> ServerConfig:
    """Build the frozen :class:`ServerConfig` from a parsed sbbs.ini.

    Raises ConfigError (file:line) for the first bad value.
    """
    glob = _load_global(ini, instance)
    known_sections = {"global", "bbs", "mail", "ftp", "services"}
    for name, section in ini.sections.items():
        if name not in known_sections and not name.startswith("listener:"):
            raise ConfigError(ini.path, section.line, f"unknown section [{section.name}]")
    return ServerConfig(path=ini.path, global_=glob, bbs=_load_bbs(ini, glob),
                        mail=_load_mail(ini, glob), ftp=_load_ftp(ini, glob),
                        services=_load_services(ini, glob), ini=ini)
