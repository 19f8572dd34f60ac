"""The audience's side of a room (issue 16; PROTOCOL.md "Audience"): a room's board of
questions, comments and polls exists while the room lives, its hosts get the moderation link in
their ``joined``, a viewer invited on stage is followed in and out of the room, and the board is
exported (when kept) and dropped when the room closes. The board,
its sockets and documents are :class:`server.audience.service.AudienceService`'s."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from ..context import Peer, RoomContext
from ..rooms import Participant
from . import BaseFeature


class Audience(Protocol):
    """What rooms need of :class:`server.audience.service.AudienceService`."""

    def on_joined(self, name: str, role: str) -> Mapping[str, str]:
        """A participant joins ``name``: the fields their ``joined`` gets."""
        ...

    def room_closed(self, name: str) -> None: ...

    def stage_joined(self, room: str, invite_id: str, participant_id: str) -> None:
        """A viewer's stage pass entered the room as ``participant_id``."""
        ...

    def stage_left(self, room: str, participant_id: str) -> None:
        """``participant_id`` left the room (on stage or not)."""
        ...

    async def restore(self, name: str) -> None:
        """The room's first joiner here: restore the board a dead node kept (a cluster)."""
        ...


class AudienceFeature(BaseFeature):
    """Opens a room's audience with its first joiner, gives hosts the moderation link, closes
    it with the room."""

    def __init__(self, *, audience: Audience | None) -> None:
        """``audience``: None when ``[audience]`` is off."""
        self._audience = audience

    def joined_fields(self, room: RoomContext, participant: Participant) -> Mapping[str, object]:
        if self._audience is None:
            return {}
        return self._audience.on_joined(room.name, participant.role)

    def on_joined(self, room: RoomContext, peer: Peer) -> None:
        participant = peer.participant
        seat = None if participant is None else room.token_seat(participant.participant_id)
        if self._audience is not None and participant is not None and seat is not None:
            kind, _, invite_id = seat.partition(":")
            if kind == "stage":  # a viewer a moderator invited is on stage now
                self._audience.stage_joined(room.name, invite_id, participant.participant_id)

    async def on_peer_added(self, room: RoomContext, peer: Peer) -> None:
        if self._audience is not None:
            await self._audience.restore(room.name)

    async def on_left(self, room: RoomContext, participant_id: str) -> None:
        if self._audience is not None:
            self._audience.stage_left(room.name, participant_id)

    async def on_room_closed(self, room: RoomContext) -> None:
        if self._audience is not None:  # exported, then dropped
            self._audience.room_closed(room.name)
