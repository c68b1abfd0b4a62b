"""The stores the SCFG menus work on: user base, message base, file base.

In the live console they are the App's own (:meth:`Stores.of_app`): the
servers' objects, so the menus never open a second connection to a database
the BBS has open. ``bbs scfg`` alone opens them itself
(:func:`standalone_stores`) the way ``bbs user`` does: the same
:class:`~bbs.users.UserBase` API on ``data/user.db`` (WAL journal and a busy
timeout, so a BBS running in another process waits for the edit and never
sees half of one).
"""
from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Any, AsyncIterator

from bbs.db import Database
from bbs.filebase import FileBase
from bbs.filters import FilterSet
from bbs.instance import Instance, load_config
from bbs.msgbase import MSG_MIGRATIONS, MessageBase
from bbs.users import USER_MIGRATIONS, UserBase


@dataclasses.dataclass(frozen=True)
class Stores:
    """What the menus read and change besides the files under ctrl/ and text/."""

    users: UserBase
    msgs: MessageBase
    files: FileBase

    @classmethod
    def of_app(cls, app: Any) -> "Stores":
        """The running BBS's own stores (the console's Config pane)."""
        return cls(users=app.users, msgs=app.msgs, files=app.files)


@contextlib.asynccontextmanager
async def standalone_stores(root: Path) -> AsyncIterator[Stores]:
    """Open instance ``root``'s user, message and file databases for the
    duration of the block (``bbs scfg``). The user base checks new aliases
    against ``text/name.can`` (re-read when edited) and keeps CRAM-MD5/APOP
    secrets as ``[Mail] AllowCramMD5`` says, as the running BBS does."""
    instance = Instance(Path(root))
    config = load_config(instance.root)
    filters = FilterSet(instance.text, instance.ctrl)

    def name_filtered(name: str) -> object | None:
        filters.name.reload_if_changed()
        return filters.name.match(name)

    user_db = Database(instance.data / "user.db", USER_MIGRATIONS, name="user")
    msg_db = Database(instance.data / "msgs.db", MSG_MIGRATIONS, name="msgs")
    files = FileBase(instance.data / "file.db")
    async with contextlib.AsyncExitStack() as stack:
        for store in (user_db, msg_db, files):
            await store.open()
            stack.push_async_callback(store.close)
        yield Stores(users=UserBase(user_db, name_filter=name_filtered,
                                    keep_cleartext=config.server.mail.allow_cram_md5),
                     msgs=MessageBase(msg_db), files=files)
