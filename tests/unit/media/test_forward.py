"""Fan-out logic of the SFU: keyframe gating, bounded queues, coalesced keyframe requests.

The async tests run on a virtual clock (tests.support.clock): their sleeps are loop time, which
is what the keyframe pacing reads, so a loaded machine cannot stretch them."""

from __future__ import annotations

import asyncio

import pytest
from aiortc.mediastreams import MediaStreamError

from media.forward import EncodedSource, SubscriberTrack, vp8_is_keyframe
from tests.support.clock import on_virtual_clock

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


def source(kind: str = "video", *, interval_s: float = 0.2) -> tuple[EncodedSource, PliRecorder]:
    pli = PliRecorder()
    src = EncodedSource(kind, send_pli=pli, pli_min_interval_s=interval_s)
    src.media_ssrc = 1234
    return src, pli


def subscriber(src: EncodedSource, *, max_frames: int = 8) -> SubscriberTrack:
    track = SubscriberTrack(src.kind, max_frames=max_frames)
    track.attach(src)
    return track


@on_virtual_clock
async def test_video_subscriber_starts_at_a_fresh_keyframe() -> None:
    src, pli = source()
    track = subscriber(src)
    src.push_video_frame(KEY, 0)  # before the subscriber's connection is up: stale
    recv = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0.01)
    assert pli.ssrcs == [1234]  # starting to pull asked the publisher for a keyframe
    src.push_video_frame(DELTA, 3000)  # useless without its keyframe: dropped
    src.push_video_frame(KEY, 6000)
    src.push_video_frame(DELTA, 9000)
    first = await asyncio.wait_for(recv, 1)
    second = await track.recv()
    assert (bytes(first), first.pts, first.keyframe) == (KEY, 6000, True)
    assert (bytes(second), second.pts) == (DELTA, 9000)
    await src.aclose()


@on_virtual_clock
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


@on_virtual_clock
async def test_an_unanswered_keyframe_request_is_repeated() -> None:
    """Chrome ignores a PLI that comes within 300 ms of the previous one: a live subscriber
    still waiting for a keyframe must not wait forever."""
    pli = PliRecorder()
    src = EncodedSource("video", send_pli=pli, pli_min_interval_s=0.05, pli_retry_s=0.2)
    src.media_ssrc = 99
    track = subscriber(src)
    recv = asyncio.ensure_future(track.recv())  # live: asks for a keyframe
    await asyncio.sleep(0.1)
    assert pli.ssrcs == [99]
    src.push_video_frame(DELTA, 3000)  # the publisher ignored it: deltas only
    await asyncio.sleep(0.2)
    assert pli.ssrcs == [99, 99] and src.pli_retries == 1  # asked again
    src.push_video_frame(KEY, 6000)
    assert bytes(await asyncio.wait_for(recv, 1)) == KEY
    await asyncio.sleep(0.3)
    assert len(pli.ssrcs) == 2  # satisfied: no more requests
    await src.aclose()


@on_virtual_clock
async def test_overflowing_video_subscriber_resyncs_on_next_keyframe() -> None:
    src, pli = source()
    track = subscriber(src, max_frames=4)
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


@on_virtual_clock
async def test_audio_subscriber_drops_oldest_when_full() -> None:
    src, _ = source("audio")
    track = subscriber(src, max_frames=4)
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


@on_virtual_clock
async def test_ending_the_source_detaches_every_subscriber() -> None:
    src, _ = source("audio")
    tracks = [subscriber(src) for _ in range(3)]
    await src.aclose()
    assert src.subscribers == frozenset()
    assert all(t.source is None for t in tracks)
    late = subscriber(src)  # a source that ended takes nobody
    assert src.subscribers == frozenset() and late.source is src
    stopped = SubscriberTrack("audio", max_frames=4)
    stopped.stop()
    with pytest.raises(MediaStreamError):
        await asyncio.wait_for(stopped.recv(), 1)


@on_virtual_clock
async def test_reattached_track_waits_for_negotiation_and_keeps_timestamps_continuous() -> None:
    first, _ = source()
    track = subscriber(first)
    recv = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0)
    first.push_video_frame(KEY, 900_000)
    assert (await recv).pts == 900_000
    await first.aclose()  # the publisher left: the m-line idles

    second, pli = source()
    track.attach(second)
    second.push_video_frame(KEY, 0)  # m-line not yet active again: dropped
    assert track.forwarded == 1 and pli.ssrcs == []
    await asyncio.sleep(0.1)
    track.negotiated()  # the subscriber's answer re-enabled the m-line
    await asyncio.sleep(0.01)
    assert pli.ssrcs == [1234]
    second.push_video_frame(DELTA, 3000)  # gated until a keyframe
    second.push_video_frame(KEY, 6000)
    frame = await asyncio.wait_for(track.recv(), 1)
    assert bytes(frame) == KEY
    # continues after the last frame sent, by about the 0.1 s that passed (90 kHz clock)
    assert 900_000 + 8_000 < frame.pts < 900_000 + 30_000
    second.push_video_frame(DELTA, 9000)
    assert (await track.recv()).pts == frame.pts + 3000
    await second.aclose()


@on_virtual_clock
async def test_subscriber_keyframe_request_goes_to_the_current_source() -> None:
    src, pli = source()
    track = subscriber(src)
    track.request_keyframe()
    await asyncio.sleep(0.01)
    assert pli.ssrcs == [1234]
    track.detach()
    track.request_keyframe()  # nobody to ask
    assert src.pli_requests == 1
    await src.aclose()


@on_virtual_clock
async def test_picture_loss_holds_subscribers_until_a_keyframe() -> None:
    src, pli = source()
    track = subscriber(src)
    recv = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0)
    src.push_video_frame(KEY, 0)
    await recv
    src.push_video_frame(DELTA, 3000)
    assert (await track.recv()).pts == 3000
    src.picture_lost()  # a frame between publisher and SFU was lost for good
    src.push_video_frame(DELTA, 9000)  # references the lost picture: held back
    src.push_video_frame(KEY, 12000)
    assert (await asyncio.wait_for(track.recv(), 1)).pts == 12000
    await asyncio.sleep(0.01)
    assert src.pli_requests == 2  # start + loss (the keyframes answered both)
    await src.aclose()
