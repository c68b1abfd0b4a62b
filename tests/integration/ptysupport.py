"""Real callers for file transfers: the `telnet` client (inetutils, run as
``telnet -8 -E``) and the OpenSSH `ssh` client under pexpect, in bytes mode,
and :func:`run_program` that runs the client side of a transfer (lrzsz's
``rz``/``sz``, ``rx``/``sx``, ``rb``/``sb``) wired to the client's terminal,
the way a terminal program with ZMODEM support would.

The program's stdin is fed what the client prints (read from the master of
pexpect's pty, ``child.child_fd``) and its stdout is typed into the client
(written to the master). The pty is put in raw mode for the transfer so the
line discipline changes no byte (no CR/LF mapping, no XON/XOFF, no signal
characters). When the program exits the session goes back to pexpect's
``expect()``.

What was found: inetutils `telnet` is 8-bit clean against the BBS (XMODEM,
which escapes nothing, passes CR LF, CR NUL, XON/XOFF, CAN and 0xFF
unchanged both ways); it sets its terminal nearly raw itself in character
mode. The one trap is its escape character: without ``-E`` a Ctrl-] (0x1d)
in an upload opens telnet's command prompt and the upload fails. The same
holds for ssh's ``~.`` (``-e none``).
"""
from __future__ import annotations

import os
import re
import select
import subprocess
import termios
import threading
import time
import tty
from pathlib import Path

import pexpect

#: `telnet` options: -8 asks for BINARY (RFC 856) both ways, -E turns off
#: the escape character (Ctrl-]) so every byte goes to the BBS.
TELNET_OPTIONS = ["-8", "-E"]
#: `ssh` options: -tt forces a PTY, -e none turns off the escape character
#: ("~." after a newline in the data would otherwise close the session).
SSH_OPTIONS = ["-tt", "-e", "none", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
               "-o", "PubkeyAuthentication=no", "-o", "NumberOfPasswordPrompts=1", "-o", "LogLevel=ERROR"]
#: Seconds a transfer program may run.
PROGRAM_TIMEOUT = 60.0
#: The first bytes of a ZMODEM header (ZPAD ZPAD ZDLE): where a terminal's
#: ZMODEM auto-start hands the stream to the program.
ZMODEM_START = b"**\x18"


def spawn_telnet(port: int, term: str = "xterm") -> pexpect.spawn:
    """``telnet -8 -E 127.0.0.1 PORT`` in bytes mode."""
    return pexpect.spawn("telnet", [*TELNET_OPTIONS, "127.0.0.1", str(port)], timeout=15,
                         env={**os.environ, "TERM": term})


def spawn_ssh(port: int, user: str, password: str, term: str = "xterm") -> pexpect.spawn:
    """``ssh -tt ... -p PORT user@127.0.0.1`` in bytes mode, the password
    answered at its prompt (the BBS logs straight in after it)."""
    child = pexpect.spawn("ssh", [*SSH_OPTIONS, "-p", str(port), f"{user}@127.0.0.1"], timeout=15,
                          env={**os.environ, "TERM": term})
    child.expect(b"assword: ")
    child.sendline(password.encode())
    return child


def run_program(child: pexpect.spawn, argv: list[str], cwd: Path, *, start: bytes = b"",
                timeout: float = PROGRAM_TIMEOUT) -> int:
    """Run ``argv`` in ``cwd`` wired to the client's terminal until it exits;
    returns its exit status.

    What pexpect has read but not matched is fed to the program first, from
    the first ``start`` in it when given (:data:`ZMODEM_START`, as a
    terminal's auto-start does: text before the first header, such as a
    'C', would make ``sz`` fall back to YMODEM). Everything the BBS sent
    during the transfer is left in pexpect's buffer afterwards, so the text
    the BBS wrote after its end is found by the next ``expect()`` even when
    the program was fed it before it exited.
    """
    fd = child.child_fd
    pending = child.buffer
    if start:
        at = pending.find(start)
        pending = pending[at:] if at >= 0 else b""
    transcript = bytearray(pending)
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)  # on the master: Linux applies it to the pty
    proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    assert proc.stdin is not None and proc.stdout is not None
    stop = threading.Event()
    failure: list[BaseException] = []

    def to_program() -> None:
        """Client's output -> the program's stdin, until it exits."""
        try:
            if pending:
                proc.stdin.write(pending)
                proc.stdin.flush()
            while not stop.is_set():
                ready, _, _ = select.select([fd], [], [], 0.05)
                if not ready:
                    continue
                try:
                    data = os.read(fd, 65536)
                except OSError:  # the client exited (EIO on the master)
                    return
                if not data:
                    return
                transcript.extend(data)
                proc.stdin.write(data)
                proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            return                                  # the program has exited
        except BaseException as exc:                # noqa: BLE001 - reported by the caller
            failure.append(exc)

    feeder = threading.Thread(target=to_program, daemon=True)
    feeder.start()
    deadline = time.monotonic() + timeout
    try:
        out = proc.stdout.fileno()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{argv[0]} did not finish in {timeout:.0f} s")
            ready, _, _ = select.select([out], [], [], min(remaining, 0.5))
            if not ready:
                continue
            data = os.read(out, 65536)
            if not data:
                break
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
        code = proc.wait(max(0.1, deadline - time.monotonic()))
    finally:
        stop.set()
        feeder.join()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        try:
            proc.stdin.close()
        except BrokenPipeError:  # bytes the program exited before reading
            pass
        proc.stdout.close()
        termios.tcsetattr(fd, termios.TCSANOW, saved)
    if failure:
        raise failure[0]
    unread(child, bytes(transcript))
    return code


def unread(child: pexpect.spawn, data: bytes) -> None:
    """Make ``data`` what the next ``expect()`` searches first, all of it.

    Setting ``child.buffer`` alone is not enough: pexpect 4.9 takes the
    length of its ``_before`` (what came since the last match) as the
    "fresh" part of the buffer and searches only that much of its end, so
    a line followed by more text (the BBS's "Downloaded ..." then its
    menu prompt, both written while the program was still running) was
    never found.
    """
    child.buffer = data
    child._before = child.buffer_type()
    child._before.write(data)


def expect_line(child: pexpect.spawn, text: str) -> None:
    """Read through ``text`` and the end of its line (CR LF), so what
    follows (a transfer's first bytes) stays in pexpect's buffer."""
    child.expect(re.escape(text.encode()) + rb"[^\r]*\r\n")
