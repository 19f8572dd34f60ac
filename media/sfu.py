"""One room's selective forwarding unit: peers, published tracks and who receives what."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCRtpReceiver, RTCRtpTransceiver
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from . import hooks
from .api import (
    EmitEvent,
    Kind,
    MediaSettings,
    OnAudio,
    TrackPublished,
    TrackSource,
    TrackUnpublished,
    default_source,
)
from .errors import MediaStateError, UnknownPeerError
from .forward import EncodedSource
from .peer import Peer, rtc_configuration
from .tap import AudioTap

log = logging.getLogger(__name__)


class _RtpTimestampUnwrapper:
    """32-bit RTP timestamps -> monotonically increasing ints; late or duplicate -> None."""

    def __init__(self) -> None:
        self._last: int | None = None
        self._extended = 0
        self._highest: int | None = None

    def unwrap(self, timestamp: int) -> int | None:
        if self._last is None:
            self._last = timestamp
        delta = (timestamp - self._last) & 0xFFFFFFFF
        if delta >= 1 << 31:
            delta -= 1 << 32
        self._extended += delta
        self._last = timestamp
        if self._highest is not None and self._extended <= self._highest:
            return None
        self._highest = self._extended
        return self._extended


@dataclass(eq=False)
class Publication:
    track_id: str
    kind: Kind
    #: camera, microphone or screen (``source`` is where the encoded frames come from)
    track_source: TrackSource
    publisher: Peer
    transceiver: RTCRtpTransceiver
    source: EncodedSource
    #: subscriber peer id -> the subscriber's m-line carrying this track
    subscriptions: dict[str, RTCRtpTransceiver] = field(default_factory=dict)
    #: decoded audio towards transcription (audio tracks, when the room taps audio)
    tap: AudioTap | None = None


class SfuRoom:
    """Implements :class:`media.api.MediaRoom` on aiortc, forwarding without transcoding."""

    def __init__(
        self,
        room_id: str,
        *,
        settings: MediaSettings,
        emit: EmitEvent,
        on_audio: OnAudio | None = None,
    ) -> None:
        self.room_id = room_id
        self._settings = settings
        self._emit = emit
        # Opus is decoded only when someone listens: settings.audio_tap alone decodes nothing.
        self._on_audio = on_audio if settings.audio_tap else None
        self._configuration = rtc_configuration(settings.ice_servers)
        self._peers: dict[str, Peer] = {}
        self._publications: dict[str, Publication] = {}
        self._track_ids = itertools.count(1)
        #: subscriber peer id -> publishers whose audio it is not sent (see hold_audio)
        self._audio_held: dict[str, frozenset[str]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        # what peers that left had been sent (stats() adds the live peers' totals)
        self._retired: dict[str, dict[str, int]] = {
            kind: {"frames": 0, "bytes": 0, "dropped": 0} for kind in ("audio", "video")
        }

    # -- MediaRoom -------------------------------------------------------------------------
    async def add_peer(self, peer_id: str, publish: Sequence[Kind] = ()) -> None:
        if peer_id in self._peers:
            raise MediaStateError(f"peer {peer_id} already in room")
        peer = Peer(
            peer_id,
            configuration=self._configuration,
            emit=self._emit,
            on_track=self._on_track,
            subscriber_max_frames=self._settings.subscriber_max_frames,
        )
        self._peers[peer_id] = peer
        for kind in dict.fromkeys(publish):
            peer.add_publish_slot(kind, default_source(kind))
        for publication in self._publications.values():
            self._subscribe(peer, publication)
        if self._publications or publish:
            peer.request_negotiation()

    async def remove_peer(self, peer_id: str) -> None:
        peer = self._peers.pop(peer_id, None)
        self._audio_held.pop(peer_id, None)
        if peer is None:
            return
        for publication in list(self._publications.values()):
            if publication.publisher is peer:
                await self._end_publication(publication)
            else:
                transceiver = publication.subscriptions.pop(peer_id, None)
                if transceiver is not None:
                    peer.remove_subscription(transceiver)
        for kind, counts in peer.forwarding_totals().items():
            for name, value in counts.items():
                self._retired[kind][name] += value
        await peer.aclose()

    async def publish(
        self, peer_id: str, kinds: Sequence[Kind], source: TrackSource | None = None
    ) -> None:
        peer = self._peer(peer_id)
        wanted = [(kind, source or default_source(kind)) for kind in kinds]
        already = peer.publish_slot_sources() & set(wanted)
        if already or len(set(wanted)) != len(wanted):
            shown = sorted(f"{kind} ({src})" for kind, src in already or set(wanted))
            raise MediaStateError(f"already publishing {', '.join(shown)}")
        for kind, src in wanted:
            peer.add_publish_slot(kind, src)
        peer.request_negotiation()

    async def unpublish(self, peer_id: str, track_id: str) -> None:
        peer = self._peer(peer_id)
        publication = self._publications.get(track_id)
        if publication is None or publication.publisher is not peer:
            raise MediaStateError(f"{track_id} is not a track of {peer_id}")
        await self._end_publication(publication)
        peer.deactivate(publication.transceiver)
        peer.request_negotiation()

    async def answer(self, peer_id: str, sdp: str, revision: int) -> None:
        await self._peer(peer_id).apply_answer(sdp, revision)

    async def hold_audio(self, subscriber_id: str, publisher_ids: Collection[str]) -> None:
        peer = self._peer(subscriber_id)
        held = frozenset(publisher_ids)
        if held:
            self._audio_held[subscriber_id] = held
        else:
            self._audio_held.pop(subscriber_id, None)
        for publication in self._publications.values():
            transceiver = publication.subscriptions.get(subscriber_id)
            if publication.kind == "audio" and transceiver is not None:
                peer.hold(transceiver, publication.publisher.peer_id in held)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        for peer_id in list(self._peers):
            await self.remove_peer(peer_id)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- observability ---------------------------------------------------------------------
    async def stats(self) -> dict[str, Any]:
        """Counters for metrics and benchmarks (no media content). ``forwarded``: frames
        (an Opus packet, a VP8 picture), payload bytes and drops sent to subscribers since the
        room opened, per kind (monotonic)."""
        forwarded = {kind: dict(counts) for kind, counts in self._retired.items()}
        for peer in self._peers.values():
            for kind, counts in peer.forwarding_totals().items():
                for name, value in counts.items():
                    forwarded[kind][name] += value
        return {
            "peers": len(self._peers),
            "forwarded": forwarded,
            "publications": {
                track_id: {
                    "kind": p.kind,
                    "publisher": p.publisher.peer_id,
                    "frames_in": p.source.frames_in,
                    "keyframes_in": p.source.keyframes_in,
                    "pli_requests": p.source.pli_requests,
                    "pli_sent": p.source.pli_sent,
                    "pli_retries": p.source.pli_retries,
                    **({"tap": p.tap.stats()} if p.tap is not None else {}),
                    "subscribers": {
                        track.subscriber_id: {
                            "forwarded": track.forwarded,
                            "dropped": track.dropped,
                            "held": track.held,
                            "withheld": track.withheld,
                        }
                        for track in p.source.subscribers
                    },
                }
                for track_id, p in self._publications.items()
            },
        }

    # -- internals -------------------------------------------------------------------------
    def _peer(self, peer_id: str) -> Peer:
        try:
            return self._peers[peer_id]
        except KeyError:
            raise UnknownPeerError(peer_id) from None

    def _on_track(
        self, peer: Peer, transceiver: RTCRtpTransceiver, track: MediaStreamTrack
    ) -> None:
        kind: Kind = "video" if track.kind == "video" else "audio"
        receiver = transceiver.receiver
        slot = peer.slot_of(transceiver)
        if (
            slot is None
            or slot.direction != "publish"
            or slot.kind != kind
            or peer.peer_id not in self._peers
        ):
            # Media we did not ask for: never decode it, just drain it.
            hooks.tap_decoder_queue(receiver, None, decode=False)
            self._spawn(self._drain(track, None), f"drain-unexpected-{peer.peer_id}")
            return
        source = self._attach_source(kind, receiver)
        track_id = f"{peer.peer_id}-{kind}-{next(self._track_ids)}"
        publication = Publication(track_id, kind, slot.source, peer, transceiver, source)
        if kind == "audio" and self._on_audio is not None:
            publication.tap = AudioTap(
                room_id=self.room_id,
                peer_id=peer.peer_id,
                track_id=track_id,
                on_audio=self._on_audio,
            )
        self._publications[track_id] = publication
        peer.set_slot_track(transceiver, track_id)
        self._spawn(self._drain(track, publication), f"drain-{track_id}")
        self._emit(TrackPublished(peer.peer_id, track_id, kind, slot.source))
        for other in self._peers.values():
            if other is not peer:
                self._subscribe(other, publication)
                other.request_negotiation()

    def _attach_source(self, kind: Kind, receiver: RTCRtpReceiver) -> EncodedSource:
        async def send_pli(media_ssrc: int) -> None:
            await hooks.send_pli(receiver, media_ssrc)

        source = EncodedSource(
            kind,
            send_pli=send_pli,
            pli_min_interval_s=self._settings.pli_min_interval_s,
        )
        if kind == "video":

            def on_frame(codec: RTCRtpCodecParameters, frame: JitterFrame) -> None:
                source.push_video_frame(frame.data, frame.timestamp)

            def on_rtp(packet: RtpPacket, is_media: bool) -> None:
                if is_media:
                    source.media_ssrc = packet.ssrc

            hooks.tap_decoder_queue(receiver, on_frame, decode=False)
            hooks.wrap_rtp_handler(receiver, on_rtp)
            hooks.on_picture_loss(receiver, source.picture_lost)
        else:
            # Opus is forwarded per RTP packet: aiortc's audio jitter buffer adds 80 ms and
            # stalls on a loss (no audio NACK), fine for a decoder but not for a relay.
            unwrapper = _RtpTimestampUnwrapper()

            def on_audio_rtp(packet: RtpPacket, is_media: bool) -> None:
                if not (is_media and packet.payload and hooks.receiver_enabled(receiver)):
                    return
                timestamp = unwrapper.unwrap(packet.timestamp)
                if timestamp is not None:
                    source.push_audio_packet(packet.payload, timestamp)

            # With the tap on, aiortc's decoder thread decodes the jitter buffer's frames onto
            # the remote track, where _drain hands them to the publication's AudioTap.
            hooks.tap_decoder_queue(receiver, None, decode=self._on_audio is not None)
            hooks.wrap_rtp_handler(receiver, on_audio_rtp)
        return source

    def _subscribe(self, peer: Peer, publication: Publication) -> None:
        transceiver = peer.add_subscription(
            publication.source,
            kind=publication.kind,
            publisher_id=publication.publisher.peer_id,
            track_id=publication.track_id,
            track_source=publication.track_source,
        )
        publication.subscriptions[peer.peer_id] = transceiver
        if publication.kind == "audio":  # a reused m-line may have been held for another
            held = self._audio_held.get(peer.peer_id, frozenset())
            peer.hold(transceiver, publication.publisher.peer_id in held)

    async def _end_publication(self, publication: Publication) -> None:
        if self._publications.pop(publication.track_id, None) is None:
            return
        await publication.source.aclose()
        for sub_id, transceiver in publication.subscriptions.items():
            subscriber = self._peers.get(sub_id)
            if subscriber is not None:
                subscriber.remove_subscription(transceiver)
                subscriber.request_negotiation()
        publication.subscriptions.clear()
        self._emit(TrackUnpublished(publication.publisher.peer_id, publication.track_id))

    async def _drain(self, track: MediaStreamTrack, publication: Publication | None) -> None:
        """Own the remote track until it ends (aiortc's track queue is unbounded)."""
        tap = publication.tap if publication is not None else None
        try:
            while True:
                frame = await track.recv()
                if tap is not None:
                    tap.push(frame)
        except MediaStreamError:
            pass
        if tap is not None:
            tap.end_input()
        if publication is not None and not self._closed:
            await self._end_publication(publication)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("media task %s failed", task.get_name(), exc_info=task.exception())
