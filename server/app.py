"""Composition root: builds the parts from settings, starts them, and stops them in one order.

Shutdown order (SIGTERM, SIGINT or ``stop()``): draining (``/readyz`` and new WebSockets get
503) -> every participant and lobby waiter gets ``server_closing`` -> the speech worker finishes
the utterances in progress and their finals are sent (``shutdown_flush_timeout_s``) -> the
outboxes drain -> every client is closed with 1001 (each handler then removes its participant,
which closes its peer connection; ``shutdown_timeout_s``) -> close the media backend (rooms,
worker processes) -> end the speaker-audio queue (its readers see the end).
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import hmac
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from interpret.frames import translated_texts
from media.api import MediaBackend, OnAudio
from media.inline import InlineMediaBackend
from media.tap import SpeakerAudioQueue

from .audience.compose import build_audience
from .broadcast import LIVE_PREFIX, BroadcastManager, worker_url
from .logs import configure_logging
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import ServerMetrics, gather_live_state
from .origins import WILDCARD_HOSTS, OriginPolicy, origin_policy, proxied_refusal, served_hosts
from .recordings import PREFIX as RECORDINGS_PREFIX
from .retention import Retention
from .settings import ConfigError, Settings
from .tls import TlsFiles, local_names, server_context, tls_files

if TYPE_CHECKING:
    from interpret.frames import CaptionFrame

    from .audience.service import AudienceService
    from .captions import CaptionService
    from .cluster.node import ClusterNode, MediaLink
    from .cluster.speech import SpeechDemand
from . import outbound
from .connection import ClientConnection
from .context import Feature
from .features import Dispatch
from .features.audience import AudienceFeature
from .features.broadcast import BroadcastFeature
from .features.captions import CaptionsFeature
from .features.channels import ChannelsFeature
from .features.chat import ChatFeature
from .features.cluster import ClusterAudience, ClusterFeature
from .features.corrections import CorrectionsFeature
from .features.media import MediaFeature
from .features.moderation import ModerationFeature
from .features.presence import PresenceFeature
from .signaling import CLOSE_TRY_AGAIN_LATER, SignalingServer
from .web import StaticFiles, bytes_response, text_response

WS_PATH = "/ws"
#: where remote speech workers connect (``parley speech-worker --connect``)
SPEECH_WORKER_PATH = "/speech-worker"
#: shortest shared secret accepted for remote speech workers
MIN_WORKER_SECRET_BYTES = 16
__all__ = ["App", "build_media_backend", "configure_logging"]


def build_media_backend(settings: Settings, *, on_audio: OnAudio | None = None) -> MediaBackend:
    media_settings = dataclasses.replace(
        settings.media.to_media_settings(),
        audio_tap=settings.media.audio_tap or settings.captions.enabled,
    )
    if settings.media.backend == "janus":
        from media.janus_room import JanusMediaBackend

        janus = settings.media.to_janus_settings()
        return JanusMediaBackend(media_settings, janus=janus, on_audio=on_audio)
    if media_settings.isolation == "process":
        from media.process import ProcessMediaBackend

        return ProcessMediaBackend(media_settings, on_audio=on_audio)
    return InlineMediaBackend(media_settings, on_audio=on_audio)


class ListenError(Exception):
    """The server could not listen on its address; the message says why and what to do."""

    def __init__(self, host: str, port: int, cause: OSError) -> None:
        if cause.errno == errno.EADDRINUSE:
            why = "the port is already in use (another Parley server, or another program)"
            step = "stop that one, or choose another port with --port or server.port"
        elif cause.errno == errno.EACCES:
            why = "permission denied (ports below 1024 need privileges)"
            step = "choose a port of 1024 or more with --port or server.port"
        elif cause.errno == errno.EADDRNOTAVAIL:
            why = "this machine has no such address"
            step = "choose one of its addresses with --host or server.host"
        else:
            why = cause.strerror or str(cause)
            step = "check server.host and server.port"
        super().__init__(f"cannot listen on {host}:{port}: {why}; {step}")
        self.errno = cause.errno


def _worker_secret(path: str) -> bytes | None:
    """The shared secret of remote speech workers, from ``[captions] worker_secret_file``."""
    if not path:
        return None
    try:
        secret = Path(path).expanduser().read_bytes().strip()
    except OSError as exc:
        why = f"captions.worker_secret_file: cannot read {path}: {exc.strerror}"
        raise ConfigError(why) from exc
    if len(secret) < MIN_WORKER_SECRET_BYTES:
        raise ConfigError(
            f"captions.worker_secret_file: the secret has {len(secret)} bytes; use at least "
            f"{MIN_WORKER_SECRET_BYTES} (openssl rand -hex 32)"
        )
    return secret


class App:
    """The running server: ``start()``, then ``stop()`` (idempotent)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        #: every speaker's decoded audio when ``[media] audio_tap`` is on (for captions)
        captions_on = settings.captions.enabled
        self.speaker_audio = (
            SpeakerAudioQueue() if settings.media.audio_tap or captions_on else None
        )
        self.media = build_media_backend(
            settings, on_audio=None if self.speaker_audio is None else self.speaker_audio.put
        )
        self.signaling = SignalingServer(settings=settings, media=self.media)
        self.captions: CaptionService | None = None
        if captions_on and self.speaker_audio is not None:
            from .captions import CaptionService

            self.captions = CaptionService(
                config=settings.captions.pipeline_config(),
                audio=self.speaker_audio,
                close_timeout_s=settings.server.shutdown_flush_timeout_s,
                worker_nice=settings.captions.worker_nice,
                workers=settings.captions.local_workers(),
                speakers_per_worker=settings.captions.speakers_per_worker,
            )
            self.signaling.on_languages_changed = self.captions.languages_changed
        #: the secret remote speech workers present (None: they are refused)
        self.worker_secret = _worker_secret(settings.captions.worker_secret_file)
        self.static = StaticFiles()
        self.broadcasts = BroadcastManager(
            settings=settings, verifier=self.signaling.admission.verifier
        )
        self.metrics = ServerMetrics(
            loop_lag_interval_s=settings.metrics.loop_lag_interval_ms / 1000
        )
        if self.captions is not None:
            self.captions.on_final_latency = self.metrics.caption_latency.observe
        self.retention = Retention(settings.retention, settings.server.data_path())
        self.broadcasts.recordings = self.retention.recordings
        #: audience (issue 16): questions, comments and polls from viewers (made with the
        #: features: it renders a room's glossary as captions do)
        self.audience: AudienceService | None = None
        #: this node's part in a cluster (issue 18; None: a single node)
        self.cluster: ClusterNode | None = self._cluster_node()
        self.signaling.use(Dispatch(self._features()))
        if self.audience is not None and self.cluster is not None:  # audiences of rooms that
            self.audience.directory = ClusterAudience(directory=self.cluster)  # are elsewhere,
            self.audience.snapshots = self.cluster  # boards that outlive their node
        if self.captions is not None and self.retention.enabled:
            self.captions.on_final = self._retain_caption
        #: the certificate served ([tls]); None = plain HTTP
        self.tls: TlsFiles | None = None
        self._purger: asyncio.Task[None] | None = None
        #: "starting" (listening; /readyz 503, /ws refused) -> "ready" -> "draining" -> "stopped"
        self.phase = "starting"
        self._server: Server | None = None
        self._probe: asyncio.Task[None] | None = None
        self._stopped = False
        #: who may open /ws (server.origins); made once the listening port is known
        self.origins: OriginPolicy | None = None
        #: open mode because ``[auth] mode = "auto"`` found no token key on a loopback host:
        #: requests that came through a proxy are refused (server.origins.proxied_refusal)
        self.auto_open = settings.auth.mode == "auto" and settings.auth_mode() == "open"
        self._warned_proxied = False

    def _features(self) -> list[Feature]:
        """The room features, in the order their hooks run (a new feature: its module in
        ``server/features/``, and one line here). A joiner gets ``joined``, then the notice
        (and ``captions_status`` while captions are paused), the chat history, the broadcast
        state and the glossary, in this order."""
        settings, captions = self.settings, self.captions
        retention = self.retention if self.retention.enabled else None
        corrections = CorrectionsFeature(
            settings=settings.interpreting, retranslator=captions, snapshots=self.cluster
        )
        channels = ChannelsFeature(settings=settings.interpreting, recognizer=captions)
        routing = CaptionsFeature(
            rooms=self.signaling.rooms, channels=channels, notes=corrections, service=captions
        )
        if captions is not None:
            captions.router = routing
        broadcast = BroadcastFeature(
            broadcasts=self.broadcasts, rooms_on_air=settings.broadcast.rooms
        )
        self.signaling.membership.hidden_seats = broadcast
        self.audience = build_audience(
            settings,
            self.retention,
            translator=captions,
            glossary=corrections.glossary,
            may_watch=self.broadcasts.may_watch,
            verifier=self.signaling.admission.verifier,
        )
        if self.audience is not None:  # on stage: a pass admits an invited viewer, dismissal
            self.audience.stage_doors = self.signaling.membership  # takes them out
            self.signaling.admission.stage_passes = self.audience
        cluster: list[Feature] = []
        if self.cluster is not None:
            cluster.append(ClusterFeature(directory=self.cluster))
        return [
            *cluster,
            MediaFeature(limits=settings.limits, engine=settings.media.backend),
            PresenceFeature(retention=settings.retention, transcriber=captions),
            ChatFeature(
                settings=settings.chat,
                translator=captions,
                glossary=corrections.glossary,
                retention=retention,
            ),
            broadcast,
            AudienceFeature(audience=self.audience),
            corrections,
            channels,
            ModerationFeature(doors=self.signaling.membership),
            routing,
        ]

    def _cluster_node(self) -> ClusterNode | None:
        """The cluster membership when ``[cluster] redis_url`` is set (its address is known
        once the port is: :meth:`_join_cluster`)."""
        if not self.settings.cluster.enabled:
            return None
        from .cluster.node import NodeLoad, cluster_node

        membership = self.signaling.membership

        def load() -> NodeLoad:
            rooms = membership.rooms
            speech = self._speech_demand(node.address)
            return NodeLoad(sum(len(r.clients) for r in rooms.values()), list(rooms), speech)

        node = cluster_node(self.settings.cluster, load=load, media=self._media_link())
        membership.placement = node
        node.on_lost = membership.moved
        return node

    def _media_link(self) -> MediaLink | None:
        """The Janus this node drives (``[media] backend = "janus"``), asked ``info`` at each
        heartbeat: it appears in the cluster directory while it answers."""
        if self.settings.media.backend != "janus":
            return None
        from media.janus_room import JanusMediaBackend

        from .cluster.media import MediaStatus
        from .cluster.node import MediaLink

        backend = self.media
        assert isinstance(backend, JanusMediaBackend)

        async def probe(timeout_s: float) -> MediaStatus:
            status = await backend.status(timeout_s=timeout_s)
            return MediaStatus(
                version=status.version,
                rooms=status.rooms,
                participants=status.participants,
                streams=status.streams,
            )

        return MediaLink(url=self.settings.media.janus_url, probe=probe)

    def _speech_demand(self, address: str) -> SpeechDemand | None:
        """What this node tells the cluster's speech workers (``parley speech-worker
        --cluster``): where they connect and its caption demand; None when it takes no remote
        worker (captions off, no ``[captions] worker_secret_file``)."""
        if self.captions is None or self.worker_secret is None:
            return None
        from .cluster.speech import SpeechDemand, speech_worker_url

        pool = self.captions.worker
        up = [w for w in pool.workers() if w.up]
        return SpeechDemand(
            url=speech_worker_url(address),
            speakers=pool.speaker_count,
            waiting=pool.waiting_count,
            workers=len(up),
            capacity=sum(w.capacity for w in up),
        )

    async def _join_cluster(self) -> None:
        """Register this node (its address from the listening port when not configured);
        Redis must answer."""
        assert self.cluster is not None
        s = self.settings.server
        scheme = "wss" if self.tls is not None else "ws"
        host = f"[{s.host}]" if ":" in s.host else s.host
        try:
            await self.cluster.start(default_address=f"{scheme}://{host}:{self.port}{WS_PATH}")
        except Exception as exc:
            raise ConfigError(
                f"cluster.redis_url: cannot register this node with Redis ({exc})"
            ) from exc
        structlog.get_logger(__name__).info(
            "joined the cluster", node=self.cluster.node_id, address=self.cluster.address
        )

    async def _live_elsewhere(self, path: str, full_path: str) -> Response | None:
        """In a cluster, a room's broadcast and audience documents (``/live/<room>/...``) are
        its node's: a request that reached another node is sent there (307; not the audience
        socket: a browser's WebSocket does not follow an HTTP redirect, so the socket opens
        here and is answered ``redirect``, :meth:`AudienceService.handle`)."""
        if self.cluster is None or (
            self.audience is not None and self.audience.is_socket_path(path)
        ):
            return None
        room = path[len(LIVE_PREFIX) :].split("/", 1)[0]
        if not room or room in self.signaling.rooms:
            return None
        holder = await self.cluster.holder(room)
        if holder is None:
            return None
        from .cluster.placement import http_base

        location = http_base(holder.address) + full_path
        headers = Headers(
            [("Location", location), ("Content-Length", "0"), ("Cache-Control", "no-store")]
        )
        return Response(307, "Temporary Redirect", headers, b"")

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def ready(self) -> bool:
        """What /readyz says: started, not draining, a speech worker up (if captions are on and
        this server runs local workers; with remote workers only it is ready without one, and
        captions wait for one)."""
        return self.readiness()[0]

    def readiness(self) -> tuple[bool, str]:
        """Ready or not, and the detail line /readyz gives."""
        if self.phase != "ready":
            return False, self.phase
        if self.captions is None:
            return True, "ready"
        pool = self.captions.worker
        workers = pool.workers()
        up = sum(w.up for w in workers)
        if up:
            return True, f"ready; speech workers up: {up} of {len(workers)}"
        if pool.configured_workers == 0:
            return True, "ready; captions paused: no speech worker connected"
        return False, "speech worker down"

    async def _route(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == WS_PATH:
            if self.phase != "ready":  # starting or draining: try another server
                return text_response(503, "Service Unavailable", f"{self.phase}\n")
            return self._admit(request)  # None: go on with the WebSocket handshake
        if path == SPEECH_WORKER_PATH:
            return self._admit_worker(connection, request)
        if path == "/healthz":
            return text_response(200, "OK", "ok\n")
        if path == "/readyz":
            ready, detail = self.readiness()
            if ready:
                return text_response(200, "OK", f"{detail}\n")
            return text_response(503, "Service Unavailable", f"not ready: {detail}\n")
        if path == "/metrics" and self.settings.metrics.enabled:
            state = await gather_live_state(
                ready=self.ready,
                signaling=self.signaling,
                captions=self.captions,
                speaker_audio=self.speaker_audio,
                forward_totals=self.metrics.forward_totals,
                audience=self.audience,
                cluster=None if self.cluster is None else self.cluster.stats,
            )
            return bytes_response(200, "OK", METRICS_CONTENT_TYPE, self.metrics.render(state))
        if path.startswith(LIVE_PREFIX):
            elsewhere = await self._live_elsewhere(path, request.path)
            if elsewhere is not None:
                return elsewhere
            if self.audience is not None:  # audience (issue 16): its socket and documents
                if self.audience.is_socket_path(path):
                    return (
                        self._admit(request)
                        if self.phase == "ready"
                        else text_response(503, "Service Unavailable", f"{self.phase}\n")
                    )
                document = self.audience.document_response(path, request.headers)
                if document is not None:
                    return document
            return await self.broadcasts.http_response(path, request.headers)
        if path.startswith(RECORDINGS_PREFIX) and self.retention.recordings is not None:
            return await asyncio.to_thread(self.retention.recordings.http_response, path)
        sockets = [] if self.cluster is None else self.cluster.socket_origins()
        response = self.static.response(path, connect_src=sockets)
        return response if response is not None else text_response(404, "Not Found", "not found\n")

    def _admit(self, request: Request) -> Response | None:
        """HTTP 403 with the reason for an upgrade from another site's page, or, in open mode
        decided automatically, one that came through a proxy (PROTOCOL.md); else None."""
        assert self.origins is not None
        log = structlog.get_logger(__name__)
        cluster_pages = frozenset() if self.cluster is None else self.cluster.page_origins()
        refusal = self.origins.refusal(request.headers, also=cluster_pages)
        if refusal is not None:
            log.info("websocket refused", reason="origin")
        elif self.auto_open:
            refusal = proxied_refusal(request.headers)
            if refusal is not None and not self._warned_proxied:
                self._warned_proxied = True  # once: the operator has to act, not read floods
                log.warning("open mode refuses proxied requests", reason=refusal)
        return None if refusal is None else text_response(403, "Forbidden", f"{refusal}\n")

    def _admit_worker(self, connection: ServerConnection, request: Request) -> Response | None:
        """A remote speech worker may connect with the shared secret (constant-time compare);
        every refusal is logged with its reason (never the secret)."""
        log = structlog.get_logger(__name__)
        address = connection.remote_address[0] if connection.remote_address else "?"
        if self.captions is None:
            return text_response(404, "Not Found", "captions are off\n")
        if self.phase in ("draining", "stopped"):
            return text_response(503, "Service Unavailable", f"{self.phase}\n")
        if self.worker_secret is None:
            reason = "remote speech workers are not enabled ([captions] worker_secret_file)"
        else:
            given = request.headers.get("Authorization", "")
            scheme, _, token = given.partition(" ")
            presented = token.strip().encode() if scheme.lower() == "bearer" else b""
            if not presented:
                reason = "no secret presented"
            elif hmac.compare_digest(presented, self.worker_secret):
                return None  # go on with the WebSocket handshake
            else:
                reason = "wrong secret"
        log.warning("speech worker refused", reason=reason, address=address)
        return text_response(403, "Forbidden", f"{reason}\n")

    async def _serve_worker(self, connection: ServerConnection) -> None:
        from interpret.framing import WireFormatError
        from interpret.remote import decode_message
        from interpret.wire import PROTOCOL_VERSION, Announce

        assert self.captions is not None
        log = structlog.get_logger(__name__)
        address = connection.remote_address[0] if connection.remote_address else "?"
        try:
            async with asyncio.timeout(self.settings.limits.hello_timeout_s):
                announce = decode_message(await connection.recv())
        except (TimeoutError, WireFormatError) as exc:
            log.warning("speech worker refused", reason=f"no announce ({exc})", address=address)
            await connection.close(1002, "announce first")
            return
        if not isinstance(announce, Announce) or announce.version != PROTOCOL_VERSION:
            log.warning("speech worker refused", reason="protocol", address=address)
            await connection.close(1002, f"speech worker protocol {PROTOCOL_VERSION} expected")
            return
        log.info(
            "speech worker connected",
            name=announce.name,
            device=announce.device,
            capacity=announce.capacity,
            address=address,
        )
        worker_id = await self.captions.worker.serve_remote(connection, announce)
        log.info("speech worker left", worker=worker_id, address=address)

    async def _origin_policy(self) -> OriginPolicy:
        s, tls = self.settings.server, self.settings.tls
        names: list[str] = []
        if s.host in WILDCARD_HOSTS:  # this machine's name and addresses (no DNS)
            names = await asyncio.to_thread(local_names, tls.self_signed_names, s.host)
        hosts = served_hosts(host=s.host, local_names=names)
        if tls.mode == "self-signed":  # names the operator gave this server's certificate
            hosts += tls.self_signed_names
        return origin_policy(
            hosts=hosts,
            port=self.port,
            tls=self.tls is not None,
            public_url=s.public_url,
            allowed_origins=s.allowed_origins,
            origin_required=self.settings.auth_mode() == "open",
        )

    async def start(self) -> None:
        """Listen first (so /healthz and /readyz answer while models load), then start the
        media backend and the speech worker; ready when all are up."""
        s = self.settings.server
        self.tls = await asyncio.to_thread(tls_files, self.settings)
        try:
            self._server = await self._listen()
        except OSError as exc:
            raise ListenError(s.host, s.port, exc) from exc
        try:
            self.origins = await self._origin_policy()
            self.broadcasts.ws_url = worker_url(self.settings, self.port, self.tls is not None)
            await self.media.start()
            if self.captions is not None:
                await self.captions.start()
            if self.cluster is not None:
                await self._join_cluster()
        except BaseException:
            await self.stop()
            raise
        loop = asyncio.get_running_loop()
        if self.audience is not None:
            self.audience.start()
        self._probe = loop.create_task(self.metrics.probe_loop_lag(), name="loop-lag-probe")
        if self.retention.enabled:
            self._purger = loop.create_task(self.retention.run_purger(), name="retention-purger")
        self.phase = "ready"

    async def _listen(self) -> Server:
        s = self.settings.server
        return await serve(
            self._handle,
            s.host,
            s.port,
            process_request=self._route,
            max_size=s.max_message_bytes,
            ping_interval=s.ping_interval_s,
            ping_timeout=s.ping_timeout_s,
            max_queue=16,
            compression=None,
            # a peer that never answers our close frame is dropped after this (websockets'
            # default, 10 s, kept a stopping server alive 8 s after "stopped")
            close_timeout=s.shutdown_timeout_s,
            ssl=None if self.tls is None else server_context(self.tls),
        )

    async def _handle(self, ws: ServerConnection) -> None:
        """Every WebSocket: /ws (signaling), a remote speech worker (/speech-worker, admitted by
        the route), or an audience socket (/live/<room>/audience, issue 16)."""
        path = ws.request.path.split("?", 1)[0] if ws.request is not None else ""
        if path == SPEECH_WORKER_PATH and self.captions is not None:
            await self._serve_worker(ws)
            return
        if self.audience is not None and self.audience.is_socket_path(path):
            address = self.signaling.client_address(ws)
            refused = self.signaling.connections.open(address)
            if refused is not None:
                await ws.close(CLOSE_TRY_AGAIN_LATER, refused)
                return
            try:
                await self.audience.handle(ws, address)
            finally:
                self.signaling.connections.close(address)
            return
        await self.signaling.handle(ws)

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.phase = "draining"
        background = [t for t in (self._probe, self._purger) if t is not None]
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        log = structlog.get_logger(__name__)
        began = asyncio.get_running_loop().time()
        if self.cluster is not None:  # first: the rooms are free for the other nodes at once
            await self.cluster.leave()
        self.broadcasts.begin_shutdown()
        clients = self._tell_clients_closing()
        if self.captions is not None:
            await self.captions.drain()
        drained = [asyncio.ensure_future(c.outbox.drained()) for c in clients]
        if drained:
            _, pending = await asyncio.wait(drained, timeout=1.0)
            for future in pending:
                future.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            self._server.close(close_connections=True)  # 1001 to every client
            try:
                await asyncio.wait_for(
                    self._server.wait_closed(), self.settings.server.shutdown_timeout_s
                )
            except TimeoutError:
                log.warning("connections did not close in time")
        await self.broadcasts.aclose()
        if self.audience is not None:
            await self.audience.aclose()
        await self.media.aclose()
        if self.cluster is not None:
            await self.cluster.aclose()
        if self.captions is not None:
            await self.captions.aclose()
        if self.speaker_audio is not None:
            await self.speaker_audio.aclose()
        self.phase = "stopped"
        log.info("stopped", shutdown_s=round(asyncio.get_running_loop().time() - began, 2))

    def _retain_caption(self, room: str, frame: CaptionFrame) -> None:
        self.retention.record(
            room,
            "captions",
            {
                "caption_id": frame.caption_id,
                "participant_id": frame.speaker_id,
                "lang": frame.lang,
                "text": frame.text,
                "translations": translated_texts(frame.translations),
                "start_s": round(frame.start_s, 3),
                "end_s": round(frame.end_s, 3),
                "machine_generated": True,
            },
        )

    def _tell_clients_closing(self) -> list[ClientConnection]:
        """``server_closing`` to everybody in a room or a lobby (PROTOCOL.md)."""
        message = outbound.ServerClosing(
            reason="shutdown",
            flush_timeout_ms=int(self.settings.server.shutdown_flush_timeout_s * 1000),
        ).encode()
        told = [c for c in self.signaling.connections_open if c.live is not None]
        for client in told:
            client.send(message)
        return told

    async def run_forever(self) -> None:
        await self.start()
        if self.captions is not None:  # once the port is ours: a second server says one line
            from .translation_check import log_translation

            await log_translation(self.settings.captions)
        s = self.settings.server
        log = structlog.get_logger(__name__)
        scheme = "https" if self.tls is not None else "http"
        log.info(
            "listening",
            url=f"{scheme}://{s.host}:{self.port}/",
            isolation=self.settings.media.isolation,
        )
        log.info(
            "auth mode",
            mode=self.settings.auth_mode(),
            decided="automatically" if self.settings.auth.mode == "auto" else "by configuration",
        )
        if self.tls is not None:
            log.info(
                "tls certificate",
                mode=self.settings.tls.mode,
                cert=str(self.tls.cert_path),
                generated=self.tls.generated,
                sha256_fingerprint=self.tls.fingerprint,
            )
        log.info("stored on disk", what=self.retention.describe())
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        try:
            await stopping.wait()
            log.info("shutting down")
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            await self.stop()
