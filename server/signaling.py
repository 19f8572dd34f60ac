"""The WebSocket handler (websockets' ``serve(handler)``): caps connections per server and per
address, then serves each socket with a :class:`server.connection.ClientConnection`. The rooms
are the :class:`server.membership.Membership`'s; what participants do in them, the features'."""

from __future__ import annotations

from collections.abc import Callable

import structlog
from websockets.asyncio.server import ServerConnection

from media.api import MediaBackend

from . import __version__, outbound
from .admission import Admission
from .connection import ClientConnection, ConnectionCore
from .features import Dispatch
from .limits import ConnectionCounter
from .membership import LiveRoom, Membership
from .rooms import RoomRegistry
from .settings import Settings

log = structlog.get_logger(__name__)

#: a connection cap was reached (``server_full``, ``too_many_connections``): try again later
CLOSE_TRY_AGAIN_LATER = 1013


class SignalingServer:
    """Serves the WebSockets (:meth:`handle`)."""

    def __init__(self, *, settings: Settings, media: MediaBackend) -> None:
        self.settings = settings
        self.media = media
        self.registry = RoomRegistry(max_participants=settings.rooms.max_participants_per_room)
        self.admission = Admission(settings=settings, registry=self.registry)
        self.membership = Membership(
            settings=settings, media=media, registry=self.registry, admission=self.admission
        )
        #: every live room, by name
        self.rooms: dict[str, LiveRoom] = self.membership.rooms
        limits = settings.limits
        self.connections = ConnectionCounter(
            max_total=limits.max_connections,
            max_per_address=limits.max_connections_per_address,
        )
        #: every connection being served
        self.connections_open: set[ClientConnection] = set()
        self._trusted_proxies = frozenset(settings.server.trusted_proxies)
        #: the room features (set by the composition root with :meth:`use`)
        self.features = Dispatch(())
        #: a client changed the caption languages it reads (set by the composition root)
        self.on_languages_changed: Callable[[], None] | None = None

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
        core = ConnectionCore(
            limits=self.settings.limits,
            welcome=self._welcome,
            captions_on=self.on_languages_changed is not None,
        )
        connection = ClientConnection(
            ws,
            address=address,
            core=core,
            membership=self.membership,
            features=self.features,
            outbox_max_messages=self.settings.server.outbox_max_messages,
            on_languages_changed=self.on_languages_changed or (lambda: None),
        )
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

    def _welcome(self, version: int) -> str:
        # no ICE servers here: TURN credentials come with ``joined``, once admitted
        return outbound.Welcome(
            protocol=version,
            server=f"parley/{__version__}",
            max_message_bytes=self.settings.server.max_message_bytes,
            auth=self.admission.auth_mode,
        ).encode()
