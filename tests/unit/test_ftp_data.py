"""The passive data listener on real loopback sockets: accepting the
control connection's host, refusing another address (PASV port theft,
RFC 2577 section 3), and the time-out when nobody connects."""
from __future__ import annotations

import asyncio
import socket

import pytest

from ftp.data import DataError, PassiveListener


def connect(port: int, source: str) -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def test_accepts_a_connection_already_waiting_and_one_that_comes_later():
    async def main() -> None:
        listener = PassiveListener.open("127.0.0.1", 0, 0)
        early = connect(listener.port, "127.0.0.1")      # before accept(): in the backlog
        got = await listener.accept("127.0.0.1", timeout=5)
        assert got.getpeername() == early.getsockname() and not got.getblocking()
        got.close()
        listener.close()

        listener = PassiveListener.open("127.0.0.1", 0, 0)
        loop = asyncio.get_running_loop()
        later: list[socket.socket] = []
        loop.call_later(0.2, lambda: later.append(connect(listener.port, "127.0.0.1")))
        got = await listener.accept("127.0.0.1", timeout=5)
        assert got.getpeername() == later[0].getsockname()
        got.close()
        listener.close()
        early.close()
        later[0].close()
    asyncio.run(main())


def test_a_connection_from_another_address_is_closed_and_the_wait_goes_on():
    async def main() -> None:
        listener = PassiveListener.open("127.0.0.1", 0, 0)
        thief = connect(listener.port, "127.0.0.2")        # another host (all of 127/8 is loopback)
        loop = asyncio.get_running_loop()
        owner: list[socket.socket] = []
        loop.call_later(0.2, lambda: owner.append(connect(listener.port, "127.0.0.1")))
        got = await listener.accept("127.0.0.1", timeout=5)
        assert got.getpeername()[0] == "127.0.0.1"
        thief.settimeout(5)
        assert thief.recv(1) == b""                          # closed by the server
        for sock in (got, thief, owner[0]):
            sock.close()
        listener.close()
    asyncio.run(main())


def test_nobody_connecting_is_a_data_error_at_the_deadline():
    async def main() -> float:
        listener = PassiveListener.open("127.0.0.1", 0, 0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(DataError, match="no data connection arrived"):
            await listener.accept("127.0.0.1", timeout=0.3)
        listener.close()
        return loop.time() - started
    assert 0.25 <= asyncio.run(main()) < 3
