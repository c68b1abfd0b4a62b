"""The pty helpers the transfer tests stand on."""
from __future__ import annotations

import pexpect

from tests.integration.ptysupport import unread


def test_unread_text_is_found_even_when_more_text_follows_it():
    """What a transfer program was fed is searched whole by the next
    expect(): the BBS's "Downloaded ..." line was missed when its menu
    prompt had come in the same stretch (pexpect searched only a tail as
    long as what had come since its last match)."""
    child = pexpect.spawn("sh", ["-c", "echo ready; exec sleep 30"], timeout=2)
    try:
        child.expect_exact(b"ready")
        unread(child, b"\x18\x18**ZMODEM bytes\r\nDownloaded payload.bin.\r\n" + b"[Files] (? for help): " * 4)
        child.expect_exact(b"Downloaded payload.bin.")
        child.expect_exact(b"(? for help): ")
    finally:
        child.close(force=True)
