"""The cluster a room's node belongs to (issue 18, PROTOCOL.md "Clusters"): a joiner's
``joined`` names this node and the live nodes' addresses, which the client tries in turn when
its node goes away (each sends it on to the room's node with ``redirect``). The audience's
sockets follow the same rule (:class:`ClusterAudience`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from ..cluster.placement import NodeInfo, audience_socket_url
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

    async def holder(self, room: str) -> NodeInfo | None:
        """The live node that holds ``room`` when it is another one (nothing is claimed)."""
        ...


class ClusterFeature(BaseFeature):
    def __init__(self, *, directory: Directory) -> None:
        self._directory = directory

    def joined_fields(self, room: RoomContext, participant: Participant) -> Mapping[str, object]:
        return {"cluster": {"node": self._directory.node_id, "nodes": self._directory.addresses()}}


class ClusterAudience:
    """Implements :class:`server.audience.service.AudienceDirectory`: a room's audience socket
    is on the room's node (the one that holds it in Redis); an audience is never placed (only
    a ``join`` places a room)."""

    def __init__(self, *, directory: Directory) -> None:
        self._directory = directory

    async def elsewhere(self, room: str) -> tuple[str, str] | None:
        holder = await self._directory.holder(room)
        if holder is None:
            return None
        return holder.node_id, audience_socket_url(holder.address, room)

    def welcome_fields(self, room: str) -> Mapping[str, object]:
        nodes = [audience_socket_url(a, room) for a in self._directory.addresses()]
        return {"cluster": {"node": self._directory.node_id, "nodes": nodes}}
