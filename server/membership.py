"""Who is in which room: join (into the room or its lobby), admit, deny, exit, end the meeting.
The one place people enter and leave live rooms, and so the one loop over the features' hooks
(:class:`server.context.Feature`) for each: joined, peer added, left, room closed.

Joining and leaving open and close media rooms (awaits): they are serialized by one lock, so
that two first joins cannot open two media rooms for one name. What is decided without I/O is
decided by :class:`server.admission.Admission` and :class:`server.rooms.RoomRegistry`; this
module does what their answers imply. It imports no feature: features ask it for doors through
the protocol they declare (:class:`server.features.moderation.Doors`)."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import structlog

from media.api import (
    Kind,
    MediaBackend,
    MediaEvent,
    MediaRoom,
    OfferReady,
    PeerFailed,
    PublishAnswer,
    TrackPublished,
    TrackUnpublished,
)
from media.errors import MediaError

from . import outbound, protocol
from .admission import Admission, Seat
from .context import Feature, Peer, RoomContext
from .protocol import ProtocolError
from .rooms import JoinRefusedError, Participant, Room, RoomRegistry, Waiter
from .settings import Settings
from .turn import ice_servers_for

log = structlog.get_logger(__name__)

CLOSE_NORMAL = 1000
CLOSE_INTERNAL = 1011
#: application close codes (PROTOCOL.md "Close codes")
CLOSE_MEETING_ENDED = 4002
#: a second join with the same token took this connection's seat
CLOSE_REPLACED = 4003
#: the room moved to another node of the cluster (after ``redirect``)
CLOSE_MOVED = 4005

LobbyExit = Literal["admitted", "denied", "left"]


class Member(Peer, Protocol):
    """What the membership needs of a connection (:class:`server.connection.ClientConnection`)."""

    @property
    def connection_id(self) -> str: ...

    @property
    def address(self) -> str:
        """The address limits are counted against."""
        ...

    def abort(self, code: str, message: str, close_code: int) -> None:
        """Tell the client ``code`` and close."""
        ...

    def close_soon(self, close_code: int, reason: str) -> None:
        """Close once the queued messages went out."""
        ...

    def attach(self, live: LiveRoom, participant: Participant) -> None:
        """The connection is ``participant`` in ``live`` from now on."""
        ...

    def wait_in(self, live: LiveRoom, waiter_id: str) -> None:
        """The connection waits in ``live``'s lobby."""
        ...

    def detach(self) -> None:
        """The connection is in no room and no lobby any more (it may join again)."""
        ...


class HiddenSeats(Protocol):
    """Who may take a room's hidden seat, and what they are told first
    (:class:`server.features.broadcast.BroadcastFeature`: the broadcast worker)."""

    def admits(self, room: str, secret: str) -> bool: ...

    def greet(self, room: RoomContext, peer: Peer) -> None:
        """Right after the hidden seat's ``joined``."""
        ...


class RoomPlacement(Protocol):
    """Where rooms live when several nodes share them (:class:`server.cluster.node.ClusterNode`;
    None on a single node)."""

    async def place(self, room: str) -> tuple[str, str] | None:
        """None: ``room`` lives here; else ``(node id, address)`` of the node that holds it.
        Raises :class:`ProtocolError` when it cannot be placed now."""
        ...

    def closed(self, room: str) -> None:
        """``room``'s last participant left this node."""
        ...


class RedirectedError(Exception):
    """The join's room lives on another node: the client is sent there (``redirect``)."""

    def __init__(self, room: str, node_id: str, address: str) -> None:
        super().__init__(f"room lives on node {node_id}")
        self.room = room
        self.node_id = node_id
        self.address = address


@dataclass(slots=True)
class Waiting:
    """A connection in a room's lobby and the kinds its join asked to publish."""

    member: Member
    publish: list[Kind]


class LiveRoom:
    """A room that has participants: its media room, the connections in it and in its lobby
    (implements :class:`server.context.RoomContext`)."""

    def __init__(self, name: str, registry: RoomRegistry) -> None:
        self.name = name
        self.registry = registry
        self.media: MediaRoom | None = None
        self.clients: dict[str, Member] = {}
        #: connections waiting in the room's lobby, by their (future) participant id
        self.waiting: dict[str, Waiting] = {}
        #: what each participant's and waiter's credentials hold, by their id
        self.seats: dict[str, Seat] = {}
        #: hidden seats (the broadcast worker): in ``clients`` for the room's messages and
        #: media, in no participant list and not in the registry
        self.hidden: set[str] = set()
        self.started_monotonic = time.monotonic()
        self.started_at_unix = time.time()

    @property
    def state(self) -> Room | None:
        return self.registry.get(self.name)

    def broadcast(self, message: str, *, exclude: str | None = None) -> None:
        for participant_id, client in list(self.clients.items()):
            if participant_id != exclude:
                client.send(message)

    def token_seat(self, participant_id: str) -> str | None:
        seat = self.seats.get(participant_id)
        return None if seat is None else seat.token_seat

    def send_to_hosts(self, message: str) -> None:
        state = self.state
        if state is None:
            return
        for host in state.hosts():
            client = self.clients.get(host.participant_id)
            if client is not None:
                client.send(message)

    def on_media_event(self, event: MediaEvent) -> None:
        """Called by the media plane (on the event loop, synchronously)."""
        client = self.clients.get(event.peer_id)
        if isinstance(event, OfferReady):
            if client is not None:
                slots = {mid: dataclasses.asdict(slot) for mid, slot in event.slots.items()}
                client.send(outbound.Offer(event.sdp, event.revision, slots).encode())
        elif isinstance(event, TrackPublished):
            track = self.registry.add_track(
                self.name, event.peer_id, event.track_id, event.kind, event.source
            )
            if track is not None:
                self.broadcast(outbound.TrackPublished(event.peer_id, track.to_wire()).encode())
        elif isinstance(event, TrackUnpublished):
            if self.registry.remove_track(self.name, event.peer_id, event.track_id):
                self.broadcast(outbound.TrackUnpublished(event.peer_id, event.track_id).encode())
        elif isinstance(event, PublishAnswer):
            if client is not None:  # the Janus engine answers a client's publish offer
                client.send(outbound.PublishAnswer(event.sdp, event.revision).encode())
        elif isinstance(event, PeerFailed) and client is not None:
            client.abort("media_failed", f"media connection failed: {event.reason}", CLOSE_INTERNAL)


class Membership:
    """Every live room and the doors into them."""

    def __init__(
        self,
        *,
        settings: Settings,
        media: MediaBackend,
        registry: RoomRegistry,
        admission: Admission,
    ) -> None:
        self.settings = settings
        self.media = media
        self.registry = registry
        self.admission = admission
        self.rooms: dict[str, LiveRoom] = {}
        #: the room features, in hook order (set by the composition root)
        self.features: Sequence[Feature] = ()
        #: who may take hidden seats (None: nobody; set by the composition root)
        self.hidden_seats: HiddenSeats | None = None
        #: where rooms live in a cluster (None: a single node; set by the composition root)
        self.placement: RoomPlacement | None = None
        self._lock = asyncio.Lock()

    # -- joining --------------------------------------------------------------------------------
    async def join(self, member: Member, msg: protocol.Join) -> None:
        """Admit ``msg``'s join into the room or its lobby, or raise :class:`ProtocolError`.
        Every refusal happens before any room state changes."""
        # in a cluster, a room that is not live here may live on another node: the client is
        # sent there (``redirect``) before this node charges the room's join rate
        placing = self.placement is not None and msg.room not in self.rooms
        ticket = self.admission.check(
            msg, connection_id=member.connection_id, address=member.address, charge=not placing
        )
        if placing:
            assert self.placement is not None
            elsewhere = await self.placement.place(ticket.room)
            if elsewhere is not None:
                raise RedirectedError(ticket.room, *elsewhere)
            self.admission.charge_join(ticket.room)
        async with self._lock:
            if ticket.seat.token_seat is not None:
                await self._vacate_seat(ticket.room, ticket.seat.token_seat)
            decision = self.admission.decide(
                ticket, msg.password, address=member.address, live_rooms=len(self.rooms)
            )
            if decision == "lobby":
                live = self.rooms[ticket.room]
                waiter = self.registry.wait(ticket.room, ticket.name, ticket.role)
                self._enter_lobby(live, member, waiter, list(msg.publish), ticket.seat)
                return
            try:
                state, participant, created = self.registry.join(
                    ticket.room, ticket.name, ticket.role
                )
            except JoinRefusedError as exc:
                raise ProtocolError(exc.code, exc.message, "join") from None
            await self._enter(member, state, participant, created, list(msg.publish), ticket.seat)

    async def _vacate_seat(self, room: str, token_seat: str) -> None:
        """One token, one seat: a connection already holding ``token_seat`` in ``room`` (in the
        room or its lobby) is replaced by the new join, as a reconnect would."""
        live = self.rooms.get(room)
        if live is None:
            return
        for holder_id, seat in list(live.seats.items()):
            if seat.token_seat != token_seat:
                continue
            waiting = live.waiting.get(holder_id)
            holder = live.clients.get(holder_id) or (None if waiting is None else waiting.member)
            if holder is None:
                continue
            holder.send(
                protocol.error("replaced", "the same token joined again from elsewhere", "join")
            )
            if holder_id in live.clients:
                await self._exit_locked(live, holder_id)
            else:
                self._leave_lobby(live, holder_id, "left")
            holder.detach()
            holder.close_soon(CLOSE_REPLACED, "replaced")
            log.info("seat replaced", room=room, participant=holder_id)

    async def _enter(
        self,
        member: Member,
        state: Room,
        participant: Participant,
        created: bool,
        publish: list[Kind],
        seat: Seat,
    ) -> None:
        """Bring a participant the registry just added into the live room (lock held): media,
        ``joined``, ``participant_joined``, and the features' hooks."""
        name, pid = state.name, participant.participant_id
        live = self.rooms.get(name)
        if created or live is None:
            live = LiveRoom(name, self.registry)
            try:
                live.media = await self.media.open_room(name, live.on_media_event)
            except MediaError as exc:
                self.registry.leave(name, pid)
                log.error("cannot open media room", room=name, error=str(exc))
                raise ProtocolError("media_failed", "media is unavailable", "join") from None
            self.rooms[name] = live
        if self.admission.auth_mode == "open":
            promoted = self.registry.succeed_host(name)
            if promoted is not None and promoted is not participant:
                self._announce_host(live, promoted)
        member.attach(live, participant)
        live.clients[pid] = member
        live.seats[pid] = seat
        extra: dict[str, object] = {}
        for feature in self.features:  # a host's audience link, the media engine...
            extra.update(feature.joined_fields(live, participant))
        joined = outbound.Joined(
            participant_id=pid,
            room=name,
            role=participant.role,
            participants=[p.to_wire() for p in state.others(pid)],
            room_settings=self.room_settings(state),
            lobby=[w.to_wire() for w in state.waiting.values()]
            if participant.role == "host"
            else None,
            # ICE servers (with TURN credentials) only now that the credentials were checked,
            # never past the room token's expiry (PROTOCOL.md "joined")
            ice_servers=ice_servers_for(
                self.settings,
                member.connection_id,
                now_s=self.admission.wall_clock(),
                not_after_s=seat.expires_s,
            ),
            extra=extra,
        )
        member.send(joined.encode())
        for feature in self.features:
            feature.on_joined(live, member)
        live.broadcast(outbound.ParticipantJoined(participant.to_wire()).encode(), exclude=pid)
        assert live.media is not None
        await live.media.add_peer(pid, publish)
        for feature in self.features:
            await feature.on_peer_added(live, member)
        log.info("joined", room=name, participant=pid, role=participant.role)

    async def join_hidden(self, member: Member, msg: protocol.BroadcasterJoin) -> None:
        """A hidden seat (the broadcast worker, with the secret only it got): every track, no
        holds, the room's messages; not in the registry, so in no participant list, against no
        limit, never host, and the room closes when its last participant leaves."""
        if self.hidden_seats is None or not self.hidden_seats.admits(msg.room, msg.secret):
            raise ProtocolError("forbidden", "not this room's broadcaster", msg.type)
        async with self._lock:
            live = self.rooms.get(msg.room)
            state = self.registry.get(msg.room)
            if live is None or live.media is None or state is None:
                raise ProtocolError("bad_state", "the room is closed", msg.type)
            pid = f"broadcast-{secrets.token_hex(4)}"
            member.attach(live, Participant(pid, "broadcast", "viewer"))
            live.clients[pid] = member
            live.hidden.add(pid)
            joined = outbound.Joined(
                participant_id=pid,
                room=live.name,
                role="broadcaster",
                participants=[p.to_wire() for p in state.participants.values()],
            )
            member.send(joined.encode())
            self.hidden_seats.greet(live, member)
            await live.media.add_peer(pid, [])
            for feature in self.features:
                await feature.on_peer_added(live, member)
        log.info("broadcaster joined", room=live.name)

    # -- the lobby ------------------------------------------------------------------------------
    def _enter_lobby(
        self, live: LiveRoom, member: Member, waiter: Waiter, publish: list[Kind], seat: Seat
    ) -> None:
        """Park a join in the lobby: the waiter gets ``lobby``, every host ``lobby_request``."""
        wid = waiter.participant_id
        live.waiting[wid] = Waiting(member, publish)
        live.seats[wid] = seat
        member.wait_in(live, wid)
        member.send(outbound.Lobby(live.name, wid).encode())
        live.send_to_hosts(outbound.LobbyRequest(waiter.to_wire()).encode())
        log.info("waiting in lobby", room=live.name, participant=wid)

    def _leave_lobby(self, live: LiveRoom, waiter_id: str, reason: LobbyExit) -> bool:
        if live.waiting.pop(waiter_id, None) is None:
            return False
        self.registry.stop_waiting(live.name, waiter_id)
        live.seats.pop(waiter_id, None)
        live.send_to_hosts(outbound.LobbyLeft(waiter_id, reason).encode())
        return True

    async def admit(self, room: str, waiter_id: str) -> None:
        """Move a lobby waiter into the room (a host's ``admit``)."""
        async with self._lock:
            live = self.rooms.get(room)
            waiting = None if live is None else live.waiting.get(waiter_id)
            if live is None or waiting is None:
                raise ProtocolError("bad_state", f"{waiter_id} is not in the lobby", "admit")
            try:
                participant = self.registry.admit(room, waiter_id)
            except KeyError:
                raise ProtocolError(
                    "bad_state", f"{waiter_id} is not in the lobby", "admit"
                ) from None
            except JoinRefusedError as exc:
                raise ProtocolError(exc.code, exc.message, "admit") from None
            del live.waiting[waiter_id]
            state = self.registry.get(room)
            assert state is not None
            live.send_to_hosts(outbound.LobbyLeft(waiter_id, "admitted").encode())
            seat = live.seats.get(waiter_id, Seat())
            await self._enter(waiting.member, state, participant, False, waiting.publish, seat)

    def deny(self, room: str, waiter_id: str) -> None:
        """Turn a lobby waiter away (a host's ``deny``): they may try again."""
        live = self.rooms.get(room)
        waiting = None if live is None else live.waiting.get(waiter_id)
        if live is None or waiting is None or not self._leave_lobby(live, waiter_id, "denied"):
            raise ProtocolError("bad_state", f"{waiter_id} is not in the lobby", "deny")
        waiting.member.detach()
        waiting.member.send(protocol.error("lobby_denied", "a host did not let you in", "join"))

    def _close_lobby(self, live: LiveRoom) -> None:
        """The room emptied: whoever still waits is told (``lobby_closed``) and may join
        again."""
        for waiting in live.waiting.values():
            waiting.member.detach()
            waiting.member.send(protocol.error("lobby_closed", "everybody left the room", "join"))
        live.waiting.clear()

    def _announce_host(self, live: LiveRoom, participant: Participant) -> None:
        """Open mode: ``participant`` became host; everyone hears it, the new host learns the
        lobby."""
        pid = participant.participant_id
        live.broadcast(outbound.RoleChanged(pid, "host").encode())
        client = live.clients.get(pid)
        state = live.state
        if client is not None and state is not None:
            for waiter in state.waiting.values():
                client.send(outbound.LobbyRequest(waiter.to_wire()).encode())

    def room_settings(self, state: Room) -> dict[str, Any]:
        """The room's settings as the wire has them (a configured password counts)."""
        return state.settings_to_wire(password=self.admission.has_password(state))

    # -- leaving --------------------------------------------------------------------------------
    async def disconnected(self, member: Member, live: LiveRoom) -> None:
        """``member``'s socket closed while in ``live`` or its lobby."""
        async with self._lock:
            participant = member.participant
            if participant is not None:
                await self._exit_locked(live, participant.participant_id)
                return
            for waiter_id, waiting in list(live.waiting.items()):
                if waiting.member is member:
                    self._leave_lobby(live, waiter_id, "left")

    async def expel(self, room: str, participant_id: str, *, close_code: int, reason: str) -> None:
        """A host removed a participant: closed with ``close_code``; their seat stays refused
        (until the token expires; open mode: ``open_mode_removal_s``)."""
        live = self.rooms.get(room)
        member = None if live is None else live.clients.get(participant_id)
        if live is None or member is None:
            return
        seat = live.seats.get(participant_id)
        if seat is not None:
            self.admission.refuse(room, seat)
        member.detach()
        member.close_soon(close_code, reason)
        async with self._lock:
            await self._exit_locked(live, participant_id)

    async def _exit_locked(self, live: LiveRoom, participant_id: str) -> None:
        """Remove a participant (idempotent: a removed participant's socket closing later is a
        no-op; lock held)."""
        if participant_id in live.hidden:
            await self._hidden_left(live, participant_id)
            return
        if live.clients.pop(participant_id, None) is None:
            return
        live.seats.pop(participant_id, None)
        emptied = self.registry.leave(live.name, participant_id)
        live.broadcast(outbound.ParticipantLeft(participant_id).encode())
        if live.media is not None:
            await live.media.remove_peer(participant_id)
        await self._left(live, participant_id)
        if emptied:
            if live.media is not None:
                await live.media.aclose()
            self.rooms.pop(live.name, None)
            if self.placement is not None:
                self.placement.closed(live.name)
            self._close_hidden(live)
            self._close_lobby(live)
            await self._closed(live)
        elif self.admission.auth_mode == "open":
            promoted = self.registry.succeed_host(live.name)
            if promoted is not None:
                self._announce_host(live, promoted)
        log.info("left", room=live.name, participant=participant_id, room_closed=emptied)

    async def end_meeting(self, room: str, by: str) -> None:
        """A host ended the meeting: everyone (lobby included) is told, then closed with
        4002."""
        async with self._lock:
            live = self.rooms.pop(room, None)
            if live is None:
                return
            if self.placement is not None:
                self.placement.closed(room)
            self.registry.close(room)
            ended = outbound.MeetingEnded(by).encode()
            members = [*live.clients.values(), *(w.member for w in live.waiting.values())]
            for member in members:
                member.send(ended)
                member.detach()
                member.close_soon(CLOSE_MEETING_ENDED, "meeting_ended")
            gone = list(live.clients)
            live.clients.clear()
            live.waiting.clear()
            live.seats.clear()
            live.hidden.clear()
            if live.media is not None:
                await live.media.aclose()
            for participant_id in gone:
                await self._left(live, participant_id)
            await self._closed(live)
            log.info("meeting ended", room=room, by=by)

    def moved(self, room: str, node_id: str, address: str) -> None:
        """Another node holds ``room`` now (this one missed its heartbeats meanwhile): everyone
        here is sent there (``redirect``) and closed; their sockets' ends remove them."""
        live = self.rooms.get(room)
        if live is None:
            return
        message = outbound.Redirect(room=room, node=node_id, url=address).encode()
        for member in [*live.clients.values(), *(w.member for w in live.waiting.values())]:
            member.send(message)
            member.close_soon(CLOSE_MOVED, "moved")
        log.warning("room moved to another node", room=room, node=node_id)

    async def _hidden_left(self, live: LiveRoom, participant_id: str) -> None:
        """A hidden seat's socket closed (lock held): nobody is told."""
        live.clients.pop(participant_id, None)
        live.hidden.discard(participant_id)
        if live.media is not None:
            await live.media.remove_peer(participant_id)
        await self._left(live, participant_id)

    def _close_hidden(self, live: LiveRoom) -> None:
        """The room closed: so are its hidden seats' sockets."""
        for pid in list(live.hidden):
            member = live.clients.pop(pid, None)
            if member is not None:
                member.detach()
                member.close_soon(CLOSE_NORMAL, "room_closed")
        live.hidden.clear()

    async def _left(self, live: LiveRoom, participant_id: str) -> None:
        for feature in self.features:
            await feature.on_left(live, participant_id)

    async def _closed(self, live: LiveRoom) -> None:
        for feature in self.features:
            await feature.on_room_closed(live)
