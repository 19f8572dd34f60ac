"""Room membership as a pure state machine: who is in which room, with which tracks and mute
states. No I/O: the signaling handler asks, then does what the answer implies."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


class RoomFullError(Exception):
    def __init__(self, room: str, limit: int) -> None:
        super().__init__(f"room {room!r} is full ({limit} participants)")
        self.room = room
        self.limit = limit


@dataclass(slots=True)
class TrackState:
    track_id: str
    kind: str
    muted: bool = False

    def to_wire(self) -> dict[str, Any]:
        return {"track_id": self.track_id, "kind": self.kind, "muted": self.muted}


@dataclass(slots=True)
class Participant:
    participant_id: str
    name: str
    tracks: dict[str, TrackState] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        return {
            "participant_id": self.participant_id,
            "name": self.name,
            "tracks": [t.to_wire() for t in self.tracks.values()],
        }


@dataclass(slots=True)
class Room:
    name: str
    participants: dict[str, Participant] = field(default_factory=dict)

    def others(self, participant_id: str) -> Iterator[Participant]:
        return (p for pid, p in self.participants.items() if pid != participant_id)


def random_id() -> str:
    return secrets.token_urlsafe(6)


class RoomRegistry:
    """Every live room. A room exists while it has participants; nothing is persisted."""

    def __init__(self, *, max_participants: int, new_id: Callable[[], str] = random_id) -> None:
        self._max_participants = max_participants
        self._new_id = new_id
        self._rooms: dict[str, Room] = {}

    def __len__(self) -> int:
        return len(self._rooms)

    def get(self, room: str) -> Room | None:
        return self._rooms.get(room)

    def join(self, room: str, name: str) -> tuple[Room, Participant, bool]:
        """Add a participant; returns (room, participant, room_was_created)."""
        state = self._rooms.get(room)
        if state is not None and len(state.participants) >= self._max_participants:
            raise RoomFullError(room, self._max_participants)
        created = state is None
        if state is None:
            state = self._rooms[room] = Room(room)
        participant_id = self._new_id()
        while participant_id in state.participants:
            participant_id = self._new_id()
        participant = Participant(participant_id, name)
        state.participants[participant_id] = participant
        return state, participant, created

    def leave(self, room: str, participant_id: str) -> bool:
        """Remove a participant; returns True when that emptied (and so removed) the room."""
        state = self._rooms.get(room)
        if state is None or state.participants.pop(participant_id, None) is None:
            return False
        if not state.participants:
            del self._rooms[room]
            return True
        return False

    def add_track(
        self, room: str, participant_id: str, track_id: str, kind: str
    ) -> TrackState | None:
        participant = self._participant(room, participant_id)
        if participant is None:
            return None
        track = participant.tracks[track_id] = TrackState(track_id, kind)
        return track

    def remove_track(self, room: str, participant_id: str, track_id: str) -> bool:
        participant = self._participant(room, participant_id)
        return participant is not None and participant.tracks.pop(track_id, None) is not None

    def set_muted(self, room: str, participant_id: str, track_id: str, muted: bool) -> bool:
        participant = self._participant(room, participant_id)
        if participant is None or track_id not in participant.tracks:
            return False
        participant.tracks[track_id].muted = muted
        return True

    def _participant(self, room: str, participant_id: str) -> Participant | None:
        state = self._rooms.get(room)
        return None if state is None else state.participants.get(participant_id)
