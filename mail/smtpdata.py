"""Reading the text of SMTP DATA (RFC 5321 section 4.1.1.4) in chunks.

aiosmtpd 1.4.6 reads DATA one line at a time (a ``readuntil`` and a loop
pass per line: most of the server's own time for a message of a few KB).
:func:`read_data` reads what the client sent in chunks that end at a
``.<CRLF>`` (or at the stream's limit) and :class:`DataCollector` finds the
end of the data, counts the size, checks line lengths and removes the
dot-stuffing with byte-string operations, with aiosmtpd's rules and
replies:

* the data ends at a line that is just ``.`` (a line ends at CRLF; a lone
  LF or CR is part of the line);
* more than the size limit (``MaxMsgSize``; dot-stuffed bytes and CRLFs
  counted, the final ``.`` line not): :data:`TOO_MUCH` (552) once the
  data has ended; a line longer than the line limit (CRLF included):
  :data:`TOO_LONG` (500). The first of the two found is reported; what was
  received is dropped at once either way (no memory for a flood);
* a leading ``.`` is removed from every line (RFC 5321 section 4.5.2).

No sockets here: :func:`read_data` takes an ``asyncio.StreamReader`` (the
SMTP protocol's), so tests feed one directly.
"""
from __future__ import annotations

import asyncio

#: RFC 5321 section 4.5.2: the line of one dot that ends the data, without
#: the CRLF before it (that one ends the previous line).
END_LINE = b".\r\n"
CRLF = b"\r\n"
#: aiosmtpd's replies for data it refuses (sent after the end of the data,
#: RFC 5321 section 4.2.5).
TOO_LONG = "500 Line too long (see RFC5321 4.5.3.1.6)"
TOO_MUCH = "552 Error: Too much mail data"


class DataCollector:
    """The data of one DATA command, fed in the chunks :func:`read_data` reads.

    ``size_limit`` (None or 0: no limit) and ``line_limit`` mirror aiosmtpd's
    ``data_size_limit`` and ``line_length_limit``.
    """

    def __init__(self, size_limit: int | None, line_limit: int) -> None:
        self.size_limit = size_limit or 0
        self.line_limit = line_limit
        #: Bytes received so far (dot-stuffed, CRLFs counted, the end line not).
        self.size = 0
        #: :data:`TOO_LONG` or :data:`TOO_MUCH` once the data is refused.
        self.refusal = ""
        self._parts: list[bytes] = []
        # The last two bytes received; the data starts right after the CRLF
        # of the DATA command, so at the start of a line.
        self._tail = CRLF
        # Length of the line being received (its CR counted when it ended a chunk).
        self._line = 0

    def feed(self, chunk: bytes) -> bool:
        """Add the next chunk read; True when it ended the data (its last
        bytes were the ``.`` line, which is not kept)."""
        if chunk.endswith(END_LINE):
            body = chunk[:-len(END_LINE)]
            if (self._tail + body)[-2:] == CRLF:
                self._add(body)
                return True
        self._add(chunk)
        return False

    def content(self) -> bytes:
        """The message as sent, without the dot-stuffing (after the end was fed)."""
        data = b"".join(self._parts)
        if data.startswith(b"."):
            data = data[1:]
        return data.replace(b"\r\n.", CRLF)

    def _add(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        if not self.refusal:
            if self.size_limit and self.size > self.size_limit:
                self.refusal = TOO_MUCH
            elif self._longest_line(data) > self.line_limit:
                self.refusal = TOO_LONG
            if self.refusal:
                self._parts.clear()
        if not self.refusal:
            self._parts.append(data)
        self._tail = (self._tail + data)[-2:]

    def _longest_line(self, data: bytes) -> int:
        """Track line lengths across chunks; the longest line (CRLF included)
        that ``data`` ended or is still receiving."""
        carried = b"\r" if self._tail.endswith(b"\r") else b""
        lines = (carried + data).split(CRLF)
        if len(lines) == 1:
            self._line += len(data)
            return self._line
        longest = self._line + len(lines[0]) - len(carried) + len(CRLF)
        if len(lines) > 2:
            longest = max(longest, max(map(len, lines[1:-1])) + len(CRLF))
        self._line = len(lines[-1])
        return max(longest, self._line)


async def read_data(reader: asyncio.StreamReader, collector: DataCollector) -> None:
    """Read DATA text from ``reader`` into ``collector`` up to its ``.`` line.

    Chunks end at each ``.<CRLF>`` (usually just the end of the data) or,
    when none is buffered, at the reader's limit. Raises
    ``asyncio.IncompleteReadError`` when the stream ends first and whatever
    the reader raises when the task is cancelled (a connection lost).
    """
    while True:
        try:
            chunk = await reader.readuntil(END_LINE)
        except asyncio.LimitOverrunError as exc:
            # No ".\r\n" within the limit (or it lies further on): take what
            # can be taken without splitting it; it stays buffered.
            chunk = await reader.readexactly(exc.consumed)
        if collector.feed(chunk):
            return
