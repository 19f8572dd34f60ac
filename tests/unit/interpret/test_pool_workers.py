"""SpeechPool with real worker processes (Whisper base): a speaker's worker is killed mid-
utterance, the speaker moves to the other worker with the audio since their last final, and
every utterance of the stream still gets its final (issue 17)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import numpy as np
import pytest

from interpret.compose import PipelineConfig
from interpret.frames import ASR_SAMPLE_RATE, AudioChunk, CaptionFrame
from interpret.pool import PoolSettings, SpeechPool
from interpret.transcribe import RecognizerSettings
from tests.support.paths import evalset_dir
from tests.support.waits import TIME_SCALE, wait_until

pytestmark = pytest.mark.models

UTTERANCES = 3


def _config() -> PipelineConfig:
    from interpret.models import ModelError, ModelResolver

    try:
        ModelResolver().resolve("base")
    except ModelError as exc:
        pytest.skip(str(exc))
    return PipelineConfig(recognizer=RecognizerSettings(model="base", cpu_threads=1))


def _stream() -> tuple[np.ndarray, list[dict[str, float]]]:
    from server.file_captions import load_audio

    meta_path = evalset_dir() / "longform" / "en_fleurs_concat.json"
    if not meta_path.is_file():
        pytest.skip(f"no evalset at {meta_path.parent} (set PARLEY_EVALSET)")
    segments = json.loads(meta_path.read_text())["segments"][:UTTERANCES]
    audio = load_audio(meta_path.with_suffix(".flac"))
    end = int((segments[-1]["end"] + 1.5) * ASR_SAMPLE_RATE)
    return audio[:end], segments


async def test_killed_worker_s_speaker_moves_and_no_utterance_is_lost() -> None:
    audio, segments = _stream()
    pool = SpeechPool(_config(), settings=PoolSettings(workers=2))
    await pool.start()
    frames: list[tuple[float, str | None, CaptionFrame]] = []

    async def collect() -> None:
        async for frame in pool.captions():
            frames.append((time.monotonic(), pool.worker_of(frame.speaker_id), frame))

    try:
        async with asyncio.TaskGroup() as tg:
            collector = tg.create_task(collect())
            pool.add_speaker("alice", "en")
            first = pool.worker_of("alice")
            assert first is not None
            victim = next(w for w in pool.workers() if w.worker_id == first)
            assert victim.pid is not None
            kill_at_s = segments[1]["speech_start"] + 3.0  # in the middle of the 2nd utterance
            step = ASR_SAMPLE_RATE // 10
            speed = 1.5
            killed_at = None
            t0 = time.monotonic()
            for i in range(0, len(audio), step):
                start_s = i / ASR_SAMPLE_RATE
                pool.push(AudioChunk("alice", audio[i : i + step], start_s))
                if killed_at is None and start_s >= kill_at_s:
                    os.kill(victim.pid, signal.SIGKILL)
                    killed_at = time.monotonic()
                ahead = t0 + (start_s + 0.1) / speed - time.monotonic()
                await asyncio.sleep(max(0.0, ahead))
            assert killed_at is not None

            def finals() -> list[CaptionFrame]:
                return [f for _, _, f in frames if f.is_final and f.text.strip()]

            last_end = segments[-1]["speech_end"]
            assert await wait_until(lambda: any(f.end_s >= last_end - 1 for f in finals()), 60)
            collector.cancel()
    finally:
        await pool.aclose()
    heir = pool.worker_of("alice")
    after = [(t, f) for t, w, f in frames if t > killed_at]
    assert after, "no caption after the kill"
    resumed_s = after[0][0] - killed_at
    print(
        f"\nkilled {first} at {kill_at_s:.1f} s of stream; {heir} captioned again after"
        f" {resumed_s:.2f} s; moves {dict(pool.moves)}"
    )
    for f in finals():
        print(f"  final {f.start_s:6.2f}-{f.end_s:6.2f} {f.text}")
    assert heir != first
    assert pool.moves["worker_down"] >= 1
    assert resumed_s <= 3.0 * TIME_SCALE
    for segment in segments:  # every utterance of the stream has a final over its speech
        covering = [
            f
            for f in finals()
            if f.start_s < segment["speech_end"] and f.end_s > segment["speech_start"]
        ]
        assert covering, f"no final for {segment['id']} ({segment['reference']})"
    # the killed utterance was recognised from its start: its first words are in a final
    second = " ".join(f.text.lower() for f in finals() if f.start_s < segments[1]["speech_end"] - 1)
    assert "nouns" in second, second
