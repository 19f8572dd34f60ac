"""The audience's side of a room (issue 16; PROTOCOL.md "Audience"): a room's board of
questions, comments and polls exists while the room lives, its hosts get the moderation link in
their ``joined``, and it is exported (when kept) and dropped when the room closes. The board,
its sockets and documents are :class:`server.audience.service.AudienceService`'s."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from ..context import RoomContext
from ..rooms import Participant
from . import BaseFeature


class Audience(Protocol):
    """What rooms need of :class:`server.audience.service.AudienceService`."""

    def on_joined(self, name: str, role: str) -> Mapping[str, str]:
        """A participant joins ``name``: the fields their ``joined`` gets."""
        ...

    def room_closed(self, name: str) -> None: ...


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

    async def on_room_closed(self, room: RoomContext) -> None:
        if self._audience is not None:  # exported, then dropped
            self._audience.room_closed(room.name)
