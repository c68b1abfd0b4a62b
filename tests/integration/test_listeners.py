"""Listener sockets with real sockets on loopback: admission rules, TLS modes,
IPv6, bind retry, tracking, and crash isolation."""
from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
import time
from pathlib import Path

import pytest

from bbs.config import ServerCommon
from bbs.events import ConnectionClosed, ConnectionOpened, ConnectionRefused, EventBus
from bbs.filters import FilterSet
from bbs.listenconf import ListenerConfig, TLSMode, parse_networks
from bbs.listeners import BindError, Connection, ListenerManager, ServiceHandler, _bind_advice
from bbs.loginattempts import LoginAttemptRules, LoginAttemptTracker
from bbs.tlscert import ensure_certificate, server_context
from tests.support import run_async, until

BANNER = b"hello\r\n"


def common(**changes) -> ServerCommon:
    base = dict(autostart=True, interfaces=(), max_clients=0, max_inactivity=0.0,
                bind_retry_count=0, bind_retry_delay=0.0, max_concurrent_connections=0,
                client_reserve=0, client_networks=(), log_level=20, options=frozenset())
    base.update(changes)
    return ServerCommon(**base)


def listener(**changes) -> ListenerConfig:
    base = dict(name="test", service="test", server="bbs", address="127.0.0.1", port=0,
                tls=TLSMode.OFF, grant=(), deny=(), max_per_address=0, path=Path("sbbs.ini"), line=7)
    base.update(changes)
    return ListenerConfig(**base)


class Harness:
    """A ListenerManager over real filter files, with a banner handler."""

    def __init__(self, tmp: Path, rules: LoginAttemptRules | None = None) -> None:
        (tmp / "text").mkdir(exist_ok=True)
        (tmp / "ctrl").mkdir(exist_ok=True)
        self.tmp = tmp
        self.bus = EventBus()
        self.events: list = []
        self.bus.subscribe(self.events.append)
        self.filters = FilterSet(tmp / "text", tmp / "ctrl")
        self.login = LoginAttemptTracker(rules or LoginAttemptRules(throttle=0.0), ip_can=self.filters.ip,
                                         exempt=self.filters.ipfilter_exempt, hack_log=tmp / "hack.log")
        cert, key = tmp / "server.crt", tmp / "server.key"
        ensure_certificate(cert, key, "localhost")
        self.cert = cert
        self.manager = ListenerManager(bus=self.bus, filters=self.filters, login=self.login,
                                       tls_context=lambda: server_context(cert, key))
        self.seen: list[Connection] = []

    async def banner(self, reader, writer, conn: Connection) -> None:
        self.seen.append(conn)
        writer.write(BANNER)
        await writer.drain()
        while line := await reader.readline():
            writer.write(line.upper())
            await writer.drain()

    async def start(self, listeners, group: ServerCommon | None = None, handler=None) -> None:
        await self.manager.bind(listeners, {"bbs": group or common()})
        await self.manager.start({"test": handler or ServiceHandler(stream=self.banner)})

    def port(self) -> int:
        return self.manager.port_of("test")

    async def stop(self) -> None:
        await self.manager.close_listeners()
        await self.manager.drain(0.5)


async def connect(port: int, host: str = "127.0.0.1", source: str | None = None, tls: ssl.SSLContext | None = None):
    return await asyncio.wait_for(asyncio.open_connection(
        host, port, local_addr=(source, 0) if source else None, ssl=tls,
        server_hostname="localhost" if tls else None), 5)


async def greeted(port: int, wait: float = 5, **kwargs) -> bool:
    """True when the service's banner arrives; False when the socket is closed
    first (or nothing arrives within ``wait`` seconds)."""
    try:
        reader, writer = await connect(port, **kwargs)
    except (ConnectionError, ssl.SSLError):
        return False
    try:
        data = await asyncio.wait_for(reader.read(len(BANNER)), wait)
    except (ConnectionError, ssl.SSLError, asyncio.TimeoutError):
        data = b""
    finally:
        writer.close()
    return data == BANNER


async def open_greeted(port: int, **kwargs):
    reader, writer = await connect(port, **kwargs)
    assert await asyncio.wait_for(reader.read(len(BANNER)), 5) == BANNER
    return reader, writer


def run(coro):
    return run_async(coro)


def test_grant_list_admits_only_granted_networks(tmp_path):
    async def main():
        h = Harness(tmp_path)
        await h.start([listener(grant=parse_networks("127.0.0.2/32"))])
        assert await greeted(h.port(), source="127.0.0.2")
        assert not await greeted(h.port(), source="127.0.0.1")
        refused = [e for e in h.events if isinstance(e, ConnectionRefused)]
        assert refused and refused[0].address == "127.0.0.1" and "Grant" in refused[0].reason
        await h.stop()
    run(main())


def test_deny_list_refuses_listed_networks(tmp_path):
    async def main():
        h = Harness(tmp_path)
        await h.start([listener(deny=parse_networks("127.0.0.3/32, 10.0.0.0/8"))])
        assert not await greeted(h.port(), source="127.0.0.3")
        assert await greeted(h.port(), source="127.0.0.1")
        await h.stop()
    run(main())


def test_per_address_limit_counts_open_connections(tmp_path):
    async def main():
        h = Harness(tmp_path)
        await h.start([listener(max_per_address=2)])
        first = await open_greeted(h.port())
        second = await open_greeted(h.port())
        assert not await greeted(h.port())                      # third from 127.0.0.1
        assert await greeted(h.port(), source="127.0.0.9")      # another address is fine
        first[1].close()
        await first[1].wait_closed()
        await until(lambda: len(h.manager.connections) <= 1)   # the server sees the close
        assert await greeted(h.port())
        second[1].close()
        await h.stop()
    run(main())


def test_max_clients_and_reserve_for_client_networks(tmp_path):
    async def main():
        h = Harness(tmp_path)
        group = common(max_clients=3, client_reserve=1, client_networks=("127.0.0.5/32",))
        await h.start([listener()], group)
        held = [await open_greeted(h.port()), await open_greeted(h.port())]
        assert not await greeted(h.port())                      # last slot is reserved
        held.append(await open_greeted(h.port(), source="127.0.0.5"))
        assert not await greeted(h.port(), source="127.0.0.5")  # MaxClients reached
        reasons = [e.reason for e in h.events if isinstance(e, ConnectionRefused)]
        assert "reserved" in reasons[0] and "MaxClients (3)" in reasons[1]
        for _, writer in held:
            writer.close()
        await h.stop()
    run(main())


def test_ipv6_listener_and_all_addresses(tmp_path):
    async def main():
        h = Harness(tmp_path)
        await h.start([listener(address="::1")])
        assert await greeted(h.port(), host="::1")
        assert h.seen[-1].address == "::1"
        await h.stop()
        h2 = Harness(tmp_path)
        await h2.start([listener(address="")])                  # every address, v4 and v6
        families = {sock_family for sock_family in (":" in a for _, a, _, _ in h2.manager.bound())}
        assert families == {True, False}
        ports = {p for _, _, p, _ in h2.manager.bound()}
        assert len(ports) == 1                                  # port 0: both share one port
        port = ports.pop()
        assert await greeted(port, host="::1") and await greeted(port, host="127.0.0.1")
        await h2.stop()
    run(main())


def test_ipv6_grant_and_deny(tmp_path):
    async def main():
        h = Harness(tmp_path)
        await h.start([listener(address="::1", deny=parse_networks("::1/128"))])
        assert not await greeted(h.port(), host="::1")
        await h.stop()
    run(main())


def test_tls_on_ext_and_off(tmp_path):
    async def main():
        h = Harness(tmp_path)
        await h.manager.bind([listener(name="on", tls=TLSMode.ON), listener(name="ext", tls=TLSMode.EXT,
                                                                             service="test2"),
                              listener(name="off", service="test3")], {"bbs": common()})
        handler = ServiceHandler(stream=h.banner)
        await h.manager.start({"test": handler, "test2": handler, "test3": handler})
        client = ssl.create_default_context(cafile=str(h.cert))
        assert await greeted(h.manager.port_of("test"), tls=client)
        assert h.seen[-1].secure
        # clear text to a TLS socket: the server waits for a ClientHello, no banner
        assert not await greeted(h.manager.port_of("test"), wait=0.5)
        assert await greeted(h.manager.port_of("test2"))        # ext: clear text, secure
        assert h.seen[-1].secure
        assert await greeted(h.manager.port_of("test3"))
        assert not h.seen[-1].secure
        await h.stop()
    run(main())


def test_tls_session_echoes_after_handshake(tmp_path):
    async def main():
        h = Harness(tmp_path)
        await h.start([listener(tls=TLSMode.ON)])
        reader, writer = await open_greeted(h.port(), tls=ssl.create_default_context(cafile=str(h.cert)))
        writer.write(b"abc\n")
        assert await asyncio.wait_for(reader.readline(), 5) == b"ABC\n"
        assert writer.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
        writer.close()
        await h.stop()
    run(main())


def test_bind_retry_then_clear_eaddrinuse_message(tmp_path, caplog):
    async def main():
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        h = Harness(tmp_path)
        with pytest.raises(BindError) as info:
            await h.manager.bind([listener(port=port)], {"bbs": common(bind_retry_count=2, bind_retry_delay=0.05)})
        blocker.close()
        return port, str(info.value)
    caplog.set_level(logging.INFO)
    port, message = run(main())
    assert f"test port {port} on 127.0.0.1: address already in use" in message
    assert f"ss -ltnp 'sport = :{port}'" in message and "sbbs.ini:7" in message
    lines = [r.getMessage() for r in caplog.records]
    assert lines.count(f"!ERROR {errno.EADDRINUSE} binding test socket to port {port}") == 3
    assert "Will retry in 0.05 seconds (1 of 2)" in lines and "Will retry in 0.05 seconds (2 of 2)" in lines


def test_bind_retry_succeeds_when_port_frees(tmp_path):
    async def main():
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        asyncio.get_running_loop().call_later(0.1, blocker.close)
        h = Harness(tmp_path)
        await h.start([listener(port=port)], common(bind_retry_count=5, bind_retry_delay=0.1))
        assert h.port() == port and await greeted(port)
        await h.stop()
    run(main())


def test_a_socket_that_fails_to_start_serving_is_closed(tmp_path):
    async def refuse(*args, **kwargs):
        raise OSError(errno.ENOMEM, "out of memory")

    async def main():
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        h = Harness(tmp_path)
        items = [listener(port=port), listener(name="u", port=port, transport="udp")]
        await h.manager.bind(items, {"bbs": common()})
        loop = asyncio.get_running_loop()
        loop.create_server = loop.create_datagram_endpoint = refuse    # the loop fails to serve them
        try:
            with pytest.raises(OSError, match="out of memory") as failure:
                await h.manager.start({"test": ServiceHandler(stream=h.banner, datagram=refuse)})
            await asyncio.sleep(0)
        finally:
            del loop.create_server, loop.create_datagram_endpoint
        # Closed at once, not when the failure (its traceback holds the socket) is collected:
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):            # the port is free again
            with socket.socket(socket.AF_INET, kind) as again:
                again.bind(("127.0.0.1", port))
        del failure
    run(main())


def test_a_start_cancelled_before_serving_leaves_its_sockets_to_close_listeners(tmp_path):
    """A shutdown that cancels a launch's start() before its sockets serve
    (the rollback then calls close_listeners) leaves no port bound."""
    async def main():
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        h = Harness(tmp_path)
        await h.manager.bind([listener(port=port), listener(name="u", port=port, transport="udp")],
                             {"bbs": common()})
        starting = h.manager.start({"test": ServiceHandler(stream=h.banner, datagram=h.banner)})
        starting.cancel()                                           # before any of it has run
        with pytest.raises(asyncio.CancelledError):
            await starting
        await h.manager.close_listeners()
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):          # the port is free again
            with socket.socket(socket.AF_INET, kind) as again:
                again.bind(("127.0.0.1", port))
    run(main())


def test_bind_advice_for_permission_denied():
    message = _bind_advice(listener(port=23), "0.0.0.0", 23, OSError(errno.EACCES, "Permission denied"))
    assert "permission denied" in message and "port above 1023" in message
    assert "cap_net_bind_service" in message and "sbbs.ini:7" in message


def test_banned_and_filtered_addresses_refused_at_accept(tmp_path):
    async def main():
        h = Harness(tmp_path, LoginAttemptRules(throttle=0.0, tempban_threshold=3, tempban_duration=60))
        await h.start([listener()])
        for _ in range(3):
            h.login.failed("127.0.0.7", "telnet", "bob")
        assert not await greeted(h.port(), source="127.0.0.7")
        assert h.login.lift("127.0.0.7")
        assert await greeted(h.port(), source="127.0.0.7")
        (tmp_path / "text" / "ip.can").write_text("127.0.0.8\n")   # the sysop edits ip.can
        assert not await greeted(h.port(), source="127.0.0.8")
        (tmp_path / "ctrl" / "ipfilter_exempt.cfg").write_text("127.0.0.8\n")
        assert await greeted(h.port(), source="127.0.0.8")
        reasons = [e.reason for e in h.events if isinstance(e, ConnectionRefused)]
        assert reasons[0].startswith("temporarily banned") and reasons[1] == "filtered (ip.can line 1)"
        await h.stop()
    run(main())


def test_host_can_refuses_by_reverse_name_unless_no_host_lookup(tmp_path):
    async def main():
        (tmp_path / "text").mkdir()
        (tmp_path / "text" / "host.can").write_text("; test\nlocal*\n")
        h = Harness(tmp_path)
        await h.start([listener()])
        assert not await greeted(h.port())                      # 127.0.0.1 is "localhost"
        reasons = [e.reason for e in h.events if isinstance(e, ConnectionRefused)]
        assert reasons == ["filtered (host.can line 2)"]
        await h.stop()
        h2 = Harness(tmp_path)
        await h2.start([listener()], common(options=frozenset({"NO_HOST_LOOKUP"})))
        assert await greeted(h2.port()) and h2.seen[-1].host == ""
        await h2.stop()
    run(main())


def test_throttle_delays_addresses_with_failed_logins(tmp_path):
    async def main():
        h = Harness(tmp_path, LoginAttemptRules(throttle=0.3))
        await h.start([listener()])
        h.login.failed("127.0.0.6", "telnet", "bob")
        h.login.failed("127.0.0.6", "telnet", "bob")
        started = time.monotonic()
        assert await greeted(h.port(), source="127.0.0.6")
        assert time.monotonic() - started >= 0.55                # 2 failures x 0.3 s
        await h.stop()
    run(main())


def test_crashing_session_is_logged_and_others_go_on(tmp_path, caplog):
    async def main():
        h = Harness(tmp_path)

        async def handler(reader, writer, conn):
            line = await reader.readline()
            if line == b"crash\n":
                raise RuntimeError("boom")
            writer.write(b"ok " + line)
            await writer.drain()
            await reader.readline()

        await h.start([listener()], handler=ServiceHandler(stream=handler))
        r1, w1 = await connect(h.port())
        r2, w2 = await connect(h.port())
        w1.write(b"crash\n")
        assert await asyncio.wait_for(r1.read(), 5) == b""      # the crashing session is closed
        w2.write(b"hi\n")
        assert await asyncio.wait_for(r2.readline(), 5) == b"ok hi\n"
        w2.close()
        await h.stop()
    caplog.set_level(logging.INFO)
    run(main())
    assert any("session crashed; closing it" in r.getMessage() and r.exc_info for r in caplog.records)


def test_protocol_factory_and_connection_tracking(tmp_path):
    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
            transport.write(BANNER)

        def data_received(self, data):
            self.transport.write(data)

    async def main():
        h = Harness(tmp_path)
        await h.start([listener()], handler=ServiceHandler(protocol=lambda conn: Echo()))
        reader, writer = await open_greeted(h.port())
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
        assert len(h.manager.connections) == 1
        writer.close()
        await until(lambda: not h.manager.connections)
        kinds = [type(e) for e in h.events if isinstance(e, (ConnectionOpened, ConnectionClosed))]
        assert kinds == [ConnectionOpened, ConnectionClosed]
        await h.stop()
    run(main())


def test_drain_closes_sessions_after_grace(tmp_path):
    async def main():
        h = Harness(tmp_path)
        await h.start([listener()])
        port = h.port()
        reader, writer = await open_greeted(port)
        await h.manager.close_listeners()
        with pytest.raises(OSError):
            await connect(port)                                 # no longer accepting
        started = time.monotonic()
        await h.manager.drain(0.2)
        assert time.monotonic() - started >= 0.2
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert not h.manager.connections
    run(main())


def test_udp_listener_admission_and_rate_limit(tmp_path):
    from bbs.listeners import UDP_MAX_PER_SECOND

    async def echo(data, address, item):
        return b"echo " + data

    async def main():
        h = Harness(tmp_path)
        items = [listener(name="u", transport="udp", deny=parse_networks("127.0.0.4/32"))]
        await h.manager.bind(items, {"bbs": common()})
        await h.manager.start({"test": ServiceHandler(datagram=echo)})
        (_, _, port), = h.manager.bound_udp()
        loop = asyncio.get_running_loop()
        replies: list[bytes] = []

        class Client(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr):
                replies.append(data)

        denied, _ = await loop.create_datagram_endpoint(Client, local_addr=("127.0.0.4", 0),
                                                       remote_addr=("127.0.0.1", port))
        denied.sendto(b"x")
        client, _ = await loop.create_datagram_endpoint(Client, remote_addr=("127.0.0.1", port))
        for number in range(UDP_MAX_PER_SECOND + 10):
            client.sendto(b"%d" % number)
        await until(lambda: len(replies) >= UDP_MAX_PER_SECOND)
        await asyncio.sleep(0.2)
        assert sorted(replies) == sorted(b"echo %d" % n for n in range(UDP_MAX_PER_SECOND))
        assert [e.reason for e in h.events if isinstance(e, ConnectionRefused)] == ["in the listener's Deny list"]
        denied.close()
        client.close()
        await h.stop()
    run(main())
