"""Listener sockets at run time: bind (with retry), admit, hand off, track.

One :class:`ListenerManager` per App serves every service. For each accepted
connection it checks, before a byte is read (CommuniGate semantics: refused
connections are closed at once):

1. the listener's Grant list (if any) and Deny list;
2. temporary bans and ip.can filters (failed-login rules, shared by all servers);
3. the per-address limit (``MaxConcurrentConnections``) across the service;
4. the server's ``MaxClients``, and its ``ClientReserve`` slots that only
   ``ClientNetworks`` may take.

Then it throttles addresses with failed logins (``LoginAttemptThrottle``),
starts TLS when the listener's mode is ``on``, and hands the connection to the
service: a stream handler ``(reader, writer, conn)`` or a protocol factory
``(conn) -> asyncio.Protocol`` (telnetlib3, asyncssh, aiosmtpd).
"""
from __future__ import annotations

import asyncio
import dataclasses
import errno
import ipaddress
import itertools
import logging
import socket
import ssl
import time
from typing import Awaitable, Callable, Iterable

from bbs.config import ServerCommon
from bbs.events import ConnectionClosed, ConnectionOpened, ConnectionRefused, EventBus
from bbs.filters import FilterSet, normalize_ip
from bbs.listenconf import ListenerConfig, TLSMode, parse_networks
from bbs.loginattempts import LoginAttemptTracker

log = logging.getLogger(__name__)

#: Server section -> log tag (see bbs.logsetup), so listener lines sort with their server.
SERVER_TAGS = {"bbs": "term", "mail": "mail", "ftp": "ftp", "services": "srvc"}


def _tag(item: ListenerConfig) -> dict:
    return {"extra": {"tag": SERVER_TAGS.get(item.server, "bbs")}}

#: listen(2) backlog: room for hundreds of clients connecting at once. (Python
#: 3.11's accept loop repeats an out-of-descriptors error once per slot,
#: cpython#151615; bbs.logsetup collapses those lines.)
LISTEN_BACKLOG = 1024
#: Seconds a TLS handshake may take before the connection is dropped.
TLS_HANDSHAKE_TIMEOUT = 30.0
#: Seconds a reverse DNS look-up (for host.can) may take; then the host is unknown.
HOST_LOOKUP_TIMEOUT = 5.0

#: Datagrams one address may send a UDP service per second; the rest are dropped (floods).
UDP_MAX_PER_SECOND = 20

StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Connection"], Awaitable[None]]
ProtocolFactory = Callable[["Connection"], asyncio.BaseProtocol]
DatagramHandler = Callable[[bytes, str, ListenerConfig], Awaitable["bytes | None"]]


@dataclasses.dataclass(frozen=True)
class ServiceHandler:
    """How a service takes over an admitted connection: ``stream`` or
    ``protocol`` for TCP sockets, ``datagram(data, address, listener) -> reply
    or None`` for UDP sockets of the same service."""

    stream: StreamHandler | None = None
    protocol: ProtocolFactory | None = None
    datagram: DatagramHandler | None = None


class BindError(Exception):
    """A listener socket could not be bound after every retry."""


@dataclasses.dataclass(eq=False)
class Connection:
    """One open client connection of any service (the console's Clients pane)."""

    id: int
    service: str
    listener: ListenerConfig
    address: str
    port: int
    local_address: str
    local_port: int
    secure: bool
    since: float
    transport: asyncio.BaseTransport = dataclasses.field(repr=False)
    user: str = ""
    node: int = 0
    host: str = ""  # reverse DNS name, when looked up for host.can

    def close(self) -> None:
        """Drop the connection at once (console "close socket", shutdown)."""
        self.transport.abort()


def _in(address: str, networks: Iterable) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip.version == net.version and ip in net for net in networks)


class _ServerGroup:
    """Shared counters of one server section ([BBS], [Mail] ...)."""

    def __init__(self, name: str, common: ServerCommon) -> None:
        self.name = name
        self.common = common
        self.client_networks = parse_networks(",".join(common.client_networks))
        self.active = 0


class ListenerManager:
    """Binds, admits and tracks every listener socket of the process."""

    def __init__(self, *, bus: EventBus, filters: FilterSet, login: LoginAttemptTracker,
                 tls_context: Callable[[], ssl.SSLContext]) -> None:
        self._bus = bus
        self._filters = filters
        self._login = login
        self._tls_context = tls_context
        self._ids = itertools.count(1)
        self._groups: dict[str, _ServerGroup] = {}
        self._sockets: list[tuple[ListenerConfig, socket.socket]] = []
        self._starting: list[tuple[ListenerConfig, socket.socket]] = []  # handed to start(), not serving yet
        self._servers: list[tuple[ListenerConfig, asyncio.AbstractServer]] = []
        self._per_address: dict[tuple[str, str], int] = {}
        self._auto_ports: dict[str, int] = {}  # port-0 listener name -> the port the OS gave
        self._udp: list[tuple[ListenerConfig, asyncio.DatagramTransport]] = []
        self._udp_seen: dict[tuple[str, str], tuple[float, int]] = {}
        self.connections: dict[int, Connection] = {}
        self.tasks: set[asyncio.Task] = set()

    # -- binding -------------------------------------------------------
    async def bind(self, listeners: Iterable[ListenerConfig], groups: dict[str, ServerCommon]) -> None:
        """Bind every listener socket (retrying per BindRetryCount/Delay).

        Nothing accepts yet. Raises BindError after closing what was bound.
        May be called again for a server being (re)started: its counters of
        open connections carry over to the new settings.
        """
        for name, common in groups.items():
            previous = self._groups.get(name)
            self._groups[name] = group = _ServerGroup(name, common)
            if previous is not None:
                group.active = previous.active  # callers who connected before a recycle
        try:
            for item in listeners:
                common = self._groups[item.server].common
                for sock in await self._bind_one(item, common):
                    self._sockets.append((item, sock))
        except BindError:
            for _, sock in self._sockets:
                sock.close()
            self._sockets.clear()
            raise

    async def _bind_one(self, item: ListenerConfig, common: ServerCommon) -> list[socket.socket]:
        addresses = [item.address] if item.address else ["0.0.0.0", "::"]
        bound: list[socket.socket] = []
        # Port 0: every socket of one listener (v4 and v6, TCP and UDP) shares the OS's port.
        port = item.port or self._auto_ports.get(item.name, 0)
        for address in addresses:
            attempts = common.bind_retry_count + 1
            for attempt in range(1, attempts + 1):
                try:
                    sock = _make_socket(address, port, item.transport)
                    break
                except OSError as exc:
                    if not item.address and address == "::" and exc.errno in (
                            errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT):
                        log.warning("%s: IPv6 not available (%s); listening on IPv4 only",
                                    item.service, exc, **_tag(item))
                        sock = None
                        break
                    log.error("!ERROR %d binding %s socket to port %d", exc.errno or 0,
                              item.service, port, **_tag(item))
                    if attempt < attempts and exc.errno not in (errno.EACCES, errno.EPERM):
                        log.warning("Will retry in %g seconds (%d of %d)", common.bind_retry_delay,
                                    attempt, attempts - 1, **_tag(item))
                        await asyncio.sleep(common.bind_retry_delay)
                        continue
                    for other in bound:
                        other.close()
                    raise BindError(_bind_advice(item, address, port, exc)) from None
            if sock is not None:
                bound.append(sock)
                port = sock.getsockname()[1]  # port 0: the v6 socket takes the same port
                if not item.port:
                    self._auto_ports.setdefault(item.name, port)
        return bound

    def start(self, handlers: dict[str, ServiceHandler]) -> asyncio.Future:
        """Start accepting on every bound socket whose service has a handler.

        Returns a future that completes when every server is serving. Only
        sockets bound since the last call are started.
        """
        loop = asyncio.get_running_loop()
        starts = []
        pending, self._sockets = self._sockets, []
        for item, sock in pending:
            handler = handlers.get(item.service)
            if item.transport == "udp":
                usable = handler is not None and handler.datagram is not None
            else:
                usable = handler is not None and (handler.stream or handler.protocol) is not None
            if not usable:
                sock.close()
                continue
            # Until it serves, close_listeners() closes it: a start cancelled
            # before this coroutine runs (a shutdown during a launch) would
            # otherwise leave the port bound with no server to close it.
            self._starting.append((item, sock))
            if item.transport == "udp":
                starts.append(self._serve_udp(loop, item, sock, handler))
                continue
            factory = lambda item=item, handler=handler: _Gate(self, item, handler)  # noqa: E731
            starts.append(self._serve(loop, item, sock, factory))
        return asyncio.ensure_future(asyncio.gather(*starts))

    def _started(self, item: ListenerConfig, sock: socket.socket) -> None:
        """``sock`` serves now, or has failed to and is closed."""
        if (item, sock) in self._starting:
            self._starting.remove((item, sock))

    async def _serve(self, loop, item, sock, factory) -> None:
        try:
            server = await loop.create_server(factory, sock=sock, backlog=LISTEN_BACKLOG)
        except BaseException:
            sock.close()  # out of _sockets and in no server: nothing else would close it
            raise
        finally:
            self._started(item, sock)
        self._servers.append((item, server))
        host, port = sock.getsockname()[:2]
        log.info("%s listening on %s port %d%s", item.service, host, port,
                 {TLSMode.ON: " (TLS)", TLSMode.EXT: " (TLS by proxy)"}.get(item.tls, ""), **_tag(item))

    async def _serve_udp(self, loop, item, sock, handler: ServiceHandler) -> None:
        try:
            transport, _ = await loop.create_datagram_endpoint(lambda: _DatagramGate(self, item, handler), sock=sock)
        except BaseException:
            sock.close()
            raise
        finally:
            self._started(item, sock)
        self._udp.append((item, transport))
        host, port = sock.getsockname()[:2]
        log.info("%s listening on %s UDP port %d", item.service, host, port, **_tag(item))

    def bound(self) -> list[tuple[str, str, int, str]]:
        """(service, address, port, tls) of every serving TCP socket."""
        result = []
        for item, server in self._servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                result.append((item.service, host, port, item.tls.value))
        return result

    def bound_udp(self) -> list[tuple[str, str, int]]:
        """(service, address, port) of every serving UDP socket."""
        return [(item.service, *t.get_extra_info("sockname")[:2]) for item, t in self._udp]

    def port_of(self, service: str) -> int:
        """The first bound TCP port of ``service`` (for tests and the console)."""
        return next(p for s, _, p, _ in self.bound() if s == service)

    def admit_datagram(self, item: ListenerConfig, address: str) -> str | None:
        """Admission for one datagram: the address rules of :meth:`admit`
        (no connection counts) plus a per-address rate limit."""
        refusal = self._address_refusal(item, address)
        if refusal is not None:
            return refusal
        now = time.monotonic()
        key = (item.service, address)
        start, count = self._udp_seen.get(key, (now, 0))
        if now - start >= 1.0:
            start, count = now, 0
        self._udp_seen[key] = (start, count + 1)
        if len(self._udp_seen) > 10_000:  # forget old senders; bounded memory under floods
            self._udp_seen = {k: v for k, v in self._udp_seen.items() if now - v[0] < 1.0}
        if count >= UDP_MAX_PER_SECOND:
            return "datagram flood"
        return None

    # -- admission -----------------------------------------------------
    def _address_refusal(self, item: ListenerConfig, address: str) -> str | None:
        """The rules every connection and datagram meets: the listener's Grant
        and Deny lists, temporary bans, and ip.can (unless ipfilter_exempt)."""
        if item.grant and not _in(address, item.grant):
            return "not in the listener's Grant list"
        if _in(address, item.deny):
            return "in the listener's Deny list"
        remaining = self._login.is_banned(address)
        if remaining:
            return f"temporarily banned ({remaining:.0f} seconds left)"
        self._filters.ip.reload_if_changed()  # the sysop may have edited ip.can: one stat
        if self._filters.ip.match_ip(address) is None:
            return None
        self._filters.ipfilter_exempt.reload_if_changed()  # read only for an address ip.can names
        entry = self._filters.is_ip_filtered(address)
        if entry is not None:
            return f"filtered (ip.can line {entry.line})"
        return None

    def admit(self, item: ListenerConfig, address: str) -> str | None:
        """Return why ``address`` may not connect to ``item``, or None to admit."""
        refusal = self._address_refusal(item, address)
        if refusal is not None:
            return refusal
        if item.max_per_address and self._per_address.get((item.service, address), 0) >= item.max_per_address:
            return f"too many connections from this address (MaxConcurrentConnections {item.max_per_address})"
        group = self._groups[item.server]
        limit = group.common.max_clients
        if limit:
            if group.active >= limit:
                return f"MaxClients ({limit}) reached"
            if limit - group.active <= group.common.client_reserve and not _in(address, group.client_networks):
                return f"remaining slots are reserved for client networks (ClientReserve {group.common.client_reserve})"
        return None

    def wants_host_lookup(self, item: ListenerConfig) -> bool:
        """Look up host names at accept only when host.can has entries and the
        server does not say NO_HOST_LOOKUP (keeps accepts cheap otherwise)."""
        host_can = self._filters.host
        host_can.reload_if_changed()
        return len(host_can) > 0 and "NO_HOST_LOOKUP" not in self._groups[item.server].common.options

    def _opened(self, conn: Connection) -> None:
        self.connections[conn.id] = conn
        key = (conn.service, conn.address)
        self._per_address[key] = self._per_address.get(key, 0) + 1
        self._groups[conn.listener.server].active += 1
        self._bus.publish(ConnectionOpened(conn))

    def _closed(self, conn: Connection) -> None:
        if self.connections.pop(conn.id, None) is None:
            return
        key = (conn.service, conn.address)
        count = self._per_address.get(key, 1) - 1
        if count:
            self._per_address[key] = count
        else:
            self._per_address.pop(key, None)
        self._groups[conn.listener.server].active -= 1
        self._bus.publish(ConnectionClosed(conn))

    def _refused(self, item: ListenerConfig, address: str, reason: str) -> None:
        log.warning("%s connection from %s refused: %s", item.service, address, reason, **_tag(item))
        self._bus.publish(ConnectionRefused(item.service, address, reason))

    # -- shutdown ------------------------------------------------------
    async def close_listeners(self, services: Iterable[str] | None = None) -> None:
        """Stop accepting (all services, or the named ones)."""
        wanted = set(services) if services is not None else None
        keep = []
        for item, server in self._servers:
            if wanted is None or item.service in wanted:
                server.close()  # not wait_closed(): on 3.12+ it waits for every session
            else:
                keep.append((item, server))
        self._servers = keep
        udp_keep = []
        for item, transport in self._udp:
            if wanted is None or item.service in wanted:
                transport.close()
            else:
                udp_keep.append((item, transport))
        self._udp = udp_keep
        self._sockets = self._close_unserved(self._sockets, wanted)    # bound, not started yet
        self._starting = self._close_unserved(self._starting, wanted)  # being started

    @staticmethod
    def _close_unserved(pending: list[tuple[ListenerConfig, socket.socket]],
                        wanted: set[str] | None) -> list[tuple[ListenerConfig, socket.socket]]:
        """Close the sockets of ``pending`` whose service is ``wanted``
        (None: all); returns the others."""
        keep = []
        for item, sock in pending:
            if wanted is None or item.service in wanted:
                sock.close()
            else:
                keep.append((item, sock))
        return keep

    async def drain(self, grace: float) -> None:
        """Give open connections ``grace`` seconds to finish, then drop them."""
        deadline = time.monotonic() + grace
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(self.connections.values()):
            log.info("%s %s: closing at shutdown", conn.service, conn.address)
            conn.close()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=2.0)
        await asyncio.sleep(0)


class _Gate(asyncio.Protocol):
    """First protocol of every accepted connection: admits, throttles,
    starts TLS, then installs the service's protocol on the transport."""

    def __init__(self, manager: ListenerManager, item: ListenerConfig, handler: ServiceHandler) -> None:
        self.manager, self.item, self.handler = manager, item, handler
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.lost = False
        self.conn: Connection | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername") or ("", 0)
        local = transport.get_extra_info("sockname") or ("", 0)
        address = normalize_ip(peer[0])
        reason = self.manager.admit(self.item, address)
        if reason is not None:
            self.manager._refused(self.item, address, reason)
            transport.abort()
            return
        self.conn = Connection(
            id=next(self.manager._ids), service=self.item.service, listener=self.item,
            address=address, port=peer[1], local_address=normalize_ip(local[0]), local_port=local[1],
            secure=self.item.tls is not TLSMode.OFF, since=time.time(), transport=transport)
        self.manager._opened(self.conn)
        delay = self.manager._login.throttle_delay(address)
        lookup = self.manager.wants_host_lookup(self.item)
        if delay > 0 or lookup or self.item.tls is TLSMode.ON:
            task = asyncio.ensure_future(self._prepare(delay, lookup))
            self.manager.tasks.add(task)
            task.add_done_callback(self.manager.tasks.discard)
        else:
            self._hand_off(transport)

    async def _prepare(self, delay: float, lookup: bool) -> None:
        transport = self.transport
        assert transport is not None and self.conn is not None
        if lookup and not await self._check_host():
            return
        try:
            if delay > 0:
                log.info("%s %s: throttled %.1f s (failed logins)", self.item.service, self.conn.address,
                         delay, **_tag(self.item))
                transport.pause_reading()
                await asyncio.sleep(delay)
                if self.lost:
                    return
                transport.resume_reading()
            if self.item.tls is TLSMode.ON:
                loop = asyncio.get_running_loop()
                transport = await loop.start_tls(transport, self, self.manager._tls_context(),
                                                 server_side=True,
                                                 ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT)
                if transport is None:
                    raise ConnectionError("TLS handshake gave no transport")
        except (OSError, ssl.SSLError, ConnectionError, asyncio.TimeoutError) as exc:
            log.info("%s %s: TLS handshake failed: %s", self.item.service, self.conn.address, exc,
                     **_tag(self.item))
            self.transport.abort()
            self.manager._closed(self.conn)
            return
        if self.lost:
            return
        self._hand_off(transport)

    async def _check_host(self) -> bool:
        """Reverse-resolve the peer and refuse it when host.can lists the name."""
        conn = self.conn
        assert conn is not None and self.transport is not None
        self.transport.pause_reading()
        try:
            host, _ = await asyncio.wait_for(asyncio.get_running_loop().getnameinfo(
                (conn.address, 0), socket.NI_NAMEREQD), HOST_LOOKUP_TIMEOUT)
        except (OSError, asyncio.TimeoutError):
            host = ""
        if self.lost:
            return False
        conn.host = host
        entry = self.manager._filters.host.match(host) if host else None
        if entry is not None:
            self.manager._refused(self.item, f"{conn.address} ({host})", f"filtered (host.can line {entry.line})")
            self.transport.abort()
            self.manager._closed(conn)
            return False
        self.transport.resume_reading()
        return True

    def _hand_off(self, transport: asyncio.BaseTransport) -> None:
        conn = self.conn
        assert conn is not None
        try:
            if self.handler.protocol is not None:
                inner = self.handler.protocol(conn)
            else:
                inner = self._stream_protocol(conn, transport)
        except Exception:
            log.exception("%s %s: service failed to start a session", conn.service, conn.address,
                          **_tag(self.item))
            transport.abort()
            self.manager._closed(conn)
            return
        _track_close(inner, lambda: self.manager._closed(conn))
        transport.set_protocol(inner)
        inner.connection_made(transport)
        if self.buffer:
            data, self.buffer = bytes(self.buffer), bytearray()
            inner.data_received(data)  # type: ignore[attr-defined]
        if self.eof:
            inner.eof_received()  # type: ignore[attr-defined]

    def _stream_protocol(self, conn: Connection, transport: asyncio.BaseTransport) -> asyncio.Protocol:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=2**16, loop=loop)
        manager, handler = self.manager, self.handler.stream
        assert handler is not None

        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await handler(reader, writer, conn)
            except (ConnectionError, asyncio.IncompleteReadError):
                log.debug("%s %s: connection lost", conn.service, conn.address)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s %s: session crashed; closing it", conn.service, conn.address,
                              **_tag(conn.listener))
            finally:
                writer.close()

        def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = loop.create_task(run(reader, writer))
            manager.tasks.add(task)
            task.add_done_callback(manager.tasks.discard)

        return asyncio.StreamReaderProtocol(reader, connected, loop=loop)

    # Data may arrive between accept and hand-off (throttle): keep it.
    def data_received(self, data: bytes) -> None:
        self.buffer.extend(data)

    def eof_received(self) -> bool:
        self.eof = True
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.conn is not None:
            self.manager._closed(self.conn)


class _DatagramGate(asyncio.DatagramProtocol):
    """Admits each datagram of a UDP listener and sends the handler's reply."""

    def __init__(self, manager: ListenerManager, item: ListenerConfig, handler: ServiceHandler) -> None:
        self.manager, self.item, self.handler = manager, item, handler
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        address = normalize_ip(addr[0])
        reason = self.manager.admit_datagram(self.item, address)
        if reason is not None:
            if reason != "datagram flood":
                self.manager._refused(self.item, address, reason)
            return
        task = asyncio.ensure_future(self._answer(data, address, addr))
        self.manager.tasks.add(task)
        task.add_done_callback(self.manager.tasks.discard)

    async def _answer(self, data: bytes, address: str, addr: tuple) -> None:
        assert self.handler.datagram is not None
        try:
            reply = await self.handler.datagram(data, address, self.item)
        except Exception:
            log.exception("%s %s: datagram handler failed", self.item.service, address, **_tag(self.item))
            return
        if reply and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)


def _track_close(protocol: asyncio.BaseProtocol, on_close: Callable[[], None]) -> None:
    """Call ``on_close`` after ``protocol.connection_lost``.

    Patched on the instance so it still fires when the library later moves
    its protocol under another transport (aiosmtpd STARTTLS does).
    """
    original = protocol.connection_lost

    def connection_lost(exc: Exception | None) -> None:
        try:
            original(exc)
        finally:
            on_close()

    protocol.connection_lost = connection_lost  # type: ignore[method-assign]


def _make_socket(address: str, port: int, transport: str = "tcp") -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    # An explicit protocol number: asyncio sets TCP_NODELAY only on sockets whose
    # proto is IPPROTO_TCP (without it every reply can wait for a delayed ACK).
    if transport == "udp":
        sock = socket.socket(family, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    else:
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((address, port))
        if transport != "udp":
            sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _bind_advice(item: ListenerConfig, address: str, port: int, exc: OSError) -> str:
    where = f"{item.service} port {port} on {address}"
    if exc.errno == errno.EADDRINUSE:
        return (f"cannot bind {where}: address already in use. Another server (or another copy "
                f"of this BBS) is listening there: find it with `ss -ltnp 'sport = :{port}'`, "
                f"stop it, or change the port ({item.where}).")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return (f"cannot bind {where}: permission denied. Ports below 1024 need privileges: "
                f"use a port above 1023 ({item.where}), or grant the capability with "
                f"`sudo setcap cap_net_bind_service=+ep <path of python3>`.")
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot bind {where}: no such local address ({item.where})."
    return f"cannot bind {where}: {exc.strerror or exc} ({item.where})."
