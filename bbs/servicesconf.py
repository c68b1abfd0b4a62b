"""ctrl/services.ini: the small services, one section each (Synchronet style).

::

    [Finger]            ; RFC 1288
    Port = 79
    [ActiveUser]        ; SYSTAT, RFC 866
    Port = 11
    Options = UDP       ; answer on UDP too, same port
    [MSP]               ; RFC 1312
    Port = 18
    Options = UDP

Keys of every section: ``Enabled`` (default true), ``Port``, ``Interface``,
``Options`` (``UDP``), and the listener keys ``Grant``, ``Deny``, ``TLS``,
``MaxConcurrentConnections``. ``[Services]`` in sbbs.ini holds what they
share: ``AutoStart``, ``Interface``, ``MaxClients``, ``MaxInactivity``,
``Options = NO_HOST_LOOKUP``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from bbs import units
from bbs.config import ServerConfig
from bbs.errors import ConfigError
from bbs.ini import IniFile
from bbs.listenconf import ListenerConfig, TLSMode, apply_listener_keys, interfaces_of


@dataclasses.dataclass(frozen=True)
class ServiceDefault:
    """A service of services.ini: its section name, Synchronet's port, and form."""

    service: str
    section: str
    port: int
    udp: bool = False
    tls: TLSMode = TLSMode.OFF


#: The services and their Synchronet default ports (synchronet-faq-tcpip port table).
SERVICE_DEFAULTS = (
    ServiceDefault("finger", "Finger", 79),
    ServiceDefault("systat", "ActiveUser", 11, udp=True),
    ServiceDefault("msp", "MSP", 18, udp=True),
    ServiceDefault("nntp", "NNTP", 119),
    ServiceDefault("nntps", "NNTPS", 563, tls=TLSMode.ON),
    ServiceDefault("gopher", "Gopher", 70),
)
SERVICE_OPTIONS = frozenset({"UDP", "NO_HOST_LOOKUP"})


def build_service_listeners(ini: IniFile | None, server: ServerConfig, path: Path) -> list[ListenerConfig]:
    """Listener sockets of services.ini (``ini`` None: the file is absent and
    every service is off). Raises ConfigError (file:line)."""
    if ini is None:
        return []
    known = {d.section.lower(): d for d in SERVICE_DEFAULTS}
    for name, section in ini.sections.items():
        if name not in known:
            raise ConfigError(path, section.line, f"unknown service [{section.name}] "
                              f"(known: {', '.join(d.section for d in SERVICE_DEFAULTS)})")
    common = server.services.common
    result: list[ListenerConfig] = []
    for default in SERVICE_DEFAULTS:
        sec = ini.sections.get(default.section.lower())
        if sec is None:
            continue
        enabled = sec.get("Enabled", True, units.parse_bool)
        options = sec.get("Options", frozenset({"UDP"}) if default.udp else frozenset(),
                          lambda text: units.parse_flags(text, SERVICE_OPTIONS))
        base = dict(name=default.service, service=default.service, server="services",
                    port=default.port, tls=default.tls, grant=(), deny=(),
                    max_per_address=common.max_concurrent_connections, path=path, line=sec.line)
        base, interfaces = apply_listener_keys(sec, base, interfaces_of(common.interfaces, sec, "Interface"))
        if not (enabled and common.autostart):
            continue
        result.extend(ListenerConfig(address=a, **base) for a in interfaces)
        if "UDP" in options:
            if base["tls"] is not TLSMode.OFF:
                raise sec.error("Options", "UDP cannot be combined with TLS")
            result.extend(ListenerConfig(address=a, transport="udp", **base) for a in interfaces)
    return result
