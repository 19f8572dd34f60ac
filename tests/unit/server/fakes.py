"""Plain stand-ins for :mod:`server.context`'s protocols: a peer that records what it was
sent, a room over a real :class:`server.rooms.RoomRegistry`. No event loop, no socket."""

from __future__ import annotations

import json
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from media.api import MediaRoom
from server.context import Peer, RoomContext, Sender
from server.rooms import Participant, Role, Room, RoomRegistry

T = TypeVar("T")


@dataclass
class FakePeer:
    participant: Participant | None = None
    languages: frozenset[str] = frozenset()
    spoken_lang: str | None = None
    sent: list[dict[str, Any]] = field(default_factory=list)
    dropped_interims: int = 0
    closed: tuple[int, str] | None = None
    #: interims are dropped (as by a lagging client's outbox)
    lagging: bool = False

    def send(self, message: str) -> None:
        self.sent.append(json.loads(message))

    def send_caption(self, message: str, *, final: bool) -> None:
        if self.lagging and not final:
            self.dropped_interims += 1
            return
        self.send(message)

    def close_soon(self, close_code: int, reason: str) -> None:
        self.closed = (close_code, reason)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m["type"] == kind]


class FakeRoom:
    """A live room without media."""

    def __init__(self, name: str = "r", *, started_monotonic: float = 100.0) -> None:
        self.name = name
        self.registry = RoomRegistry(max_participants=10, new_id=self._next_id)
        self._ids = 0
        self.clients: dict[str, FakePeer] = {}
        #: ids in ``clients`` that are no participant (a broadcast worker's seat)
        self.hidden: set[str] = set()
        self.media: MediaRoom | None = None
        self.started_monotonic = started_monotonic
        self.started_at_unix = 1_700_000_000.0
        #: token seats by participant id (see RoomContext.token_seat)
        self.seats: dict[str, str] = {}

    def _next_id(self) -> str:
        self._ids += 1
        return f"p{self._ids}"

    @property
    def state(self) -> Room | None:
        return self.registry.get(self.name)

    def broadcast(self, message: str, *, exclude: str | None = None) -> None:
        for pid, peer in self.clients.items():
            if pid != exclude:
                peer.send(message)

    def token_seat(self, participant_id: str) -> str | None:
        return self.seats.get(participant_id)

    def join(
        self, name: str, role: Role = "participant", languages: frozenset[str] = frozenset()
    ) -> FakePeer:
        _, participant, _ = self.registry.join(self.name, name, role)
        peer = FakePeer(participant, languages=languages)
        self.clients[participant.participant_id] = peer
        return peer


def sender(room: FakeRoom, peer: FakePeer) -> Sender:
    assert peer.participant is not None
    return Sender(peer, room, peer.participant)


def _conforms(peer: FakePeer, room: FakeRoom) -> tuple[Peer, RoomContext]:
    """mypy checks that the fakes satisfy the protocols they stand in for."""
    return peer, room


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends, without an event loop (a unit's ``async def``
    whose collaborators are fakes that answer at once)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    coroutine.close()
    raise AssertionError("the coroutine waited for something")
