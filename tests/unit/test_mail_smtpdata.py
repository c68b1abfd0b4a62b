"""mail.smtpdata: DATA text read in chunks gives what aiosmtpd's line-by-line
loop gives (end line, dot-stuffing, size and line limits), whatever the
pieces the bytes arrive in. A real asyncio.StreamReader, no socket."""
from __future__ import annotations

import asyncio
import random

import pytest

from mail.smtpdata import TOO_LONG, TOO_MUCH, DataCollector, read_data

#: aiosmtpd's SMTP.line_length_limit (the SMTP protocol's reader limit too).
LINE_LIMIT = 1001


def reference(stream: bytes, size_limit: int | None) -> tuple[bytes | set[str], bytes]:
    """aiosmtpd 1.4.6's DATA rules, line by line: (content, or the refusals
    that apply, rest of stream). When both apply, which one aiosmtpd reports
    depends on where its reads stop; either is right."""
    lines, size, refusals, pos = [], 0, set(), 0
    while True:
        end = stream.find(b"\r\n", pos)
        assert end >= 0, "the stream has an end line"
        line = stream[pos:end + 2]
        pos = end + 2
        if line == b".\r\n":
            break
        size += len(line)
        if size_limit and size > size_limit:
            refusals.add(TOO_MUCH)
        if len(line) > LINE_LIMIT:
            refusals.add(TOO_LONG)
        lines.append(line[1:] if line.startswith(b".") else line)
    return (refusals or b"".join(lines)), stream[pos:]


def collect(pieces: list[bytes], size_limit: int | None = None) -> tuple[bytes | str, bytes]:
    """Feed ``pieces`` to a StreamReader as a socket would; run read_data."""
    async def main():
        reader = asyncio.StreamReader(limit=LINE_LIMIT)
        collector = DataCollector(size_limit, LINE_LIMIT)

        async def feed():
            for piece in pieces:
                reader.feed_data(piece)
                await asyncio.sleep(0)
            reader.feed_eof()
        feeder = asyncio.ensure_future(feed())
        await read_data(reader, collector)
        await feeder
        rest = await reader.read()
        return (collector.refusal or collector.content()), rest
    return asyncio.run(main())


def split(data: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, 12))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]


LINES = [b"plain text", b"", b".", b"..", b".starts with a dot", b"ends with a dot.", b"a.\r",
         b"lone \n LF", b"lone \r CR", b"\x00 NUL", b"x" * 998, b"y" * 999, b"z" * 1000,
         b"w" * 3000, b". \r\n", b"\r"]


def test_any_split_gives_what_aiosmtpd_gives():
    for seed in range(200):
        rng = random.Random(seed)
        body = [rng.choice(LINES) for _ in range(rng.randint(0, 12))]
        stream = b"".join(line + b"\r\n" for line in body) + b".\r\nQUIT\r\n"
        size_limit = rng.choice([None, 0, 50, 2000, 10**6])
        got, rest = collect(split(stream, rng), size_limit)
        expected, expected_rest = reference(stream, size_limit)
        assert rest == expected_rest, seed
        assert (got in expected if isinstance(expected, set) else got == expected), seed


def test_empty_message_dot_stuffing_and_pipelined_command_left_unread():
    assert collect([b".\r\nQUIT\r\n"]) == (b"", b"QUIT\r\n")
    assert collect([b"..\r\n...x\r\n.\r", b"\nRSET\r\n"]) == (b".\r\n..x\r\n", b"RSET\r\n")
    assert collect([b"a.\r\n", b"b\r\n.\r\n"]) == (b"a.\r\nb\r\n", b"")


def test_limits_refuse_after_the_end_and_keep_nothing():
    collector = DataCollector(100, LINE_LIMIT)
    assert not collector.feed(b"x" * 98 + b"\r\n")
    assert collector.refusal == ""
    assert not collector.feed(b"y\r\n") and collector.refusal == TOO_MUCH
    assert collector.feed(b".\r\n") and collector.content() == b""
    flood = DataCollector(None, LINE_LIMIT)
    for _ in range(100):
        flood.feed(b"z" * 100_000)                    # a 10 MB line, nothing kept
    assert flood.refusal == TOO_LONG and flood._parts == []
    assert collect([b"q" * 10_000_000 + b"\r\n.\r\n"]) == (TOO_LONG, b"")


def test_a_stream_that_ends_early_is_an_incomplete_read():
    with pytest.raises(asyncio.IncompleteReadError):
        collect([b"Subject: half\r\n\r\nhalf a message"])
