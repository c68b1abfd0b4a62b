"""ctrl/services.ini: the small services' listener sockets."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bbs.errors import ConfigError
from bbs.instance import init_instance, load_config
from bbs.listenconf import TLSMode


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "bbs"
    init_instance(root)
    return root


def services(root: Path, text: str, sbbs_services: str = "") -> list[tuple[str, str, int, str]]:
    (root / "ctrl" / "services.ini").write_text(textwrap.dedent(text).lstrip("\n"))
    if sbbs_services:
        sbbs = root / "ctrl" / "sbbs.ini"
        sbbs.write_text(sbbs.read_text().replace("[Services]\nAutoStart = true\n", sbbs_services))
    return [(i.service, i.address, i.port, i.transport) for i in load_config(root).listeners
            if i.server == "services"]


def test_shipped_services_ini_gives_every_service_with_udp_for_systat_and_msp(root):
    items = services(root, (root / "ctrl" / "services.ini").read_text())
    assert items == [("finger", "", 2079, "tcp"), ("systat", "", 2011, "tcp"), ("systat", "", 2011, "udp"),
                     ("msp", "", 2018, "tcp"), ("msp", "", 2018, "udp"), ("nntp", "", 2119, "tcp"),
                     ("nntps", "", 2563, "tcp"), ("gopher", "", 2070, "tcp")]


def test_synchronet_default_ports_options_and_enabled(root):
    items = services(root, """
        [Finger]
        [ActiveUser]
        Options =
        [MSP]
        Enabled = false
        [Gopher]
        Interface = 127.0.0.1, ::1
        """)
    assert items == [("finger", "", 79, "tcp"), ("systat", "", 11, "tcp"),
                     ("gopher", "127.0.0.1", 70, "tcp"), ("gopher", "::1", 70, "tcp")]


def test_nntps_defaults_to_tls_and_listener_keys_apply(root):
    (root / "ctrl" / "services.ini").write_text("[NNTPS]\nPort = 2563\nGrant = 10.0.0.0/8\n")
    (item,) = [i for i in load_config(root).listeners if i.service == "nntps"]
    assert item.tls is TLSMode.ON and str(item.grant[0]) == "10.0.0.0/8"


def test_services_autostart_false_switches_all_off(root):
    assert services(root, "[Finger]\n", "[Services]\nAutoStart = false\n") == []


@pytest.mark.parametrize("text, line, message", [
    ("[Fingr]\n", 1, "unknown service [Fingr] (known: Finger, ActiveUser, MSP, NNTP, NNTPS, Gopher)"),
    ("[Finger]\nPort = 70000\n", 2, "[Finger] Port: 70000 is above the maximum 65535"),
    ("[MSP]\nOptions = UDP | TCP\n", 2, "[MSP] Options: unknown option TCP (known: NO_HOST_LOOKUP, UDP)"),
    ("[NNTPS]\nOptions = UDP\n", 2, "[NNTPS] UDP cannot be combined with TLS"),
    ("[Finger]\nEnabled = maybe\n", 2, "[Finger] Enabled: invalid boolean 'maybe' (use true or false)"),
])
def test_errors_are_located(root, text, line, message):
    path = root / "ctrl" / "services.ini"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(root)
    assert str(info.value) == f"{path}:{line}: {message}"


def test_port_conflict_with_sbbs_ini_is_located(root):
    path = root / "ctrl" / "services.ini"
    path.write_text("[Finger]\nPort = 2023\n")     # the shipped TelnetPort
    with pytest.raises(ConfigError) as info:
        load_config(root)
    assert str(info.value).startswith(f"{path}:2: finger port 2023 is already used by telnet (")
