"""bbs.filebase against a temporary SQLite file."""
from __future__ import annotations

import pytest

from bbs.errors import BBSError, Reason
from bbs.filebase import MAX_DESCRIPTION, FileBase, check_name
from tests.support import run_async


def with_base(tmp_path, body):
    async def main():
        base = FileBase(tmp_path / "data" / "file.db")
        await base.open()
        try:
            return await body(base)
        finally:
            await base.close()
    return run_async(main())


def test_add_get_list_and_count(tmp_path):
    async def body(base: FileBase):
        rec = await base.add("UPLOADS", "Tool.zip", 1234, uploader="bob", uploader_number=3,
                             description="  A tool  ", when=1000.0)
        assert (rec.dir, rec.name, rec.size, rec.uploader, rec.uploader_number) == ("UPLOADS", "Tool.zip", 1234, "bob", 3)
        assert (rec.uploaded, rec.description, rec.downloads, rec.last_download) == (1000.0, "A tool", 0, None)
        assert await base.get("uploads", "TOOL.ZIP") == rec           # case-insensitive
        assert await base.get("UPLOADS", "other") is None
        await base.add("UPLOADS", "a.txt", 1)
        await base.add("TEXT", "b.txt", 2)
        assert [r.name for r in await base.list("UPLOADS")] == ["a.txt", "Tool.zip"]
        counted = await base.count_download("UPLOADS", "tool.zip", when=2000.0)
        assert (counted.downloads, counted.last_download) == (1, 2000.0)
        assert (await base.count_download("UPLOADS", "Tool.zip")).downloads == 2
        missing = await base.count_downloads([("UPLOADS", "tool.zip"), ("TEXT", "b.txt"), ("TEXT", "gone.txt"),
                                              ("UPLOADS", "Tool.zip")], when=3000.0)
        assert missing == [("TEXT", "gone.txt")]
        tool, b = await base.get("UPLOADS", "Tool.zip"), await base.get("TEXT", "b.txt")
        assert (tool.downloads, tool.last_download, b.downloads) == (4, 3000.0, 1)
    with_base(tmp_path, body)


def test_add_replaces_a_record_of_the_same_name(tmp_path):
    async def body(base: FileBase):
        await base.add("D", "f.txt", 1, uploader="a")
        await base.count_download("D", "f.txt")
        rec = await base.add("D", "F.TXT", 5, uploader="b")
        assert (rec.name, rec.size, rec.uploader, rec.downloads) == ("F.TXT", 5, "b", 0)
        assert len(await base.list("D")) == 1
    with_base(tmp_path, body)


def test_update_rename_and_remove(tmp_path):
    async def body(base: FileBase):
        await base.add("D", "f.txt", 1)
        await base.add("D", "g.txt", 1)
        assert (await base.set_description("D", "f.txt", "x" * (MAX_DESCRIPTION + 10))).description == "x" * MAX_DESCRIPTION
        assert (await base.set_size("D", "f.txt", 99)).size == 99
        with pytest.raises(BBSError) as err:
            await base.rename("D", "f.txt", "G.txt")
        assert err.value.reason is Reason.EXISTS
        assert (await base.rename("D", "f.txt", "F.txt")).name == "F.txt"   # a change of case is fine
        await base.remove("D", "f.txt")
        assert [r.name for r in await base.list("D")] == ["g.txt"]
        for call in (base.remove("D", "nope"), base.count_download("D", "nope"),
                     base.set_description("D", "nope", "x"), base.rename("D", "nope", "x")):
            with pytest.raises(BBSError) as err:
                await call
            assert err.value.reason is Reason.NOT_FOUND
    with_base(tmp_path, body)


def test_records_survive_a_reopen(tmp_path):
    async def first(base: FileBase):
        await base.add("D", "kept.txt", 7, uploader="bob")
    with_base(tmp_path, first)

    async def second(base: FileBase):
        return await base.get("D", "kept.txt")
    assert with_base(tmp_path, second).size == 7


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a\\b", "a\0b", "tab\there", "\x7f",
                                  "x" * 256, "é" * 128, "bad\udcff"])
def test_bad_names_are_refused(tmp_path, name):
    with pytest.raises(BBSError) as err:
        check_name(name)
    assert err.value.reason is Reason.BAD_NAME

    async def body(base: FileBase):
        with pytest.raises(BBSError):
            await base.add("D", name, 1)
    with_base(tmp_path, body)


@pytest.mark.parametrize("name", ["a", "file name.txt", "ÄÖÜ.zip", "x" * 255, ".profile", "-dash"])
def test_good_names(name):
    assert check_name(name) == name


def test_negative_size_is_refused(tmp_path):
    async def body(base: FileBase):
        with pytest.raises(BBSError) as err:
            await base.add("D", "f", -1)
        assert err.value.reason is Reason.BAD_VALUE
    with_base(tmp_path, body)
