"""Packaging for the BBS host (the user asked for setup.py)."""
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent


def shipped(folder: str) -> list[tuple[str, list[str]]]:
    """data_files entries installing ctrl/ or text/ under <prefix>/share/bbs."""
    entries: dict[str, list[str]] = {}
    for path in sorted((HERE / folder).rglob("*")):
        if path.is_file():
            rel = path.relative_to(HERE)
            entries.setdefault(str(Path("share/bbs") / rel.parent), []).append(str(rel))
    return sorted(entries.items())


setup(
    name="pybbs",
    version="0.1.0",
    description="A Synchronet-style BBS host on asyncio: telnet/SSH/RLogin nodes, mail, FTP, services, sysop console",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=["bbs", "nodes", "nodes.screens", "mail", "ftp", "console", "services"],
    data_files=shipped("ctrl") + shipped("text"),
    install_requires=[
        "urwid==5.1.0",
        "telnetlib3==5.0.1",
        "asyncssh==2.24.1",
        "aiosmtpd==1.4.6",
        "dnspython==2.9.2",
        "blessed==1.52.0",
        # TLS certificate generation; asyncssh depends on it anyway.
        "cryptography==50.0.2",
    ],
    extras_require={
        "test": ["pytest==9.0.3", "pexpect==4.9.0", "pytest-timeout==2.4.0",
                 # the peer FTP server of bench/ftp_download.py (the tests do not use it)
                 "pyftpdlib==2.2.0"],
    },
    entry_points={"console_scripts": ["bbs=bbs.cli:main"]},
)
