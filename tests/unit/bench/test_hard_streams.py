"""bench/hard_streams.py's two conditions the caption policy was never tuned on: a noisy room
(pink noise 10 dB below each utterance's speech) and a slow speaker (0.8 times the speed, pitch
kept). The streams are evaluation material: wrong times in their references would score every
caption against the wrong words, so the references are checked against the audio itself."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bench.hard_streams import (
    BABBLE_SNR_DB,
    EVALSET,
    NOISE_SNR_DB,
    RATE,
    SLOW_TEMPO,
    babble,
    build,
    noisy,
    pink_noise,
    slow,
    speech_rms,
)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert (EVALSET / "longform" / "en_fleurs_concat.flac").exists(), f"no evalset at {EVALSET}"
    return tmp_path_factory.mktemp("streams")


def band_power(noise: np.ndarray, low_hz: float, high_hz: float) -> float:
    spectrum = np.abs(np.fft.rfft(noise)) ** 2
    freqs = np.fft.rfftfreq(len(noise), 1 / RATE)
    return float(spectrum[(freqs >= low_hz) & (freqs < high_hz)].mean())


def test_pink_noise_has_unit_rms_falls_3_db_an_octave_and_repeats_for_its_seed() -> None:
    noise = pink_noise(10 * RATE, "x")
    assert np.sqrt(np.mean(noise**2)) == pytest.approx(1.0, rel=1e-6)
    # 1/f power: 100-200 Hz has 16 times the power per Hz of 1600-3200 Hz
    assert 10 < band_power(noise, 100, 200) / band_power(noise, 1600, 3200) < 25
    assert np.array_equal(noise, pink_noise(10 * RATE, "x"))
    assert not np.array_equal(noise, pink_noise(10 * RATE, "y"))


def added_to_hard(stream: Callable[..., tuple[Path, Path]], cache: Path) -> tuple:
    """The en hard stream, what ``stream`` (noisy, babble) added to it, its reference and its
    mixed audio; the reference is the hard stream's, the length the same."""
    hard_audio, hard_meta = build("en", cache=cache)
    audio_path, meta_path = stream("en", cache=cache)
    base, mixed = np.load(hard_audio), np.load(audio_path)
    meta = json.loads(meta_path.read_text())
    assert len(mixed) == len(base)
    assert meta["segments"] == json.loads(hard_meta.read_text())["segments"]
    return base, mixed.astype(np.float64) - base, meta, mixed


def test_the_noisy_stream_is_the_hard_one_with_noise_10_db_below_its_speech(cache: Path) -> None:
    base, noise, meta, mixed = added_to_hard(noisy, cache)
    for seg in meta["segments"]:  # the clips' levels differ by up to 45 dB: per utterance
        snr = 20 * np.log10(speech_rms(base, seg) / speech_rms(noise, seg))
        assert snr == pytest.approx(NOISE_SNR_DB, abs=0.5)
    # through the pauses too: the gap between two utterances is noise, not near-silence
    first, second = meta["segments"][:2]
    gap = mixed[int(first["end"] * RATE) : int(second["start"] * RATE)].astype(np.float64)
    assert len(gap) > RATE // 2
    quieter = min(speech_rms(noise, first), speech_rms(noise, second))
    assert np.sqrt(np.mean(gap**2)) > 0.8 * quieter


def test_the_slow_stream_scales_every_time_of_its_reference_with_its_audio(cache: Path) -> None:
    hard_audio, hard_meta = build("en", cache=cache)
    audio_path, meta_path = slow("en", cache=cache)
    base, stretched = np.load(hard_audio), np.load(audio_path)
    meta, before = json.loads(meta_path.read_text()), json.loads(hard_meta.read_text())
    assert len(stretched) / len(base) == pytest.approx(1 / SLOW_TEMPO, rel=0.01)
    assert [s["reference"] for s in meta["segments"]] == [
        s["reference"] for s in before["segments"]
    ]
    for seg, old in zip(meta["segments"], before["segments"], strict=True):
        assert seg["speech_end"] - seg["speech_start"] == pytest.approx(
            (old["speech_end"] - old["speech_start"]) / SLOW_TEMPO, rel=0.02
        )

    # the speech lies where the reference says: the slow audio's loudness at t / tempo follows
    # the hard stream's at t (100 ms frames; the unscaled times do not)
    def loudness(audio: np.ndarray, times: np.ndarray) -> np.ndarray:
        frames = [audio[int(t * RATE) : int(t * RATE) + RATE // 10] for t in times]
        return np.array([np.log10(np.mean(f.astype(np.float64) ** 2) + 1e-9) for f in frames])

    times = np.arange(0.0, len(base) / RATE - 0.2, 0.1)
    heard = loudness(base, times)
    assert np.corrcoef(heard, loudness(stretched, times / SLOW_TEMPO))[0, 1] > 0.9
    assert np.corrcoef(heard, loudness(stretched, times))[0, 1] < 0.5


def test_the_babble_stream_is_the_hard_one_with_another_talker_15_db_below_it(cache: Path) -> None:
    base, talker, meta, _ = added_to_hard(babble, cache)
    assert meta["noise"]["kind"] == "talker" and meta["noise"]["language"] != "en"
    for seg in meta["segments"]:
        # the other talker's own pauses make it a little quieter than the level it is set to
        snr = 20 * np.log10(speech_rms(base, seg) / speech_rms(talker, seg))
        assert BABBLE_SNR_DB - 0.5 < snr < BABBLE_SNR_DB + 6
    # a talker, not a noise: loud and quiet in turns (syllables, pauses), through the gaps too
    frames = talker[: len(talker) // 1600 * 1600].reshape(-1, 1600)
    levels = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    voiced = levels[levels > levels.max() - 40]
    assert np.percentile(voiced, 90) - np.percentile(voiced, 10) > 10
    first, second = meta["segments"][:2]
    gap = talker[int(first["end"] * RATE) : int(second["start"] * RATE)]
    assert np.sqrt(np.mean(gap**2)) > 0.1 * speech_rms(talker, first)
