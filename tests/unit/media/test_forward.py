"""Fan-out logic of the SFU: keyframe gating, bounded queues, coalesced keyframe requests.

Time is a :class:`~tests.support.clock.FakeClock` the tests step: nothing here sleeps (an
``asyncio.sleep(0)`` only lets a task that was just created start pulling)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest
from aiortc.mediastreams import MediaStreamError

from media.forward import EncodedSource, SubscriberTrack, vp8_is_keyframe
from tests.support.clock import FakeClock

KEY = b"\x10\x02\x00\x9d\x01\x2a"  # frame tag bit 0 = 0: keyframe
DELTA = b"\x11\x02\x00"


def test_vp8_keyframe_bit() -> None:
    assert vp8_is_keyframe(KEY)
    assert not vp8_is_keyframe(DELTA)
    assert not vp8_is_keyframe(b"")


class PliRecorder:
    """``send_pli``: records the SSRC when the source decides to send, not when a task runs."""

    def __init__(self) -> None:
        self.ssrcs: list[int] = []

    def __call__(self, ssrc: int) -> Coroutine[Any, Any, None]:
        self.ssrcs.append(ssrc)
        return asyncio.sleep(0)


def source(
    kind: str = "video",
    *,
    clock: FakeClock | None = None,
    interval_s: float = 0.2,
    retry_s: float = 1.0,
) -> tuple[EncodedSource, PliRecorder]:
    pli = PliRecorder()
    src = EncodedSource(
        kind,
        send_pli=pli,
        pli_min_interval_s=interval_s,
        pli_retry_s=retry_s,
        clock=FakeClock() if clock is None else clock,
    )
    src.media_ssrc = 1234
    return src, pli


def subscriber(
    src: EncodedSource, *, max_frames: int = 8, clock: FakeClock | None = None
) -> SubscriberTrack:
    track = SubscriberTrack(src.kind, max_frames=max_frames, clock=clock)
    track.attach(src)
    return track


async def start_pulling(track: SubscriberTrack) -> asyncio.Future[Any]:
    """What the sender does once the subscriber's connection is up: the first recv()."""
    recv = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0)
    return recv


async def test_video_subscriber_starts_at_a_fresh_keyframe() -> None:
    clock = FakeClock()
    src, pli = source(clock=clock)
    track = subscriber(src)
    src.push_video_frame(KEY, 0)  # before the subscriber's connection is up: stale
    recv = await start_pulling(track)
    clock.advance(0)
    assert pli.ssrcs == [1234]  # starting to pull asked the publisher for a keyframe
    src.push_video_frame(DELTA, 3000)  # useless without its keyframe: dropped
    src.push_video_frame(KEY, 6000)
    src.push_video_frame(DELTA, 9000)
    first = await asyncio.wait_for(recv, 1)
    second = await track.recv()
    assert (bytes(first), first.pts, first.keyframe) == (KEY, 6000, True)
    assert (bytes(second), second.pts) == (DELTA, 9000)
    await src.aclose()


async def test_keyframe_requests_are_coalesced_and_rate_limited() -> None:
    clock = FakeClock()
    src, pli = source(clock=clock, interval_s=0.2)
    for _ in range(5):
        src.request_keyframe()
    clock.advance(0.02)
    assert len(pli.ssrcs) == 1  # five requests, one PLI
    src.request_keyframe()
    clock.advance(0.05)
    assert len(pli.ssrcs) == 1  # too soon: waits for the interval
    clock.advance(0.25)
    assert len(pli.ssrcs) == 2
    src.request_keyframe()
    src.push_video_frame(KEY, 0)  # a keyframe arrived meanwhile: the pending request is void
    clock.advance(0.3)
    assert len(pli.ssrcs) == 2
    assert src.pli_requests == 7 and src.pli_sent == 2
    await src.aclose()
    assert clock.timers == []  # closing cancels the retry check too


async def test_an_unanswered_keyframe_request_is_repeated() -> None:
    """Chrome ignores a PLI that comes within 300 ms of the previous one: a live subscriber
    still waiting for a keyframe must not wait forever."""
    clock = FakeClock()
    src, pli = source(clock=clock, interval_s=0.05, retry_s=0.2)
    src.media_ssrc = 99
    track = subscriber(src)
    recv = await start_pulling(track)  # live: asks for a keyframe
    clock.advance(0.1)
    assert pli.ssrcs == [99]
    src.push_video_frame(DELTA, 3000)  # the publisher ignored it: deltas only
    clock.advance(0.2)
    assert pli.ssrcs == [99, 99] and src.pli_retries == 1  # asked again
    src.push_video_frame(KEY, 6000)
    assert bytes(await asyncio.wait_for(recv, 1)) == KEY
    clock.advance(0.3)
    assert len(pli.ssrcs) == 2  # satisfied: no more requests
    await src.aclose()


async def test_audio_sources_count_keyframe_requests_but_never_send_them() -> None:
    clock = FakeClock()
    src, pli = source("audio", clock=clock)
    src.request_keyframe()
    clock.advance(5)
    assert (src.pli_requests, src.pli_sent, pli.ssrcs, clock.timers) == (1, 0, [], [])
    await src.aclose()


async def test_overflowing_video_subscriber_resyncs_on_next_keyframe() -> None:
    src, pli = source()
    track = subscriber(src, max_frames=4)
    recv = await start_pulling(track)
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
    src, _ = source("audio")
    track = subscriber(src, max_frames=4)
    recv = await start_pulling(track)
    for ts in range(0, 960 * 10, 960):
        src.push_audio_packet(b"opus", ts)
    first = await recv
    rest = [(await track.recv()).pts for _ in range(3)]
    # ten packets arrived while the sender was busy: the oldest six were dropped
    assert [first.pts, *rest] == [960 * 6, 960 * 7, 960 * 8, 960 * 9]
    assert track.dropped == 6
    await src.aclose()


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


async def test_reattached_track_waits_for_negotiation_and_keeps_timestamps_continuous() -> None:
    clock = FakeClock()
    first, _ = source(clock=clock)
    track = subscriber(first, clock=clock)
    recv = await start_pulling(track)
    first.push_video_frame(KEY, 900_000)
    assert (await recv).pts == 900_000
    await first.aclose()  # the publisher left: the m-line idles

    second, pli = source(clock=clock)
    track.attach(second)
    second.push_video_frame(KEY, 0)  # m-line not yet active again: dropped
    assert track.forwarded == 1 and pli.ssrcs == []
    clock.advance(0.1)
    track.negotiated()  # the subscriber's answer re-enabled the m-line
    clock.advance(0)
    assert pli.ssrcs == [1234]
    second.push_video_frame(DELTA, 3000)  # gated until a keyframe
    second.push_video_frame(KEY, 6000)
    frame = await asyncio.wait_for(track.recv(), 1)
    assert bytes(frame) == KEY
    # continues after the last frame sent, by the 0.1 s that passed (90 kHz clock)
    assert frame.pts == 900_000 + 9_000
    second.push_video_frame(DELTA, 9000)
    assert (await track.recv()).pts == frame.pts + 3000
    await second.aclose()


async def test_subscriber_keyframe_request_goes_to_the_current_source() -> None:
    clock = FakeClock()
    src, pli = source(clock=clock)
    track = subscriber(src)
    track.request_keyframe()
    clock.advance(0)
    assert pli.ssrcs == [1234]
    track.detach()
    track.request_keyframe()  # nobody to ask
    assert src.pli_requests == 1
    await src.aclose()


async def test_picture_loss_holds_subscribers_until_a_keyframe() -> None:
    src, pli = source()
    track = subscriber(src)
    recv = await start_pulling(track)
    src.push_video_frame(KEY, 0)
    await recv
    src.push_video_frame(DELTA, 3000)
    assert (await track.recv()).pts == 3000
    src.picture_lost()  # a frame between publisher and SFU was lost for good
    src.push_video_frame(DELTA, 9000)  # references the lost picture: held back
    src.push_video_frame(KEY, 12000)
    assert (await asyncio.wait_for(track.recv(), 1)).pts == 12000
    assert src.pli_requests == 2  # start + loss (the keyframes answered both)
    await src.aclose()
