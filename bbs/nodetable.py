"""The live node table: which node is free, who is on which, doing what.

Node numbers run from main.ini FirstNode to LastNode. Every change publishes
:class:`~bbs.events.NodeChanged` with the new frozen record.
"""
from __future__ import annotations

import dataclasses
import enum
import time

from bbs.events import EventBus, NodeChanged


class NodeStatus(enum.Enum):
    WAITING = "waiting for connection"
    LOGON = "at logon prompt"
    NEWUSER = "new user application"
    INUSE = "in use"
    OFFLINE = "offline"


@dataclasses.dataclass(frozen=True)
class NodeRecord:
    number: int
    status: NodeStatus = NodeStatus.WAITING
    user: str = ""
    user_number: int = 0
    activity: str = ""
    connection: str = ""  # telnet, ssh, rlogin
    address: str = ""
    since: float = 0.0
    conn_id: int = 0
    locked: bool = False
    down_after: bool = False  # mark offline after the caller logs off

    @property
    def free(self) -> bool:
        return self.status is NodeStatus.WAITING and not self.locked


class NodeTable:
    """Allocates nodes to connections and records what each node does."""

    def __init__(self, numbers: range, bus: EventBus) -> None:
        self._bus = bus
        self._nodes = {n: NodeRecord(n) for n in numbers}

    def records(self) -> list[NodeRecord]:
        return list(self._nodes.values())

    def get(self, number: int) -> NodeRecord:
        return self._nodes[number]

    def allocate(self, connection: str, address: str, conn_id: int = 0) -> NodeRecord | None:
        """Give the lowest free node to a new caller; None when all are busy."""
        for record in self._nodes.values():
            if record.free:
                return self._set(record.number, status=NodeStatus.LOGON, connection=connection,
                                 address=address, since=time.time(), conn_id=conn_id,
                                 activity="logging on")
        return None

    def update(self, number: int, **changes: object) -> NodeRecord:
        """Change fields of node ``number`` (status, user, activity ...)."""
        return self._set(number, **changes)

    def release(self, number: int) -> NodeRecord:
        """The caller on ``number`` is gone: back to waiting (or offline)."""
        old = self._nodes[number]
        status = NodeStatus.OFFLINE if old.down_after or old.status is NodeStatus.OFFLINE else NodeStatus.WAITING
        return self._set(number, status=status, user="", user_number=0, activity="",
                         connection="", address="", since=0.0, conn_id=0, down_after=False)

    def in_use(self) -> list[NodeRecord]:
        return [r for r in self._nodes.values() if r.status in (NodeStatus.LOGON, NodeStatus.NEWUSER, NodeStatus.INUSE)]

    def _set(self, number: int, **changes: object) -> NodeRecord:
        record = dataclasses.replace(self._nodes[number], **changes)
        self._nodes[number] = record
        self._bus.publish(NodeChanged(record))
        return record
