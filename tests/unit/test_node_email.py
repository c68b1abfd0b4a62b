"""Pure parts of the callers' e-mail (message building and reading) and the
nodes' MSP client (format, reply, target), checked against the MSP server's
own parser."""
from __future__ import annotations

import asyncio
import email
import email.policy

import pytest

from bbs.mailbox import MessageInfo
from nodes import mspclient
from nodes.screens.email import (compose, mailbox_order, parse_internet_address, render, reply_subject,
                                 user_address)
from services import msp as msp_server

HOST = "bbs.test"


def test_compose_is_a_proper_message_and_reads_back():
    raw = compose(from_name="Dave Doe", from_addr=user_address("Dave Doe", HOST), to_name="Bob",
                  to_addr=user_address("Bob", HOST), subject="Grüße", body="Héllo\r\nsecond line",
                  hostname=HOST, in_reply_to="<1@x>", references="<0@x>", now=0)
    assert raw.isascii() and b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["From"] == "Dave Doe <Dave.Doe@bbs.test>" and msg["To"] == "Bob <Bob@bbs.test>"
    assert msg["Subject"] == "Grüße" and msg["Message-ID"].endswith("@bbs.test>")
    assert msg["In-Reply-To"] == "<1@x>" and msg["References"] == "<0@x> <1@x>"
    shown = render(raw)
    assert shown.subject == "Grüße" and shown.body == "Héllo\nsecond line\n"
    assert shown.reply_address == "Dave.Doe@bbs.test" and shown.message_id == msg["Message-ID"]


def test_render_picks_text_plain_in_its_charset_and_names_attachments():
    msg = email.message.EmailMessage()
    msg["From"] = "=?iso-8859-1?q?J=F6rg?= <jorg@example.org>"
    msg["Reply-To"] = "list@example.org"
    msg["Subject"] = "=?utf-8?b?w6l0w6k=?="
    msg["Date"] = "Mon, 01 Jan 2024 12:00:00 +0000"
    msg.set_content("Grüße\n", charset="iso-8859-1")
    msg.add_alternative("<b>HTML part</b>", subtype="html")
    msg.add_attachment(b"\x00\x01", maintype="application", subtype="octet-stream", filename="data.bin")
    shown = render(msg.as_bytes())
    assert shown.from_ == "Jörg <jorg@example.org>" and shown.subject == "été"
    assert shown.body.startswith("Grüße\n") and "HTML" not in shown.body
    assert "[attachment: data.bin]" in shown.body and shown.reply_address == "list@example.org"
    assert "2024" in shown.date


def test_render_html_only_unknown_charset_and_control_codes():
    html = b"Subject: x\r\nContent-Type: text/html\r\n\r\n<p>one</p><p>two &amp; three</p>\r\n"
    assert render(html).body.split() == ["one", "two", "&", "three"]
    odd = b"Subject: \x01rred\r\nContent-Type: text/plain; charset=x-nonsense\r\n\r\nplain\x1b[2J text\x01h\r\n"
    shown = render(odd, default_charset="iso-8859-1")
    assert shown.body == "plain[2J texth\n" and "\x01" not in shown.subject  # Ctrl-A and ESC dropped
    bare = b"no headers at all, \xe9 8-bit"
    assert "8-bit" in render(bare, received=1.0).body


def _info(mid: int, read: bool) -> MessageInfo:
    return MessageInfo(mid, 3, float(mid), "", "", "", "", f"s{mid}", 1, read, False, 0)


def test_mailbox_order_new_first_then_old():
    order = mailbox_order([_info(1, True), _info(2, False), _info(3, True), _info(4, False)])
    assert [m.id for m in order] == [2, 4, 1, 3]


@pytest.mark.parametrize("text, expected", [
    ("bob@example.org", ("bob", "example.org")),
    ("First.Last+tag@Mail.Example.ORG", ("First.Last+tag", "mail.example.org")),
    ("no at sign", None), ("a b@example.org", None), ("bob@", None), ("@example.org", None),
    ("bob..x@example.org", None), (".bob@example.org", None), ("bob@example..org", None),
    ("<bob@example.org>", None), ("bob@exa mple.org", None),
])
def test_parse_internet_address(text, expected):
    assert parse_internet_address(text) == expected


def test_user_address_and_reply_subject():
    assert user_address("Dave Doe", HOST) == "Dave.Doe@bbs.test"
    assert user_address("<<>>", HOST) == "user@bbs.test"
    assert reply_subject("Lunch") == "Re: Lunch" and reply_subject("RE: Lunch") == "RE: Lunch"


def test_msp_message_is_what_the_server_parses():
    data = mspclient.format_message("Bob", "Hi there", "Alice", sender_term="node1", cookie="240101120000000")
    assert data == b"BBob\0\0Hi there\0Alice\0node1\x00240101120000000\0\0"
    parsed = msp_server.parse(data)
    assert (parsed.recipient, parsed.text, parsed.sender, parsed.sender_term) == ("Bob", "Hi there", "Alice", "node1")
    assert msp_server.complete(data)


@pytest.mark.parametrize("args", [("Bob", "x" * 600, "Alice"), ("Bob", "", "Alice"), ("", "hi", "Alice"),
                                  ("Bob", "nul\0inside", "Alice")])
def test_msp_message_refuses_bad_parts(args):
    with pytest.raises(mspclient.MSPError):
        mspclient.format_message(*args)


def test_msp_reply_and_target():
    assert mspclient.parse_reply(b"+\0") == (True, "")
    assert mspclient.parse_reply(b"-no such user\0") == (False, "no such user")
    assert mspclient.parse_reply(b"-") == (False, "refused")
    for bad in (b"", b"HTTP/1.0 400\r\n"):
        with pytest.raises(mspclient.MSPError):
            mspclient.parse_reply(bad)
    assert mspclient.parse_target("bob@bbs.example") == mspclient.Target("bob", "bbs.example", 18)
    assert mspclient.parse_target("Dave Doe@[::1]:2018") == mspclient.Target("Dave Doe", "::1", 2018)
    for bad in ("bob", "bob@", "@host", "bob@host:0", "bob@host:99999", "bob@ho st"):
        with pytest.raises(mspclient.MSPError):
            mspclient.parse_target(bad)
    assert len(mspclient.make_cookie(0)) == 15 and mspclient.make_cookie(0) != mspclient.make_cookie(1.5)


def test_msp_send_over_tcp_to_a_loopback_server():
    received: list[bytes] = []

    async def main():
        async def handle(reader, writer):
            data = b""
            while not msp_server.complete(data):
                data += await reader.read(100)
            received.append(data)
            writer.write(b"-busy\0")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            message = mspclient.format_message("Bob", "hello", "Alice")
            reply = await mspclient.send("127.0.0.1", port, message)
        with pytest.raises(mspclient.MSPError, match="cannot connect"):
            await mspclient.send("127.0.0.1", port, message)   # the server is closed now
        return reply

    assert asyncio.run(main()) == (False, "busy")
    assert received == [b"BBob\0\0hello\0Alice\0\0\0\0"]
