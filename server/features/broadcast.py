"""Broadcast controls (PROTOCOL.md "Broadcast"): the host's ``broadcast_start``,
``broadcast_stop``, ``broadcast_pin`` and ``recordings`` (the room's kept broadcasts), the
``broadcast`` state everybody in the room is told, rooms that go on air when they open
(``[broadcast] rooms``), and who may take a room's hidden seat (its broadcast worker). The
worker processes, the recordings and ``/live/`` are :class:`server.broadcast.BroadcastManager`'s."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

import structlog

from .. import outbound, protocol
from ..context import Peer, RoomContext, Sender
from ..protocol import ClientMessage, ProtocolError
from ..rooms import Role
from . import BaseFeature

log = structlog.get_logger(__name__)


class Broadcasts(Protocol):
    """What the controls need of :class:`server.broadcast.BroadcastManager`."""

    def is_on_air(self, room: str) -> bool: ...

    def check_secret(self, room: str, secret: str) -> bool: ...

    def state_message(self, room: str) -> str: ...

    def announce(self, live: RoomContext) -> None: ...

    def start(self, live: RoomContext, by: str | None) -> None: ...

    async def stop(self, room: str) -> None: ...

    def pin(self, live: RoomContext, participant_id: str | None) -> None: ...

    def room_closed(self, room: str) -> None: ...

    async def recordings_of(self, room: str) -> tuple[bool, list[dict[str, Any]]]: ...


class BroadcastFeature(BaseFeature):
    """The host's broadcast controls; also the membership's judge of hidden seats
    (:class:`server.membership.HiddenSeats`)."""

    messages: ClassVar[tuple[type[ClientMessage], ...]] = (
        protocol.BroadcastStart,
        protocol.BroadcastStop,
        protocol.BroadcastPin,
        protocol.BroadcastRecordings,
    )
    roles: ClassVar[frozenset[Role] | None] = frozenset({"host"})
    forbidden = "only a host may send {type}"

    def __init__(self, *, broadcasts: Broadcasts | None, rooms_on_air: list[str]) -> None:
        self._broadcasts = broadcasts
        #: rooms that start broadcasting when they open
        self._rooms_on_air = frozenset(rooms_on_air)
        #: rooms open now (a room's first joiner opens it)
        self._open: set[str] = set()

    async def handle(self, sender: Sender, msg: ClientMessage) -> None:
        room, me = sender.room, sender.participant
        manager = self._broadcasts
        if manager is None:
            raise ProtocolError("bad_state", "broadcasting is off on this server", msg.type)
        match msg:
            case protocol.BroadcastRecordings():
                kept, items = await manager.recordings_of(room.name)
                sender.peer.send(outbound.Recordings(kept=kept, recordings=items).encode())
            case protocol.BroadcastStart():
                manager.start(room, me.participant_id)
            case protocol.BroadcastStop():
                if not manager.is_on_air(room.name):
                    raise ProtocolError("bad_state", "this room is not broadcast", msg.type)
                await manager.stop(room.name)
                manager.announce(room)
            case protocol.BroadcastPin(participant_id=target):
                state = room.state
                if target is not None and (state is None or target not in state.participants):
                    raise ProtocolError("bad_state", f"no participant {target} here", msg.type)
                manager.pin(room, target)

    def on_joined(self, room: RoomContext, peer: Peer) -> None:
        """A participant joined: they learn that the room is on air; a room listed in
        ``[broadcast] rooms`` starts broadcasting when it opens."""
        manager = self._broadcasts
        opened = room.name not in self._open
        self._open.add(room.name)
        if manager is None:
            return
        if opened and room.name in self._rooms_on_air and not manager.is_on_air(room.name):
            try:
                manager.start(room, None)
            except ProtocolError as exc:
                log.error("cannot broadcast room", room=room.name, reason=exc.message)
        self.greet(room, peer)

    async def on_room_closed(self, room: RoomContext) -> None:
        self._open.discard(room.name)
        if self._broadcasts is not None:
            self._broadcasts.room_closed(room.name)

    # -- hidden seats ---------------------------------------------------------------------------
    def admits(self, room: str, secret: str) -> bool:
        """Whether ``secret`` is the one given to ``room``'s broadcast worker."""
        return self._broadcasts is not None and self._broadcasts.check_secret(room, secret)

    def greet(self, room: RoomContext, peer: Peer) -> None:
        """Right after ``joined``: the broadcast state, while the room is on air."""
        if self._broadcasts is not None and self._broadcasts.is_on_air(room.name):
            peer.send(self._broadcasts.state_message(room.name))
