"""What participants do in a room, one module per feature (see :class:`server.context.Feature`).

This package's own module holds what every feature shares: :class:`BaseFeature` (hooks that do
nothing) and :class:`Dispatch`, the table from message classes to the feature that handles
them. It imports no feature: the composition root (:mod:`server.app`) lists them, and adding a
feature is one new module here plus one line in that list.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import ClassVar

from ..context import Feature, Peer, RoomContext, Sender
from ..protocol import ClientMessage, ProtocolError
from ..rooms import Participant, Role

__all__ = ["BaseFeature", "Dispatch"]


class BaseFeature:
    """A feature's defaults: no role restriction, hooks that do nothing."""

    messages: ClassVar[tuple[type[ClientMessage], ...]] = ()
    roles: ClassVar[frozenset[Role] | None] = None
    forbidden: ClassVar[str] = "your role may not send {type}"

    async def handle(self, sender: Sender, msg: ClientMessage) -> None:
        raise ProtocolError("unknown_type", f"unknown message type {msg.type!r}", msg.type)

    def joined_fields(self, room: RoomContext, participant: Participant) -> Mapping[str, object]:
        return {}

    def on_joined(self, room: RoomContext, peer: Peer) -> None:
        return None

    async def on_peer_added(self, room: RoomContext, peer: Peer) -> None:
        return None

    async def on_left(self, room: RoomContext, participant_id: str) -> None:
        return None

    async def on_room_closed(self, room: RoomContext) -> None:
        return None


class Dispatch:
    """The features, in order (their hooks run in this order), and which one handles each
    message class."""

    def __init__(self, features: Iterable[Feature]) -> None:
        self.features: tuple[Feature, ...] = tuple(features)
        self._by_class: dict[type[ClientMessage], Feature] = {}
        for feature in self.features:
            for message_class in feature.messages:
                if message_class in self._by_class:
                    raise ValueError(f"two features handle {message_class.__name__}")
                self._by_class[message_class] = feature

    def __iter__(self) -> Iterator[Feature]:
        return iter(self.features)

    def handles(self, msg: ClientMessage) -> bool:
        return type(msg) in self._by_class

    async def dispatch(self, peer: Peer, room: RoomContext | None, msg: ClientMessage) -> None:
        """Hand ``msg`` to its feature: ``not_joined`` for a client in no room (or in a
        lobby), ``forbidden`` for a role the feature does not allow."""
        feature = self._by_class[type(msg)]
        participant = peer.participant
        if room is None or participant is None:
            raise ProtocolError("not_joined", f"{msg.type} needs a joined participant", msg.type)
        if feature.roles is not None and participant.role not in feature.roles:
            raise ProtocolError("forbidden", feature.forbidden.format(type=msg.type), msg.type)
        await feature.handle(Sender(peer, room, participant), msg)
