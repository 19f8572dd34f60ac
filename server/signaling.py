"""The WebSocket handler: one :class:`ClientConnection` per participant, feeding the pure room
state (:mod:`server.rooms`) and the media plane (:mod:`media.api`), doing the I/O they imply."""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from media.api import MediaBackend

from . import __version__, protocol
from .admission import Admission
from .features import Dispatch
from .limits import ConnectionCounter, TokenBucket
from .membership import LiveRoom, Membership
from .outbox import Outbox, OutboxFullError
from .protocol import ProtocolError
from .rooms import Participant, RoomRegistry
from .settings import Settings

if TYPE_CHECKING:
    from .captions import CaptionService

log = structlog.get_logger(__name__)

MAX_ERRORS_IN_A_ROW = 32
#: a client that has not completed the close handshake by then is dropped (it is not reading)
CLOSE_HANDSHAKE_TIMEOUT_S = 2.0
CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_INTERNAL = 1011
#: a connection cap was reached (``server_full``, ``too_many_connections``): try again later
CLOSE_TRY_AGAIN_LATER = 1013
_FATAL_CODES = frozenset({"hello_required", "unsupported_protocol"})


class SignalingServer:
    """Serves the WebSockets (``handle``): caps connections, then runs one
    :class:`ClientConnection` per socket; the rooms are the :class:`Membership`'s."""

    def __init__(self, *, settings: Settings, media: MediaBackend) -> None:
        self.settings = settings
        self.media = media
        self.registry = RoomRegistry(max_participants=settings.rooms.max_participants_per_room)
        self.admission = Admission(settings=settings, registry=self.registry)
        self.membership = Membership(
            settings=settings, media=media, registry=self.registry, admission=self.admission
        )
        #: every live room, by name
        self.rooms = self.membership.rooms
        #: live captions (None when ``[captions] enabled`` is off); set by the App
        self.captions: CaptionService | None = None
        limits = settings.limits
        self.connections = ConnectionCounter(
            max_total=limits.max_connections,
            max_per_address=limits.max_connections_per_address,
        )
        #: every connection being served
        self.connections_open: set[ClientConnection] = set()
        self._trusted_proxies = frozenset(settings.server.trusted_proxies)
        #: the room features; set by the App (the composition root) with :meth:`use`
        self.features = Dispatch(())
        self.clock: Callable[[], float] = time.monotonic

    def use(self, features: Dispatch) -> None:
        """The room features, in hook order."""
        self.features = features
        self.membership.features = features.features

    async def handle(self, ws: ServerConnection) -> None:
        address = self.client_address(ws)
        refused = self.connections.open(address)
        if refused is not None:
            # before hello: the client learns why from the close reason (PROTOCOL.md)
            log.warning("connection refused", code=refused, total=self.connections.total)
            await ws.close(CLOSE_TRY_AGAIN_LATER, refused)
            return
        connection = ClientConnection(ws, self, address=address)
        self.connections_open.add(connection)
        try:
            await connection.run()
        finally:
            self.connections_open.discard(connection)
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


class ClientConnection:
    """One participant's socket: reads and dispatches messages, writes through an outbox."""

    def __init__(self, ws: ServerConnection, server: SignalingServer, *, address: str) -> None:
        self.ws = ws
        self.server = server
        #: the client address limits count against (SignalingServer.client_address)
        self.address = address
        self.outbox = Outbox(ws.send, max_messages=server.settings.server.outbox_max_messages)
        self.live: LiveRoom | None = None
        self.participant: Participant | None = None
        #: set while waiting in ``live``'s lobby
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

    def attach(self, live: LiveRoom, participant: Participant) -> None:
        self.live = live
        self.participant = participant
        self.lobby_id = None

    def wait_in(self, live: LiveRoom, waiter_id: str) -> None:
        self.live = live
        self.lobby_id = waiter_id

    def detach(self) -> None:
        """Forget the room (the server already removed this participant or waiter)."""
        self.live = None
        self.participant = None
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
            if self.live is not None:
                await self.server.membership.disconnected(self, self.live)
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
                    await self.server.membership.join(self, msg)
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
            auth=self.server.admission.auth_mode,
        )
