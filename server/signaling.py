"""The WebSocket handler: one :class:`ClientConnection` per participant, feeding the pure room
state (:mod:`server.rooms`) and the media plane (:mod:`media.api`), doing the I/O they imply."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING, Any

import structlog
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

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
from media.errors import (
    MediaError,
    MediaStateError,
    SdpError,
    StaleAnswerError,
    UnknownPeerError,
)

from . import __version__, protocol
from .outbox import Outbox, OutboxFullError
from .protocol import ProtocolError
from .rooms import Participant, RoomFullError, RoomRegistry
from .settings import Settings

if TYPE_CHECKING:
    from .captions import CaptionService

log = structlog.get_logger(__name__)

MAX_ERRORS_IN_A_ROW = 32
CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_INTERNAL = 1011
_FATAL_CODES = frozenset({"hello_required", "unsupported_protocol"})


class LiveRoom:
    """A room that has participants: its media room and the connections in it."""

    def __init__(self, name: str, registry: RoomRegistry) -> None:
        self.name = name
        self.registry = registry
        self.media: MediaRoom | None = None
        self.clients: dict[str, ClientConnection] = {}

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
            track = self.registry.add_track(self.name, event.peer_id, event.track_id, event.kind)
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
        # Joining and leaving open and close media rooms (awaits): serialize them so that two
        # first joins cannot open two media rooms for one name.
        self._membership = asyncio.Lock()

    async def handle(self, ws: ServerConnection) -> None:
        await ClientConnection(ws, self).run()

    async def enter(
        self, client: ClientConnection, room_name: str, name: str, publish: list[Kind]
    ) -> Participant:
        async with self._membership:
            try:
                room_state, participant, created = self.registry.join(room_name, name)
            except RoomFullError as exc:
                raise ProtocolError("room_full", str(exc), ref="join") from None
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
            client.attach(live, participant)
            live.clients[participant.participant_id] = client
            client.send(
                protocol.encode(
                    "joined",
                    participant_id=participant.participant_id,
                    room=room_name,
                    participants=[
                        p.to_wire() for p in room_state.others(participant.participant_id)
                    ],
                )
            )
            live.broadcast(
                protocol.encode("participant_joined", participant=participant.to_wire()),
                exclude=participant.participant_id,
            )
            assert live.media is not None
            await live.media.add_peer(participant.participant_id, publish)
            log.info("joined", room=room_name, participant=participant.participant_id)
            return participant

    async def exit(self, live: LiveRoom, participant_id: str) -> None:
        async with self._membership:
            live.clients.pop(participant_id, None)
            emptied = self.registry.leave(live.name, participant_id)
            if self.captions is not None:
                self.captions.participant_left(participant_id)
                self.captions.languages_changed()
            live.broadcast(protocol.encode("participant_left", participant_id=participant_id))
            if live.media is not None:
                await live.media.remove_peer(participant_id)
                if emptied:
                    await live.media.aclose()
            if emptied:
                self.rooms.pop(live.name, None)
            log.info("left", room=live.name, participant=participant_id, room_closed=emptied)


class ClientConnection:
    """One participant's socket: reads and dispatches messages, writes through an outbox."""

    def __init__(self, ws: ServerConnection, server: SignalingServer) -> None:
        self.ws = ws
        self.server = server
        self.outbox = Outbox(ws.send, max_messages=server.settings.server.outbox_max_messages)
        self.live: LiveRoom | None = None
        self.participant: Participant | None = None
        self._greeted = False
        #: caption languages this client reads; the language it speaks (None = detect)
        self.languages: frozenset[str] = frozenset()
        self.spoken_lang: str | None = None
        self._errors_in_a_row = 0
        self._closing: asyncio.Task[None] | None = None

    def attach(self, live: LiveRoom, participant: Participant) -> None:
        self.live = live
        self.participant = participant

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
        log.warning("closing client", code=code)
        if code != "outbox_full":
            self.send(protocol.error(code, message))
        self._closing = asyncio.get_running_loop().create_task(
            self._close_after_flush(close_code, code), name="close-client"
        )

    async def _close_after_flush(self, close_code: int, reason: str) -> None:
        self.outbox.close()
        try:
            await asyncio.wait_for(self.outbox.drained(), 1.0)
        except TimeoutError:
            pass
        await self.ws.close(close_code, reason)

    async def run(self) -> None:
        writer = asyncio.get_running_loop().create_task(self.outbox.run(), name="outbox")
        try:
            await self._read()
        finally:
            if self.live is not None and self.participant is not None:
                await self.server.exit(self.live, self.participant.participant_id)
            self.outbox.close()
            try:
                await asyncio.wait_for(writer, timeout=1.0)
            except (ConnectionClosed, TimeoutError):
                writer.cancel()
            if self._closing is not None:
                await self._closing

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                try:
                    done = await self._dispatch(protocol.parse_client_message(raw))
                    self._errors_in_a_row = 0
                except ProtocolError as exc:
                    self._errors_in_a_row += 1
                    self.send(protocol.error(exc.code, exc.message, exc.ref))
                    if exc.code in _FATAL_CODES:
                        await self._close(CLOSE_POLICY, exc.code)
                        return
                    if self._errors_in_a_row >= MAX_ERRORS_IN_A_ROW:
                        self.send(protocol.error("too_many_errors", "too many errors in a row"))
                        await self._close(CLOSE_POLICY, "too_many_errors")
                        return
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
            self.send(self._welcome(msg.protocol))
            return False
        match msg:
            case protocol.Hello():
                raise ProtocolError("bad_state", "hello was already received", "hello")
            case protocol.Join(room=room, name=name, publish=publish):
                if self.participant is not None:
                    raise ProtocolError(
                        "already_joined", "this socket already joined a room", "join"
                    )
                if len(set(publish)) != len(publish):
                    raise ProtocolError("bad_message", "publish: kinds must be distinct", "join")
                self.spoken_lang = msg.lang
                await self.server.enter(self, room, name, publish)
            case protocol.Leave():
                await self._close(CLOSE_NORMAL, "left")
                return True
            case protocol.Captions(languages=languages):
                if self.server.captions is None:
                    raise ProtocolError("bad_state", "captions are off on this server", "captions")
                self.languages = frozenset(languages)
                self.server.captions.languages_changed()
            case _:
                await self._dispatch_joined(msg)
        return False

    async def _dispatch_joined(self, msg: protocol.ClientMessage) -> None:
        live, participant = self.live, self.participant
        if live is None or participant is None or live.media is None:
            raise ProtocolError("not_joined", f"{msg.type} needs a joined participant", msg.type)
        pid = participant.participant_id
        try:
            match msg:
                case protocol.Publish(kinds=kinds):
                    await live.media.publish(pid, kinds)
                case protocol.Unpublish(track_id=track_id):
                    await live.media.unpublish(pid, track_id)
                case protocol.Answer(sdp=sdp, revision=revision):
                    await live.media.answer(pid, sdp, revision)
                case protocol.Mute(track_id=track_id, muted=muted):
                    if not self.server.registry.set_muted(live.name, pid, track_id, muted):
                        raise ProtocolError("bad_state", f"{track_id} is not your track", "mute")
                    live.broadcast(
                        protocol.encode("muted", participant_id=pid, track_id=track_id, muted=muted)
                    )
        except (MediaStateError, UnknownPeerError) as exc:
            raise ProtocolError("bad_state", str(exc), msg.type) from None
        except StaleAnswerError as exc:
            raise ProtocolError("stale_answer", str(exc), msg.type) from None
        except SdpError as exc:
            raise ProtocolError("bad_sdp", f"cannot apply SDP: {exc}", msg.type) from None

    def _welcome(self, version: int) -> str:
        settings = self.server.settings
        ice: list[dict[str, Any]] = []
        for s in settings.media.ice_servers:
            entry: dict[str, Any] = {"urls": list(s.urls)}
            if s.username is not None:
                entry["username"] = s.username
            if s.credential is not None:
                entry["credential"] = s.credential
            ice.append(entry)
        return protocol.encode(
            "welcome",
            protocol=version,
            server=f"parley/{__version__}",
            ice_servers=ice,
            max_message_bytes=settings.server.max_message_bytes,
        )
