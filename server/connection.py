"""One client's connection: a Sans-I/O core (:class:`ConnectionCore`: messages in, actions
out) and the thin asyncio shell that reads the socket, does the actions and hands room messages
to the membership and the features (:class:`ClientConnection`).

The core owns what a connection is before and around a room: the ``hello`` handshake and its
version, the message rate limit, the error streak, the ``hello`` and ``join`` deadlines, and
the order ``hello`` → ``join`` → room messages (``already_joined`` for a second join). Its
tests need no event loop and no socket (websockets' ``Protocol.receive_data`` /
``data_to_send``)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import structlog
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from . import outbound, protocol
from .context import Peer, RoomContext
from .limits import TokenBucket
from .membership import LiveRoom, Membership, RedirectedError
from .outbox import Outbox, OutboxFullError
from .protocol import ClientMessage, ProtocolError
from .rooms import Participant
from .settings import LimitSettings

log = structlog.get_logger(__name__)

MAX_ERRORS_IN_A_ROW = 32
#: a client that has not completed the close handshake by then is dropped (it is not reading)
CLOSE_HANDSHAKE_TIMEOUT_S = 2.0
CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_INTERNAL = 1011
#: refusals after which the connection is closed (the client speaks another protocol)
FATAL_CODES = frozenset({"hello_required", "unsupported_protocol"})


# -- the core's actions ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Send:
    """Queue a message to the client."""

    message: str


@dataclass(frozen=True, slots=True)
class Close:
    """Close once the queued messages went out; ``end``: and stop reading now (``leave``),
    else keep reading (and discarding) until the client's close frame arrives."""

    code: int
    reason: str
    end: bool = False
    #: the server closes on its own (a limit, a timeout, a failure): logged as a warning
    aborted: bool = False


@dataclass(frozen=True, slots=True)
class Handle:
    """A message for the room side: ``join`` (or a hidden seat's), or a feature's."""

    message: ClientMessage


@dataclass(frozen=True, slots=True)
class LanguagesChanged:
    """The client reads other caption languages (``captions``)."""


Action = Send | Close | Handle | LanguagesChanged


class ConnectionCore:
    """What a connection is besides its socket. Pure: the clock is injected; every method
    returns the actions the shell must take, in order."""

    def __init__(
        self,
        *,
        limits: LimitSettings,
        welcome: Callable[[int], str],
        captions_on: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = limits
        self._welcome = welcome
        self._captions_on = captions_on
        self.clock = clock
        now = clock()
        self._bucket = TokenBucket(
            rate_per_s=limits.messages_per_connection_per_s, burst=limits.message_burst, now_s=now
        )
        self.greeted = False
        #: in a room or its lobby (the shell says so: :meth:`placed`)
        self.joined = False
        #: closing: further messages are read and discarded
        self.closing = False
        self._errors_in_a_row = 0
        self._hello_deadline_s = now + limits.hello_timeout_s
        #: by when a greeted socket in no room and no lobby must have joined; set at
        #: ``welcome``, moved on by each refused join (plus its ``retry_after_ms``) and when the
        #: connection leaves a room or lobby without closing (denied, lobby closed)
        self._join_deadline_s = math.inf
        #: caption languages this client reads; the language it speaks (None = detect)
        self.languages: frozenset[str] = frozenset()
        self.spoken_lang: str | None = None

    # -- input ----------------------------------------------------------------------------------
    def receive(self, raw: str | bytes) -> list[Action]:
        """One frame from the client."""
        if self.closing:
            return []
        if self._bucket.take(self.clock()) > 0:
            return self.abort("too_many_messages", "more messages than the rate limit")
        try:
            return self._accept(protocol.parse_client_message(raw))
        except ProtocolError as exc:
            return self.refused(exc)

    def _accept(self, msg: ClientMessage) -> list[Action]:
        if not self.greeted:
            if not isinstance(msg, protocol.Hello):
                raise ProtocolError("hello_required", "the first message must be hello", msg.type)
            if msg.protocol not in protocol.SUPPORTED_VERSIONS:
                raise ProtocolError(
                    "unsupported_protocol",
                    f"protocol {msg.protocol} is not supported; this server speaks "
                    f"{sorted(protocol.SUPPORTED_VERSIONS)}",
                    "hello",
                )
            self.greeted = True
            self._join_deadline_s = self.clock() + self._limits.join_timeout_s
            self.handled()
            return [Send(self._welcome(msg.protocol))]
        match msg:
            case protocol.Hello():
                raise ProtocolError("bad_state", "hello was already received", "hello")
            case protocol.Join():
                if self.joined:
                    raise ProtocolError(
                        "already_joined", "this socket already joined a room", "join"
                    )
                self.spoken_lang = msg.lang
                return [Handle(msg)]
            case protocol.BroadcasterJoin():
                if self.joined:
                    raise ProtocolError(
                        "already_joined", "this socket already joined a room", msg.type
                    )
                return [Handle(msg)]
            case protocol.Leave():
                self.closing = True
                return [Close(CLOSE_NORMAL, "left", end=True)]
            case protocol.Captions(languages=languages):
                if not self._captions_on:
                    raise ProtocolError("bad_state", "captions are off on this server", "captions")
                self.languages = frozenset(languages)
                self.handled()
                return [LanguagesChanged()]
        return [Handle(msg)]

    # -- what became of a handled message --------------------------------------------------------
    def handled(self) -> None:
        """A message went through: the error streak ends."""
        self._errors_in_a_row = 0

    def refused(self, exc: ProtocolError) -> list[Action]:
        """A message was refused: the client is told; a streak of refusals, or a client that
        speaks another protocol, is closed (the reading goes on draining meanwhile)."""
        self._errors_in_a_row += 1
        actions: list[Action] = [
            Send(protocol.error(exc.code, exc.message, exc.ref, **exc.details))
        ]
        if exc.code in FATAL_CODES:
            actions += self.close(CLOSE_POLICY, exc.code)
        elif self._errors_in_a_row >= MAX_ERRORS_IN_A_ROW:
            actions += self.abort("too_many_errors", "too many errors in a row")
        return actions

    def redirected(self, message: str) -> list[Action]:
        """The join's room lives on another node: the client is told where (``message``) and
        may join again here within ``join_timeout_s`` (it normally closes and goes there)."""
        self._join_deadline_s = self.clock() + self._limits.join_timeout_s
        self.handled()
        return [Send(message)]

    def join_refused(self, exc: ProtocolError) -> list[Action]:
        """A refused ``join``: the client may try again, within ``join_timeout_s`` plus the
        refusal's ``retry_after_ms``."""
        retry_s = float(exc.details.get("retry_after_ms", 0)) / 1000
        self._join_deadline_s = self.clock() + self._limits.join_timeout_s + retry_s
        return self.refused(exc)

    # -- placement and closing -------------------------------------------------------------------
    def placed(self, joined: bool) -> None:
        """The connection entered a room or its lobby (True), or left them without closing
        (False: it gets ``join_timeout_s`` to join again)."""
        self.joined = joined
        if not joined:
            self._join_deadline_s = self.clock() + self._limits.join_timeout_s

    def abort(self, code: str, message: str, close_code: int = CLOSE_POLICY) -> list[Action]:
        """Tell the client ``code`` and close (a client whose outbox is full is not told: it
        does not read)."""
        if self.closing:
            return []
        told = [] if code == "outbox_full" else [Send(protocol.error(code, message))]
        self.closing = True
        return [*told, Close(close_code, code, aborted=True)]

    def close(self, close_code: int, reason: str) -> list[Action]:
        """Close (a host removed the client, the meeting ended...)."""
        if self.closing:
            return []
        self.closing = True
        return [Close(close_code, reason)]

    # -- deadlines -------------------------------------------------------------------------------
    def deadline_s(self) -> float:
        """When :meth:`expire` has something to do next (the injected clock; inf: nothing)."""
        if self.closing:
            return math.inf
        if not self.greeted:
            return self._hello_deadline_s
        return math.inf if self.joined else self._join_deadline_s

    def expire(self) -> list[Action]:
        """``hello`` within ``hello_timeout_s`` of connecting; while in no room and no lobby,
        ``join`` within ``join_timeout_s``: a socket that idles (keepalive pongs alone keep it
        open) is closed with 1008."""
        if self.clock() < self.deadline_s():
            return []
        if not self.greeted:
            return self.abort("hello_timeout", "no hello in time")
        return self.abort("join_timeout", "no join in time")


# -- the shell ---------------------------------------------------------------------------------
class Features(Protocol):
    """What the connection needs of the features (:class:`server.features.Dispatch`)."""

    def handles(self, msg: ClientMessage) -> bool: ...

    async def dispatch(self, peer: Peer, room: RoomContext | None, msg: ClientMessage) -> None: ...


class ClientConnection:
    """One client's socket: reads frames into the core, does its actions, writes through a
    bounded outbox (implements :class:`server.membership.Member`)."""

    def __init__(
        self,
        ws: ServerConnection,
        *,
        address: str,
        core: ConnectionCore,
        membership: Membership,
        features: Features,
        outbox_max_messages: int,
        on_languages_changed: Callable[[], None] = lambda: None,
    ) -> None:
        self.ws = ws
        #: the client address limits count against
        self.address = address
        self.core = core
        self._membership = membership
        self._features = features
        self._on_languages_changed = on_languages_changed
        self._outbox_max_messages = outbox_max_messages
        self.outbox = Outbox(ws.send, max_messages=outbox_max_messages)
        self.live: LiveRoom | None = None
        self.participant: Participant | None = None
        self._closing: asyncio.Task[None] | None = None
        #: set whenever the core's deadline may have moved
        self._wakeup = asyncio.Event()
        #: for logs and TURN usernames: not secret, not the participant id (not known yet)
        self.connection_id = f"c-{secrets.token_urlsafe(6)}"

    @property
    def languages(self) -> frozenset[str]:
        return self.core.languages

    @property
    def spoken_lang(self) -> str | None:
        return self.core.spoken_lang

    # -- Member ---------------------------------------------------------------------------------
    def attach(self, live: LiveRoom, participant: Participant) -> None:
        self.live = live
        self.participant = participant
        self._placed(True)

    def wait_in(self, live: LiveRoom, waiter_id: str) -> None:
        self.live = live
        self._placed(True)

    def detach(self) -> None:
        """Forget the room (the membership already removed this participant or waiter)."""
        self.live = None
        self.participant = None
        self._placed(False)

    def _placed(self, joined: bool) -> None:
        self.core.placed(joined)
        self._wakeup.set()

    def send(self, message: str) -> None:
        try:
            self.outbox.put(message)
        except OutboxFullError:
            self.abort("outbox_full", "client is not reading its messages", CLOSE_POLICY)

    def send_caption(self, message: str, *, final: bool) -> None:
        """Interims are dropped when the client lags (the next one supersedes them); finals go
        through the outbox like everything else."""
        if not final and len(self.outbox) > self._outbox_max_messages // 2:
            return
        self.send(message)

    def abort(self, code: str, message: str, close_code: int) -> None:
        """Tell the client ``code`` and close the connection, from a synchronous context (the
        media plane's events). The reader then sees the close and removes the participant."""
        self._do(self.core.abort(code, message, close_code))

    def close_soon(self, close_code: int, reason: str) -> None:
        """Close after the queued messages went out (from a synchronous context)."""
        self._do(self.core.close(close_code, reason))

    def _do(self, actions: list[Action]) -> None:
        """The core's synchronous actions (sends and closes)."""
        for action in actions:
            match action:
                case Send(message=message):
                    self.send(message)
                case Close(code=code, reason=reason, aborted=aborted) if self._closing is None:
                    if aborted:
                        log.warning(
                            "closing client",
                            code=reason,
                            connection=self.connection_id,
                            room=None if self.live is None else self.live.name,
                            participant=None
                            if self.participant is None
                            else self.participant.participant_id,
                        )
                    self._closing = asyncio.get_running_loop().create_task(
                        self._close_after_flush(code, reason), name="close-client"
                    )
                case LanguagesChanged():
                    self._on_languages_changed()
        self._wakeup.set()

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

    # -- running --------------------------------------------------------------------------------
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
                await self._membership.disconnected(self, self.live)
            self.outbox.close()
            try:
                await asyncio.wait_for(writer, timeout=1.0)
            except (ConnectionClosed, TimeoutError):
                writer.cancel()
            if self._closing is not None:
                await self._closing

    async def _enforce_deadlines(self) -> None:
        """Sleeps until the core's next deadline (or until it may have moved)."""
        while True:
            self._wakeup.clear()
            delay_s = self.core.deadline_s() - self.core.clock()
            if delay_s <= 0:
                self._do(self.core.expire())
                return
            timeout_s = None if math.isinf(delay_s) else max(delay_s, 0.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout_s)

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                # Closing: the core discards, but the reading goes on, or a full incoming
                # queue would hide the client's close frame and the handshake would hang.
                for action in self.core.receive(raw):
                    if isinstance(action, Handle):
                        await self._handle(action.message)
                    elif isinstance(action, Close) and action.end:
                        await self._close_after_flush(action.code, action.reason)
                        return
                    else:
                        self._do([action])
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("internal error in signaling")
            self.send(protocol.error("internal", "internal server error"))
            await self._close_after_flush(CLOSE_INTERNAL, "internal")

    async def _handle(self, msg: ClientMessage) -> None:
        """A room message: ``join`` to the membership, the others to their feature."""
        try:
            if isinstance(msg, protocol.Join):
                try:
                    await self._membership.join(self, msg)
                except RedirectedError as moved:
                    log.info("join redirected", room=msg.room, node=moved.node_id)
                    redirect = outbound.Redirect(
                        room=moved.room, node=moved.node_id, url=moved.address
                    )
                    self._do(self.core.redirected(redirect.encode()))
                    return
                except ProtocolError as exc:
                    # for operators watching for guessing; never the token or password itself
                    (log.debug if exc.code == "rate_limited" else log.info)(
                        "join refused", room=msg.room, code=exc.code
                    )
                    self._do(self.core.join_refused(exc))
                    return
            elif isinstance(msg, protocol.BroadcasterJoin):
                await self._membership.join_hidden(self, msg)
            elif self._features.handles(msg):
                await self._features.dispatch(self, self.live, msg)
            else:
                raise ProtocolError("unknown_type", f"unknown message type {msg.type!r}", msg.type)
        except ProtocolError as exc:
            self._do(self.core.refused(exc))
            return
        self.core.handled()
