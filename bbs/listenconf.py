"""Listener sockets: which address:port pairs each service listens on.

Every service gets default listener sockets from its Synchronet keys
(``Interface`` x ``TelnetPort`` ...), enabled by Synchronet's options
(``ALLOW_SSH``, ``USE_SUBMISSION_PORT`` ...). ``[Listener:NAME]`` sections of
sbbs.ini add or adjust sockets, with CommuniGate Pro listener semantics::

    [Listener:telnet]          ; NAME is a service: adjusts its default sockets
    Grant = 127.0.0.0/8, ::1   ; only these networks may connect
    [Listener:telnets]         ; any other NAME adds a socket
    Service = telnet
    Port = 992
    TLS = on                   ; off | on (TLS on accept) | ext (proxy did TLS)
    Deny = 192.0.2.0/24
    MaxConcurrentConnections = 3   ; per remote address, 0 = no limit

Port 0 asks the operating system for a free port (tests use it); a service
is switched off with its option or its section's ``AutoStart = false``.
"""
from __future__ import annotations

import dataclasses
import enum
import ipaddress
from pathlib import Path
from typing import Union

from bbs import units
from bbs.config import ServerCommon, ServerConfig
from bbs.errors import ConfigError
from bbs.ini import IniSection

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


class TLSMode(enum.Enum):
    """CommuniGate's "Init SSL/TLS" listener setting."""

    OFF = "off"
    ON = "on"
    EXT = "ext"


@dataclasses.dataclass(frozen=True)
class ServiceSpec:
    """How a service's default listeners come from sbbs.ini."""

    name: str
    server: str  # attribute of ServerConfig: bbs, mail, ftp, services
    port_attr: str
    option: str | None = None  # Options flag that enables it (None: always)
    tls: TLSMode = TLSMode.OFF
    interfaces_attr: str | None = None  # overrides common.interfaces
    port_key: str = ""  # the sbbs.ini key of the port: locates conflicts and bind errors


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("telnet", "bbs", "telnet_port", port_key="TelnetPort"),
    ServiceSpec("ssh", "bbs", "ssh_port", "ALLOW_SSH", port_key="SSHPort"),
    ServiceSpec("rlogin", "bbs", "rlogin_port", "ALLOW_RLOGIN", port_key="RLoginPort"),
    ServiceSpec("smtp", "mail", "smtp_port", port_key="SMTPPort"),
    ServiceSpec("submission", "mail", "submission_port", "USE_SUBMISSION_PORT",
                port_key="SubmissionPort"),
    ServiceSpec("smtps", "mail", "tls_submission_port", "TLS_SUBMISSION", TLSMode.ON,
                port_key="TLSSubmissionPort"),
    ServiceSpec("pop3", "mail", "pop3_port", "ALLOW_POP3", interfaces_attr="pop3_interfaces",
                port_key="POP3Port"),
    ServiceSpec("pop3s", "mail", "tls_pop3_port", "TLS_POP3", TLSMode.ON, "pop3_interfaces",
                port_key="TLSPOP3Port"),
    ServiceSpec("ftp", "ftp", "port", port_key="Port"),
)
SERVICE_BY_NAME = {spec.name: spec for spec in SERVICES}


@dataclasses.dataclass(frozen=True)
class ListenerConfig:
    """One listener socket. ``address`` "" means every local address (v4 and v6)."""

    name: str
    service: str
    server: str
    address: str
    port: int
    tls: TLSMode
    grant: tuple[Network, ...]
    deny: tuple[Network, ...]
    max_per_address: int
    path: Path
    line: int
    transport: str = "tcp"  # "udp" for datagram services (SYSTAT, MSP)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.line else str(self.path)


def parse_networks(text: str) -> tuple[Network, ...]:
    """Parse "10.0.0.0/8, ::1, 192.0.2.7" into networks; ValueError names the bad one."""
    networks = []
    for item in units.parse_list(text):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"invalid address or network {item!r}") from None
    return tuple(networks)


def parse_tls_mode(text: str) -> TLSMode:
    try:
        return TLSMode(text.strip().lower())
    except ValueError:
        raise ValueError(f"invalid TLS mode {text!r} (use off, on or ext)") from None


def parse_address(text: str) -> str:
    """Validate one Interface entry: an IP address, or "" / * for all."""
    text = text.strip().strip("[]")
    if text in ("", "*"):
        return ""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(f"invalid interface address {text!r}") from None


def interfaces_of(values: tuple[str, ...], sec: IniSection, key: str) -> tuple[str, ...]:
    try:
        return tuple(parse_address(v) for v in values) or ("",)
    except ValueError as exc:
        raise sec.error(key, f"{key}: {exc}") from None


def _enabled(spec: ServiceSpec, common: ServerCommon) -> bool:
    return common.autostart and (spec.option is None or spec.option in common.options)


def build_listeners(config: ServerConfig) -> tuple[ListenerConfig, ...]:
    """Return every listener socket of the enabled services, in start order.

    Raises ConfigError (file:line) for bad [Listener:*] values (also in the
    sections of disabled services), unknown services and two sockets on the
    same address and port.
    """
    ini = config.ini
    overrides: dict[str, IniSection] = {}
    for sec in ini.prefixed("Listener:"):
        key = sec.name.split(":", 1)[1].strip().lower()
        if not key:
            raise ConfigError(ini.path, sec.line, f"malformed section [{sec.name}] (expected [Listener:NAME])")
        if key in overrides:
            raise ConfigError(ini.path, sec.line, f"duplicate section [{sec.name}] "
                              f"(first at line {overrides[key].line})")
        overrides[key] = sec
    result: list[ListenerConfig] = []
    for spec in SERVICES:
        server = getattr(config, spec.server)
        common: ServerCommon = server.common
        section_name = {"bbs": "BBS", "mail": "Mail", "ftp": "FTP", "services": "Services"}[spec.server]
        sec = ini.section(section_name)
        iface_values = getattr(server, spec.interfaces_attr) if spec.interfaces_attr else common.interfaces
        interfaces = interfaces_of(iface_values, sec, "Interface")
        port = getattr(server, spec.port_attr)
        base = dict(name=spec.name, service=spec.name, server=spec.server, port=port,
                    tls=spec.tls, grant=(), deny=(), max_per_address=common.max_concurrent_connections,
                    path=ini.path, line=_line_of(sec, spec.port_key))
        own = overrides.pop(spec.name, None)
        if own is not None:
            service = own.get("Service", spec.name).strip()
            if service.lower() != spec.name:
                raise own.error("Service", f"Service = {service} contradicts the section name "
                                f"(a [Listener:{spec.name}] adjusts {spec.name}; use another "
                                "name to add a socket)")
            base, interfaces = apply_listener_keys(own, base, interfaces)  # checked even when disabled
        if _enabled(spec, common):
            result.extend(ListenerConfig(address=a, **base) for a in interfaces)
    for name, sec in overrides.items():
        service = sec.get("Service", "")
        if not service:
            raise sec.error("Service", f"Service = is required (one of {', '.join(SERVICE_BY_NAME)})")
        spec = SERVICE_BY_NAME.get(service.strip().lower())
        if spec is None:
            raise sec.error("Service", f"unknown service {service!r} (one of {', '.join(SERVICE_BY_NAME)})")
        if "port" not in sec:
            raise sec.error("Port", "Port = is required for an added listener socket")
        server = getattr(config, spec.server)
        iface_values = (getattr(server, spec.interfaces_attr) if spec.interfaces_attr
                        else server.common.interfaces)
        base = dict(name=sec.name.split(":", 1)[1].strip(), service=spec.name, server=spec.server,
                    port=0, tls=spec.tls, grant=(), deny=(),
                    max_per_address=server.common.max_concurrent_connections,
                    path=ini.path, line=sec.line)
        base, interfaces = apply_listener_keys(sec, base, interfaces_of(iface_values, sec, "Interface"))
        if _enabled(spec, server.common):  # the option switches off every socket of it
            result.extend(ListenerConfig(address=a, **base) for a in interfaces)
    check_conflicts(result)
    return tuple(result)


def apply_listener_keys(sec: IniSection, base: dict, interfaces: tuple[str, ...]) -> tuple[dict, tuple[str, ...]]:
    sec.raw("Service")
    # Locate the socket at the key that set its port (conflicts, bind errors).
    base = dict(base, line=sec.values["port"].line) if "port" in sec else dict(base)
    base["port"] = sec.get("Port", base["port"], units.parse_port)
    base["tls"] = sec.get("TLS", base["tls"], parse_tls_mode)
    base["grant"] = sec.get("Grant", base["grant"], parse_networks)
    base["deny"] = sec.get("Deny", base["deny"], parse_networks)
    base["max_per_address"] = sec.get("MaxConcurrentConnections", base["max_per_address"],
                                      lambda t: units.parse_int(t, minimum=0))
    if "interface" in sec:
        interfaces = interfaces_of(sec.get("Interface", (), units.parse_list), sec, "Interface")
    return base, interfaces


def _line_of(sec: IniSection, key: str) -> int:
    """The line of ``key`` in ``sec``, else of the section header (0: absent)."""
    item = sec.values.get(key.lower())
    return item.line if item else sec.line


def _overlaps(first: str, second: str) -> bool:
    """True when sockets on these two addresses (same port) cannot both bind.

    "" binds 0.0.0.0 and :: (see :mod:`bbs.listeners`); an explicit 0.0.0.0
    covers every IPv4 address and :: every IPv6 address (bound IPV6_V6ONLY).
    """
    if first == second or "" in (first, second):
        return True
    a, b = ipaddress.ip_address(first), ipaddress.ip_address(second)
    return a.version == b.version and (a.is_unspecified or b.is_unspecified)


def check_conflicts(listeners: list[ListenerConfig]) -> None:
    seen: list[ListenerConfig] = []
    for item in listeners:
        if item.port == 0:
            continue
        for other in seen:
            if (other.port == item.port and other.transport == item.transport
                    and _overlaps(other.address, item.address)):
                raise ConfigError(item.path, item.line,
                                  f"{item.service} port {item.port} is already used by "
                                  f"{other.service} ({other.where})")
        seen.append(item)
