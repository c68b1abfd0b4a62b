"""External programs (doors) for callers: the sections and programs of
ctrl/xtrn.ini (:mod:`bbs.xtrnconf`, re-read when it changes), and running one
with its input and output wired to the caller's connection.

A program runs in its own process group with the caller's window size
(``LINES``/``COLUMNS``), terminal type (``TERM``, a name terminfo knows) and
Synchronet's ``SBBSNODE``/``SBBSNNUM``/``SBBSCTRL``/``SBBSDATA`` in its
environment, in its startup folder (default: the node's folder
``data/node<N>/``), after its drop files are written into the node's temp
folder (``data/node<N>/temp/``, emptied first). ``io = stdio`` pipes bytes
both ways unchanged (the telnet link escapes IAC, RFC 854); ``io = pty`` gives
it a pseudo-terminal as its controlling terminal, sized to the caller's
window and resized with it. The program ends the way it likes; when the
caller hangs up, idles past ``MaxSessionInactivity``, reaches the program's
``max_time`` or the BBS stops, its process group gets SIGHUP (a modem
hang-up), then SIGKILL after :data:`KILL_GRACE`.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import fcntl
import os
import pty
import shlex
import shutil
import signal
import struct
import sys
import termios
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bbs.xtrnconf import (DROP_WRITERS, IO_PTY, UNLIMITED_MINUTES, DropInfo, XtrnConfig, XtrnProgram,
                          XtrnSection, expand_command, platform_values)
from nodes import terminal as t
from nodes.io import Hangup
from nodes.screens.picker import browse

if TYPE_CHECKING:
    from nodes.session import Session

#: Bytes per read from the program's output.
OUTPUT_BLOCK = 8192
#: Seconds between SIGHUP and SIGKILL when a program must end (ours).
KILL_GRACE = 2.0
#: Seconds the output is still passed on after the program exited (what it
#: wrote last; a child it left behind holding the pipe is then killed).
DRAIN_AFTER_EXIT = 0.5
#: Characters of the program's stderr kept for the log (stdio programs).
STDERR_KEPT = 2000
#: Folders terminfo entries are looked up in (ncurses' default search path on Debian).
TERMINFO_DIRS = ("/etc/terminfo", "/lib/terminfo", "/usr/share/terminfo")
#: Runs in the pty child before the program: makes the pty its controlling
#: terminal (a new session), then becomes the program (exit 127 if it cannot).
_CTTY_SHIM = ("import os, sys\nos.login_tty(0)\ntry:\n    os.execvp(sys.argv[1], sys.argv[1:])\n"
              "except OSError as exc:\n    sys.stderr.write(f'cannot start {sys.argv[1]}: {exc.strerror}\\r\\n')\n"
              "    sys.exit(127)\n")


def xtrn_settings(session: "Session") -> XtrnConfig:
    """ctrl/xtrn.ini as in force now."""
    return session.services.live["xtrn.ini"].current()


def node_dirs(session: "Session") -> tuple[Path, Path]:
    """The node's folder and its temp folder (Synchronet's node dir and temp dir)."""
    node_dir = session.app.instance.data / f"node{session.node}"
    return node_dir, node_dir / "temp"


def terminfo_name(term_type: str, ansi: bool) -> str:
    """TERM for a program: the caller's terminal type when terminfo knows
    it, else ``ansi`` or ``dumb`` (curses programs fail on unknown names)."""
    name = term_type.strip().lower()
    if name and "/" not in name and not name.startswith("."):
        for folder in TERMINFO_DIRS:
            for sub in (name[0], f"{ord(name[0]):02x}"):
                if os.path.isfile(os.path.join(folder, sub, name)):
                    return name
    return "ansi" if ansi else "dumb"


# -- the menus ---------------------------------------------------------------------
def _visible(session: "Session") -> list[tuple[XtrnSection, list[XtrnProgram]]]:
    config, ctx = xtrn_settings(session), session.access()
    shown = []
    for section in config.sections:
        if section.ars.allows(ctx):
            programs = [p for p in config.in_section(section.name) if p.ars.allows(ctx)]
            if programs:
                shown.append((section, programs))
    return shown


async def xtrn_menu(session: "Session", args: tuple[str, ...]) -> None:
    """``Action = xtrn``: choose a section, then a program, and run it;
    ``Action = xtrn CODE`` runs program CODE at once."""
    if args:
        program = xtrn_settings(session).program(args[0])
        if program is None or not program.ars.allows(session.access()):
            session.log.warning("menu action xtrn %s: no such program in xtrn.ini", args[0])
            await session.print("\x01n\x01h\x01rThat program is not available.\x01n\r\n")
            return
        await run_program(session, program)
        return
    await browse(session, activity="choosing an external program", visible=lambda: _visible(session),
                 heading="External program sections", empty="There are no external programs you may run.",
                 noun="program", item_name=lambda p: p.name, what="Program",
                 run=lambda program: run_program(session, program))


# -- running one -------------------------------------------------------------------
def _prepare(node_dir: Path, temp: Path, dropfiles: tuple[str, ...], info: DropInfo) -> None:
    """(worker thread) The node's folders, the temp folder emptied, the drop files written."""
    node_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir()
    for name in dropfiles:
        (temp / name).write_bytes(DROP_WRITERS[name](info).encode("cp437", "replace"))


def _executable(argv0: str, cwd: Path, env: dict[str, str]) -> bool:
    if "/" in argv0:
        path = Path(argv0) if os.path.isabs(argv0) else cwd / argv0
        return path.is_file() and os.access(path, os.X_OK)
    return shutil.which(argv0, path=env.get("PATH")) is not None


def _values(session: "Session", node_dir: Path, temp: Path, cwd: Path,
            seconds_left: int) -> dict[str, str]:
    user, instance, term = session.user, session.app.instance, session.term
    return {**platform_values(),
            "A": user.alias, "+": user.real_name or user.alias, "-": user.alias,
            "C": {"telnet": "Telnet", "ssh": "SSH", "rlogin": "RLogin"}.get(session.protocol, session.protocol),
            "P": session.protocol, "I": session.address, "#": str(session.node), "*": f"{session.node:03d}",
            "G": f"{temp}/", "N": f"{node_dir}/", "S": f"{cwd}/", "J": f"{instance.data}/",
            "K": f"{instance.ctrl}/", "Z": f"{instance.text}/", "O": session.system.operator,
            "Q": session.system.qwk_id, "R": str(term.rows), "W": str(term.cols), "T": str(seconds_left)}


def _drop_info(session: "Session", node_dir: Path, seconds_left: int) -> DropInfo:
    user = session.user
    return DropInfo(
        node=session.node, user_number=user.number, alias=user.alias, real_name=user.real_name,
        location=user.location, phone=user.phone, level=user.level, logons=user.logons, last_on=user.last_on,
        uploads=user.uploads, downloads=user.downloads, upload_bytes=user.upload_bytes,
        download_bytes=user.download_bytes, posts=user.posts, expert=bool((user.settings or {}).get("expert")),
        ansi=session.term.ansi, rows=session.term.rows, seconds_left=seconds_left,
        logon_time=session.logon_time or time.time(), bbs_name=session.system.name,
        sysop=session.system.operator, node_dir=f"{node_dir}/", data_dir=f"{session.app.instance.data}/")


async def run_program(session: "Session", program: XtrnProgram) -> None:
    """Run one program for the caller (its requirements checked) and come
    back to the menu when it ends. Raises :class:`Hangup` when the caller
    hangs up, idles out or the BBS stops (the program is ended first)."""
    ctx = session.access()
    if not (program.ars.allows(ctx) and program.execution_ars.allows(ctx)):
        await session.print(f"\x01n\x01h\x01rYou may not run {program.name}.\x01n\r\n")
        return
    node_dir, temp = node_dirs(session)
    cwd = program.startup_dir or node_dir
    seconds_left = int(program.max_time) if program.max_time else UNLIMITED_MINUTES * 60
    await asyncio.to_thread(_prepare, node_dir, temp, program.dropfiles,
                            _drop_info(session, node_dir, seconds_left))
    argv = expand_command(program.argv, _values(session, node_dir, temp, cwd, seconds_left),
                          session.user.number)
    term, instance = session.term, session.app.instance
    env = {**os.environ, "TERM": terminfo_name(session.link.term_type, term.ansi), "LINES": str(term.rows),
           "COLUMNS": str(term.cols), "SBBSNODE": f"{node_dir}/", "SBBSNNUM": str(session.node),
           "SBBSCTRL": f"{instance.ctrl}/", "SBBSDATA": f"{instance.data}/"}
    if not cwd.is_dir() or not await asyncio.to_thread(_executable, argv[0], cwd, env):
        session.log.error("external program %s cannot run: %s", program.code,
                          f"startup folder {cwd} is missing" if not cwd.is_dir() else f"{argv[0]!r} not found")
        await session.print(f"\x01n\x01h\x01r{program.name} is not available right now; please tell the "
                            "sysop.\x01n\r\n")
        return
    session.set_activity(f"running {program.name}")
    session.log.info("%s running external program %s (%s): %s", session.user.alias, program.code, program.name,
                     shlex.join(argv))
    await term.write("\x01n\r\n")
    started = time.monotonic()
    end = await run_door(session, argv, cwd, env, pty_mode=program.io == IO_PTY, time_limit=program.max_time)
    session.log.info("external program %s ended (%s, status %s) after %.0f s%s", program.code, end.how,
                     end.status, time.monotonic() - started, f": {end.stderr}" if end.stderr else "")
    if end.hangup is not None:
        raise end.hangup
    term.render_state.shown = t.Attr(-1)  # the program left its own colours: ours are sent again
    if end.how == "time":
        await session.print(f"\r\n\x01n\x01h\x01yYour time in {program.name} is up.\x01n\r\n")
    else:
        await session.print("\x01n\r\n")


# -- the child process -------------------------------------------------------------
@dataclasses.dataclass
class DoorEnd:
    how: str                     # "exited", "time", or why the session must end
    status: int | None           # the exit status (negative: the signal that ended it)
    stderr: str = ""             # the tail of stderr (stdio programs), one line
    hangup: Hangup | None = None  # the session must end (raise it once logged)


class _Child:
    """A running program: its process and its end of the pipes (or the pty)."""

    def __init__(self, proc: asyncio.subprocess.Process, master: int | None) -> None:
        self.proc = proc
        self.master = master                    # pty master fd (None: pipes)
        self.output: asyncio.Queue[bytes] = asyncio.Queue()
        self.errors = bytearray()
        if master is not None:
            os.set_blocking(master, False)
            asyncio.get_running_loop().add_reader(master, self._readable)

    @classmethod
    async def start(cls, argv: list[str], cwd: Path, env: dict[str, str], pty_mode: bool,
                    cols: int, rows: int) -> "_Child":
        if not pty_mode:
            proc = await asyncio.create_subprocess_exec(
                *argv, cwd=cwd, env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, start_new_session=True)
            return cls(proc, None)
        master, slave = pty.openpty()
        try:
            _set_size(slave, cols, rows)
            proc = await asyncio.create_subprocess_exec(sys.executable, "-c", _CTTY_SHIM, *argv, cwd=cwd, env=env,
                                                        stdin=slave, stdout=slave, stderr=slave)
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        return cls(proc, master)

    def _readable(self) -> None:
        try:
            data = os.read(self.master, OUTPUT_BLOCK)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: every holder of the pty's other end has gone
            if exc.errno != errno.EIO:
                raise
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self.master)
        self.output.put_nowait(data)

    async def read(self) -> bytes:
        """The program's next output; b"" at its end."""
        if self.master is not None:
            return await self.output.get()
        assert self.proc.stdout is not None
        return await self.proc.stdout.read(OUTPUT_BLOCK)

    async def write(self, data: bytes) -> None:
        """The caller's bytes to the program (dropped once it stopped reading)."""
        if self.master is None:
            assert self.proc.stdin is not None
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.proc.stdin.write(data)
                await self.proc.stdin.drain()
            return
        loop = asyncio.get_running_loop()
        while data:
            try:
                data = data[os.write(self.master, data):]
            except BlockingIOError:
                ready = loop.create_future()
                loop.add_writer(self.master, ready.set_result, None)
                try:
                    await ready
                finally:
                    loop.remove_writer(self.master)
            except OSError:
                return

    async def read_errors(self) -> None:
        """(stdio) Keep the tail of stderr for the log."""
        assert self.proc.stderr is not None
        while chunk := await self.proc.stderr.read(OUTPUT_BLOCK):
            self.errors += chunk
            del self.errors[:-STDERR_KEPT]

    def resize(self, cols: int, rows: int) -> None:
        if self.master is not None:
            with contextlib.suppress(OSError):
                _set_size(self.master, cols, rows)  # the kernel sends SIGWINCH

    def signal(self, sig: int) -> None:
        """``sig`` to the program's process group (it is its own session leader)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    async def stop(self) -> None:
        """SIGHUP, then SIGKILL after KILL_GRACE."""
        self.signal(signal.SIGHUP)
        try:
            await asyncio.wait_for(asyncio.shield(self.proc.wait()), KILL_GRACE)
        except asyncio.TimeoutError:
            self.signal(signal.SIGKILL)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        if self.master is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self.master)
            os.close(self.master)
            self.master = None


def _set_size(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


async def run_door(session: "Session", argv: list[str], cwd: Path, env: dict[str, str], *, pty_mode: bool,
                   time_limit: float) -> DoorEnd:
    """Run ``argv`` wired to the caller until it exits or ``time_limit``
    seconds (0 = none) pass. When the caller hangs up, is inactive for the
    session's limit, or the BBS stops, the program is ended and the result
    carries the :class:`Hangup` to raise."""
    term, link = session.term, session.link
    loop = asyncio.get_running_loop()
    child = await _Child.start(argv, cwd, env, pty_mode, term.cols, term.rows)

    async def pump_out() -> None:
        while data := await child.read():
            term.write_raw(data)  # through the terminal, so a spying sysop sees the program too
            await link.drain()

    previous_resize = link.on_resize

    def resized() -> None:
        if previous_resize is not None:
            previous_resize()
        child.resize(term.cols, term.rows)

    link.on_resize = resized
    outbound = asyncio.ensure_future(pump_out())
    errors = asyncio.ensure_future(child.read_errors()) if not pty_mode else None
    exited = asyncio.ensure_future(child.proc.wait())
    down = asyncio.ensure_future(session.app.shutdown.wait())
    inbound: asyncio.Future | None = None
    deadline = loop.time() + time_limit if time_limit else None
    idle_limit = term.idle_limit
    last_input = loop.time()
    how, hangup = "exited", None
    try:
        while True:
            if inbound is None:
                inbound = asyncio.ensure_future(term.read_raw())
            now = loop.time()
            waits = [w for w in (deadline, last_input + idle_limit if idle_limit else None) if w is not None]
            timeout = max(0.0, min(waits) - now) if waits else None
            done, _ = await asyncio.wait({inbound, exited, down}, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            if exited in done:
                break
            if down in done:
                hangup = Hangup("shutdown", "\r\n\x01n\x01h\x01yThe BBS is shutting down.\x01n\r\n")
                break
            if inbound in done:
                data, inbound = inbound.result(), None
                if not data:
                    hangup = Hangup("disconnected")
                    break
                last_input = loop.time()
                await child.write(data)
                continue
            if deadline is not None and loop.time() >= deadline:
                how = "time"
                break
            if idle_limit and loop.time() >= last_input + idle_limit:
                hangup = Hangup("inactive", "\r\n\x01n\x01h\x01rInactive too long. Goodbye.\x01n\r\n")
                break
    except BaseException:
        child.signal(signal.SIGKILL)  # cancelled (the session task): no grace
        raise
    finally:
        link.on_resize = previous_resize
        for task in (inbound, down):
            if task is not None:
                task.cancel()  # read_raw is shielded: a read under way stays with the terminal
        if not exited.done():
            await child.stop()
        status = await exited
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(outbound), DRAIN_AFTER_EXIT)
        child.signal(signal.SIGKILL)  # what it left running
        for task in (outbound, errors):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(x for x in (outbound, errors, inbound, down) if x is not None),
                             return_exceptions=True)
        child.close()
    stderr = " | ".join(line.strip() for line in child.errors.decode("utf-8", "replace").splitlines() if line.strip())
    return DoorEnd(hangup.reason if hangup else how, status, stderr, hangup)


SCREENS = {"xtrn": xtrn_menu}
