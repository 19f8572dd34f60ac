"""The cluster a room's node belongs to (issue 18, PROTOCOL.md "Clusters"): a joiner's
``joined`` names this node and the live nodes' addresses, which the client tries in turn when
its node goes away (each sends it on to the room's node with ``redirect``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from ..context import RoomContext
from ..rooms import Participant
from . import BaseFeature


class Directory(Protocol):
    """What the feature needs of the node (:class:`server.cluster.node.ClusterNode`)."""

    @property
    def node_id(self) -> str: ...

    def addresses(self) -> list[str]:
        """The live nodes' addresses, this one first."""
        ...


class ClusterFeature(BaseFeature):
    def __init__(self, *, directory: Directory) -> None:
        self._directory = directory

    def joined_fields(self, room: RoomContext, participant: Participant) -> Mapping[str, object]:
        return {"cluster": {"node": self._directory.node_id, "nodes": self._directory.addresses()}}
