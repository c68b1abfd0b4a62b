"""The SCFG user editor over a real user base: list, find, add, edit, reset password, delete."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from urwid.testing import press

from bbs.errors import BBSError
from console.scfg import ScfgView
from console.scfg_stores import standalone_stores
from tests.support import run_async
from tests.unit.scfg_support import SIZE, open_path, screen_text
from tests.unit.scfg_support import root as instance  # noqa: F401 (a fixture)


@pytest.fixture
def root(instance: Path) -> Path:
    (instance / "text" / "name.can").write_text("; no\nroot\n")
    return instance


async def keys(view: ScfgView, *pressed: str) -> None:
    """Press keys one at a time, letting the background work each starts finish."""
    for key in pressed:
        press(view, SIZE, key)
        await view.settle()


def editor(root: Path, test) -> None:
    """Run ``test(view, users)`` with the menus open on Users and two users in the base."""
    async def main() -> None:
        async with standalone_stores(root) as stores:
            await stores.users.add("Sysop", "sysoppass", level=99)
            await stores.users.add("Alice", "alicepass", real_name="Alice Liddell", location="Oxford")
            view = ScfgView(root, stores=stores)
            open_path(view, "Users")
            await view.settle()
            await test(view, stores.users)
    run_async(main())


def test_list_and_edit_fields(root: Path):
    async def test(view, users):
        assert [t.split()[:2] for t in view.texts()] == [["#1", "Sysop"], ["#2", "Alice"]]
        assert "level 99" in view.texts()[0]
        await keys(view, "down", "enter")
        assert "Configure > Users > User #2 Alice" in screen_text(view)
        assert view.texts()[:3] == [f"{'Alias':<30} Alice", f"{'Real name':<30} Alice Liddell",
                                    f"{'Location':<30} Oxford"]
        labels = [t[:30].strip() for t in view.texts()]
        await keys(view, *["down"] * labels.index("Security level"), "enter", "backspace", "backspace",
                   *"x5", "enter")
        assert "the security level is a number 0-99" in screen_text(view)     # asked again
        await keys(view, "backspace", "backspace", *"50", "enter")
        assert "saved user #2: Security level = 50" in screen_text(view)
        assert (await users.find("Alice")).level == 50
        await keys(view, "down", "enter", *"bz", "enter")                     # Flags: normalised
        assert (await users.find("Alice")).flags == "BZ" and f"{'Flags (FLAG x)':<30} BZ" in view.texts()
        await keys(view, "down", "enter", *"w", "enter", "down", "enter", *"m", "enter")
        alice = await users.find("Alice")
        assert (alice.exempt, alice.restrict) == ("W", "M")
        await keys(view, "esc")
        assert "level 50" in view.texts()[1] and "BZ" in view.texts()[1]   # the list was read again
    editor(root, test)


def test_alias_is_checked_by_the_user_base(root: Path):
    async def test(view, users):
        await keys(view, "down", "enter", "enter", *["backspace"] * 5, *"sysop", "enter")
        assert "alias 'sysop' is taken by user #1" in screen_text(view)
        assert "Alias: sysop" in screen_text(view)
        await keys(view, *["backspace"] * 5, *"root", "enter")
        assert "alias is not allowed here" in screen_text(view)                # text/name.can
        await keys(view, *["backspace"] * 4, *"Ally", "enter")
        assert "Configure > Users > User #2 Ally" in screen_text(view)
        assert (await users.find("Ally")).real_name == "Alice Liddell"
        with pytest.raises(BBSError):
            await users.find("Alice")
    editor(root, test)


def test_forwarding_needs_an_address(root: Path):
    async def test(view, users):
        await keys(view, "down", "enter")
        labels = [t[:30].strip() for t in view.texts()]
        await keys(view, *["down"] * labels.index("Forward e-mail there"), "enter")
        assert "forwarding needs an Internet e-mail address (user@host) first" in screen_text(view)
        await keys(view, "up", "enter", *"alice@example.org", "enter", "down", "enter")
        alice = await users.find("Alice")
        assert alice.email == "alice@example.org" and alice.settings["forward_email"] is True
        assert f"{'Forward e-mail there':<30} Yes" in view.texts()
        await keys(view, "enter")
        assert (await users.find("Alice")).settings["forward_email"] is False
    editor(root, test)


def test_add_reset_password_and_delete(root: Path):
    async def test(view, users):
        await keys(view, "a", *"Bob", "enter")
        shown = re.search(r"added user #3 Bob, password: (\S+) \(shown once", screen_text(view))
        assert shown and "Configure > Users > User #3 Bob" in screen_text(view)
        assert (await users.verify("Bob", shown.group(1))).level == 10        # [NewUser] Level
        labels = [t.split(" ...")[0] for t in view.texts()]
        await keys(view, *["down"] * labels.index("Reset the password (a new one is shown once)"), "enter")
        assert "Reset the password of #3 Bob? [y/N]" in screen_text(view)
        await keys(view, "y")
        new = re.search(r"new password of #3 Bob: (\S+) \(shown once", screen_text(view)).group(1)
        assert new != shown.group(1) and (await users.verify("Bob", new)).number == 3
        await keys(view, "down", "enter")
        assert "Delete user #3 Bob, so that it can no longer log on? [y/N]" in screen_text(view)
        await keys(view, "n")
        assert (await users.find("Bob")).number == 3
        await keys(view, "enter", "y")
        assert "deleted user #3 Bob" in screen_text(view)
        assert [t.split()[1] for t in view.texts()] == ["Sysop", "Alice"]     # back at the list
        with pytest.raises(BBSError):
            await users.find("Bob")
        await keys(view, "a", *"Alice", "enter")
        assert "alias 'Alice' is taken by user #2" in screen_text(view)
        await keys(view, "esc", "home", "d")
        assert "Delete user #1 Sysop, a SYSOP account, so that it can no longer log on?" in screen_text(view)
        await keys(view, "n")
    editor(root, test)


def test_find_by_name_number_or_part(root: Path):
    async def test(view, users):
        await keys(view, "/", *"2", "enter")
        assert "Configure > Users > User #2 Alice" in screen_text(view)
        await keys(view, "esc", "/", *"liddell", "enter")
        assert "found #2 Alice" in screen_text(view) and view.walker.get_focus()[1] == 1
        await keys(view, "/", *"nobody", "enter")
        assert "no user matches 'nobody'" in screen_text(view)
    editor(root, test)
