"""[Mail] DEBUG_TX and DEBUG_RX_RSP: SendMail logs what it sends and every
reply (debug level), never an AUTH secret."""
from __future__ import annotations

import logging

import pytest

from tests.integration.sendmail_support import FakeDNS, Sink, message, sendmail_instance
from tests.integration.test_sendmail_direct import Harness
from tests.support import run_async, until


@pytest.fixture
def dns():
    server = FakeDNS().start()
    yield server
    server.stop()


@pytest.mark.parametrize("options, tx, rx", [("ALLOW_POP3 | DEBUG_TX", True, False),
                                             ("ALLOW_POP3 | DEBUG_RX_RSP", False, True),
                                             ("ALLOW_POP3", False, False)])
def test_debug_options_log_the_smtp_dialogue(tmp_path, dns, caplog, options, tx, rx):
    caplog.set_level(logging.DEBUG, logger="mail")

    async def main():
        sink = await Sink("127.0.0.6").start()
        dns.add("d.test", ("A", "127.0.0.6"))
        root = sendmail_instance(tmp_path / "bbs", dns, options, DeliveryPort=str(sink.port))
        try:
            async with Harness(root) as h:
                h.start()
                await h.queue(["fred@d.test"], message("Debug me"))
                await until(h.finished(1))
        finally:
            await sink.stop()

    run_async(main())
    lines = [r.getMessage() for r in caplog.records]
    assert any("TX: RCPT TO:<fred@d.test>" in line for line in lines) is tx
    assert any(" RX: 250" in line for line in lines) is rx
