"""The audio tap: resampling, chunking and the stream clock (units), then a real call (media)."""

from __future__ import annotations

import asyncio
import fractions
from collections import Counter
from collections.abc import AsyncIterator

import av
import numpy as np
import pytest
from aiortc.codecs import opus

from interpret.frames import ASR_SAMPLE_RATE, AudioChunk
from media.api import SpeakerAudio
from media.tap import AudioChunker, AudioTap, SpeakerAudioQueue
from server.app import App
from tests.support.app import loopback_settings, ws_url
from tests.support.client import dominant_frequency
from tests.support.processes import run_client_process
from tests.support.waits import TIME_SCALE

IN_RATE = 48_000
FRAME = 960  # 20 ms, what aiortc's Opus decoder yields
CHUNK = ASR_SAMPLE_RATE // 10


def stereo_sine_frame(
    index: int, *, freq_hz: float = 440.0, pts: int | None = None
) -> av.AudioFrame:
    """The ``index``-th 20 ms of a 48 kHz s16 stereo sine, like a decoded Opus frame."""
    t = (index * FRAME + np.arange(FRAME)) / IN_RATE
    mono = (0.5 * 32767 * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)
    interleaved = np.repeat(mono, 2).reshape(1, -1)  # packed stereo: L R L R ...
    frame = av.AudioFrame.from_ndarray(interleaved, format="s16", layout="stereo")
    frame.sample_rate = IN_RATE
    frame.pts = index * FRAME if pts is None else pts
    frame.time_base = fractions.Fraction(1, IN_RATE)
    return frame


def push_all(chunker: AudioChunker, frames: list[av.AudioFrame]) -> list[AudioChunk]:
    chunks = [c for f in frames for c in chunker.push(f)]
    return chunks + chunker.flush()


def assert_continuous(chunks: list[AudioChunk]) -> None:
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert after.start_s == pytest.approx(before.end_s, abs=1e-9), (before, after)


def test_48k_stereo_sine_becomes_16k_mono_float_chunks_of_100_ms() -> None:
    chunker = AudioChunker("alice")
    chunks = push_all(chunker, [stereo_sine_frame(i) for i in range(100)])  # 2 s
    assert all(c.speaker_id == "alice" for c in chunks)
    assert all(c.samples.dtype == np.float32 and c.samples.ndim == 1 for c in chunks)
    assert [len(c.samples) for c in chunks[:-1]] == [CHUNK] * (len(chunks) - 1)
    total = sum(len(c.samples) for c in chunks)
    assert total == 2 * ASR_SAMPLE_RATE  # nothing lost or invented, the resampler's tail included
    assert chunks[0].start_s == 0.0
    assert_continuous(chunks)
    samples = np.concatenate([c.samples for c in chunks])
    assert abs(dominant_frequency(samples, ASR_SAMPLE_RATE) - 440.0) < 1.0
    assert 0.45 < float(np.max(np.abs(samples))) < 0.55  # stereo averaged, not summed


def test_chunks_complete_as_frames_arrive() -> None:
    chunker = AudioChunker("alice")
    out = [len(chunker.push(stereo_sine_frame(i))) for i in range(10)]
    # 20 ms in -> 320 samples out (304 for the first: the resampler holds 1 ms back)
    assert sum(out) == 1 and out[5] == 1 and chunker.position_s < 0.2


def test_lost_frames_move_the_clock_forward() -> None:
    chunker = AudioChunker("alice")
    frames = [stereo_sine_frame(i) for i in range(20)] + [
        stereo_sine_frame(i) for i in range(30, 50)
    ]
    chunks = push_all(chunker, frames)
    assert chunker.gaps == 1 and chunker.gap_s == pytest.approx(0.2, abs=0.002)
    # the chunk before the gap is cut short; the one after it starts where the timestamps say
    after = next(c for c in chunks if c.start_s > 0.39)
    assert after.start_s == pytest.approx(0.6, abs=0.001)
    before = [c for c in chunks if c.start_s < after.start_s]
    assert before[-1].end_s == pytest.approx(0.4, abs=0.001)
    assert_continuous(before)
    assert_continuous([c for c in chunks if c.start_s >= after.start_s])
    assert chunks[-1].end_s == pytest.approx(1.0, abs=0.001)


def test_rtp_timestamps_wrap_and_start_anywhere() -> None:
    chunker = AudioChunker("alice")
    base = (1 << 32) - 10 * FRAME  # wraps after 10 frames
    frames = [stereo_sine_frame(i, pts=(base + i * FRAME) % (1 << 32)) for i in range(30)]
    chunks = push_all(chunker, frames)
    assert chunker.gaps == 0
    assert chunks[0].start_s == 0.0
    assert_continuous(chunks)
    assert chunks[-1].end_s == pytest.approx(0.6, abs=1e-9)


def test_small_jitter_and_missing_timestamps_keep_counting_samples() -> None:
    chunker = AudioChunker("alice")
    frames = [stereo_sine_frame(i, pts=i * FRAME + (5 if i % 2 else 0)) for i in range(20)]
    frames += [stereo_sine_frame(20 + i) for i in range(5)]
    for f in frames[20:]:
        f.pts = None
    chunks = push_all(chunker, frames)
    assert chunker.gaps == 0
    assert_continuous(chunks)
    assert chunks[-1].end_s == pytest.approx(0.5, abs=1e-9)


def test_tap_hands_out_speaker_audio_and_survives_a_bad_frame(
    caplog: pytest.LogCaptureFixture,
) -> None:
    got: list[SpeakerAudio] = []
    tap = AudioTap(room_id="r", peer_id="p1", track_id="p1-audio-1", on_audio=got.append)
    for i in range(10):
        tap.push(stereo_sine_frame(i))
    tap.push(object())  # not an audio frame: ignored
    tap.end_input()
    assert [(a.room_id, a.peer_id, a.track_id) for a in got] == [("r", "p1", "p1-audio-1")] * 2
    assert tap.stats()["chunks_out"] == 2 and not tap.failed

    def broken(item: SpeakerAudio) -> None:
        raise RuntimeError("consumer bug")

    tap = AudioTap(room_id="r", peer_id="p1", track_id="t", on_audio=broken)
    for i in range(10):
        tap.push(stereo_sine_frame(i))  # must not raise: the call goes on
    assert tap.failed and "audio tap of t failed" in caplog.text


async def test_speaker_audio_queue_drops_oldest_and_ends() -> None:
    queue = SpeakerAudioQueue(max_chunks=3)
    items = [
        SpeakerAudio("r", "p", "t", AudioChunk("p", np.zeros(CHUNK, np.float32), i / 10))
        for i in range(5)
    ]
    for item in items:
        queue.put(item)
    assert queue.dropped == 2 and len(queue) == 3
    await queue.aclose()
    queue.put(items[0])  # after close: ignored
    assert [a async for a in queue] == items[2:]


async def test_speaker_audio_queue_wakes_a_waiting_reader() -> None:
    queue = SpeakerAudioQueue()
    item = SpeakerAudio("r", "p", "t", AudioChunk("p", np.zeros(CHUNK, np.float32), 0.0))
    reader = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.put(item)
    assert await asyncio.wait_for(reader, 1) is item


# -- a real call ---------------------------------------------------------------------------------
@pytest.fixture
async def tapping_app() -> AsyncIterator[App]:
    instance = App(loopback_settings(media={"audio_tap": True}))
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


@pytest.mark.media
async def test_tap_delivers_a_publishers_tone_at_16k(
    tapping_app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    decodes: Counter[str] = Counter()
    original = opus.OpusDecoder.decode

    def counting(self: opus.OpusDecoder, frame: object) -> object:
        decodes["opus"] += 1
        return original(self, frame)  # type: ignore[arg-type]

    monkeypatch.setattr(opus.OpusDecoder, "decode", counting)
    queue = tapping_app.speaker_audio
    assert queue is not None
    client = asyncio.ensure_future(
        run_client_process(
            "--url",
            ws_url(tapping_app),
            "--room",
            "tap",
            "--name",
            "A",
            "--freq",
            "440",
            "--seconds",
            "4",
        )
    )
    received: list[SpeakerAudio] = []

    async def collect() -> None:
        async for item in queue:
            received.append(item)
            if sum(len(a.chunk.samples) for a in received) >= 2.5 * ASR_SAMPLE_RATE:
                return

    await asyncio.wait_for(collect(), 20 * TIME_SCALE)
    summary = await client
    assert summary["errors"] == []
    assert {(a.room_id, a.peer_id) for a in received} == {("tap", summary["participant_id"])}
    assert len({a.track_id for a in received}) == 1
    chunks = [a.chunk for a in received]
    assert all(c.speaker_id == summary["participant_id"] for c in chunks)
    assert_continuous(chunks)
    samples = np.concatenate([c.samples for c in chunks])
    assert len(samples) >= 2 * ASR_SAMPLE_RATE
    assert samples.dtype == np.float32
    # skip the first 0.2 s: Opus's encoder ramps up
    assert abs(dominant_frequency(samples[3200:], ASR_SAMPLE_RATE) - 440.0) <= 5
    assert decodes["opus"] > 100
    assert queue.dropped == 0
