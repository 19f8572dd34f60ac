"""Acceptance: ``[media] backend = "janus"`` on a real Janus, with aiortc participants.

The participants drive the :class:`media.api.MediaRoom` seam directly, as the signaling server
would (``tests/support/janus_seam.py``). Janus runs in a private network namespace
(``tests/support/janus.py``); this test's thread enters it.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from media.errors import SdpError, StaleAnswerError
from media.hooks import restrict_host_addresses
from tests.support.client import CounterVideo, SineAudio
from tests.support.janus import ICE_ADDRESS, RunningJanus, running_janus
from tests.support.janus_seam import Rig, open_rig, summary, tone_of
from tests.support.waits import TIME_SCALE, wait_until

pytestmark = pytest.mark.media


@pytest.fixture(scope="module")
def janus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningJanus]:
    with running_janus(Path(tmp_path_factory.mktemp("janus"))) as running:
        yield running


@pytest.fixture
async def rig(janus: RunningJanus) -> AsyncIterator[Rig]:
    """This thread (the event loop's) in Janus's namespace; ICE announces the veth address."""
    with janus.namespace.entered():
        restrict_host_addresses([ICE_ADDRESS])
        try:
            async with open_rig(janus) as rig:
                yield rig
        finally:
            restrict_host_addresses(())


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
    # frames decoded in order, content intact: the counters drawn in the picture rise (one
    # frame read wrong is no failure: under CI load a blurred last frame once read as 0)
    counters = b.media_from("a").counters
    rising = sum(later > earlier for earlier, later in itertools.pairwise(counters))
    assert max(counters[-5:]) > counters[0], counters
    assert rising >= (len(counters) - 1) / 2, counters

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


async def test_refused_publish_offers_change_nothing(rig: Rig) -> None:
    a, b = await rig.join("a"), await rig.join("b")
    await rig.room.publish("a", ["audio"])
    with pytest.raises(SdpError):
        await rig.room.publish_offer("a", "v=0\r\nnot an offer\r\n", 1, {})
    with pytest.raises(StaleAnswerError):
        await rig.room.publish_offer("a", "v=0\r\n", 1, {})  # revisions only grow
    with pytest.raises(StaleAnswerError):
        await rig.room.answer("b", "v=0\r\n", 7)  # no offer outstanding
    await a.publish([SineAudio(440)], revision=5)  # the seat survived the refusal
    assert await wait_until(lambda: b.media_from("a").audio_frames >= 25, 20)
