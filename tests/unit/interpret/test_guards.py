"""Hallucination guards: pure logic, with the scores Whisper base really produced on the
evalset, on silence and on white noise (see GuardSettings)."""

from __future__ import annotations

import pytest

from interpret.frames import Word
from interpret.guards import (
    GuardSettings,
    WindowScores,
    anomalous_tail,
    collapse_repetitions,
    compression_ratio,
    drop_reason,
    rescue_repetitive,
)
from interpret.transcribe import words_text

SETTINGS = GuardSettings()


def words_of(text: str) -> list[Word]:
    return [Word(i * 0.3, i * 0.3 + 0.2, " " + t) for i, t in enumerate(text.split())]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("thank you thank you thank you thank you", "thank you"),
        ("I said no, no. Fine", "I said no, no. Fine"),
        ("very very very good", "very very very good"),
        ("la la la la la la song", "la song"),
        (
            "so it is so it is and so it is so it is so it is done",
            "so it is so it is and so it is done",
        ),
        (
            "Ein sehr schönes, ein sehr schönes, ein sehr schönes, ein sehr",
            "Ein sehr schönes, ein sehr",
        ),
        ("", ""),
    ],
)
def test_collapse_repetitions(text: str, expected: str) -> None:
    assert words_text(collapse_repetitions(words_of(text))) == expected


def test_collapse_keeps_the_first_copy_with_its_times() -> None:
    words = words_of("go on go on go on now")
    assert collapse_repetitions(words) == [words[0], words[1], words[-1]]


def test_collapse_with_a_limit_of_one_collapses_any_immediate_repeat() -> None:
    words = words_of("a b a b c c")
    out = collapse_repetitions(words, max_ngram_repeats=1, max_word_repeats=1)
    assert out == [words[0], words[1], words[4]]


def scores(nsp: float, logprob: float, ratio: float = 1.1) -> WindowScores:
    return WindowScores(no_speech_prob=nsp, avg_logprob=logprob, compression_ratio=ratio)


@pytest.mark.parametrize(
    ("window", "lang_probability", "expected"),
    [
        # real speech (evalset): the highest no_speech_prob seen, and the lowest logprob
        (scores(0.52, -0.48), 0.83, None),
        (scores(0.33, -1.26), 0.31, None),
        (scores(0.05, -1.25), 0.39, None),
        # Whisper's own rule
        (scores(0.61, -2.05), 0.75, "no_speech"),
        # digital silence, language detected: Whisper's rule lets it through
        (scores(0.92, -0.77), 0.34, "no_speech"),
        (scores(0.66, -0.62), 0.33, "no_speech"),
        # white noise, language given, decoded as a loop
        (scores(0.71, -0.60, ratio=3.27), 1.0, "no_speech"),
        # uniform noise just under 0.6
        (scores(0.59, -1.51), 0.65, "no_speech"),
        # speech that loops: repetitive, not silence
        (scores(0.10, -0.20, ratio=3.9), 1.0, "repetitive"),
    ],
)
def test_drop_reason(window: WindowScores, lang_probability: float, expected: str | None) -> None:
    reason = drop_reason(
        window,
        start_s=0.0,
        duration_s=5.0,
        lang_probability=lang_probability,
        settings=SETTINGS,
    )
    assert reason == expected


def test_segment_starting_after_the_audio_is_invented() -> None:
    ok = scores(0.05, -0.2)
    assert drop_reason(ok, start_s=4.95, duration_s=5.0, settings=SETTINGS) == "beyond_audio"
    assert drop_reason(ok, start_s=4.5, duration_s=5.0, settings=SETTINGS) is None


def test_speech_followed_by_a_loop_keeps_the_speech() -> None:
    loop = words_of("the cave is on top of a mountain" + " ein sehr schönes" * 8)
    kept = rescue_repetitive(loop, SETTINGS)
    assert kept is not None
    assert words_text(kept) == "the cave is on top of a mountain ein sehr schönes"
    assert rescue_repetitive(words_of("style " * 40), SETTINGS) is not None  # one word left
    assert compression_ratio("style " * 40) > SETTINGS.compression_ratio


def test_a_segment_squeezed_into_the_last_instant_is_text_without_audio() -> None:
    # what base really returned for the end of a slow French speaker's sentence (a 6.75 s
    # buffer): "… développement." then a restart of it, every word at 6.72 s
    restart = [
        Word(6.72, 6.72, " Il", 0.10),
        Word(6.72, 6.72, " a", 0.92),
        Word(6.72, 6.72, " ajouté", 0.97),
        Word(6.72, 6.72, " qu", 0.96),
        Word(6.72, 6.72, "'on", 1.0),
        Word(6.72, 6.72, " ne", 0.87),
    ]
    assert anomalous_tail(restart, 6.75, SETTINGS)
    # a segment starting further from the end (0.78 s here) is not looked at
    assert not anomalous_tail(restart, 7.5, SETTINGS)
    # six words in 0.24 s are squeezed however well heard (each scores 1.4)
    quick = [Word(6.47 + 0.04 * i, 6.51 + 0.04 * i, w.text, 0.9) for i, w in enumerate(restart)]
    assert anomalous_tail(quick, 6.75, SETTINGS)
    # a last word said and heard is kept; one of no time and doubtful is not
    assert not anomalous_tail([Word(6.5, 6.7, " oui.", 0.9)], 6.75, SETTINGS)
    assert not anomalous_tail([Word(6.5, 6.62, " dit.", 0.8)], 6.75, SETTINGS)
    assert anomalous_tail([Word(6.6, 6.6, " you", 0.3)], 6.75, SETTINGS)
    assert not anomalous_tail([], 6.75, SETTINGS)
