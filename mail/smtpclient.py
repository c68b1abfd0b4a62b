"""The SMTP client of SendMail: one ESMTP session to a mail exchanger or relay.

Pure parts (no socket): :class:`ReplyParser` turns reply bytes into
:class:`Reply` objects, :func:`dot_stuff` prepares DATA, :func:`auth_plain`,
:func:`auth_login` and :func:`cram_md5_response` build SMTP-AUTH answers.
:class:`SMTPClient` drives a session over asyncio streams; it is used only by
:mod:`mail.sendmail`.

Every unexpected reply raises :class:`ReplyError` carrying the command, the
reply and the expected code, which SendMail turns into Synchronet's log line
``!Delivery attempt #N FAILED (host replied with: "..." instead of the
expected reply: "250 ...")`` and into a retry (4xx) or a bounce (5xx).
"""
from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import logging
import re
import ssl

log = logging.getLogger(__name__)

#: Longest reply line we accept (RFC 5321 4.5.3.1.5 says 512 octets; real
#: servers exceed it, so we are lenient up to this).
MAX_REPLY_LINE = 4096
#: Most lines one multi-line reply may have (EHLO lists a dozen or two).
MAX_REPLY_LINES = 100
#: Time-outs of RFC 5321 4.5.3.2, in seconds.
GREETING_TIMEOUT = 300.0   # 4.5.3.2.1 initial 220
COMMAND_TIMEOUT = 300.0    # 4.5.3.2.2/3 MAIL, RCPT (and EHLO, AUTH, STARTTLS)
DATA_INIT_TIMEOUT = 120.0  # 4.5.3.2.4 DATA -> 354
DATA_BLOCK_TIMEOUT = 180.0  # 4.5.3.2.5 each write of the content
DATA_END_TIMEOUT = 600.0   # 4.5.3.2.6 "." -> 250

#: Replies that end SMTP-AUTH successfully: 235 (RFC 4954 6); 250 from
#: servers that accept any AUTH at once (Postfix's smtp-sink does).
AUTH_DONE = (235, 250)

_REPLY_LINE = re.compile(rb"^([2-5][0-9][0-9])([ -]?)(.*)$")


class SMTPClientError(Exception):
    """The session broke: connection lost, time-out, garbage from the peer."""


@dataclasses.dataclass(frozen=True)
class Reply:
    """One (possibly multi-line) SMTP reply."""

    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        """The reply as a sysop reads it in a log or a bounce: ``550 No such user``
        (lines of a multi-line reply joined with a space)."""
        return f"{self.code} {' '.join(line for line in self.lines if line)}".rstrip()

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600

    @property
    def transient(self) -> bool:
        return 400 <= self.code < 500


class ReplyError(SMTPClientError):
    """The peer answered ``command`` with ``reply`` instead of ``expected``."""

    def __init__(self, command: str, reply: Reply, expected: int) -> None:
        super().__init__(f'{command}: "{reply.text}" instead of "{expected} ..."')
        self.command = command
        self.reply = reply
        self.expected = expected

    @property
    def permanent(self) -> bool:
        return self.reply.permanent


class ReplyParser:
    """Bytes from the peer in, complete :class:`Reply` objects out.

    ``feed`` may be given any slices of the stream; it returns the replies
    completed so far. Raises :class:`SMTPClientError` on a line that is not
    a reply (RFC 5321 4.2), a too long line or too many lines.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._code: int | None = None
        self._lines: list[str] = []

    def feed(self, data: bytes) -> list[Reply]:
        self._buffer += data
        replies = []
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            reply = self.line(line)
            if reply is not None:
                replies.append(reply)
        if len(self._buffer) > MAX_REPLY_LINE:
            raise SMTPClientError("reply line too long")
        return replies

    def line(self, raw: bytes) -> Reply | None:
        """Take one line (without or with CRLF); a Reply when it completes one."""
        raw = raw.rstrip(b"\r\n")
        if len(raw) > MAX_REPLY_LINE:
            raise SMTPClientError("reply line too long")
        match = _REPLY_LINE.match(raw)
        if match is None:
            raise SMTPClientError(f"not an SMTP reply: {raw[:80]!r}")
        code = int(match.group(1))
        if self._code is not None and code != self._code:
            raise SMTPClientError(f"reply code changed within a reply: {raw[:80]!r}")
        self._code = code
        self._lines.append(match.group(3).decode("utf-8", errors="replace"))
        if len(self._lines) > MAX_REPLY_LINES:
            raise SMTPClientError("reply has too many lines")
        if match.group(2) == b"-":
            return None
        reply = Reply(code, tuple(self._lines))
        self._code, self._lines = None, []
        return reply


def parse_ehlo(reply: Reply) -> dict[str, str]:
    """The extensions an EHLO reply advertises: ``{"STARTTLS": "", "AUTH":
    "PLAIN LOGIN", "SIZE": "1000"}`` (keys upper-case; the first line is the
    greeting and is skipped, RFC 5321 4.1.1.1)."""
    extensions = {}
    for line in reply.lines[1:]:
        keyword, _, params = line.strip().partition(" ")
        if keyword:
            extensions[keyword.upper()] = params.strip()
    return extensions


def normalize_line_endings(raw: bytes) -> bytes:
    """Every line ending as CRLF (RFC 5322 2.3; a bare LF or CR from a local
    editor would otherwise be a protocol error on the peer)."""
    return re.sub(rb"\r\n|\r|\n", b"\r\n", raw)


def dot_stuff(raw: bytes) -> bytes:
    """The DATA content of ``raw``: CRLF line endings, a leading "." doubled
    (RFC 5321 4.5.2) and the terminating ``CRLF.CRLF``."""
    data = normalize_line_endings(raw)
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    if data.startswith(b"."):
        data = b"." + data
    data = data.replace(b"\r\n.", b"\r\n..")
    return data + b".\r\n"


def auth_plain(username: str, password: str) -> str:
    """The RFC 4616 PLAIN initial response (base64 of NUL user NUL pass)."""
    return base64.b64encode(b"\0" + username.encode() + b"\0" + password.encode()).decode()


def auth_login(value: str) -> str:
    """One answer of the LOGIN mechanism (base64 of the user name or password)."""
    return base64.b64encode(value.encode()).decode()


def cram_md5_response(username: str, password: str, challenge_b64: str) -> str:
    """The RFC 2195 answer to a base64 CRAM-MD5 challenge. Raises
    :class:`SMTPClientError` when the challenge is not base64."""
    try:
        challenge = base64.b64decode(challenge_b64.strip(), validate=True)
    except (ValueError, TypeError) as exc:
        raise SMTPClientError("CRAM-MD5 challenge is not base64") from exc
    digest = hmac.new(password.encode(), challenge, hashlib.md5).hexdigest()
    return base64.b64encode(f"{username} {digest}".encode()).decode()


def client_tls_context() -> ssl.SSLContext:
    """Opportunistic TLS for STARTTLS (RFC 7435): encrypt whenever the peer can,
    without certificate checks (MX certificates rarely match; an unverified
    session is still better than clear text). TLS 1.2+ (DESIGN.md)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class SMTPClient:
    """One SMTP session over asyncio streams.

    Made by :meth:`connect`; each command method returns the :class:`Reply`
    or raises :class:`ReplyError` (unexpected code) or
    :class:`SMTPClientError` (broken session). Always end with :meth:`close`.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader = reader
        self.writer = writer
        self.host = host
        self.extensions: dict[str, str] = {}
        self.tls = False
        self._parser = ReplyParser()
        #: [Mail] DEBUG_TX / DEBUG_RX_RSP: log what is sent / every reply (debug level).
        self.debug_tx = False
        self.debug_rx = False

    @classmethod
    async def connect(cls, address: str, port: int, *, host: str = "", timeout: float,
                      local_address: str | None = None) -> "SMTPClient":
        """Open a TCP connection to ``address:port`` within ``timeout`` seconds,
        from ``local_address`` when given (Synchronet ``OutboundInterface``).

        Raises OSError (``errno`` set) or ``TimeoutError`` when it cannot.
        """
        local = (local_address, 0) if local_address else None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(address, port, local_addr=local, limit=MAX_REPLY_LINE * 2),
            timeout or None)
        return cls(reader, writer, host or address)

    async def read_reply(self, timeout: float = COMMAND_TIMEOUT) -> Reply:
        """The next complete reply. Raises SMTPClientError on EOF or time-out."""
        while True:
            try:
                async with asyncio.timeout(timeout):  # no extra task per line (unlike wait_for)
                    line = await self.reader.readline()
            except TimeoutError:
                raise SMTPClientError("timed out waiting for a reply") from None
            except (ValueError, asyncio.LimitOverrunError) as exc:  # readline over the limit
                raise SMTPClientError("reply line too long") from exc
            except OSError as exc:
                raise SMTPClientError(f"connection lost: {exc}") from exc
            if not line:
                raise SMTPClientError("connection closed by the peer")
            reply = self._parser.line(line)
            if reply is not None:
                if self.debug_rx:
                    log.debug("SEND %s RX: %s", self.host, reply.text)
                return reply

    async def send_line(self, line: str, shown: str | None = None) -> None:
        """Send one command line; ``shown`` is what DEBUG_TX logs instead (secrets)."""
        if self.debug_tx:
            log.debug("SEND %s TX: %s", self.host, shown if shown is not None else line)
        self.writer.write(line.encode("utf-8") + b"\r\n")
        await self._drain(COMMAND_TIMEOUT)

    async def _drain(self, timeout: float) -> None:
        if self.writer.transport.get_write_buffer_size() == 0:
            return  # nothing waiting: drain() would only yield
        try:
            async with asyncio.timeout(timeout):
                await self.writer.drain()
        except TimeoutError:
            raise SMTPClientError("timed out sending") from None
        except OSError as exc:
            raise SMTPClientError(f"connection lost: {exc}") from exc

    async def command(self, line: str, expected: int | tuple[int, ...], *, shown: str | None = None,
                      timeout: float = COMMAND_TIMEOUT) -> Reply:
        """Send ``line`` and read the reply; raise ReplyError unless its code is
        ``expected``. ``shown`` replaces the line in errors (AUTH secrets)."""
        await self.send_line(line, shown)
        return await self.expect(shown or line.split(" ", 1)[0], expected, timeout)

    async def expect(self, command: str, expected: int | tuple[int, ...],
                     timeout: float = COMMAND_TIMEOUT) -> Reply:
        codes = expected if isinstance(expected, tuple) else (expected,)
        reply = await self.read_reply(timeout)
        if reply.code not in codes:
            raise ReplyError(command, reply, codes[0])
        return reply

    async def greeting(self) -> Reply:
        """The server's 220 banner (RFC 5321 4.3.1)."""
        return await self.expect("connect", 220, GREETING_TIMEOUT)

    async def hello(self, name: str) -> Reply:
        """EHLO, falling back to HELO when EHLO is refused (RFC 5321 3.2)."""
        await self.send_line(f"EHLO {name}")
        reply = await self.read_reply()
        if reply.code == 250:
            self.extensions = parse_ehlo(reply)
            return reply
        if reply.code in (421,):
            raise ReplyError("EHLO", reply, 250)
        self.extensions = {}
        return await self.command(f"HELO {name}", 250)

    async def starttls(self, context: ssl.SSLContext) -> None:
        """STARTTLS (RFC 3207) and the TLS handshake. ReplyError when the peer
        refuses; SMTPClientError when the handshake fails (the connection is
        then unusable)."""
        await self.command("STARTTLS", 220)
        try:
            await asyncio.wait_for(self.writer.start_tls(context, server_hostname=None),
                                   COMMAND_TIMEOUT)
        except (ssl.SSLError, OSError, asyncio.TimeoutError, ConnectionError) as exc:
            raise SMTPClientError(f"TLS handshake failed: {exc or type(exc).__name__}") from exc
        self.tls = True
        self._parser = ReplyParser()
        self.extensions = {}

    def auth_mechanisms(self) -> set[str]:
        return set(self.extensions.get("AUTH", "").upper().split())

    async def auth(self, mechanism: str, username: str, password: str) -> Reply:
        """SMTP-AUTH (RFC 4954) with PLAIN, LOGIN or CRAM-MD5; 235 expected.
        Credentials never appear in errors or logs."""
        mechanism = mechanism.upper()
        if mechanism == "PLAIN":
            return await self.command(f"AUTH PLAIN {auth_plain(username, password)}", AUTH_DONE,
                                      shown="AUTH PLAIN")
        if mechanism == "LOGIN":
            first = await self.command("AUTH LOGIN", (334, *AUTH_DONE))
            if first.code != 334:
                return first
            await self.command(auth_login(username), 334, shown="AUTH LOGIN (user name)")
            return await self.command(auth_login(password), AUTH_DONE, shown="AUTH LOGIN (password)")
        if mechanism == "CRAM-MD5":
            challenge = await self.command("AUTH CRAM-MD5", (334, *AUTH_DONE))
            if challenge.code != 334:
                return challenge
            answer = cram_md5_response(username, password, challenge.lines[0] if challenge.lines else "")
            return await self.command(answer, AUTH_DONE, shown="AUTH CRAM-MD5 (response)")
        raise ValueError(f"unknown AUTH mechanism {mechanism}")

    async def mail_from(self, sender: str, size: int, eight_bit: bool) -> Reply:
        params = ""
        if "SIZE" in self.extensions:
            params += f" SIZE={size}"
        if eight_bit and "8BITMIME" in self.extensions:
            params += " BODY=8BITMIME"
        return await self.command(f"MAIL FROM:<{sender}>{params}", 250)

    async def rcpt_to(self, recipient: str) -> Reply:
        """RCPT TO; returns the reply whatever its code (the caller sorts
        accepted, refused and deferred recipients)."""
        await self.send_line(f"RCPT TO:<{recipient}>")
        return await self.read_reply()

    async def data(self, raw: bytes) -> Reply:
        """DATA, the dot-stuffed content and the final 250."""
        await self.command("DATA", 354, timeout=DATA_INIT_TIMEOUT)
        self.writer.write(dot_stuff(raw))
        await self._drain(DATA_BLOCK_TIMEOUT)
        return await self.expect("DATA", 250, DATA_END_TIMEOUT)

    async def quit(self) -> None:
        """QUIT politely; errors are ignored (the message is already sent)."""
        try:
            await self.send_line("QUIT")
            await self.read_reply(timeout=10.0)
        except (SMTPClientError, OSError):
            pass

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 5.0)
        except (OSError, asyncio.TimeoutError, ssl.SSLError):
            pass
