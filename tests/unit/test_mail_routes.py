"""Pure parsing of Synchronet's network recipients: FidoNet netmail hosts and
QWK bang paths (mail.address), and the [Mail] FidoNetAddress key."""
from __future__ import annotations

import pytest

from mail.address import parse_fidonet, split_bang_path
from mail.delivery import is_network_recipient


@pytest.mark.parametrize("domain,node", [
    ("f705.n103.z1.fidonet", "1:103/705"),
    ("p2.f705.n103.z1.fidonet", "1:103/705.2"),
    ("P0.F1.N2.Z3.FIDONET.", "3:2/1"),
])
def test_fidonet_hosts(domain, node):
    assert parse_fidonet(domain) == node


@pytest.mark.parametrize("domain", ["f1.n2.fidonet", "f1.n2.z3.fidonet.org", "z1.fidonet",
                                    "fx.n1.z1.fidonet", "f1.n2.z3.fidonetx", "example.com"])
def test_not_fidonet_hosts(domain):
    assert parse_fidonet(domain) is None


@pytest.mark.parametrize("local,split", [
    ("vert!rob", ("VERT", "rob")),
    ("VERT/cuddly!Digital Man", ("VERT/CUDDLY", "Digital Man")),
])
def test_bang_paths(local, split):
    assert split_bang_path(local) == split


@pytest.mark.parametrize("local", ["rob", "!rob", "VERT!", "a!b!c", "VERT!rob%evil.example",
                                   "TOOLONGID!rob", "VE RT!rob", "VERT//X!rob"])
def test_not_bang_paths(local):
    assert split_bang_path(local) is None


def test_network_recipients():
    assert is_network_recipient("qwk:rob@VERT") and is_network_recipient("FIDONET:x@1:2/3")
    assert not is_network_recipient("rob@example.org")
