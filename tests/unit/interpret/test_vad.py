"""The streaming Silero VAD on real speech (FLEURS long-form stream from the evalset)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from interpret.frames import ASR_SAMPLE_RATE
from interpret.vad import SileroVad, SpeechEnded, SpeechStarted, VadSettings
from tests.support.paths import evalset_dir


@pytest.fixture(scope="module")
def english() -> tuple[np.ndarray, dict]:
    from server.file_captions import load_audio

    base = evalset_dir() / "longform" / "en_fleurs_concat"
    return load_audio(base.with_suffix(".flac")), json.loads(base.with_suffix(".json").read_text())


def events(audio: np.ndarray, settings: VadSettings) -> list[SpeechStarted | SpeechEnded]:
    stream = SileroVad().stream(settings)
    out: list[SpeechStarted | SpeechEnded] = []
    for i in range(0, len(audio), 1600):  # 100 ms chunks, as the media tap sends them
        out += stream.push(audio[i : i + 1600])
    return out


def test_silence_and_noise_start_nothing() -> None:
    rng = np.random.default_rng(1)
    audio = np.concatenate(
        [np.zeros(10 * ASR_SAMPLE_RATE, np.float32), rng.normal(0, 0.05, 5 * ASR_SAMPLE_RATE)]
    ).astype(np.float32)
    assert events(audio, VadSettings()) == []


def test_quiet_openings_are_kept_and_utterances_do_not_overlap(english) -> None:
    audio, meta = english
    # the model's own scores (no input gain: with it the quiet opening scores higher anyway)
    raw = VadSettings(level_target_dbfs=None, background_gate_db=None)
    starts = [e.start_s for e in events(audio, raw) if isinstance(e, SpeechStarted)]
    plain = VadSettings(onset_backtrack_ms=0, level_target_dbfs=None, background_gate_db=None)
    plain_starts = [e.start_s for e in events(audio, plain) if isinstance(e, SpeechStarted)]
    assert len(starts) == len(plain_starts)
    # "To the north and …" (3rd sentence) opens quietly, scored 0.01-0.4 by Silero: without
    # backtracking the utterance starts after those words (22.3 s), with it before them
    third = meta["segments"][2]
    assert min(plain_starts, key=lambda s: abs(s - third["speech_start"])) > 22.2
    assert any(third["start"] < s < 22.0 for s in starts)
    ends = [e.end_s for e in events(audio, raw) if isinstance(e, SpeechEnded)]
    # backtracking never reaches into the previous utterance
    assert all(start >= end for end, start in zip(ends, starts[1:], strict=False))
    assert all(b >= a for a, b in zip(starts, plain_starts, strict=True))


def test_the_end_of_the_audio_ends_the_utterance_and_later_speech_starts_afresh(english) -> None:
    audio, meta = english
    first = meta["segments"][0]
    stop = int((first["speech_start"] + 3.0) * ASR_SAMPLE_RATE) // 1600 * 1600  # mid-speech
    stream = SileroVad().stream(VadSettings())
    before: list[SpeechStarted | SpeechEnded] = []
    for i in range(0, stop, 1600):
        before += stream.push(audio[i : i + 1600])
    assert isinstance(before[-1], SpeechStarted) and stream.in_speech
    ended = stream.end()
    assert len(ended) == 1 and isinstance(ended[0], SpeechEnded)
    assert before[-1].start_s < ended[0].end_s <= stop / ASR_SAMPLE_RATE
    assert not stream.in_speech
    assert stream.end() == []  # nothing in progress any more
    # the audio resumes in the middle of the same sentence: heard as a new utterance
    after: list[SpeechStarted | SpeechEnded] = []
    for i in range(stop, int(first["end"] * ASR_SAMPLE_RATE), 1600):
        after += stream.push(audio[i : i + 1600])
    assert isinstance(after[0], SpeechStarted)
    assert ended[0].end_s <= after[0].start_s < first["speech_end"]


def test_no_onset_is_reported_before_where_the_vad_said_the_audio_was_settled(english) -> None:
    # the caption policy measures a pause up to ``settled_s``: a start reported later must not
    # lie before it, or a pause decision taken early (1x, a fast decode) and one taken late
    # (a busy machine) would differ
    audio, _ = english
    stream = SileroVad().stream(VadSettings())
    settled: list[float] = []
    onsets: list[tuple[float, float]] = []  # (onset, the latest settled_s before it was reported)
    pending = 0
    for i in range(0, len(audio), 1600):
        for e in stream.push(audio[i : i + 1600]):
            if isinstance(e, SpeechStarted):
                assert e.onset_s is not None
                onsets.append((e.onset_s, settled[-1] if settled else 0.0))
        settled.append(stream.settled_s)
        assert settled[-1] <= stream.position_s
        pending += settled[-1] < stream.position_s - 0.05 and not stream.in_speech
    assert len(onsets) >= 5
    assert all(onset >= before - 1e-9 for onset, before in onsets)
    assert all(b >= a for a, b in zip(settled, settled[1:], strict=False))
    assert pending > 0  # onsets were pending (settled_s held back) at some chunk ends


def test_quiet_speech_after_loud_speech_is_heard_from_its_start(english) -> None:
    # a FLEURS reader at -22 dBFS, 1 s of silence, then the next sentence ("To the north and
    # within easy reach …") 10 dB quieter than recorded, -68 dBFS: a far microphone, a browser
    # without AGC. Silero, having heard the loud speech, misses the quiet one's opening.
    audio, meta = english
    loud, quiet = meta["segments"][1], meta["segments"][2]

    def clip(seg: dict) -> np.ndarray:
        return audio[int(seg["start"] * ASR_SAMPLE_RATE) : int(seg["end"] * ASR_SAMPLE_RATE)]

    joined = np.concatenate([clip(loud), np.zeros(ASR_SAMPLE_RATE, np.float32), clip(quiet) * 0.3])
    at = (len(clip(loud)) + ASR_SAMPLE_RATE) / ASR_SAMPLE_RATE
    speech = at + quiet["speech_start"] - quiet["start"]

    def first_start(settings: VadSettings) -> float:
        starts = [e.start_s for e in events(joined, settings) if isinstance(e, SpeechStarted)]
        return min(s for s in starts if s > at - 0.5)

    # without the input gain the first 6 s of the sentence are lost
    assert first_start(VadSettings(level_target_dbfs=None)) > speech + 5.0
    # with it the utterance starts at its speech, give or take the model's reaction
    assert first_start(VadSettings()) < speech + 0.3


def test_the_input_gain_leaves_loud_speech_alone_and_does_not_make_noise_speech(english) -> None:
    audio, meta = english
    loud = meta["segments"][1]
    clip = audio[int(loud["start"] * ASR_SAMPLE_RATE) : int(loud["end"] * ASR_SAMPLE_RATE)]
    stream = SileroVad().stream(VadSettings())
    gains: list[float] = []
    for i in range(
        int((loud["speech_start"] - loud["start"] + 0.5) * ASR_SAMPLE_RATE), len(clip), 1600
    ):
        stream.push(clip[i : i + 1600])
        gains.append(stream.gain_db)
    assert max(gains[: int((loud["speech_end"] - loud["speech_start"]) * 10) - 5]) == 0.0
    # quiet noise is amplified as much as anything (up to ``max_gain_db``), and stays noise
    rng = np.random.default_rng(2)
    for level_db in (-70, -50, -35):
        hiss = rng.normal(0, 10 ** (level_db / 20), 10 * ASR_SAMPLE_RATE).astype(np.float32)
        assert events(hiss, VadSettings()) == [], level_db


def across_the_room(english, near_index: int, lang: str, far_index: int) -> tuple:
    """A FLEURS reader of the English long-form with 4 s of silence after their sentence, and
    a reader of another language's long-form talking all through it, 15 dB below the first
    one's speech (someone across the room); and where the near reader's speech ends."""
    from server.file_captions import load_audio

    audio, meta = english
    seg = meta["segments"][near_index]
    rate = ASR_SAMPLE_RATE
    near = audio[int(seg["start"] * rate) : int(seg["end"] * rate)]
    near = np.concatenate([near, np.zeros(4 * rate, np.float32)])
    speech_end = seg["speech_end"] - seg["start"]
    speech = near[int((seg["speech_start"] - seg["start"]) * rate) : int(speech_end * rate)]
    base = evalset_dir() / "longform" / f"{lang}_fleurs_concat"
    other = json.loads(base.with_suffix(".json").read_text())["segments"][far_index]
    far = load_audio(base.with_suffix(".flac"))[int(other["speech_start"] * rate) :][: len(near)]

    def rms(x: np.ndarray) -> float:
        return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))

    mixed = near + far * (rms(speech) / rms(far) / 10 ** (15 / 20))
    return mixed.astype(np.float32), near, speech_end


def test_a_voice_far_below_the_speakers_own_does_not_keep_their_utterance_going(english) -> None:
    # French across the room: Silero hears speech all along, and the English reader's
    # utterance never ends; the gate ends it when the reader stops (give or take the louder
    # moments of the other voice)
    mixed, near, speech_end = across_the_room(english, 0, "fr", 2)
    ungated = events(mixed, VadSettings(background_gate_db=None))
    assert not [e for e in ungated if isinstance(e, SpeechEnded) and e.end_s > 3.0]
    ends = [e.end_s for e in events(mixed, VadSettings()) if isinstance(e, SpeechEnded)]
    assert any(speech_end - 0.2 < end < speech_end + 2.0 for end in ends)
    # alone, the reader's utterances end where they do without the gate
    alone = [e.end_s for e in events(near, VadSettings()) if isinstance(e, SpeechEnded)]
    plain = [
        e.end_s
        for e in events(near, VadSettings(background_gate_db=None))
        if isinstance(e, SpeechEnded)
    ]
    assert len(alone) == len(plain)
    assert all(abs(a - b) < 0.1 for a, b in zip(alone, plain, strict=True)), (alone, plain)


def test_a_voice_far_below_the_speakers_own_starts_nothing_in_their_pause(english) -> None:
    # Portuguese across the room: without the gate it starts two utterances in the 4 s after
    # the English reader's sentence (captions of a voice nobody in the room meant for them)
    mixed, _, speech_end = across_the_room(english, 3, "pt", 3)

    def starts_after(settings: VadSettings) -> list[float]:
        return [
            e.start_s
            for e in events(mixed, settings)
            if isinstance(e, SpeechStarted) and e.start_s > speech_end
        ]

    assert len(starts_after(VadSettings(background_gate_db=None))) >= 1
    assert starts_after(VadSettings()) == []
