"""The audience in a cluster of nodes (issue 18; PROTOCOL.md "Clusters"): what
:class:`.service.AudienceService` needs of the cluster (where a room that is not here lives;
where its board outlives its node), and the board's snapshot layout (pure)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Protocol

from .board import AudienceBoard, BoardLimits
from .polls import PollBook

#: the snapshot's layout (another one is not read: the board starts empty)
SNAPSHOT_LAYOUT = 1


class AudienceDirectory(Protocol):
    """Where rooms' audiences live in a cluster
    (:class:`server.features.cluster.ClusterAudience`)."""

    async def elsewhere(self, room: str) -> tuple[str, str] | None:
        """``(node id, audience socket URL)`` of the live node that holds ``room`` when it is
        another one; None when no other node does (or the cluster cannot say)."""
        ...

    def welcome_fields(self, room: str) -> Mapping[str, object]:
        """What ``welcome`` adds in a cluster: this node and every live node's audience socket
        of ``room``."""
        ...


class Snapshots(Protocol):
    """Where a room's board outlives its node (a cluster's Redis:
    :class:`server.cluster.node.ClusterNode`)."""

    def save(self, room: str, kind: str, value: str | None) -> None:
        """Keep ``value`` for ``room`` (None: forget it), soon (not awaited)."""
        ...

    async def load(self, room: str, kind: str) -> str | None: ...


#: moderator keys a board keeps (its own and those of the nodes it lived on before)
MAX_MODERATOR_KEYS = 8


def encode_snapshot(moderator_keys: tuple[str, ...], board: AudienceBoard, polls: PollBook) -> str:
    """A room's board, polls and moderator keys (the moderation pages of the dead node go on
    moderating on the node that takes the room over) as one JSON value."""
    value = {
        "layout": SNAPSHOT_LAYOUT,
        "moderator_keys": list(moderator_keys[:MAX_MODERATOR_KEYS]),
        "board": board.snapshot(),
        "polls": polls.snapshot(),
    }
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def decode_snapshot(
    value: str, *, languages: tuple[str, ...], pivot: str, limits: BoardLimits
) -> tuple[tuple[str, ...], AudienceBoard, PollBook]:
    """``(moderator keys, board, polls)`` from :func:`encode_snapshot`'s value; ``ValueError``
    (or ``KeyError``/``TypeError``) for one this version cannot read."""
    data = json.loads(value)
    if data["layout"] != SNAPSHOT_LAYOUT:
        raise ValueError(f"snapshot layout {data['layout']!r}")
    board = AudienceBoard.restored(data["board"], languages=languages, pivot=pivot, limits=limits)
    keys = tuple(str(k) for k in data["moderator_keys"])[:MAX_MODERATOR_KEYS]
    if not all(keys):
        raise ValueError("an empty moderator key")
    return keys, board, PollBook.restored(data["polls"])
