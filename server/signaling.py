"""The WebSocket handler: one :class:`ClientConnection` per participant, feeding the pure room
state (:mod:`server.rooms`) and the media plane (:mod:`media.api`), doing the I/O they imply."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from interpret.glossary import Glossary
from media.api import (
    Kind,
    MediaBackend,
    MediaEvent,
    MediaRoom,
    OfferReady,
    PeerFailed,
    TrackPublished,
    TrackUnpublished,
)
from media.errors import MediaError

from . import __version__, channels, interpreting, moderation, protocol, room_features
from .auth import AuthError, Grant, TokenVerifier, password_matches
from .features import Dispatch
from .limits import (
    ConnectionCounter,
    ExpiringSet,
    FailureBackoff,
    KeyedLimiter,
    TokenBucket,
    retry_after_ms,
)
from .outbox import Outbox, OutboxFullError
from .protocol import ProtocolError
from .rooms import JoinRefusedError, Participant, Role, Room, RoomRegistry
from .settings import Settings
from .transcript import RoomTranscript
from .turn import ice_servers_for

if TYPE_CHECKING:
    from .captions import CaptionService
    from .chat import RoomChat
    from .retention import Retention

log = structlog.get_logger(__name__)

MAX_ERRORS_IN_A_ROW = 32
#: a client that has not completed the close handshake by then is dropped (it is not reading)
CLOSE_HANDSHAKE_TIMEOUT_S = 2.0
CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_INTERNAL = 1011
#: a connection cap was reached (``server_full``, ``too_many_connections``): try again later
CLOSE_TRY_AGAIN_LATER = 1013
#: a second join with the same token took this connection's seat (PROTOCOL.md "Close codes")
CLOSE_REPLACED = 4003
#: errors that mean a credential was wrong (they start the backoff; the room's bucket is kept)
_CREDENTIAL_FAILURES = frozenset({"token_invalid", "wrong_password"})
_FATAL_CODES = frozenset({"hello_required", "unsupported_protocol"})


class LiveRoom:
    """A room that has participants: its media room and the connections in it."""

    def __init__(self, name: str, registry: RoomRegistry) -> None:
        self.name = name
        self.registry = registry
        self.media: MediaRoom | None = None
        self.clients: dict[str, ClientConnection] = {}
        #: connections waiting in the room's lobby, by their (future) participant id
        self.waiting: dict[str, ClientConnection] = {}
        #: the room's chat (history in memory while the room lives); see room_features
        self.chat: RoomChat | None = None
        self.started_monotonic = time.monotonic()
        self.started_at_unix = time.time()
        #: the room's final captions (in memory only; see server.interpreting)
        self.transcript: RoomTranscript | None = None
        self.glossary: Glossary = ()
        #: interpretation channels: on air, handovers, what each participant hears
        self.channels = channels.RoomChannels()

    @property
    def state(self) -> Room | None:
        return self.registry.get(self.name)

    def broadcast(self, message: str, *, exclude: str | None = None) -> None:
        for participant_id, client in list(self.clients.items()):
            if participant_id != exclude:
                client.send(message)

    def on_media_event(self, event: MediaEvent) -> None:
        """Called by the media plane (on the event loop, synchronously)."""
        client = self.clients.get(event.peer_id)
        if isinstance(event, OfferReady):
            if client is not None:
                slots = {mid: dataclasses.asdict(slot) for mid, slot in event.slots.items()}
                client.send(
                    protocol.encode("offer", sdp=event.sdp, revision=event.revision, slots=slots)
                )
        elif isinstance(event, TrackPublished):
            track = self.registry.add_track(
                self.name, event.peer_id, event.track_id, event.kind, event.source
            )
            if track is not None:
                self.broadcast(
                    protocol.encode(
                        "track_published", participant_id=event.peer_id, track=track.to_wire()
                    )
                )
        elif isinstance(event, TrackUnpublished):
            if self.registry.remove_track(self.name, event.peer_id, event.track_id):
                self.broadcast(
                    protocol.encode(
                        "track_unpublished", participant_id=event.peer_id, track_id=event.track_id
                    )
                )
        elif isinstance(event, PeerFailed) and client is not None:
            client.abort("media_failed", f"media connection failed: {event.reason}", CLOSE_INTERNAL)


class SignalingServer:
    """Owns the room registry and every live room; ``handle`` serves one WebSocket."""

    def __init__(self, *, settings: Settings, media: MediaBackend) -> None:
        self.settings = settings
        self.media = media
        self.registry = RoomRegistry(max_participants=settings.rooms.max_participants_per_room)
        self.rooms: dict[str, LiveRoom] = {}
        #: live captions (None when ``[captions] enabled`` is off); set by the App
        self.captions: CaptionService | None = None
        #: what outlives a room ([retention]); set by the App
        self.retention: Retention | None = None
        # Joining and leaving open and close media rooms (awaits): serialize them so that two
        # first joins cannot open two media rooms for one name.
        self._membership = asyncio.Lock()
        self.auth_mode = settings.auth_mode()
        #: checks room tokens; None when no key is configured (open mode, tokens refused)
        self.verifier = (
            TokenVerifier.from_settings(settings.auth) if settings.auth.has_token_key() else None
        )
        limits = settings.limits
        self.join_limiter = KeyedLimiter(
            rate_per_s=limits.joins_per_room_per_s, burst=limits.join_burst
        )
        #: rooms created per client address (a token bucket a minute wide)
        self.room_creation_limiter = KeyedLimiter(
            rate_per_s=limits.rooms_created_per_address_per_minute / 60,
            burst=limits.rooms_created_per_address_per_minute,
        )
        #: failed credentials, keyed ``conn:<id>`` and ``addr:<address>``
        self.credential_failures = FailureBackoff(
            free_failures=limits.credential_failures_free,
            base_s=limits.credential_backoff_base_ms / 1000,
            max_s=limits.credential_backoff_max_s,
        )
        self.connections = ConnectionCounter(
            max_total=limits.max_connections,
            max_per_address=limits.max_connections_per_address,
        )
        #: seats a host removed, ``<room>\n<seat>``, until the token (or the open-mode ban) ends;
        #: kept here, not in the room, so that emptying the room does not forgive them
        self.removed_seats = ExpiringSet()
        self._trusted_proxies = frozenset(settings.server.trusted_proxies)
        #: the room features, in hook order; set by the App (the composition root)
        self.features = Dispatch(())
        self.clock: Callable[[], float] = time.monotonic
        #: unix time, for token expiries
        self.wall_clock: Callable[[], float] = time.time

    async def handle(self, ws: ServerConnection) -> None:
        address = self.client_address(ws)
        refused = self.connections.open(address)
        if refused is not None:
            # before hello: the client learns why from the close reason (PROTOCOL.md)
            log.warning("connection refused", code=refused, total=self.connections.total)
            await ws.close(CLOSE_TRY_AGAIN_LATER, refused)
            return
        try:
            await ClientConnection(ws, self, address=address).run()
        finally:
            self.connections.close(address)

    def client_address(self, ws: ServerConnection) -> str:
        """The address limits are counted against: the socket's peer, or the last address a
        trusted proxy (``[server] trusted_proxies``) put in ``X-Forwarded-For``."""
        peer = ws.remote_address[0] if ws.remote_address else "unknown"
        if peer in self._trusted_proxies and ws.request is not None:
            forwarded = ws.request.headers.get("X-Forwarded-For", "")
            last = forwarded.rsplit(",", 1)[-1].strip()
            if last:
                return last[:64]
        return str(peer)

    # -- joining: backoff, credentials, password, rate limits, lock, lobby, capacity ------------
    async def request_join(self, client: ClientConnection, msg: protocol.Join) -> None:
        """Admit ``msg``'s join into the room or its lobby, or raise :class:`ProtocolError`.
        Every refusal happens before any room state changes. Credentials are checked before
        the room's join bucket is charged: guessing passwords never locks the room's real
        participants out (it only slows the guesser down, :class:`FailureBackoff`)."""
        keys = (f"conn:{client.connection_id}", f"addr:{client.address}")
        now = self.clock()
        wait_s = max(self.credential_failures.wait_s(key, now) for key in keys)
        if wait_s > 0:
            raise ProtocolError(
                "rate_limited",
                "too many failed credentials; retry later",
                "join",
                retry_after_ms=retry_after_ms(wait_s),
            )
        try:
            name, role, grant = self._identify(msg)
            if grant is None:
                self._check_password(msg.room, self.registry.get(msg.room), msg.password)
        except ProtocolError as exc:
            if exc.code in _CREDENTIAL_FAILURES:
                for key in keys:
                    self.credential_failures.failed(key, now)
            raise
        for key in keys:
            self.credential_failures.succeeded(key)
        seat = self._seat(msg, grant)
        if seat is not None and self.removed_seats.contains(
            f"{msg.room}\n{seat}", self.wall_clock()
        ):
            raise ProtocolError("removed", "a host removed you from this room", "join")
        if role == "viewer" and msg.publish:
            raise ProtocolError("forbidden", "viewers cannot publish", "join")
        if len(set(msg.publish)) != len(msg.publish):
            raise ProtocolError("bad_message", "publish: kinds must be distinct", "join")
        wait_s = self.join_limiter.take(msg.room, self.clock())
        if wait_s > 0:
            raise ProtocolError(
                "rate_limited",
                f"too many joins into room {msg.room!r}; retry later",
                "join",
                retry_after_ms=retry_after_ms(wait_s),
            )
        async with self._membership:
            if grant is not None:
                await self._vacate_seat(msg.room, grant.seat)
            state = self.registry.get(msg.room)
            if role is None:  # open mode without a token
                role = "participant"
            try:
                decision = self.registry.admission(msg.room, role)
            except JoinRefusedError as exc:
                raise ProtocolError(exc.code, exc.message, "join") from None
            if grant is None:  # the room may have got a password since the check above
                self._check_password(msg.room, state, msg.password)
            if state is None:
                self._check_room_creation(client)
            client.seat = None if grant is None else grant.seat
            client.removal_key = seat
            client.token_expires_s = None if grant is None else grant.expires_s
            if decision == "lobby":
                live = self.rooms[msg.room]
                waiter = self.registry.wait(msg.room, name, role)
                moderation.enter_lobby(live, client, waiter, list(msg.publish))
                return
            try:
                room_state, participant, created = self.registry.join(msg.room, name, role)
            except JoinRefusedError as exc:
                raise ProtocolError(exc.code, exc.message, "join") from None
            await self._enter(client, room_state, participant, created, list(msg.publish))

    def _identify(self, msg: protocol.Join) -> tuple[str, Role | None, Grant | None]:
        """(display name, role or None = open-mode default, the token's grant if one was
        given)."""
        if msg.token is not None:
            if self.verifier is None:
                raise ProtocolError(
                    "token_invalid", "this server has no key to check tokens with", "join"
                )
            try:
                grant = self.verifier.verify(msg.token, msg.room)
            except AuthError as exc:
                raise ProtocolError(exc.code, exc.message, "join") from None
            return grant.name or msg.name, grant.role, grant
        if self.auth_mode == "token":
            raise ProtocolError("token_required", "this server needs a room token", "join")
        return msg.name, msg.role, None

    @staticmethod
    def _seat(msg: protocol.Join, grant: Grant | None) -> str | None:
        """What a host's removal refuses: the token's seat, else the client's own id."""
        if grant is not None:
            return grant.seat
        return None if msg.client_id is None else f"client:{msg.client_id}"

    def _check_room_creation(self, client: ClientConnection) -> None:
        """The join would create a room: refuse past ``max_rooms`` or past the address's
        ``rooms_created_per_address_per_minute``."""
        limits = self.settings.limits
        if len(self.rooms) >= limits.max_rooms:
            raise ProtocolError(
                "too_many_rooms", f"this server holds {limits.max_rooms} rooms already", "join"
            )
        wait_s = self.room_creation_limiter.take(client.address, self.clock())
        if wait_s > 0:
            raise ProtocolError(
                "rate_limited",
                "too many new rooms from your address; retry later",
                "join",
                retry_after_ms=retry_after_ms(wait_s),
            )

    async def _vacate_seat(self, room: str, seat: str) -> None:
        """One token, one seat: a connection already holding ``seat`` in ``room`` (in the room
        or its lobby) is replaced by the new join, as a reconnect would (with ``_membership``
        held)."""
        live = self.rooms.get(room)
        if live is None:
            return
        for holder_id, holder in [*live.clients.items(), *live.waiting.items()]:
            if holder.seat != seat:
                continue
            holder.send(
                protocol.error("replaced", "the same token joined again from elsewhere", "join")
            )
            if holder_id in live.clients:
                await self._exit_locked(live, holder_id)
            elif live.waiting.pop(holder_id, None) is not None:
                self.registry.stop_waiting(live.name, holder_id)
                moderation.lobby_left(live, holder_id, "left")
            holder.detach()
            holder.close_soon(CLOSE_REPLACED, "replaced")
            log.info("seat replaced", room=room, participant=holder_id)

    def remove_seat(self, room: str, client: ClientConnection) -> None:
        """A host removed ``client``: its seat stays refused until its token expires (open mode:
        ``open_mode_removal_s``)."""
        if client.removal_key is None:
            return
        now = self.wall_clock()
        expires_s = (
            client.token_expires_s
            if client.token_expires_s is not None
            else now + self.settings.auth.open_mode_removal_s
        )
        self.removed_seats.add(f"{room}\n{client.removal_key}", expires_s=expires_s, now_s=now)

    def _check_password(self, room: str, state: Room | None, given: str | None) -> None:
        expected = state.password if state is not None and state.password else None
        expected = expected or self.settings.auth.room_passwords.get(room)
        if expected is None:
            return
        if given is None:
            raise ProtocolError("password_required", f"room {room!r} needs a password", "join")
        if not password_matches(expected, given):
            raise ProtocolError("wrong_password", "wrong password", "join")

    async def _enter(
        self,
        client: ClientConnection,
        room_state: Room,
        participant: Participant,
        created: bool,
        publish: list[Kind],
    ) -> None:
        """Bring a participant the registry just added into the live room (with
        ``_membership`` held): media, ``joined``, ``participant_joined``."""
        room_name = room_state.name
        live = self.rooms.get(room_name)
        if created or live is None:
            live = LiveRoom(room_name, self.registry)
            try:
                live.media = await self.media.open_room(room_name, live.on_media_event)
            except MediaError as exc:
                self.registry.leave(room_name, participant.participant_id)
                log.error("cannot open media room", room=room_name, error=str(exc))
                raise ProtocolError("media_failed", "media is unavailable", "join") from None
            self.rooms[room_name] = live
        if self.auth_mode == "open":
            promoted = self.registry.succeed_host(room_name)
            if promoted is not None and promoted is not participant:
                moderation.announce_host(live, promoted)
        client.attach(live, participant)
        live.clients[participant.participant_id] = client
        joined: dict[str, Any] = {
            "participant_id": participant.participant_id,
            "room": room_name,
            "role": participant.role,
            "participants": [p.to_wire() for p in room_state.others(participant.participant_id)],
            "room_settings": moderation.room_settings_wire(self, room_state),
        }
        if participant.role == "host":
            joined["lobby"] = [w.to_wire() for w in room_state.waiting.values()]
        # ICE servers (with TURN credentials) only now that the credentials were checked,
        # never past the room token's expiry (PROTOCOL.md "joined")
        joined["ice_servers"] = ice_servers_for(
            self.settings,
            client.connection_id,
            now_s=self.wall_clock(),
            not_after_s=client.token_expires_s,
        )
        client.send(protocol.encode("joined", **joined))
        for feature in self.features:
            feature.on_joined(live, client)
        room_features.on_joined(self, live, client)
        if live.glossary:
            client.send(interpreting.glossary_message(live.glossary, None))
        live.broadcast(
            protocol.encode("participant_joined", participant=participant.to_wire()),
            exclude=participant.participant_id,
        )
        assert live.media is not None
        await live.media.add_peer(participant.participant_id, publish)
        await channels.on_joined(live, client, self.settings.interpreting.duck_volume)
        for feature in self.features:
            await feature.on_peer_added(live, client)
        log.info(
            "joined", room=room_name, participant=participant.participant_id, role=participant.role
        )

    async def admit(self, live: LiveRoom, waiter_id: str) -> None:
        """Move a lobby waiter into the room (a host's ``admit``)."""
        async with self._membership:
            client = live.waiting.get(waiter_id)
            if client is None or client.lobby_publish is None:
                raise ProtocolError("bad_state", f"{waiter_id} is not in the lobby", "admit")
            try:
                participant = self.registry.admit(live.name, waiter_id)
            except KeyError:
                raise ProtocolError(
                    "bad_state", f"{waiter_id} is not in the lobby", "admit"
                ) from None
            except JoinRefusedError as exc:
                raise ProtocolError(exc.code, exc.message, "admit") from None
            publish = client.lobby_publish
            del live.waiting[waiter_id]
            client.lobby_publish = None
            room_state = self.registry.get(live.name)
            assert room_state is not None
            moderation.lobby_left(live, waiter_id, "admitted")
            await self._enter(client, room_state, participant, False, publish)

    async def leave_lobby(self, live: LiveRoom, waiter_id: str) -> None:
        """A waiter went away."""
        async with self._membership:
            if live.waiting.pop(waiter_id, None) is not None:
                self.registry.stop_waiting(live.name, waiter_id)
                moderation.lobby_left(live, waiter_id, "left")

    async def exit(self, live: LiveRoom, participant_id: str) -> None:
        """Remove a participant (idempotent: a removed participant's socket closing later is a
        no-op)."""
        async with self._membership:
            await self._exit_locked(live, participant_id)

    async def _exit_locked(self, live: LiveRoom, participant_id: str) -> None:
        """:meth:`exit` with ``_membership`` already held."""
        if live.clients.pop(participant_id, None) is None:
            return
        duck_volume = self.settings.interpreting.duck_volume
        room_features.on_left(live, participant_id)
        emptied = self.registry.leave(live.name, participant_id)
        if self.captions is not None:
            self.captions.participant_left(participant_id)
            self.captions.languages_changed()
        live.broadcast(protocol.encode("participant_left", participant_id=participant_id))
        if live.media is not None:
            await live.media.remove_peer(participant_id)
            if not emptied:
                await channels.on_left(live, participant_id, duck_volume)
            else:
                live.channels.close()
            if emptied:
                await live.media.aclose()
        for feature in self.features:
            await feature.on_left(live, participant_id)
        if emptied:
            self.rooms.pop(live.name, None)
            moderation.close_lobby(live)
            await room_features.on_room_closed(live)
            for feature in self.features:
                await feature.on_room_closed(live)
        elif self.auth_mode == "open":
            promoted = self.registry.succeed_host(live.name)
            if promoted is not None:
                moderation.announce_host(live, promoted)
        log.info("left", room=live.name, participant=participant_id, room_closed=emptied)

    async def end_meeting(self, live: LiveRoom, by: str) -> None:
        """A host ended the meeting: everyone (lobby included) is told, then closed with 4002."""
        async with self._membership:
            if self.rooms.get(live.name) is not live:
                return
            self.registry.close(live.name)
            del self.rooms[live.name]
            ended = protocol.encode("meeting_ended", by=by)
            for participant_id, client in [*live.clients.items(), *live.waiting.items()]:
                client.send(ended)
                client.detach()
                client.close_soon(moderation.CLOSE_MEETING_ENDED, "meeting_ended")
                if self.captions is not None and participant_id in live.clients:
                    self.captions.participant_left(participant_id)
            gone = list(live.clients)
            live.clients.clear()
            live.waiting.clear()
            live.channels.close()
            if self.captions is not None:
                self.captions.languages_changed()
            if live.media is not None:
                await live.media.aclose()
            await room_features.on_room_closed(live)
            for feature in self.features:
                for participant_id in gone:
                    await feature.on_left(live, participant_id)
                await feature.on_room_closed(live)
            log.info("meeting ended", room=live.name, by=by)


class ClientConnection:
    """One participant's socket: reads and dispatches messages, writes through an outbox."""

    def __init__(self, ws: ServerConnection, server: SignalingServer, *, address: str) -> None:
        self.ws = ws
        self.server = server
        #: the client address limits count against (SignalingServer.client_address)
        self.address = address
        #: the token's seat (one token, one seat), what a removal refuses, the token's expiry
        self.seat: str | None = None
        self.removal_key: str | None = None
        self.token_expires_s: float | None = None
        self.outbox = Outbox(ws.send, max_messages=server.settings.server.outbox_max_messages)
        self.live: LiveRoom | None = None
        self.participant: Participant | None = None
        #: set while waiting in ``live``'s lobby: the kinds the join asked to publish
        self.lobby_publish: list[Kind] | None = None
        self.lobby_id: str | None = None
        limits = server.settings.limits
        self.message_bucket = TokenBucket(
            rate_per_s=limits.messages_per_connection_per_s,
            burst=limits.message_burst,
            now_s=server.clock(),
        )
        self._greeted = False
        #: (loop time) by when a socket in no room and no lobby must have joined; set at
        #: ``welcome``, moved on by each refused join (plus its ``retry_after_ms``) and when the
        #: connection leaves a room or lobby without closing (denied, lobby closed)
        self._join_deadline_s = math.inf
        self._left_room = asyncio.Event()
        #: caption languages this client reads; the language it speaks (None = detect)
        self.languages: frozenset[str] = frozenset()
        self.spoken_lang: str | None = None
        self._errors_in_a_row = 0
        self._closing: asyncio.Task[None] | None = None
        #: for logs and TURN usernames: not secret, not the participant id (not known yet)
        self.connection_id = f"c-{secrets.token_urlsafe(6)}"

    @property
    def recognition_lang(self) -> str | None:
        """The language this participant's speech is recognised in: their channel's while
        they interpret on air, else the one they speak (None = detect)."""
        if self.live is not None and self.participant is not None:
            channel = self.live.channels.channel_of(self.participant.participant_id)
            if channel is not None:
                return channel
        return self.spoken_lang

    def attach(self, live: LiveRoom, participant: Participant) -> None:
        self.live = live
        self.participant = participant
        self.lobby_id = None

    def detach(self) -> None:
        """Forget the room (the server already removed this participant or waiter)."""
        self.live = None
        self.participant = None
        self.lobby_publish = None
        self.lobby_id = None
        self.extend_join_deadline()
        self._left_room.set()

    def extend_join_deadline(self, extra_s: float = 0.0) -> None:
        """Give the client ``join_timeout_s`` (+ ``extra_s``) from now to join."""
        now = asyncio.get_running_loop().time()
        self._join_deadline_s = now + self.server.settings.limits.join_timeout_s + extra_s

    def send(self, message: str) -> None:
        try:
            self.outbox.put(message)
        except OutboxFullError:
            self.abort("outbox_full", "client is not reading its messages", CLOSE_POLICY)

    def send_caption(self, message: str, *, final: bool) -> None:
        """Interims are dropped when the client lags (the next one supersedes them); finals go
        through the outbox like everything else."""
        if not final and len(self.outbox) > self.server.settings.server.outbox_max_messages // 2:
            return
        self.send(message)

    def abort(self, code: str, message: str, close_code: int) -> None:
        """Tell the client ``code`` and close the connection, from a synchronous context (the
        media plane's events). The reader then sees the close and removes the participant."""
        if self._closing is not None:
            return
        log.warning(
            "closing client",
            code=code,
            connection=self.connection_id,
            room=None if self.live is None else self.live.name,
            participant=None if self.participant is None else self.participant.participant_id,
        )
        if code != "outbox_full":
            self.send(protocol.error(code, message))
        self.close_soon(close_code, code)

    def close_soon(self, close_code: int, reason: str) -> None:
        """Close after the queued messages went out (from a synchronous context)."""
        if self._closing is not None:
            return
        self._closing = asyncio.get_running_loop().create_task(
            self._close_after_flush(close_code, reason), name="close-client"
        )

    async def _close_after_flush(self, close_code: int, reason: str) -> None:
        self.outbox.close()
        if reason != "outbox_full":  # a client that does not read will not drain it either
            try:
                await asyncio.wait_for(self.outbox.drained(), 1.0)
            except TimeoutError:
                pass
        try:
            # The close handshake needs the client to read (websockets waits for the buffer to
            # drain before its own close timeout starts): one that does not would stay in its
            # room until the keepalive gave up, ~40 s later. Drop the socket instead.
            await asyncio.wait_for(self.ws.close(close_code, reason), CLOSE_HANDSHAKE_TIMEOUT_S)
        except TimeoutError:
            self.ws.transport.abort()

    async def run(self) -> None:
        # every log line of this connection's task names it (and, once joined, the room and
        # participant: their own fields)
        structlog.contextvars.bind_contextvars(connection=self.connection_id)
        loop = asyncio.get_running_loop()
        writer = loop.create_task(self.outbox.run(), name="outbox")
        deadlines = loop.create_task(self._enforce_deadlines(), name="admission-deadlines")
        try:
            await self._read()
        finally:
            deadlines.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await deadlines
            if self.live is not None and self.participant is not None:
                await self.server.exit(self.live, self.participant.participant_id)
            elif self.live is not None and self.lobby_id is not None:
                await self.server.leave_lobby(self.live, self.lobby_id)
            self.outbox.close()
            try:
                await asyncio.wait_for(writer, timeout=1.0)
            except (ConnectionClosed, TimeoutError):
                writer.cancel()
            if self._closing is not None:
                await self._closing

    async def _enforce_deadlines(self) -> None:
        """``hello`` within ``hello_timeout_s`` of connecting; while in no room and no lobby,
        ``join`` within ``join_timeout_s`` (see ``_join_deadline_s``): a socket that idles
        (keepalive pongs alone keep it open) is closed with 1008."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(self.server.settings.limits.hello_timeout_s)
        if not self._greeted:
            self.abort("hello_timeout", "no hello in time", CLOSE_POLICY)
            return
        while True:
            if self.live is not None:  # in a room or its lobby: wait until it leaves them
                self._left_room.clear()
                await self._left_room.wait()
                continue
            delay_s = self._join_deadline_s - loop.time()
            if delay_s <= 0:
                self.abort("join_timeout", "no join in time", CLOSE_POLICY)
                return
            await asyncio.sleep(delay_s)

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                if self._closing is not None:
                    # Closing: discard, but keep reading, or a full incoming queue would hide
                    # the client's close frame and the handshake would hang until its timeout.
                    continue
                if self.message_bucket.take(self.server.clock()) > 0:
                    self.abort(
                        "too_many_messages", "more messages than the rate limit", CLOSE_POLICY
                    )
                    continue
                try:
                    done = await self._dispatch(protocol.parse_client_message(raw))
                    self._errors_in_a_row = 0
                except ProtocolError as exc:
                    self._errors_in_a_row += 1
                    self.send(protocol.error(exc.code, exc.message, exc.ref, **exc.details))
                    # both close while the loop goes on draining (see above)
                    if exc.code in _FATAL_CODES:
                        self.close_soon(CLOSE_POLICY, exc.code)
                    elif self._errors_in_a_row >= MAX_ERRORS_IN_A_ROW:
                        self.abort("too_many_errors", "too many errors in a row", CLOSE_POLICY)
                    continue
                if done:
                    return
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("internal error in signaling")
            self.send(protocol.error("internal", "internal server error"))
            await self._close(CLOSE_INTERNAL, "internal")

    async def _close(self, code: int, reason: str) -> None:
        await self._close_after_flush(code, reason)

    async def _dispatch(self, msg: protocol.ClientMessage) -> bool:
        """Handle one message; returns True when the connection should end (``leave``)."""
        if not self._greeted:
            if not isinstance(msg, protocol.Hello):
                raise ProtocolError("hello_required", "the first message must be hello", msg.type)
            if msg.protocol not in protocol.SUPPORTED_VERSIONS:
                raise ProtocolError(
                    "unsupported_protocol",
                    f"protocol {msg.protocol} is not supported; this server speaks "
                    f"{sorted(protocol.SUPPORTED_VERSIONS)}",
                    "hello",
                )
            self._greeted = True
            self.extend_join_deadline()
            self.send(self._welcome(msg.protocol))
            return False
        if self.server.features.handles(msg):
            await self.server.features.dispatch(self, self.live, msg)
            return False
        match msg:
            case protocol.Hello():
                raise ProtocolError("bad_state", "hello was already received", "hello")
            case protocol.Join():
                if self.participant is not None or self.lobby_id is not None:
                    raise ProtocolError(
                        "already_joined", "this socket already joined a room", "join"
                    )
                self.spoken_lang = msg.lang
                try:
                    await self.server.request_join(self, msg)
                except ProtocolError as exc:
                    retry_s = float(exc.details.get("retry_after_ms", 0)) / 1000
                    self.extend_join_deadline(retry_s)
                    # for operators watching for guessing; never the token or password itself
                    (log.debug if exc.code == "rate_limited" else log.info)(
                        "join refused", room=msg.room, code=exc.code
                    )
                    raise
            case protocol.Leave():
                await self._close(CLOSE_NORMAL, "left")
                return True
            case protocol.Captions(languages=languages):
                if self.server.captions is None:
                    raise ProtocolError("bad_state", "captions are off on this server", "captions")
                self.languages = frozenset(languages)
                self.server.captions.languages_changed()
            case protocol.HostAction():
                await moderation.handle_host_action(self, msg)
            case protocol.RoomFeature():
                await room_features.handle(self, msg)
            case protocol.InterpreterAction():
                await interpreting.handle_interpreter_action(self, msg)
            case protocol.ChannelAction():
                await channels.handle(self, msg)
            case _:
                raise ProtocolError("unknown_type", f"unknown message type {msg.type!r}", msg.type)
        return False

    def _welcome(self, version: int) -> str:
        # no ICE servers here: TURN credentials come with ``joined``, once admitted
        return protocol.encode(
            "welcome",
            protocol=version,
            server=f"parley/{__version__}",
            max_message_bytes=self.server.settings.server.max_message_bytes,
            auth=self.server.auth_mode,
        )
