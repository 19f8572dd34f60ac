"""Acceptance: ``[media] engine = "janus"`` on a real Janus, with aiortc participants.

The participants drive the :class:`media.api.MediaRoom` seam directly, as the signaling server
would: they answer :class:`OfferReady` on their receiving peer connection and offer their send-only
publish peer connection (:meth:`JanusRoom.publish_offer`, PROTOCOL.md "Janus engine"). Janus runs
in a private network namespace (``tests/support/janus.py``); this test's thread enters it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, VideoFrame

from media.api import (
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
from media.hooks import restrict_host_addresses
from media.janus_room import JanusMediaBackend, JanusRoom
from media.peer import rtc_configuration
from tests.support.client import CounterVideo, SineAudio, dominant_frequency, read_counter
from tests.support.janus import ICE_ADDRESS, RunningJanus, running_janus
from tests.support.waits import TIME_SCALE, wait_until

pytestmark = pytest.mark.media


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
        self, tracks: list[MediaStreamTrack], source: TrackSource | None = None
    ) -> None:
        kinds = [t.kind for t in tracks]
        await self.room.publish(self.peer_id, kinds, source)  # type: ignore[arg-type]
        added = [self.pub_pc.addTransceiver(t, direction="sendonly") for t in tracks]
        await self.pub_pc.setLocalDescription(await self.pub_pc.createOffer())
        for transceiver in added:
            kind: Kind = "audio" if transceiver.kind == "audio" else "video"
            self.sources[str(transceiver.mid)] = source or default_source(kind)
        self._publish_answer = asyncio.get_running_loop().create_future()
        self._publish_revision += 1
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


@pytest.fixture(scope="module")
def janus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningJanus]:
    with running_janus(Path(tmp_path_factory.mktemp("janus"))) as running:
        yield running


@pytest.fixture
def inside(janus: RunningJanus) -> Iterator[None]:
    """This thread (the event loop's) in Janus's namespace; ICE announces the veth address."""
    with janus.namespace.entered():
        restrict_host_addresses([ICE_ADDRESS])
        try:
            yield
        finally:
            restrict_host_addresses(())


@dataclass
class Rig:
    room: JanusRoom
    peers: dict[str, SeamPeer]
    taps: list[SpeakerAudio]

    async def join(self, peer_id: str) -> SeamPeer:
        peer = SeamPeer(peer_id, self.room)
        self.peers[peer_id] = peer
        await self.room.add_peer(peer_id)
        return peer


@pytest.fixture
async def rig(janus: RunningJanus, inside: None) -> AsyncIterator[Rig]:
    taps: list[SpeakerAudio] = []
    backend = JanusMediaBackend(
        MediaSettings(audio_tap=True),
        janus=JanusSettings(url=janus.url, api_secret=janus.api_secret, admin_key=janus.admin_key),
        on_audio=taps.append,
    )
    await backend.start()
    peers: dict[str, SeamPeer] = {}

    def emit(event: MediaEvent) -> None:
        peer = peers.get(event.peer_id)
        if peer is not None:
            peer.on_event(event)
        for other in peers.values():  # the server broadcasts these to the room
            if other is not peer and isinstance(event, TrackPublished | TrackUnpublished):
                other.on_event(event)

    room = await backend.open_room("janus-e2e", emit)
    try:
        yield Rig(room, peers, taps)
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


async def test_two_publish_see_and_hear_each_other_late_joiner_gets_a_keyframe(rig: Rig) -> None:
    a, b = await rig.join("a"), await rig.join("b")
    await a.publish([SineAudio(440), CounterVideo(160, 120)])
    await b.publish([SineAudio(660), CounterVideo(160, 120)])

    assert await wait_until(
        lambda: all(
            p.media_from(o).video_frames >= 30 and p.media_from(o).audio_frames >= 100
            for p, o in ((a, "b"), (b, "a"))
        ),
        20,
    ), summary(a, b)
    assert abs(tone_of(b.media_from("a").audio, 48_000) - 440) < 10
    assert abs(tone_of(a.media_from("b").audio, 48_000) - 660) < 10
    counters = b.media_from("a").counters
    assert counters[-1] > counters[0]  # frames decoded in order, content intact

    # captions' input: each speaker's audio, decoded from Janus's rtp_forward at 16 kHz
    assert await wait_until(lambda: {t.peer_id for t in rig.taps} == {"a", "b"}, 10)
    a_tap = [t.chunk.samples for t in rig.taps if t.peer_id == "a"]
    assert abs(tone_of(a_tap, 16_000) - 440) < 10

    # a late joiner gets its first picture fast: Janus asks the publisher for a keyframe
    # (aiortc's VP8 encoder sends none unless asked; the room's fir_freq is 10 s)
    await asyncio.sleep(3 * TIME_SCALE)
    c = await rig.join("c")
    assert await wait_until(lambda: c.media_from("a").video_frames > 0, 10)
    assert c.answered_s is not None
    first_frame_s = c.media_from("a").first_video_s
    assert first_frame_s is not None and first_frame_s - c.answered_s < 2.0 * TIME_SCALE
    assert not any(p.failed for p in (a, b, c))


async def test_hold_audio_and_leaving(rig: Rig) -> None:
    a, b = await rig.join("a"), await rig.join("b")
    await a.publish([SineAudio(440)])
    assert await wait_until(lambda: b.media_from("a").audio_frames >= 50, 20)

    await rig.room.hold_audio("b", ["a"])
    await asyncio.sleep(0.5)  # what was in flight
    held_at = b.media_from("a").audio_frames
    await asyncio.sleep(1.5)
    assert b.media_from("a").audio_frames - held_at < 5

    await rig.room.hold_audio("b", [])
    assert await wait_until(lambda: b.media_from("a").audio_frames >= held_at + 25, 10)

    offers = b.offers
    await rig.room.remove_peer("a")
    assert await wait_until(lambda: any(u.peer_id == "a" for u in b.unpublished), 5)
    assert await wait_until(lambda: b.offers > offers, 10)  # an offer without a's stream
    stats = await rig.room.stats()
    assert stats["peers"] == 1 and stats["publications"] == {}


async def test_screen_share_is_a_second_publish_offer_and_unpublish_ends_it(rig: Rig) -> None:
    a, b = await rig.join("a"), await rig.join("b")
    await a.publish([SineAudio(440)])
    assert await wait_until(lambda: b.media_from("a").audio_frames >= 25, 20)

    await a.publish([CounterVideo(160, 120)], "screen")  # renegotiates a's publish connection
    assert await wait_until(lambda: b.media_from("a").video_frames >= 10, 20), summary(a, b)
    assert "screen" in b.slot_sources.values()
    screen = next(p for p in a.published if p.source == "screen")
    assert screen.kind == "video" and screen.peer_id == "a"
    frames = b.media_from("a").audio_frames
    assert await wait_until(lambda: b.media_from("a").audio_frames > frames + 25, 5)  # audio on

    offers = b.offers
    await rig.room.unpublish("a", screen.track_id)
    assert await wait_until(lambda: any(u.track_id == screen.track_id for u in b.unpublished), 5)
    assert await wait_until(lambda: b.offers > offers, 10)
    assert screen.track_id not in (await rig.room.stats())["publications"]
