"""Fan-out logic of the SFU: keyframe gating, bounded queues, coalesced keyframe requests."""

from __future__ import annotations

import asyncio

import av
import pytest
from aiortc.mediastreams import MediaStreamError

from media.forward import EncodedSource, vp8_is_keyframe

KEY = b"\x10\x02\x00\x9d\x01\x2a"  # frame tag bit 0 = 0: keyframe
DELTA = b"\x11\x02\x00"


def test_vp8_keyframe_bit() -> None:
    assert vp8_is_keyframe(KEY)
    assert not vp8_is_keyframe(DELTA)
    assert not vp8_is_keyframe(b"")


class PliRecorder:
    def __init__(self) -> None:
        self.ssrcs: list[int] = []

    async def __call__(self, ssrc: int) -> None:
        self.ssrcs.append(ssrc)


def source(
    kind: str = "video", *, interval_s: float = 0.2, max_frames: int = 8
) -> tuple[EncodedSource, PliRecorder]:
    pli = PliRecorder()
    src = EncodedSource(
        kind, send_pli=pli, pli_min_interval_s=interval_s, subscriber_max_frames=max_frames
    )
    src.media_ssrc = 1234
    return src, pli


async def test_video_subscriber_starts_at_a_fresh_keyframe() -> None:
    src, pli = source()
    track = src.subscribe()
    src.push_video_frame(KEY, 0)  # before the subscriber's connection is up: stale
    recv = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0.01)
    assert pli.ssrcs == [1234]  # starting to pull asked the publisher for a keyframe
    src.push_video_frame(DELTA, 3000)  # useless without its keyframe: dropped
    src.push_video_frame(KEY, 6000)
    src.push_video_frame(DELTA, 9000)
    first = await asyncio.wait_for(recv, 1)
    second = await track.recv()
    assert (bytes(first), first.pts) == (KEY, 6000)
    assert (bytes(second), second.pts) == (DELTA, 9000)
    await src.aclose()


async def test_keyframe_requests_are_coalesced_and_rate_limited() -> None:
    src, pli = source(interval_s=0.2)
    for _ in range(5):
        src.request_keyframe()
    await asyncio.sleep(0.02)
    assert len(pli.ssrcs) == 1  # five requests, one PLI
    src.request_keyframe()
    await asyncio.sleep(0.05)
    assert len(pli.ssrcs) == 1  # too soon: waits for the interval
    await asyncio.sleep(0.25)
    assert len(pli.ssrcs) == 2
    src.request_keyframe()
    src.push_video_frame(KEY, 0)  # a keyframe arrived meanwhile: the pending request is void
    await asyncio.sleep(0.3)
    assert len(pli.ssrcs) == 2
    assert src.pli_requests == 7 and src.pli_sent == 2
    await src.aclose()


async def test_overflowing_video_subscriber_resyncs_on_next_keyframe() -> None:
    src, pli = source(max_frames=4)
    track = src.subscribe()
    recv = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0)
    src.push_video_frame(KEY, 0)
    await recv
    for i in range(1, 10):  # the sender stalls: queue overflows
        src.push_video_frame(DELTA, i)
    assert track.dropped > 0
    src.push_video_frame(DELTA, 20)  # still gated
    src.push_video_frame(KEY, 21)
    packet = await asyncio.wait_for(track.recv(), 1)
    assert (bytes(packet), packet.pts) == (KEY, 21)
    await src.aclose()


async def test_audio_subscriber_drops_oldest_when_full() -> None:
    src, _ = source("audio", max_frames=4)
    track = src.subscribe()
    recv = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0)
    for ts in range(0, 960 * 10, 960):
        src.push_audio_packet(b"opus", ts)
    first = await recv
    rest = [(await track.recv()).pts for _ in range(3)]
    # ten packets arrived while the sender was busy: the oldest six were dropped
    assert [first.pts, *rest] == [960 * 6, 960 * 7, 960 * 8, 960 * 9]
    assert track.dropped == 6
    await src.aclose()


async def test_ending_the_source_ends_every_subscriber() -> None:
    src, _ = source()
    tracks = [src.subscribe() for _ in range(3)]
    await src.aclose()
    for track in tracks:
        with pytest.raises(MediaStreamError):
            await asyncio.wait_for(track.recv(), 1)
    late = src.subscribe()
    with pytest.raises(MediaStreamError):
        await asyncio.wait_for(late.recv(), 1)
    assert src.subscribers == frozenset()


async def test_stopped_subscriber_is_unsubscribed() -> None:
    src, _ = source("audio")
    track = src.subscribe()
    track.stop()
    assert src.subscribers == frozenset()
    src.push_audio_packet(b"x", 0)
    assert track.forwarded == 0
    assert isinstance(av.Packet(b"x"), av.Packet)
    await src.aclose()
