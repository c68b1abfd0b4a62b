"""bbs.msgbase against a temp SQLite file."""
from __future__ import annotations

from pathlib import Path

import pytest

from bbs.db import Database
from bbs.errors import BBSError, Reason
from bbs.msgbase import MAX_BODY, MSG_MIGRATIONS, MessageBase
from tests.support import run_async


def with_base(tmp_path: Path, body):
    async def main():
        db = Database(tmp_path / "msgs.db", MSG_MIGRATIONS)
        await db.open()
        try:
            return await body(MessageBase(db))
        finally:
            await db.close()
    return run_async(main())


def test_numbers_per_sub_threads_and_pointers(tmp_path: Path):
    async def body(base: MessageBase):
        first = await base.post("GENERAL", "Alice", "Hello", "line one\r\nline two", from_number=2)
        other = await base.post("TECH", "Bob", "Elsewhere", "x")
        reply = await base.post("general", "Bob", "Re: Hello", "hi", to_name="Alice", reply_to=first.number)
        again = await base.post("GENERAL", "Carol", "Re: Hello", "me too", reply_to=reply.number)
        assert (first.number, other.number, reply.number, again.number) == (1, 1, 2, 3)
        assert (await base.get("GENERAL", 1)).body == "line one\nline two"
        assert [m.number for m in await base.thread("GENERAL", 3)] == [1, 2, 3]
        assert again.thread == 1 and again.reply_to == 2
        assert await base.stats("GENERAL", 7) == (3, 3, 3)
        await base.set_last_read(7, "GENERAL", 2)
        await base.set_last_read(7, "GENERAL", 1)             # only forward
        assert await base.last_read(7, "GENERAL") == 2
        assert await base.stats("GENERAL", 7) == (3, 3, 1)
        await base.delete("GENERAL", 3)
        assert await base.numbers("GENERAL") == [1, 2]
        assert (await base.post("GENERAL", "Dan", "New", "n")).number == 4   # numbers never reused
        assert [m.number for m in await base.search("GENERAL", "LINE TWO")] == [1]
        assert [m.number for m in await base.search("GENERAL", "100%")] == []
        assert [m.number for m in await base.list("GENERAL", after=1)] == [2, 4]
    with_base(tmp_path, body)


def test_bad_posts_are_refused_and_nothing_is_stored(tmp_path: Path):
    async def body(base: MessageBase):
        for args, kwargs, reason in [
            (("GENERAL", "Alice", "  ", "x"), {}, Reason.BAD_VALUE),
            (("GENERAL", "", "Subject", "x"), {}, Reason.BAD_VALUE),
            (("GENERAL", "Alice", "Subject", "x" * (MAX_BODY + 1)), {}, Reason.BAD_VALUE),
            (("GENERAL", "Alice", "Subject", "x"), {"reply_to": 99}, Reason.NOT_FOUND),
        ]:
            with pytest.raises(BBSError) as err:
                await base.post(*args, **kwargs)
            assert err.value.reason is reason
        assert await base.numbers("GENERAL") == []
        with pytest.raises(BBSError) as err:
            await base.get("GENERAL", 1)
        assert err.value.reason is Reason.NOT_FOUND
        msg = await base.post("GENERAL", "Al\x1bice", "Sub\x07ject", "body")
        assert (msg.from_name, msg.subject) == ("Alice", "Subject")   # control characters dropped
    with_base(tmp_path, body)
