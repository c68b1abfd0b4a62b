"""bbs.mailbox against a temp SQLite file: mailboxes, flags, the outbound queue."""
from __future__ import annotations

import sqlite3

import pytest

from bbs.errors import BBSError, Reason
from bbs.mailbox import MailStore, header_fields
from tests.support import run_async

RAW = (b"From: =?utf-8?q?Bj=C3=B6rn?= <bjorn@example.org>\r\nTo: alice@bbs.test\r\n"
       b"Subject: Hello\r\n\r\nbody line\r\n")


def test_deliver_list_read_and_flags(tmp_path):
    async def main():
        store = MailStore(tmp_path / "mail.db")
        ids = await store.deliver([2, 3], RAW, sender="bjorn@example.org", recipient="alice")
        assert len(ids) == 2
        [info] = await store.list(2)
        assert (info.from_, info.subject, info.size, info.read) == ("Björn <bjorn@example.org>", "Hello",
                                                                    len(RAW), False)
        assert await store.read(2, info.id) == RAW
        with pytest.raises(BBSError) as err:
            await store.read(3, info.id)             # not user 3's copy
        assert err.value.reason is Reason.NOT_FOUND
        assert await store.mark_read(2, [info.id]) == 1
        assert (await store.list(2))[0].read
        assert await store.delete(2, [info.id]) == 1
        assert await store.delete(2, [info.id]) == 0  # already deleted
        assert await store.list(2) == [] and await store.count(3) == 1
        with pytest.raises(BBSError):
            await store.read(2, info.id)
        await store.close()
    run_async(main())


def test_spam_flag_hides_from_nospam_lists(tmp_path):
    async def main():
        store = MailStore(tmp_path / "mail.db")
        await store.deliver([5], RAW, spam=True)
        await store.deliver([5], RAW)
        assert len(await store.list(5)) == 2
        assert [m.spam for m in await store.list(5, include_spam=False)] == [False]
        await store.close()
    run_async(main())


def test_accept_is_all_or_nothing_and_survives_reopen(tmp_path):
    async def main():
        store = MailStore(tmp_path / "mail.db")
        with pytest.raises(BBSError):
            await store.accept(RAW, sender="a@b", users=[2, 0], remote=["x@example.org"])
        assert await store.count(2) == 0 and await store.outbound() == []
        done = await store.accept(RAW, sender="a@b", users=[2], remote=["x@example.org"],
                                  network=["qwk:rob@VERT"])
        await store.close()
        again = MailStore(tmp_path / "mail.db")
        assert [m.id for m in await again.list(2)] == done.ids
        internet, held = await again.outbound()
        assert (internet.id, internet.recipients, internet.raw, internet.in_transit) == (
            done.queued, ("x@example.org",), RAW, False)
        assert (held.id, held.recipients) == (done.network, ("qwk:rob@VERT",))
        assert (await again.accept(RAW, sender="", network=["fidonet:rob@1:2/3"])).ids == []
        with pytest.raises(BBSError):
            await again.accept(RAW, sender="a@b")
        await again.close()
    run_async(main())


def test_accept_undoes_every_part_when_a_later_part_fails(tmp_path):
    async def main():
        store = MailStore(tmp_path / "mail.db")
        await store.open()
        db = sqlite3.connect(tmp_path / "mail.db", isolation_level=None)
        db.execute("CREATE TRIGGER no_fido BEFORE INSERT ON outbound WHEN NEW.recipients LIKE "
                   "'%fidonet:%' BEGIN SELECT RAISE(ABORT, 'injected'); END")
        db.close()
        with pytest.raises(BBSError) as err:
            await store.accept(RAW, sender="a@b", users=[2, 3], remote=["x@example.org"],
                               network=["fidonet:rob@1:2/3"])
        assert err.value.reason is Reason.STORAGE
        assert await store.count(2) == await store.count(3) == 0 and await store.outbound() == []
        await store.close()
    run_async(main())


def test_outbound_queue_claim_retry_and_sent(tmp_path):
    async def main():
        store = MailStore(tmp_path / "mail.db")
        qid = await store.enqueue("a@bbs.test", ["x@example.org", "y@example.org"], RAW, from_user=2)
        [due] = await store.due()
        assert due.id == qid and due.attempts == 0
        assert await store.claim(qid) and not await store.claim(qid)
        assert await store.due() == []                                  # in transit
        assert [d.id for d in await store.due(include_in_transit=True)] == [qid]
        attempts = await store.retry_later(qid, "451 try later", next_try=10.0**12, recipients=["y@example.org"])
        assert attempts == 1
        assert await store.due() == []                                  # not yet due
        [item] = await store.due(now=10.0**12)
        assert item.recipients == ("y@example.org",) and item.last_error == "451 try later"
        assert await store.claim(qid) and await store.clear_in_transit() == 1
        assert await store.sent(qid) and await store.outbound() == []
        with pytest.raises(BBSError):
            await store.enqueue("a@b", [], RAW)
        await store.close()
    run_async(main())


def test_header_fields_of_a_malformed_message_are_empty_not_errors():
    assert header_fields(b"\x00\xff garbage") == ("", "", "")
    assert header_fields(RAW)[2] == "Hello"
