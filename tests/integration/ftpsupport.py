"""Helpers for the FTP tests: an instance with users and files, a running
`bbs run`, and a file base seeded the way the sysop would."""
from __future__ import annotations

import asyncio
import ftplib
from pathlib import Path

from bbs.filebase import FileBase
from tests.support import BBSProcess, make_instance, run_bbs, set_ini

USER, PASSWORD = "alice", "secret12"
SYSOP, SYSOP_PASSWORD = "boss", "bosspass1"

#: Replies the tests expect (RFC 959 codes with our texts).
LOGGED_IN = "230 User logged in."
GUEST_LOGGED_IN = "230 Guest logged in."
NO_GUEST = "530 Anonymous logins are not allowed: this BBS has no Guest account."
LOGIN_INCORRECT = "530 Login incorrect."
NOT_FOUND = "550 No such file or directory."
DENIED = "550 Permission denied."
BAD_NAME = "553 File name not allowed."
EXISTS = "553 File exists."
TRANSFER_COMPLETE = "226 Transfer complete."

#: Files the sysop placed in Main/TEXT before start (name -> bytes).
LIBRARY = {
    "readme.txt": b"Welcome to the file library.\r\n" * 10,
    "faq.txt": b"Q: What?\nA: This.\n" * 100,
    "art.ans": bytes(range(256)) * 40,
}


def add_user(root: Path, name: str, password: str, *extra: str) -> None:
    result = run_bbs("user", "add", name, "--password", password, "-d", str(root), *extra)
    assert result.returncode == 0, result.stderr


def seed(root: Path, dir_path: str, dir_code: str, files: dict[str, bytes], uploader: str = "Sysop") -> None:
    """Put files in a dir's folder and record them in data/file.db."""
    folder = root / dir_path
    folder.mkdir(parents=True, exist_ok=True)

    async def main() -> None:
        base = FileBase(root / "data" / "file.db")
        await base.open()
        try:
            for name, data in files.items():
                (folder / name).write_bytes(data)
                await base.add(dir_code, name, len(data), uploader=uploader, description=f"about {name}")
        finally:
            await base.close()

    asyncio.run(main())


def ftp_instance(root: Path, **ftp_keys: str) -> Path:
    """An instance running only the FTP server, with alice (level 10), boss
    (sysop) and LIBRARY in Main/TEXT; ``ftp_keys`` go into [FTP]."""
    make_instance(root)
    for section in ("BBS", "Mail", "Services"):  # only the FTP server runs
        set_ini(root / "ctrl" / "sbbs.ini", section, "AutoStart", "false")
    add_user(root, USER, PASSWORD)
    add_user(root, SYSOP, SYSOP_PASSWORD, "--level", "99")
    for key, value in ftp_keys.items():
        set_ini(root / "ctrl" / "sbbs.ini", "FTP", key, value)
    seed(root, "files/main/text", "TEXT", LIBRARY)
    return root


def login(port: int, user: str = USER, password: str = PASSWORD, cls=ftplib.FTP) -> ftplib.FTP:
    ftp = cls()
    ftp.connect("127.0.0.1", port, timeout=15)
    ftp.login(user, password)
    return ftp


def start(root: Path) -> BBSProcess:
    return BBSProcess(root).start()
