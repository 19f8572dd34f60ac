"""Room membership as a pure state machine: who is in which room, with which tracks and mute
states. No I/O: the signaling handler asks, then does what the answer implies."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["host", "participant", "interpreter", "viewer"]


class JoinRefusedError(Exception):
    """A join the room state refuses; ``code`` is one of PROTOCOL.md's error codes."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RoomFullError(JoinRefusedError):
    def __init__(self, room: str, limit: int) -> None:
        super().__init__("room_full", f"room {room!r} is full ({limit} participants)")
        self.room = room
        self.limit = limit


@dataclass(slots=True)
class TrackState:
    track_id: str
    kind: str
    #: "camera", "microphone" or "screen"
    source: str
    muted: bool = False

    def to_wire(self) -> dict[str, Any]:
        return {
            "track_id": self.track_id,
            "kind": self.kind,
            "source": self.source,
            "muted": self.muted,
        }


@dataclass(slots=True)
class Participant:
    participant_id: str
    name: str
    role: Role = "participant"
    tracks: dict[str, TrackState] = field(default_factory=dict)
    hand_raised: bool = False
    #: the participant asked not to be transcribed (their audio feeds no captions)
    transcription_opt_out: bool = False

    def to_wire(self) -> dict[str, Any]:
        return {
            "participant_id": self.participant_id,
            "name": self.name,
            "role": self.role,
            "tracks": [t.to_wire() for t in self.tracks.values()],
            "hand_raised": self.hand_raised,
            "transcription_opt_out": self.transcription_opt_out,
        }


@dataclass(slots=True)
class Waiter:
    """Someone in a room's lobby, waiting for a host to admit or deny them."""

    participant_id: str
    name: str
    role: Role

    def to_wire(self) -> dict[str, Any]:
        return {"participant_id": self.participant_id, "name": self.name, "role": self.role}


@dataclass(slots=True)
class Room:
    name: str
    #: in join order (dicts keep insertion order): the open-mode host succession uses it
    participants: dict[str, Participant] = field(default_factory=dict)
    locked: bool = False
    lobby: bool = False
    #: set by a host (a configured password lives in the settings, not here)
    password: str | None = None
    waiting: dict[str, Waiter] = field(default_factory=dict)

    def others(self, participant_id: str) -> Iterator[Participant]:
        return (p for pid, p in self.participants.items() if pid != participant_id)

    def hosts(self) -> list[Participant]:
        return [p for p in self.participants.values() if p.role == "host"]

    def settings_to_wire(self, *, password: bool) -> dict[str, Any]:
        return {"locked": self.locked, "lobby": self.lobby, "password": password}

    def configure(
        self,
        *,
        locked: bool | None = None,
        lobby: bool | None = None,
        password: str | None = None,
        clear_password: bool = False,
    ) -> None:
        """A host's room settings; None leaves a setting as it is."""
        if locked is not None:
            self.locked = locked
        if lobby is not None:
            self.lobby = lobby
        if clear_password:
            self.password = None
        elif password is not None:
            self.password = password


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

    def __iter__(self) -> Iterator[Room]:
        return iter(list(self._rooms.values()))

    def get(self, room: str) -> Room | None:
        return self._rooms.get(room)

    def join(
        self, room: str, name: str, role: Role = "participant"
    ) -> tuple[Room, Participant, bool]:
        """Add a participant; returns (room, participant, room_was_created)."""
        state = self._rooms.get(room)
        if state is not None and len(state.participants) >= self._max_participants:
            raise RoomFullError(room, self._max_participants)
        created = state is None
        if state is None:
            state = self._rooms[room] = Room(room)
        participant = Participant(self._fresh_id(state), name, role)
        state.participants[participant.participant_id] = participant
        return state, participant, created

    def admission(
        self, room: str, role: Role, *, invited: bool = False
    ) -> Literal["enter", "lobby"]:
        """Whether a join may enter now or waits in the lobby; raises :class:`JoinRefusedError`
        (``room_locked``, ``room_full``). Hosts, and viewers a moderator invited on stage, pass
        locks and lobbies. Changes nothing."""
        state = self._rooms.get(room)
        if state is None:
            return "enter"
        passes = role == "host" or invited
        if not passes and state.locked:
            raise JoinRefusedError("room_locked", f"room {room!r} is locked")
        if len(state.participants) >= self._max_participants:
            raise RoomFullError(room, self._max_participants)
        if not passes and state.lobby:
            if len(state.waiting) >= self._max_participants:
                raise JoinRefusedError("room_full", f"the lobby of room {room!r} is full")
            return "lobby"
        return "enter"

    def wait(self, room: str, name: str, role: Role) -> Waiter:
        """Put a join in the (existing) room's lobby."""
        state = self._rooms[room]
        waiter = Waiter(self._fresh_id(state), name, role)
        state.waiting[waiter.participant_id] = waiter
        return waiter

    def admit(self, room: str, waiter_id: str) -> Participant:
        """Move a waiter into the room (same id); raises KeyError if they are not waiting,
        :class:`RoomFullError` if the room filled up meanwhile (they keep waiting)."""
        state = self._rooms[room]
        waiter = state.waiting[waiter_id]
        if len(state.participants) >= self._max_participants:
            raise RoomFullError(room, self._max_participants)
        del state.waiting[waiter_id]
        participant = Participant(waiter.participant_id, waiter.name, waiter.role)
        state.participants[participant.participant_id] = participant
        return participant

    def stop_waiting(self, room: str, waiter_id: str) -> Waiter | None:
        """Take someone out of the lobby (denied, or gone); None if they were not waiting."""
        state = self._rooms.get(room)
        return None if state is None else state.waiting.pop(waiter_id, None)

    def leave(self, room: str, participant_id: str) -> bool:
        """Remove a participant; returns True when that emptied (and so removed) the room. A
        room removed with people in its lobby takes the lobby with it (the caller tells them)."""
        state = self._rooms.get(room)
        if state is None or state.participants.pop(participant_id, None) is None:
            return False
        if not state.participants:
            del self._rooms[room]
            return True
        return False

    def close(self, room: str) -> Room | None:
        """Remove a room and everybody in it (a host ended the meeting)."""
        return self._rooms.pop(room, None)

    def succeed_host(self, room: str) -> Participant | None:
        """Open mode: when a room has no host left, its longest-present participant who is not
        a viewer becomes host (returned; None when nothing changed)."""
        state = self._rooms.get(room)
        if state is None or state.hosts():
            return None
        for participant in state.participants.values():
            if participant.role != "viewer":
                participant.role = "host"
                return participant
        return None

    def configure(
        self,
        room: str,
        *,
        locked: bool | None = None,
        lobby: bool | None = None,
        password: str | None = None,
        clear_password: bool = False,
    ) -> Room:
        """A host's room settings; None leaves a setting as it is."""
        state = self._rooms[room]
        state.configure(
            locked=locked, lobby=lobby, password=password, clear_password=clear_password
        )
        return state

    def _fresh_id(self, state: Room) -> str:
        participant_id = self._new_id()
        while participant_id in state.participants or participant_id in state.waiting:
            participant_id = self._new_id()
        return participant_id

    def add_track(
        self, room: str, participant_id: str, track_id: str, kind: str, source: str
    ) -> TrackState | None:
        participant = self._participant(room, participant_id)
        if participant is None:
            return None
        track = participant.tracks[track_id] = TrackState(track_id, kind, source)
        return track

    def participant(self, room: str, participant_id: str) -> Participant | None:
        """The participant, or None when they are not (or no longer) in the room."""
        return self._participant(room, participant_id)

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
