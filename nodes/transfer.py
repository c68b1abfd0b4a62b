"""File-transfer protocols for callers and the runner that wires a transfer
program to the caller's connection.

The protocols are data (:data:`PROTOCOLS`): Synchronet's hotkey, a name, the
argv of the lrzsz program that sends a file (a download: the file name is
appended after ``--``) and of the one that receives (an upload, run in an
empty folder; protocols that carry no file name, XMODEM, get the name the
caller chose appended after ``--``), and whether the protocol is a batch
protocol (names carried in the protocol, several files per upload). The
screens in :mod:`nodes.screens.files` offer the protocols whose programs
are installed (:func:`available`) and never branch on a protocol's name.

The programs are Debian's ``lrzsz``: ``sz``/``rz`` (ZMODEM), ``sx``/``rx``
(XMODEM) and ``sb``/``rb`` (YMODEM), the same binary under several names.
Options: ``-b`` binary, ``-q`` quiet (no progress text on stderr), ``-R``
restricted (no path names, no remote commands); ZMODEM also ``-e``, escape
every control character (harmless, and it keeps XON/XOFF and telnet's CR
NUL out of the data for clients that are not 8-bit clean); XMODEM-1K
``sx -k`` sends 1024-byte blocks; ``rx -c`` asks for CRC-16 (XMODEM-CRC);
YMODEM ``sb -k`` sends 1024-byte blocks (YMODEM's own block size).
"""
from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nodes.io import Hangup

if TYPE_CHECKING:
    from nodes.session import Session

#: Bytes per read from the transfer program's output.
TRANSFER_BLOCK = 8192
#: Seconds after a transfer during which the caller's bytes are dropped
#: (ZMODEM's closing "OO", retried headers and XMODEM's repeated 'C' or
#: NAK are not keys; ours).
TRANSFER_SETTLE = 0.5


@dataclass(frozen=True)
class Protocol:
    """One transfer protocol a caller may choose."""

    key: str                    # the hotkey at the protocol prompt (Synchronet's)
    name: str                   # shown to the caller and in the node's activity
    download: tuple[str, ...]   # argv that sends; the file name follows "--"
    upload: tuple[str, ...]     # argv that receives into the current folder
    batch: bool                 # names travel in the protocol (else the caller names the upload)

    def download_argv(self, name: str) -> list[str]:
        """The command that sends file ``name`` (a checked base name)."""
        return [*self.download, "--", name]

    def upload_argv(self, name: str | None) -> list[str]:
        """The command that receives: batch protocols take no name; the
        others write ``name`` (a checked base name)."""
        if self.batch:
            return list(self.upload)
        if not name:
            raise ValueError(f"{self.name} needs the name of the file to receive")
        return [*self.upload, "--", name]

    def installed(self) -> bool:
        """Whether both programs are on the BBS's PATH."""
        return shutil.which(self.download[0]) is not None and shutil.which(self.upload[0]) is not None


#: The protocols, in the order they are offered; the first is the default
#: when the caller has no preferred protocol.
PROTOCOLS: tuple[Protocol, ...] = (
    Protocol("Z", "Zmodem", ("sz", "-b", "-e", "-q", "-R"), ("rz", "-b", "-e", "-q", "-R"), batch=True),
    Protocol("X", "Xmodem-CRC", ("sx", "-b", "-q", "-R"), ("rx", "-b", "-c", "-q", "-R"), batch=False),
    Protocol("1", "Xmodem-1K", ("sx", "-b", "-k", "-q", "-R"), ("rx", "-b", "-c", "-q", "-R"), batch=False),
    Protocol("Y", "Ymodem", ("sb", "-b", "-k", "-q", "-R"), ("rb", "-b", "-q", "-R"), batch=True),
)


def available(protocols: tuple[Protocol, ...] = PROTOCOLS) -> list[Protocol]:
    """The protocols whose programs are installed, in offering order."""
    return [p for p in protocols if p.installed()]


def find(protocols: list[Protocol], key: str) -> Protocol | None:
    """The protocol with hotkey ``key`` (any case) among ``protocols``."""
    return next((p for p in protocols if p.key.upper() == str(key).upper()), None)


async def run_transfer(session: "Session", argv: list[str], cwd: Path) -> int:
    """Run a transfer program with its stdin/stdout wired to the caller.

    Called by the download and upload screens. Returns the program's exit
    status. Raises :class:`Hangup` when the caller hangs up or the BBS
    stops (the program is killed first). Bytes the caller sends in the
    :data:`TRANSFER_SETTLE` after the end are dropped.
    """
    term = session.term
    proc = await asyncio.create_subprocess_exec(*argv, cwd=cwd, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    session.log.info("transfer started: %s", " ".join(argv))

    async def pump_in() -> bool:
        """Caller -> program; False when the caller has gone."""
        assert proc.stdin is not None
        while True:
            data = await term.read_raw()
            if not data:
                return False
            try:
                proc.stdin.write(data)
                await proc.stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                return True

    async def pump_out() -> None:
        assert proc.stdout is not None
        while data := await proc.stdout.read(TRANSFER_BLOCK):
            await term.write_bytes(data)

    assert proc.stderr is not None
    inbound = asyncio.ensure_future(pump_in())
    outbound = asyncio.ensure_future(pump_out())
    errors = asyncio.ensure_future(proc.stderr.read())
    down = asyncio.ensure_future(session.app.shutdown.wait())
    hangup: Hangup | None = None
    try:
        while not outbound.done():
            waiting = {outbound, down} | ({inbound} if not inbound.done() else set())
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if down in done:
                hangup = Hangup("shutdown", "\r\n\x01n\x01h\x01yThe BBS is shutting down.\x01n\r\n")
                break
            if inbound in done and inbound.result() is False:
                hangup = Hangup("disconnected")
                break
        if hangup is not None and proc.returncode is None:
            proc.kill()
        code = await proc.wait()
    finally:
        for task in (inbound, outbound, down):
            task.cancel()
        await asyncio.gather(inbound, outbound, down, return_exceptions=True)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    stderr = (await errors).decode("utf-8", "replace").strip()
    session.log.info("transfer ended with status %d%s", code, f": {stderr[:300]}" if stderr else "")
    if hangup is not None:
        raise hangup
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TRANSFER_SETTLE
    while (remaining := deadline - loop.time()) > 0:
        try:
            data = await asyncio.wait_for(term.read_raw(), remaining)
        except asyncio.TimeoutError:
            break
        if not data:
            raise Hangup("disconnected")
    term.discard_input()
    return code
