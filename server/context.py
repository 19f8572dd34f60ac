"""The seams of the server's middle, as protocols: what a feature sees of a connection
(:class:`Peer`) and of a room (:class:`RoomContext`), and what the rest of the server needs of
a feature (:class:`Feature`).

Protocols only (and the one record a dispatch hands a feature): the modules that implement them
import this one, never the other way round, so that no feature reaches back into the signaling
classes. Imports :mod:`server.protocol`, :mod:`server.rooms` and :mod:`media.api`, nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import ClassVar, Protocol

from media.api import MediaRoom

from .protocol import ClientMessage
from .rooms import Participant, Role, Room


class Peer(Protocol):
    """One participant's connection, as features see it."""

    @property
    def participant(self) -> Participant | None:
        """The participant this connection is (None before joining, in a lobby, after)."""
        ...

    @property
    def languages(self) -> frozenset[str]:
        """The caption languages this client reads (besides each speaker's own)."""
        ...

    @property
    def spoken_lang(self) -> str | None:
        """The language this client speaks (``join.lang``; None = detect)."""
        ...

    def send(self, message: str) -> None:
        """Queue ``message`` (a client that stops reading is disconnected)."""
        ...

    def send_caption(self, message: str, *, final: bool) -> None:
        """Like :meth:`send`, but an interim is dropped while the client lags."""
        ...


class RoomContext(Protocol):
    """A live room (one that has participants), as features see it."""

    @property
    def name(self) -> str: ...

    @property
    def media(self) -> MediaRoom | None:
        """The room's media plane (None only while it opens)."""
        ...

    @property
    def clients(self) -> Mapping[str, Peer]:
        """The participants' connections, by participant id, in join order."""
        ...

    @property
    def state(self) -> Room | None:
        """The room's pure state (:mod:`server.rooms`); None once the room is gone."""
        ...

    @property
    def hidden(self) -> AbstractSet[str]:
        """Ids in :attr:`clients` that are no participant (the broadcast worker's seat)."""
        ...

    @property
    def started_monotonic(self) -> float: ...

    @property
    def started_at_unix(self) -> float: ...

    def broadcast(self, message: str, *, exclude: str | None = None) -> None:
        """Send ``message`` to every participant (but ``exclude``)."""
        ...

    def token_seat(self, participant_id: str) -> str | None:
        """The seat the participant's credential holds (a room token's ``jti:…``, a stage
        pass's ``stage:<invite_id>``), or None."""
        ...


@dataclass(frozen=True, slots=True)
class Sender:
    """Who sent a feature's message: a joined participant (the dispatch checked it)."""

    peer: Peer
    room: RoomContext
    participant: Participant


class Feature(Protocol):
    """One thing participants do in a room (chat, hands, channels...): the messages it
    handles, who may send them, and what it does when people join and leave. Its per-room
    state lives in the feature. Every feature message needs a joined participant (a client in
    no room, or in a lobby, gets ``not_joined``)."""

    #: the message classes (:mod:`server.protocol`) this feature handles
    messages: ClassVar[tuple[type[ClientMessage], ...]]
    #: who may send them (None: every joined participant); anyone else gets ``forbidden``
    roles: ClassVar[frozenset[Role] | None]
    #: the ``forbidden`` error's text; ``{type}`` is the message's type
    forbidden: ClassVar[str]

    async def handle(self, sender: Sender, msg: ClientMessage) -> None:
        """Handle one message; raises :class:`server.protocol.ProtocolError` to refuse it
        (changing nothing)."""
        ...

    def joined_fields(self, room: RoomContext, participant: Participant) -> Mapping[str, object]:
        """Fields the joiner's ``joined`` gets from this feature (built before it is sent; a
        hidden seat gets none)."""
        ...

    def on_joined(self, room: RoomContext, peer: Peer) -> None:
        """Right after ``joined`` (synchronously: nothing comes between, before anyone else
        hears of the joiner): the joiner's first messages."""
        ...

    async def on_peer_added(self, room: RoomContext, peer: Peer) -> None:
        """The joiner's media peer exists (they were announced to the room); also for a
        hidden seat (:attr:`RoomContext.hidden`)."""
        ...

    async def on_left(self, room: RoomContext, participant_id: str) -> None:
        """A participant (or a hidden seat) left: their media peer is gone."""
        ...

    async def on_room_closed(self, room: RoomContext) -> None:
        """The room is gone (emptied, or a host ended the meeting): drop its state."""
        ...
