"""Loopback peers for SendMail tests: a fake DNS server (dnspython) and SMTP
sinks (aiosmtpd protocol factories in the test's loop, a scripted raw peer for
broken STARTTLS, and the same sinks on a thread for `bbs run` tests).

Nothing here reaches an address outside 127.0.0.0/8.
"""
from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import selectors
import socket
import struct
import threading
import time
import warnings
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from bbs.app import App
from bbs.instance import load_config
from bbs.tlscert import ensure_certificate, server_context
from tests.integration.mailsupport import mail_instance

RELAY_USER = "bbsrelay"
RELAY_PASSWORD = "relay-secret"
#: Replies the sinks give on request.
TEMPFAIL = "450 4.2.1 Mailbox busy, try again later"
PERMFAIL = "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown"


class FakeDNS:
    """An authoritative-looking DNS server on 127.0.0.1 (UDP and TCP, one
    port) answering from ``records``: {"name.": [("MX", "10 mx.name."),
    ("A", "127.0.0.2")]}. Unknown names get NXDOMAIN; names in ``drop`` get
    no answer at all (a time-out); names in ``servfail`` get SERVFAIL.
    ``queries`` records (name, type, "udp"|"tcp")."""

    def __init__(self, records: dict[str, list[tuple[str, str]]] | None = None) -> None:
        self.records: dict[str, list[tuple[str, str]]] = {}
        for name, rows in (records or {}).items():
            self.add(name, *rows)
        self.drop: set[str] = set()
        self.servfail: set[str] = set()
        self.queries: list[tuple[str, str, str]] = []
        self.port = 0
        self._stop_r, self._stop_w = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name="fake-dns", daemon=True)

    def add(self, name: str, *rows: tuple[str, str]) -> None:
        key = name.lower().rstrip(".") + "."
        self.records.setdefault(key, []).extend(rows)

    def start(self) -> "FakeDNS":
        for _ in range(20):  # one port for UDP and TCP
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind(("127.0.0.1", 0))
            self.port = self.udp.getsockname()[1]
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.tcp.bind(("127.0.0.1", self.port))
                break
            except OSError:
                self.tcp.close()
                self.udp.close()
        self.tcp.listen(16)
        self._thread.start()
        return self

    @property
    def server(self) -> str:
        """The ``DNSServer`` value that points at this server."""
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._stop_w.send(b"x")
        self._thread.join(10)
        for sock in (self.udp, self.tcp, self._stop_r, self._stop_w):
            sock.close()

    def answer(self, wire: bytes, transport: str) -> bytes | None:
        query = dns.message.from_wire(wire)
        question = query.question[0]
        name = question.name.to_text().lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype, transport))
        if name in self.drop:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if name in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif name not in self.records:
            response.set_rcode(dns.rcode.NXDOMAIN)
        else:
            rows = [value for kind, value in self.records[name] if kind == rdtype]
            if rows:
                response.answer.append(dns.rrset.from_text_list(name, 60, "IN", rdtype, rows))
        return response.to_wire()

    def _serve(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self.udp, selectors.EVENT_READ, "udp")
        selector.register(self.tcp, selectors.EVENT_READ, "tcp")
        selector.register(self._stop_r, selectors.EVENT_READ, "stop")
        try:
            while True:
                for key, _ in selector.select():
                    if key.data == "stop":
                        return
                    if key.data == "udp":
                        wire, peer = self.udp.recvfrom(65535)
                        reply = self.answer(wire, "udp")
                        if reply is not None:
                            self.udp.sendto(reply, peer)
                    else:
                        conn, _ = self.tcp.accept()
                        threading.Thread(target=self._tcp_client, args=(conn,), daemon=True).start()
        finally:
            selector.close()

    def _tcp_client(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                while True:
                    head = conn.recv(2)
                    if len(head) < 2:
                        return
                    (length,) = struct.unpack("!H", head)
                    wire = b""
                    while len(wire) < length:
                        chunk = conn.recv(length - len(wire))
                        if not chunk:
                            return
                        wire += chunk
                    reply = self.answer(wire, "tcp")
                    if reply is None:
                        time.sleep(6)
                        return
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
            except OSError:
                return


@dataclasses.dataclass
class Received:
    """One message a sink accepted."""

    sender: str
    recipients: list[str]
    data: bytes
    peer: str
    tls: bool
    auth: str | None


class SinkHandler:
    """aiosmtpd handler: records messages, answers as told.

    ``rcpt_replies`` maps a recipient (lower case) to a reply; ``mail_reply``
    / ``data_reply`` replace 250 for every MAIL / DATA; ``hold`` (an
    asyncio.Event) makes DATA wait until it is set; ``active`` counts
    sessions between MAIL and the end of DATA, ``peak`` the most at once.
    """

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.rcpt_replies: dict[str, str] = {}
        self.mail_reply: str | None = None
        self.data_reply: str | None = None
        self.hold: asyncio.Event | None = None
        self.active: dict[str, int] = {}
        self.peak_total = 0
        self.peak_domain: dict[str, int] = {}
        self.arrived = asyncio.Event() if _has_loop() else None
        self.auth_mechanisms: list[str] = []

    async def handle_MAIL(self, server, session, envelope, address, options):
        if self.mail_reply:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):
        reply = self.rcpt_replies.get(address.lower())
        if reply:
            return reply.format(rcpt=address)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        domain = envelope.rcpt_tos[0].rpartition("@")[2].lower()
        self.active[domain] = self.active.get(domain, 0) + 1
        total = sum(self.active.values())
        self.peak_total = max(self.peak_total, total)
        self.peak_domain[domain] = max(self.peak_domain.get(domain, 0), self.active[domain])
        try:
            if self.hold is not None:
                await self.hold.wait()
            if self.data_reply:
                return self.data_reply
            auth = session.auth_data.__class__.__name__ if session.authenticated else None
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                          envelope.original_content, session.peer[0],
                                          session.ssl is not None, auth))
            if self.arrived is not None:
                self.arrived.set()
            return "250 2.0.0 Ok: queued"
        finally:
            self.active[domain] -= 1

    async def auth_CRAM__MD5(self, server, args):
        """RFC 2195 on the sink side (aiosmtpd has only PLAIN and LOGIN)."""
        challenge = f"<{time.time_ns()}@sink.test>"
        blob = await server.challenge_auth(challenge)
        if not isinstance(blob, bytes):
            return AuthResult(success=False, handled=False)
        name, _, digest = blob.decode().rpartition(" ")
        good = hmac.new(RELAY_PASSWORD.encode(), challenge.encode(), hashlib.md5).hexdigest()
        self.auth_mechanisms.append("CRAM-MD5")
        if name == RELAY_USER and hmac.compare_digest(digest, good):
            return AuthResult(success=True, auth_data=LoginPassword(name.encode(), b""))
        return AuthResult(success=False, handled=False)


def _has_loop() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False


def authenticator(handler: SinkHandler):
    """A synchronous aiosmtpd authenticator accepting RELAY_USER/RELAY_PASSWORD."""
    def check(server, session, envelope, mechanism, auth_data):
        handler.auth_mechanisms.append(mechanism)
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == RELAY_USER.encode()
              and auth_data.password == RELAY_PASSWORD.encode())
        return AuthResult(success=ok, handled=False)
    return check


class Sink:
    """An aiosmtpd SMTP server in the running loop on ``host``:``port``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, tls: Path | None = None,
                 require_auth: bool = False) -> None:
        self.host, self.port = host, port
        self.handler = SinkHandler()
        self.tls_dir = tls
        self.require_auth = require_auth
        self.server: asyncio.base_events.Server | None = None
        self.protocols: list[SMTP] = []

    def _factory(self) -> SMTP:
        context = None
        if self.tls_dir is not None:
            cert, key = self.tls_dir / "sink.crt", self.tls_dir / "sink.key"
            ensure_certificate(cert, key, "sink.test")
            context = server_context(cert, key)
        kwargs = {}
        if self.require_auth:
            kwargs = dict(auth_required=True, auth_require_tls=False,
                          authenticator=authenticator(self.handler))
        with warnings.catch_warnings():  # "AUTH without TLS": wanted here, on loopback
            warnings.simplefilter("ignore", UserWarning)
            protocol = SMTP(self.handler, hostname="sink.test", tls_context=context, timeout=30, **kwargs)
        self.protocols.append(protocol)
        return protocol

    async def start(self) -> "Sink":
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(self._factory, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        for protocol in self.protocols:
            if protocol.transport is not None:
                protocol.transport.close()
        await asyncio.sleep(0)
        tasks = [p._handler_coroutine for p in self.protocols if getattr(p, "_handler_coroutine", None)]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)


class ScriptedPeer:
    """A minimal hand-written SMTP server for what aiosmtpd will not do:
    ``starttls="garbage"`` answers STARTTLS with 220 and then bytes that are
    not TLS (the handshake fails); ``"refuse"`` answers 454. Records
    messages in ``received`` and each connection's commands in ``sessions``."""

    def __init__(self, starttls: str = "garbage", greeting: str = "220 scripted.test ESMTP") -> None:
        self.starttls = starttls
        self.greeting = greeting
        self.received: list[bytes] = []
        self.sessions: list[list[str]] = []
        self.port = 0
        self._tasks: set[asyncio.Task] = set()

    async def start(self, host: str = "127.0.0.1") -> "ScriptedPeer":
        self.server = await asyncio.start_server(self._client, host, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tasks.add(asyncio.current_task())
        commands: list[str] = []
        self.sessions.append(commands)
        try:
            writer.write(self.greeting.encode() + b"\r\n")
            if not self.greeting.startswith("220"):
                return
            while True:
                line = (await reader.readline()).decode().strip()
                if not line:
                    return
                commands.append(line)
                verb = line.split(" ", 1)[0].upper()
                if verb == "EHLO":
                    writer.write(b"250-scripted.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n")
                elif verb == "STARTTLS":
                    if self.starttls == "refuse":
                        writer.write(b"454 4.7.0 TLS not available due to temporary reason\r\n")
                    else:
                        writer.write(b"220 2.0.0 Ready to start TLS\r\nthis is not a TLS record\r\n" * 3)
                        await writer.drain()
                        return
                elif verb == "DATA":
                    writer.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    await writer.drain()
                    data = b""
                    while True:
                        chunk = await reader.readline()
                        if chunk in (b".\r\n", b""):
                            break
                        data += chunk
                    self.received.append(data)
                    writer.write(b"250 2.0.0 queued\r\n")
                elif verb == "QUIT":
                    writer.write(b"221 2.0.0 Bye\r\n")
                    await writer.drain()
                    return
                else:
                    writer.write(b"250 2.0.0 OK\r\n")
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self._tasks.discard(asyncio.current_task())


def sendmail_instance(root: Path, dns: FakeDNS | None, options: str = "", **keys: str) -> Path:
    """A Mail Server instance whose SendMail uses ``dns`` and loopback only."""
    settings = {"RetryDelay": "5m", "RescanFrequency": "1h", "ConnectTimeout": "5",
                "HostName": "bbs.test"}
    if dns is not None:
        settings["DNSServer"] = dns.server
    settings.update(keys)
    return mail_instance(root, options or "ALLOW_POP3", sendmail=True, **settings)


def make_app(root: Path) -> App:
    """An App for the instance (no servers started; SendMail needs config and bus)."""
    return App(load_config(root))


class Clock:
    """A settable epoch clock for next-try values."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def message(subject: str = "Hello", body: str = "Hi there.\r\n.leading dot\r\n") -> bytes:
    return (f"From: Alice <alice@bbs.test>\r\nTo: bob@a.test\r\nSubject: {subject}\r\n"
            f"Message-ID: <{time.time_ns()}@bbs.test>\r\n\r\n{body}").encode()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
