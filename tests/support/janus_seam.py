"""Participants on aiortc that drive a :class:`media.janus_room.JanusRoom` through the
:class:`media.api.MediaRoom` seam as the signaling server would: they answer
:class:`OfferReady` on their receiving peer connection and offer their send-only publish peer
connection (:meth:`JanusRoom.publish_offer`, PROTOCOL.md "Janus engine"). ``open_rig`` makes a
backend and a room on a running Janus (``tests/support/janus.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, VideoFrame

from media.api import (
    EmitEvent,
    JanusSettings,
    Kind,
    MediaEvent,
    MediaSettings,
    OfferReady,
    PeerFailed,
    PublishAnswer,
    SpeakerAudio,
    TrackPublished,
    TrackSource,
    TrackUnpublished,
    default_source,
)
from media.janus_room import JanusMediaBackend, JanusRoom
from media.peer import rtc_configuration

from .client import dominant_frequency, read_counter
from .janus import RunningJanus


@dataclass
class Received:
    video_frames: int = 0
    first_video_s: float | None = None
    counters: list[int] = field(default_factory=list)
    audio_frames: int = 0
    audio: list[np.ndarray] = field(default_factory=list)


class SeamPeer:
    """A participant on aiortc that talks to a :class:`JanusRoom` as the server would."""

    def __init__(self, peer_id: str, room: JanusRoom) -> None:
        self.peer_id = peer_id
        self.room = room
        self.sub_pc = RTCPeerConnection(rtc_configuration(()))
        self.pub_pc = RTCPeerConnection(rtc_configuration(()))
        self.received: dict[str, Received] = {}
        self.slots: dict[str, str] = {}  # mid -> publisher id
        self.slot_sources: dict[str, TrackSource] = {}  # mid -> what it carries
        self.sources: dict[str, TrackSource] = {}  # own publish mids
        self.published: list[TrackPublished] = []
        self.unpublished: list[TrackUnpublished] = []
        self.failed: list[PeerFailed] = []
        self.answered_s: float | None = None
        self.offers = 0
        self._publish_revision = 0
        self._publish_answer: asyncio.Future[str] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.sub_pc.on("track", self._on_track)

    def on_event(self, event: MediaEvent) -> None:
        if isinstance(event, OfferReady):
            self.slots.update({mid: s.participant_id for mid, s in event.slots.items()})
            self.slot_sources.update({mid: s.source for mid, s in event.slots.items()})
            self._spawn(self._answer(event))
        elif isinstance(event, PublishAnswer):
            assert self._publish_answer is not None
            self._publish_answer.set_result(event.sdp)
        elif isinstance(event, TrackPublished):
            self.published.append(event)
        elif isinstance(event, TrackUnpublished):
            self.unpublished.append(event)
        elif isinstance(event, PeerFailed):
            self.failed.append(event)

    async def publish(
        self,
        tracks: list[MediaStreamTrack],
        source: TrackSource | None = None,
        *,
        revision: int | None = None,
    ) -> None:
        kinds = [t.kind for t in tracks]
        await self.room.publish(self.peer_id, kinds, source)  # type: ignore[arg-type]
        added = [self.pub_pc.addTransceiver(t, direction="sendonly") for t in tracks]
        await self.pub_pc.setLocalDescription(await self.pub_pc.createOffer())
        for transceiver in added:
            kind: Kind = "audio" if transceiver.kind == "audio" else "video"
            self.sources[str(transceiver.mid)] = source or default_source(kind)
        self._publish_answer = asyncio.get_running_loop().create_future()
        self._publish_revision = revision or self._publish_revision + 1
        await self.room.publish_offer(
            self.peer_id,
            self.pub_pc.localDescription.sdp,
            self._publish_revision,
            self.sources,
        )
        sdp = await asyncio.wait_for(self._publish_answer, 10)
        await self.pub_pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def _answer(self, offer: OfferReady) -> None:
        await self.sub_pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type="offer"))
        await self.sub_pc.setLocalDescription(await self.sub_pc.createAnswer())
        await self.room.answer(self.peer_id, self.sub_pc.localDescription.sdp, offer.revision)
        self.offers += 1
        self.answered_s = time.monotonic()

    def _on_track(self, track: MediaStreamTrack) -> None:
        mid = next(t.mid for t in self.sub_pc.getTransceivers() if t.receiver.track is track)
        self._spawn(self._consume(track, str(mid)))

    async def _consume(self, track: MediaStreamTrack, mid: str) -> None:
        try:
            while True:
                frame = await track.recv()
                media = self.received.setdefault(self.slots.get(mid, "?"), Received())
                if isinstance(frame, VideoFrame):
                    media.video_frames += 1
                    if media.first_video_s is None:
                        media.first_video_s = time.monotonic()
                    media.counters.append(read_counter(frame))
                elif isinstance(frame, AudioFrame):
                    media.audio_frames += 1
                    media.audio.append(frame.to_ndarray().reshape(-1)[::2])  # left channel
        except MediaStreamError:
            pass

    def _spawn(self, coro: object) -> None:
        task = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def media_from(self, peer_id: str) -> Received:
        return self.received.setdefault(peer_id, Received())

    async def close(self) -> None:
        await self.sub_pc.close()
        await self.pub_pc.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@dataclass
class Rig:
    room: JanusRoom
    peers: dict[str, SeamPeer]
    taps: list[SpeakerAudio]
    #: peer id -> event handler, for participants that are not SeamPeers (a browser page)
    extra: dict[str, EmitEvent]

    async def join(self, peer_id: str) -> SeamPeer:
        peer = SeamPeer(peer_id, self.room)
        self.peers[peer_id] = peer
        await self.room.add_peer(peer_id)
        return peer


@contextlib.asynccontextmanager
async def open_rig(janus: RunningJanus, room_id: str = "janus-e2e") -> AsyncIterator[Rig]:
    """A Janus backend (audio taps on) with one room; every peer closed at the end."""
    taps: list[SpeakerAudio] = []
    backend = JanusMediaBackend(
        MediaSettings(audio_tap=True),
        janus=JanusSettings(url=janus.url, api_secret=janus.api_secret, admin_key=janus.admin_key),
        on_audio=taps.append,
    )
    await backend.start()
    peers: dict[str, SeamPeer] = {}
    extra: dict[str, EmitEvent] = {}

    def emit(event: MediaEvent) -> None:
        if event.peer_id in extra:
            extra[event.peer_id](event)
        peer = peers.get(event.peer_id)
        if peer is not None:
            peer.on_event(event)
        for other in peers.values():  # the server broadcasts these to the room
            if other is not peer and isinstance(event, TrackPublished | TrackUnpublished):
                other.on_event(event)

    try:
        room = await backend.open_room(room_id, emit)
        yield Rig(room, peers, taps, extra)
    finally:
        for peer in peers.values():
            await peer.close()
        await backend.aclose()


def summary(*peers: SeamPeer) -> dict[str, object]:
    return {
        p.peer_id: {
            "offers": p.offers,
            "slots": p.slots,
            "received": {o: (r.video_frames, r.audio_frames) for o, r in p.received.items()},
        }
        for p in peers
    }


def tone_of(chunks: list[np.ndarray], rate: int) -> float:
    samples = np.concatenate(chunks[-50:])
    return dominant_frequency(samples, rate)
