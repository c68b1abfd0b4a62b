"""Server control (bbs.control): recycle, stop and start of one server in a
running BBS (the real serve() and servers on 127.0.0.1), semaphore files,
the merged configuration, and the console's view of it."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import ssl
from pathlib import Path

import pytest

from bbs.app import App
from bbs.control import ControlError, ServerControl, merge_config, server_key
from bbs.instance import load_config
from bbs.runner import serve
from tests.support import run_async, set_ini

FTP_READY = b"220 "
FTP_NOOP_OK = b"200 "


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.asynccontextmanager
async def running(root: Path):
    """serve() on this loop until the block ends; yields the App."""
    app = App(load_config(root))
    stop = asyncio.Event()
    task = asyncio.ensure_future(serve(app, stop=stop, announce_password=lambda alias, password: None))
    for _ in range(600):
        if app.servers is not None and "ftp" in app.servers.running or task.done():
            break
        await asyncio.sleep(0.05)
    assert not task.done(), "serve() ended during start-up"
    try:
        yield app
    finally:
        stop.set()
        assert await task == 0


async def ftp(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert (await asyncio.wait_for(reader.readline(), 10)).startswith(FTP_READY)
    return reader, writer


async def refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


def ports_file(root: Path) -> dict[str, int]:
    data = json.loads((root / "data" / "listeners.json").read_text())
    return {row["service"]: row["port"] for row in data["listeners"] if row["transport"] == "tcp"}


def status_of(app: App, server: str):
    return next(row for row in app.servers.status() if row.server == server)


def test_recycle_moves_a_server_to_its_new_port_and_its_callers_stay(instance: Path):
    async def main():
        async with running(instance) as app:
            old_port = app.listeners.port_of("ftp")
            smtp_port = app.listeners.port_of("smtp")
            sendmail = app.servers.running["mail"].tasks
            reader, writer = await ftp(old_port)
            new_port = free_port()
            set_ini(instance / "ctrl" / "sbbs.ini", "FTP", "Port", str(new_port))
            message = await app.servers.recycle("ftp")
            assert f"FTP Server recycled (ftp {new_port})" == message
            writer.write(b"NOOP\r\n")                                   # the caller goes on
            assert (await asyncio.wait_for(reader.readline(), 10)).startswith(FTP_NOOP_OK)
            _, other = await ftp(new_port)                              # new callers: the new port
            other.close()
            assert await refused(old_port)
            assert ports_file(instance)["ftp"] == new_port
            assert app.listeners.port_of("smtp") == smtp_port          # the Mail Server was left alone
            assert app.servers.running["mail"].tasks is sendmail
            assert app.config.server.ftp.port == new_port
            writer.close()
    run_async(main(), timeout=60)


def test_a_bad_configuration_or_a_taken_port_keeps_the_server_as_it_was(instance: Path):
    sbbs = instance / "ctrl" / "sbbs.ini"

    async def main():
        async with running(instance) as app:
            port = app.listeners.port_of("ftp")
            set_ini(sbbs, "FTP", "Port", "banana")
            with pytest.raises(ControlError) as bad:
                await app.servers.recycle("ftp")
            line = next(n for n, text in enumerate(sbbs.read_text().splitlines(), 1) if "banana" in text)
            assert str(bad.value).startswith(f"ctrl/sbbs.ini:{line}: [FTP] Port: invalid number 'banana' "
                                             "(not recycled: the old configuration keeps running)")
            assert status_of(app, "ftp").error.startswith(f"ctrl/sbbs.ini:{line}: ")
            _, writer = await ftp(port)
            writer.close()
            with socket.socket() as blocker:
                blocker.bind(("127.0.0.1", 0))
                blocker.listen()
                taken = blocker.getsockname()[1]
                set_ini(sbbs, "FTP", "Port", str(taken))
                with pytest.raises(ControlError, match=f"cannot bind ftp port {taken} on 127.0.0.1: address "
                                                       "already in use"):
                    await app.servers.recycle("ftp")
            _, writer = await ftp(app.listeners.port_of("ftp"))        # back with the configuration it had
            writer.close()
            assert app.config.server.ftp.port == 0
            assert status_of(app, "ftp").state == "running"
    run_async(main(), timeout=60)


def test_stop_disconnects_the_callers_and_start_reads_the_configuration_again(instance: Path):
    async def main():
        async with running(instance) as app:
            port = app.listeners.port_of("ftp")
            reader, writer = await ftp(port)
            assert await app.servers.stop("ftp") == "FTP Server stopped; 1 connection(s) closed"
            assert await asyncio.wait_for(reader.read(), 10) == b""
            writer.close()
            assert await refused(port)
            assert status_of(app, "ftp").state == "stopped" and "ftp" not in ports_file(instance)
            with pytest.raises(ControlError, match="the FTP Server is not running"):
                await app.servers.stop("ftp")
            with pytest.raises(ControlError, match="the FTP Server is not running: start it instead"):
                await app.servers.recycle("ftp")
            new_port = free_port()
            set_ini(instance / "ctrl" / "sbbs.ini", "FTP", "Port", str(new_port))
            assert await app.servers.start("ftp") == f"FTP Server started (ftp {new_port})"
            _, writer = await ftp(new_port)
            writer.close()
            with pytest.raises(ControlError, match="the FTP Server is already running"):
                await app.servers.start("ftp")
            set_ini(instance / "ctrl" / "sbbs.ini", "FTP", "AutoStart", "false")
            await app.servers.stop("ftp")
            with pytest.raises(ControlError, match="has no listener sockets to open"):
                await app.servers.start("ftp")
    run_async(main(), timeout=60)


def test_semaphore_files_are_removed_and_no_recycle_is_respected(instance: Path, caplog):
    ctrl = instance / "ctrl"
    set_ini(ctrl / "sbbs.ini", "FTP", "Options", "NO_RECYCLE")

    async def main():
        async with running(instance) as app:
            before = {s: r.since for s, r in app.servers.running.items()}
            (ctrl / "recycle.ftp").touch()
            (ctrl / "recycle.srvc").touch()
            done = await app.servers.check_semaphores()
            assert not (ctrl / "recycle.ftp").exists() and not (ctrl / "recycle.srvc").exists()
            assert done == [f"Services recycled ({', '.join(status_of(app, 'services').sockets)})"]
            assert app.servers.running["ftp"].since == before["ftp"]
            assert app.servers.running["services"].since > before["services"]
            (ctrl / "recycle.telnet").touch()                           # Synchronet's name for term
            assert (await app.servers.check_semaphores())[0].startswith("Terminal Server recycled")
            assert app.servers.running["bbs"].since > before["bbs"]
            before = {s: r.since for s, r in app.servers.running.items()}
            (ctrl / "recycle").touch()                                  # every server but the FTP Server
            await app.servers.check_semaphores()
            assert not (ctrl / "recycle").exists()
            assert app.servers.running["ftp"].since == before["ftp"]
            assert all(app.servers.running[s].since > before[s] for s in ("bbs", "mail", "services"))
            set_ini(ctrl / "sbbs.ini", "Mail", "MaxClients", "lots")
            (ctrl / "recycle.mail").touch()
            [failure] = await app.servers.check_semaphores()
            assert "[Mail] MaxClients" in failure and not (ctrl / "recycle.mail").exists()
            assert status_of(app, "mail").state == "running"
    with caplog.at_level(logging.INFO):
        run_async(main(), timeout=60)
    text = caplog.text
    assert f"Recycle semaphore file ({ctrl / 'recycle.ftp'}) detected" in text
    assert "FTP Server has NO_RECYCLE in its Options: recycle.ftp ignored" in text
    assert "FTP Server has NO_RECYCLE in its Options: recycle ignored" in text
    assert "!Recycle of the Mail Server failed, the running configuration is kept" in text


def test_new_message_subs_and_file_dirs_reach_the_running_bbs(instance: Path):
    async def main():
        async with running(instance) as app:
            server = app.config.server
            with open(instance / "ctrl" / "msgs.ini", "a") as fh:
                fh.write("\n[sub:Local:FRESH]\nname = Fresh Area\n")
            with open(instance / "ctrl" / "file.ini", "a") as fh:
                fh.write("\n[dir:Main:NEWDIR]\nname = New files\npath = files/newdir\n")
            message = await app.servers.reload_board()
            assert "message sub(s)" in message
            assert app.config.msgs.sub("FRESH").name == "Fresh Area"
            assert any(d.code == "NEWDIR" for d in app.config.files.dirs)
            assert (instance / "files" / "newdir").is_dir()
            assert app.config.server is server                         # no server was touched
            await app.users.add("Alice", "Sw0rdf1sh-Qx7")
            reader, writer = await ftp(app.listeners.port_of("ftp"))  # the running FTP server sees it
            for line in (b"USER Alice", b"PASS Sw0rdf1sh-Qx7", b"CWD /Main/NEWDIR"):
                writer.write(line + b"\r\n")
                reply = await asyncio.wait_for(reader.readline(), 10)
            assert reply.startswith(b"250 ") and b"/Main/NEWDIR" in reply
            writer.close()
    run_async(main(), timeout=60)


def test_a_recycle_or_start_makes_the_folders_of_new_file_dirs(instance: Path):
    def add_dir(code: str) -> Path:
        with open(instance / "ctrl" / "file.ini", "a") as fh:
            fh.write(f"\n[dir:Main:{code}]\nname = {code}\npath = files/{code.lower()}\n")
        return instance / "files" / code.lower()

    async def main():
        async with running(instance) as app:
            recycled = add_dir("RECYCLED")
            await app.servers.recycle("ftp")                            # an FTP STOR opens its .part there
            assert recycled.is_dir()
            await app.servers.stop("ftp")
            started = add_dir("STARTED")
            await app.servers.start("ftp")
            assert started.is_dir()
    run_async(main(), timeout=60)


def test_a_bad_certificate_keeps_the_servers_as_they_were(instance: Path):
    client = ssl.create_default_context()
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE

    async def pop3s_greets(app: App) -> bool:
        reader, writer = await asyncio.open_connection("127.0.0.1", app.listeners.port_of("pop3s"), ssl=client)
        greeting = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        return greeting.startswith(b"+OK")

    async def main():
        async with running(instance) as app:
            assert await pop3s_greets(app)
            (instance / "data" / "tls" / "server.crt").write_text("not a certificate\n")
            for server in ("services", "mail", None):                  # NNTPS; POP3S and STLS
                with pytest.raises(ControlError, match=r"SSLError: .*\(not recycled: running as before\)"):
                    await app.servers.recycle(server)
                assert status_of(app, "services").state == status_of(app, "mail").state == "running"
                assert await pop3s_greets(app)                          # the certificate that worked
    run_async(main(), timeout=60)


def test_merge_takes_one_servers_section_and_listeners(instance: Path):
    old = load_config(instance)
    set_ini(instance / "ctrl" / "sbbs.ini", "FTP", "Port", "2121")
    set_ini(instance / "ctrl" / "sbbs.ini", "BBS", "TelnetPort", "2323")
    set_ini(instance / "ctrl" / "sbbs.ini", "Global", "ShutdownGrace", "9")
    set_ini(instance / "ctrl" / "main.ini", "Nodes", "LastNode", "9")
    new = load_config(instance)
    merged = merge_config(old, new, ["ftp"])
    assert merged.server.ftp.port == 2121 and merged.server.bbs.telnet_port == 0
    assert merged.server.global_.shutdown_grace == old.server.global_.shutdown_grace
    assert [i.port for i in merged.listeners if i.service == "ftp"] == [2121]
    assert [i.port for i in merged.listeners if i.service == "telnet"] == [0]
    assert merged.system.last_node == old.system.last_node            # the node table is sized at start
    every = merge_config(old, new, None)
    assert every.server.bbs.telnet_port == 2323 and every.server.global_.shutdown_grace == 9
    assert every.system.last_node == old.system.last_node


def test_server_names():
    assert [server_key(n) for n in ("term", "telnet", "BBS", "mail", "ftp", "srvc", "services")] == [
        "bbs", "bbs", "bbs", "mail", "ftp", "services", "services"]
    with pytest.raises(ControlError, match="unknown server 'web'"):
        server_key("web")


def test_status_lists_every_server_before_they_start(instance: Path):
    app = App(load_config(instance))
    control = ServerControl(app, lambda app, server: None)
    rows = control.status()
    assert [(r.name, r.state) for r in rows] == [("term", "stopped"), ("mail", "stopped"), ("ftp", "stopped"),
                                                 ("srvc", "stopped")]


def test_console_socket_frames_are_parsed_across_reads():
    from console.attach import DATA, HELLO, WINDOW, FrameDecoder, FrameError, frame, hello_frame, parse_size, \
        window_frame

    stream = hello_frame("xterm-256color", 120, 30) + frame(DATA, b"q") + window_frame(100, 20)
    decoder = FrameDecoder()
    frames = [f for i in range(len(stream)) for f in decoder.feed(stream[i:i + 1])]   # a byte at a time
    assert [kind for kind, _ in frames] == [HELLO, DATA, WINDOW]
    assert parse_size(frames[0][1]) == (120, 30) and frames[0][1][4:] == b"xterm-256color"
    assert frames[1][1] == b"q" and parse_size(frames[2][1]) == (100, 20)
    big = frame(DATA, b"x" * 70000)                                   # longer than one frame holds
    assert b"".join(p for _, p in FrameDecoder().feed(big)) == b"x" * 70000
    with pytest.raises(FrameError, match="unknown frame kind"):
        FrameDecoder().feed(b"Z\x00\x00")
    with pytest.raises(FrameError, match="short W frame"):
        FrameDecoder().feed(frame(WINDOW, b"\x00"))
