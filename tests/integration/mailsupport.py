"""A real Mail Server (the whole App, via ``bbs.runner.serve``) in a thread,
for tests that drive it with blocking clients (smtplib, poplib, swaks, curl).

The server runs in its own event loop on a background thread; tests talk to
it over 127.0.0.1 and reach the App's coroutines with :meth:`MailServer.call`.
"""
from __future__ import annotations

import asyncio
import json
import os
import ssl
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

from bbs.app import App
from bbs.instance import init_instance, load_config
from bbs.mailbox import MailStore
from bbs.users import UserBase
from tests.support import set_ini

START_TIMEOUT = 30.0
PASSWORD = "correct-horse"


def mail_instance(root: Path, options: str = "ALLOW_POP3 | USE_SUBMISSION_PORT | TLS_SUBMISSION | TLS_POP3",
                  sendmail: bool = False, **mail_keys: str) -> Path:
    """A fresh instance on loopback, port 0 everywhere, the Mail Server on."""
    init_instance(root)
    sbbs = root / "ctrl" / "sbbs.ini"
    settings = [
        ("Global", "Interface", "127.0.0.1"), ("Global", "BindRetryCount", "0"),
        ("Global", "LoginAttemptDelay", "0"), ("Global", "LoginAttemptThrottle", "0"),
        ("Global", "ShutdownGrace", "1"), ("Global", "Hostname", "bbs.test"),
        ("BBS", "AutoStart", "false"), ("FTP", "AutoStart", "false"),
        ("Services", "AutoStart", "false"),
        ("Mail", "SMTPPort", "0"), ("Mail", "SubmissionPort", "0"), ("Mail", "TLSSubmissionPort", "0"),
        ("Mail", "POP3Port", "0"), ("Mail", "TLSPOP3Port", "0"),
        # SendMail off (these tests look at the queue) and its DNS on a closed loopback port.
        ("Mail", "Options", options if sendmail or "NO_SENDMAIL" in options else f"{options} | NO_SENDMAIL"),
        ("Mail", "DNSServer", "127.0.0.1:9"),
    ]
    settings += [("Mail", key, value) for key, value in mail_keys.items()]
    for section, key, value in settings:
        set_ini(sbbs, section, key, value)
    return root


class MailServer:
    """``bbs.runner.serve`` on a thread; ``ports`` maps service -> port."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = load_config(root)
        self.app: App | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop_event: asyncio.Event | None = None
        self.ports: dict[str, int] = {}
        self.status: int | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="mail-server", daemon=True)
        self._ready = threading.Event()

    def _run(self) -> None:
        from bbs.runner import serve

        async def main() -> int:
            self.loop = asyncio.get_running_loop()
            self.stop_event = asyncio.Event()
            self.app = App(self.config)
            self._ready.set()
            return await serve(self.app, stop=self.stop_event, announce_password=lambda a, p: None)

        try:
            self.status = asyncio.run(main())
        except BaseException as exc:  # surfaced by start()/stop()
            self.error = exc
            self._ready.set()

    def start(self) -> "MailServer":
        listeners = self.root / "data" / "listeners.json"
        if listeners.exists():
            listeners.unlink()
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.error is not None:
                raise self.error
            if not self._thread.is_alive():
                raise AssertionError(f"server stopped during start-up (status {self.status})")
            if listeners.exists():
                data = json.loads(listeners.read_text())
                if data["pid"] == os.getpid():
                    self.ports = {row["service"]: row["port"] for row in data["listeners"]}
                    return self
            time.sleep(0.02)
        raise AssertionError("mail server did not become ready")

    def call(self, coro, timeout: float = 30.0):
        """Run ``coro`` on the server's loop and return its result."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def add_user(self, alias: str, password: str = PASSWORD, **fields):
        """Create a user whose cleartext is kept (CRAM-MD5/APOP tests need it)."""
        assert self.app is not None
        base = UserBase(self.app.db, keep_cleartext=True)
        return self.call(base.add(alias, password, **fields))

    def store(self) -> MailStore:
        """A second handle on data/mail.db, opened on the server's loop."""
        store = MailStore(self.root / "data" / "mail.db")
        self.call(store.open())
        return store

    def mailbox(self, number: int) -> list:
        store = self.store()
        try:
            return self.call(store.list(number))
        finally:
            self.call(store.close())

    def read(self, number: int, message_id: int) -> bytes:
        store = self.store()
        try:
            return self.call(store.read(number, message_id))
        finally:
            self.call(store.close())

    def stop(self) -> None:
        if self.loop is not None and self.stop_event is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self._thread.join(30)
        assert not self._thread.is_alive(), "mail server did not stop"
        if self.error is not None:
            raise self.error


def client_tls() -> ssl.SSLContext:
    """A client context that accepts the instance's self-signed certificate."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def mail_starter(tmp_path: Path, default_options: str = "", **alice: str) -> Iterator[Callable[..., "MailServer"]]:
    """For a test's ``start`` fixture (``yield from mail_starter(...)``):
    ``start(options=None, files=None, **keys)`` runs a :class:`MailServer`
    on a fresh instance with ``options`` (None: ``default_options``), the
    ``[Mail]`` ``keys`` and ``files`` (instance path -> text) written, and
    Alice added (``server.alice``, with the ``alice`` fields); every server
    is stopped when the test ends."""
    servers: list[MailServer] = []

    def start(options: str | None = None, files: dict[str, str] | None = None, **keys: str) -> MailServer:
        root = mail_instance(tmp_path / f"bbs{len(servers)}",
                             default_options if options is None else options, **keys)
        for name, text in (files or {}).items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        server = MailServer(root).start()
        servers.append(server)
        server.alice = server.add_user("Alice", **alice)
        return server

    yield start
    for server in servers:
        server.stop()
