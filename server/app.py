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
import signal
from typing import TYPE_CHECKING

import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from interpret.frames import translated_texts
from media.api import MediaBackend, OnAudio
from media.inline import InlineMediaBackend
from media.tap import SpeakerAudioQueue

from .broadcast import LIVE_PREFIX, BroadcastManager, worker_url
from .logs import configure_logging
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import ServerMetrics, gather_live_state
from .origins import WILDCARD_HOSTS, OriginPolicy, origin_policy, proxied_refusal, served_hosts
from .retention import Retention
from .settings import Settings
from .tls import TlsFiles, local_names, server_context, tls_files

if TYPE_CHECKING:
    from interpret.frames import CaptionFrame

    from .captions import CaptionService
from . import outbound
from .connection import ClientConnection
from .context import Feature
from .features import Dispatch
from .features.broadcast import BroadcastFeature
from .features.captions import CaptionsFeature
from .features.channels import ChannelsFeature
from .features.chat import ChatFeature
from .features.corrections import CorrectionsFeature
from .features.media import MediaFeature
from .features.moderation import ModerationFeature
from .features.presence import PresenceFeature
from .signaling import SignalingServer
from .web import StaticFiles, bytes_response, text_response

WS_PATH = "/ws"
__all__ = ["App", "build_media_backend", "configure_logging"]


def build_media_backend(settings: Settings, *, on_audio: OnAudio | None = None) -> MediaBackend:
    media_settings = dataclasses.replace(
        settings.media.to_media_settings(),
        audio_tap=settings.media.audio_tap or settings.captions.enabled,
    )
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
            )
            self.signaling.on_languages_changed = self.captions.languages_changed
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
        self.signaling.use(Dispatch(self._features()))
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
        ``server/features/``, and one line here). A joiner gets ``joined``, then the notice,
        the chat history, the broadcast state and the glossary, in this order."""
        settings, captions = self.settings, self.captions
        retention = self.retention if self.retention.enabled else None
        corrections = CorrectionsFeature(settings=settings.interpreting, retranslator=captions)
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
        return [
            MediaFeature(limits=settings.limits),
            PresenceFeature(retention=settings.retention, transcriber=captions),
            ChatFeature(
                settings=settings.chat,
                translator=captions,
                glossary=corrections.glossary,
                retention=retention,
            ),
            broadcast,
            corrections,
            channels,
            ModerationFeature(doors=self.signaling.membership),
            routing,
        ]

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def ready(self) -> bool:
        """What /readyz says: started, not draining, the speech worker (if any) up."""
        if self.phase != "ready":
            return False
        return self.captions is None or self.captions.worker.up

    async def _route(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == WS_PATH:
            if self.phase != "ready":  # starting or draining: try another server
                return text_response(503, "Service Unavailable", f"{self.phase}\n")
            return self._admit(request)  # None: go on with the WebSocket handshake
        if path == "/healthz":
            return text_response(200, "OK", "ok\n")
        if path == "/readyz":
            if self.ready:
                return text_response(200, "OK", "ready\n")
            reason = "speech worker down" if self.phase == "ready" else self.phase
            return text_response(503, "Service Unavailable", f"not ready: {reason}\n")
        if path == "/metrics" and self.settings.metrics.enabled:
            state = await gather_live_state(
                ready=self.ready,
                signaling=self.signaling,
                captions=self.captions,
                speaker_audio=self.speaker_audio,
                forward_totals=self.metrics.forward_totals,
            )
            return bytes_response(200, "OK", METRICS_CONTENT_TYPE, self.metrics.render(state))
        if path.startswith(LIVE_PREFIX):
            return await self.broadcasts.http_response(path, request.headers)
        response = self.static.response(path)
        return response if response is not None else text_response(404, "Not Found", "not found\n")

    def _admit(self, request: Request) -> Response | None:
        """HTTP 403 with the reason for an upgrade from another site's page, or, in open mode
        decided automatically, one that came through a proxy (PROTOCOL.md); else None."""
        assert self.origins is not None
        log = structlog.get_logger(__name__)
        refusal = self.origins.refusal(request.headers)
        if refusal is not None:
            log.info("websocket refused", reason="origin")
        elif self.auto_open:
            refusal = proxied_refusal(request.headers)
            if refusal is not None and not self._warned_proxied:
                self._warned_proxied = True  # once: the operator has to act, not read floods
                log.warning("open mode refuses proxied requests", reason=refusal)
        return None if refusal is None else text_response(403, "Forbidden", f"{refusal}\n")

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
        except BaseException:
            await self.stop()
            raise
        loop = asyncio.get_running_loop()
        self._probe = loop.create_task(self.metrics.probe_loop_lag(), name="loop-lag-probe")
        if self.retention.enabled:
            self._purger = loop.create_task(self.retention.run_purger(), name="retention-purger")
        self.phase = "ready"

    async def _listen(self) -> Server:
        s = self.settings.server
        return await serve(
            self.signaling.handle,
            s.host,
            s.port,
            process_request=self._route,
            max_size=s.max_message_bytes,
            ping_interval=s.ping_interval_s,
            ping_timeout=s.ping_timeout_s,
            max_queue=16,
            compression=None,
            ssl=None if self.tls is None else server_context(self.tls),
        )

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
        await self.media.aclose()
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
