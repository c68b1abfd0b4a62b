"""Finger, SYSTAT and MSP against `bbs run`, with the Debian `finger` client
and raw TCP/UDP sockets; bad input and floods leave every service up."""
from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bbs.db import Database
from bbs.users import USER_MIGRATIONS, UserBase
from tests.support import REPO, BBSProcess, set_ini


def tcp_query(port: int, data: bytes, *, read: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while read:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def udp_query(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(data, ("127.0.0.1", port))
        return sock.recvfrom(4096)[0]


def add_user(root: Path, alias: str, **fields) -> None:
    async def main():
        db = Database(root / "data" / "user.db", USER_MIGRATIONS)
        await db.open()
        users = UserBase(db)
        user = await users.add(alias, "password1", real_name="Secret Realname", email="secret@example.org",
                               location="Magrathea")
        if fields:
            await users.update(user.number, **fields)
        await db.close()
    asyncio.run(main())


def telegrams(root: Path) -> list[tuple[int, str, str]]:
    with sqlite3.connect(root / "data" / "telegram.db") as conn:
        return conn.execute("SELECT to_number, sender, text FROM telegrams ORDER BY id").fetchall()


@pytest.fixture
def board(instance: Path):
    (instance / "data").mkdir(exist_ok=True)
    add_user(instance, "Zaphod", settings={"plan": "Steal the Heart of Gold."})
    process = BBSProcess(instance).start()
    yield process
    if process.proc.poll() is None:
        assert process.stop() == 0


def test_finger_who_is_online_and_profiles(board: BBSProcess):
    port = board.ports["finger"]
    nobody = tcp_query(port, b"\r\n").decode()
    assert "New Python BBS" in nobody and "Nobody is online." in nobody
    with socket.create_connection(("127.0.0.1", board.ports["telnet"])) as caller:
        caller.recv(100)                                         # holds node 1
        online = tcp_query(port, b"\r\n").decode()
    assert "   1  (logging on)" in online and "telnet" in online and "1 of 4 nodes in use." in online
    profile = tcp_query(port, b"zaphod\r\n").decode()
    assert "User: Zaphod" in profile and "From: Magrathea" in profile and "Last on: never" in profile
    assert "Plan:\r\nSteal the Heart of Gold." in profile
    assert "Realname" not in profile and "secret@" not in profile and "Level" not in profile
    assert tcp_query(port, b"/W zaphod\r\n").decode() == profile
    assert tcp_query(port, b"nobody\r\n") == b"No such user.\r\n"
    assert tcp_query(port, b"zaphod@elsewhere.example\r\n") == b"Finger forwarding service denied.\r\n"


def test_finger_bad_input_gets_an_error_and_the_service_stays_up(board: BBSProcess):
    port = board.ports["finger"]
    assert tcp_query(port, b"A" * 100_000 + b"\r\n") == b"Invalid query.\r\n"
    assert tcp_query(port, b"\xff\xfe\x00binary\r\n") == b"Invalid query.\r\n"
    for _ in range(50):                                          # a burst of connections
        socket.create_connection(("127.0.0.1", port)).close()
    assert b"User: Zaphod" in tcp_query(port, b"zaphod\r\n")
    assert "Traceback" not in board.stderr()


def test_systat_tcp_and_udp(board: BBSProcess):
    assert tcp_query(board.ports["systat"], b"") == b"No active users.\r\n"
    with socket.create_connection(("127.0.0.1", board.ports["telnet"])) as caller:
        caller.recv(100)
        tcp_answer = tcp_query(board.ports["systat"], b"")
        udp_answer = udp_query(board.udp_ports["systat"], b"\n")
    assert tcp_answer.startswith(b"(logging on)") and b"node 1   telnet" in tcp_answer
    assert udp_answer == tcp_answer
    assert board.udp_ports["systat"] == board.ports["systat"]  # one port, TCP and UDP


def msp_message(recipient: str, text: str, sender: str = "ford") -> bytes:
    parts = [recipient, "", text, sender, "ttyp1", "1700000000", ""]
    return b"B" + b"".join(p.encode() + b"\0" for p in parts)


def test_msp_tcp_delivers_a_telegram_and_refuses_bad_messages(board: BBSProcess):
    port = board.ports["msp"]
    assert tcp_query(port, msp_message("Zaphod", "Don't panic!")) == b"+\0"
    assert tcp_query(port, msp_message("nobody", "hello")) == b"-no such user\0"
    assert tcp_query(port, b"Aold version\0\0\0\0\0\0\0") == b"-unsupported version (expected B)\0"
    assert tcp_query(port, b"B" + b"x" * 5000 + b"\0" * 7) == b"-message too long\0"
    assert tcp_query(port, msp_message("Zaphod", "")) == b"-empty message\0"
    rows = telegrams(board.root)
    assert rows == [(1, "ford (MSP)", "Don't panic!")]        # Zaphod is #1: added before the first start
    assert "Sysop account 'Sysop' created" in board.stderr()   # ... and the sysop still got an account


def test_msp_udp_and_a_udp_flood(board: BBSProcess):
    udp = board.udp_ports["msp"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(msp_message("zaphod", "via UDP", "arthur@earth"), ("127.0.0.1", udp))
        for _ in range(2000):                                    # flood: dropped past the rate limit
            sock.sendto(b"B" + b"junk\0" * 3, ("127.0.0.1", udp))
    deadline = time.monotonic() + 10
    while not telegrams(board.root) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert telegrams(board.root) == [(1, "arthur@earth (MSP)", "via UDP")]
    time.sleep(1.1)                                              # the flood window passes
    assert udp_query(board.udp_ports["systat"], b"x") == b"No active users.\r\n"
    assert tcp_query(board.ports["msp"], msp_message("Zaphod", "still up")) == b"+\0"


SCRIPT = textwrap.dedent("""
    set -e
    ip link set lo up
    {python} -m bbs run {root} --headless 2>{root}/netns.stderr &
    bbs=$!
    for i in $(seq 1 300); do [ -s {root}/data/listeners.json ] && break; sleep 0.1; done
    echo "=== online"; finger @127.0.0.1
    echo "=== zaphod"; finger -l zaphod@127.0.0.1
    kill -TERM $bbs; wait $bbs; echo "=== exit $?"
""")


def test_debian_finger_client_on_port_79_in_a_private_network_namespace(instance: Path):
    # The finger client only speaks to port 79: run the BBS and the client in
    # their own user+network namespace, where 79 is ours and nothing leaves.
    add_user(instance, "Zaphod", settings={"plan": "Steal the Heart of Gold."})
    set_ini(instance / "ctrl" / "services.ini", "Finger", "Port", "79")
    script = SCRIPT.format(python=sys.executable, root=instance)
    result = subprocess.run(["unshare", "-rn", "bash", "-c", script], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    out = result.stdout
    assert result.returncode == 0, result.stderr + (instance / "netns.stderr").read_text()
    online = out.split("=== online", 1)[1].split("=== zaphod", 1)[0]
    assert "New Python BBS" in online and "Nobody is online." in online
    zaphod = out.split("=== zaphod", 1)[1]
    assert "User: Zaphod" in zaphod and "Steal the Heart of Gold." in zaphod
    assert "=== exit 0" in out
