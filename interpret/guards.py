"""Hallucination guards for Whisper output: silence and noise decoded as words, repetition
loops, text "heard" in the padding after the audio. Pure: no model, no clock.

Whisper scores a whole decode (one window), not a segment: every segment of a window shares
its :class:`WindowScores`.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from .frames import Word

_NORMALIZE = re.compile(r"[^\w]+", re.UNICODE)


@dataclass(frozen=True, slots=True)
class GuardSettings:
    """Thresholds. Calibrated on the evalset with base (``fit`` window; 52 clips in 9 languages,
    whole and cut in half): real speech never scored no_speech_prob above 0.52; silence and
    white noise scored 0.59 to 0.92, some with avg_logprob above -1 (digital silence: 0.92 /
    -0.77, "you"; noise with the language given: 0.71 / -0.60, a loop of "I'm going to put the
    car in the air."), which Whisper's own rule (the first pair below) lets through.
    """

    #: Whisper's rule: silence when no_speech_prob > this ...
    no_speech_prob: float = 0.6
    #: ... and avg_logprob < this
    silence_logprob: float = -1.0
    #: silence also when no_speech_prob > this and either avg_logprob < ``silence_logprob``,
    #: or the detected language's probability < ``min_lang_probability``, or a loop
    doubtful_no_speech_prob: float = 0.5
    min_lang_probability: float = 0.5
    #: silence whatever the rest says
    certain_no_speech_prob: float = 0.8
    #: a buffer whose peak stays below this (≈ -54 dBFS) is not decoded at all
    min_peak: float = 0.002
    #: gzip ratio above which text is a repetition loop (Whisper's 2.4)
    compression_ratio: float = 2.4
    #: an n-gram (n ≥ 2) repeated this many times in a row is collapsed to one copy
    max_ngram_repeats: int = 3
    #: a single word repeated this many times in a row is collapsed to one copy
    max_word_repeats: int = 5
    #: longest n-gram checked for loops
    max_ngram: int = 8
    #: a window's segment that starts this close to the buffer's end and whose words Whisper's
    #: own anomaly score marks (improbable, squeezed into no time, or stretched) is text with
    #: no audio behind it: at the end of a slow speaker's sentence Whisper restarted it, ten
    #: words in the last 0.03 s ("… développement. Il a ajouté qu'on ne devrait …")
    tail_anomaly_s: float = 0.3
    #: decoder token budget per second of audio (caps what a loop costs: without it a loop
    #: runs to Whisper's 448 tokens, ≈ 5–10 s of CPU for base on 2 cores)
    max_tokens_per_s: float = 12.0


@dataclass(frozen=True, slots=True)
class WindowScores:
    """The decoder's scores for one window."""

    no_speech_prob: float
    avg_logprob: float
    compression_ratio: float
    temperature: float = 0.0


def drop_reason(
    scores: WindowScores,
    *,
    start_s: float,
    duration_s: float,
    lang_probability: float = 1.0,
    settings: GuardSettings,
) -> str | None:
    """Why a segment starting at ``start_s`` of a ``duration_s`` buffer must be dropped
    ("beyond_audio", "no_speech", "repetitive"), or None. ``lang_probability`` is the detected
    language's (1.0 when the language was given)."""
    g = settings
    if start_s >= duration_s - 0.1:
        return "beyond_audio"  # "decoded" from the padding after the audio: invented
    nsp, logprob = scores.no_speech_prob, scores.avg_logprob
    looping = scores.compression_ratio > g.compression_ratio
    if (
        (nsp > g.no_speech_prob and logprob < g.silence_logprob)
        or nsp > g.certain_no_speech_prob
        or (
            nsp > g.doubtful_no_speech_prob
            and (
                logprob < g.silence_logprob or lang_probability < g.min_lang_probability or looping
            )
        )
    ):
        return "no_speech"
    if looping:
        return "repetitive"
    return None


def word_anomaly(word: Word) -> float:
    """Whisper's word anomaly score (openai-whisper's ``hallucination_silence_threshold``):
    improbable (< 0.15), squeezed (< 0.133 s) or stretched (> 2 s)."""
    duration = word.end_s - word.start_s
    score = 1.0 if word.probability < 0.15 else 0.0
    if duration < 0.133:
        score += (0.133 - duration) * 15
    if duration > 2.0:
        score += duration - 2.0
    return score


def anomalous_tail(words: Sequence[Word], duration_s: float, settings: GuardSettings) -> bool:
    """Is a segment of ``words`` (times in the buffer) one that starts within
    ``tail_anomaly_s`` of the end of a ``duration_s`` buffer and whose first 8 words score as
    Whisper's anomalous segment (sum ≥ 3, or about 1 a word)?"""
    if not words or words[0].start_s < duration_s - settings.tail_anomaly_s:
        return False
    scored = [w for w in words if _NORMALIZE.sub("", w.text)][:8]
    score = sum(word_anomaly(w) for w in scored)
    return score >= 3 or score + 0.01 >= len(scored)


def rescue_repetitive(words: Sequence[Word], settings: GuardSettings) -> list[Word] | None:
    """A "repetitive" segment whose words, loops collapsed, no longer compress like a loop: the
    collapsed words (real speech followed by a loop: keep the speech). Else None."""
    collapsed = collapse(words, settings)
    text = "".join(w.text for w in collapsed).strip()
    return collapsed if compression_ratio(text) <= settings.compression_ratio else None


def compression_ratio(text: str) -> float:
    """Whisper's repetition score: bytes / zlib-compressed bytes."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def collapse(words: Sequence[Word], settings: GuardSettings) -> list[Word]:
    return collapse_repetitions(
        words,
        max_ngram_repeats=settings.max_ngram_repeats,
        max_word_repeats=settings.max_word_repeats,
        max_ngram=settings.max_ngram,
    )


def collapse_repetitions(
    words: Sequence[Word],
    *,
    max_ngram_repeats: int = 3,
    max_word_repeats: int = 5,
    max_ngram: int = 8,
) -> list[Word]:
    """Collapse Whisper's repetition loops ("thank you thank you thank you …") to one copy.

    An n-gram (2 ≤ n ≤ ``max_ngram``) occurring ``max_ngram_repeats`` or more times in a row,
    or one word ``max_word_repeats`` or more times, keeps only its first occurrence (with its
    times); words are compared without case and punctuation. Ordinary repetition ("no, no",
    "very very very") survives.
    """
    keys = [_NORMALIZE.sub("", w.text.lower()) for w in words]
    out: list[Word] = []
    i = 0
    while i < len(words):
        step = 1
        for n in range(1, max_ngram + 1):
            gram = keys[i : i + n]
            if len(gram) < n or not all(gram):
                break
            copies = 1
            while keys[i + copies * n : i + (copies + 1) * n] == gram:
                copies += 1
            if copies > 1 and copies >= (max_word_repeats if n == 1 else max_ngram_repeats):
                out.extend(words[i : i + n])
                i += copies * n
                step = 0
                break
        if step:
            out.append(words[i])
            i += 1
    return out


# -- guards that read the text of a final (issue 12) -----------------------------------------
def _keys(words: Sequence[Word]) -> list[str]:
    return [_NORMALIZE.sub("", w.text.lower()) for w in words]


def drop_repeated_ngrams(words: Sequence[Word], *, min_n: int = 3) -> list[Word]:
    """Drop the second copy of an n-gram (n ≥ ``min_n``) repeated back to back inside a final
    ("nachdem der Damm 1963 erbaut worden war, nachdem der Damm 1963 erbaut worden war"):
    Whisper's loop on a fragment, never how a sentence reads. Longest n first."""
    out = list(words)
    keys = _keys(out)
    i = 0
    while i < len(out):
        for n in range(len(out[i:]) // 2, min_n - 1, -1):
            gram = keys[i : i + n]
            if all(gram) and keys[i + n : i + 2 * n] == gram:
                del out[i + n : i + 2 * n]
                del keys[i + n : i + 2 * n]
                break
        else:
            i += 1
    return out


def overlap_with_previous(
    words: Sequence[Word], previous: Sequence[Word], *, min_n: int = 2
) -> int:
    """How many leading words of ``words`` repeat the last words of the previous final (an
    n-gram of ≥ ``min_n`` words, up to 8): Whisper re-reading audio already captioned."""
    keys, before = _keys(words), _keys(previous[-8:])
    for n in range(min(len(keys), len(before)), min_n - 1, -1):
        if all(keys[:n]) and keys[:n] == before[-n:]:
            return n
    return 0


@dataclass(frozen=True, slots=True)
class Evidence:
    """What earlier decodes of the same caption heard: their words (normalized) and how far
    in the audio they reach."""

    keys: frozenset[str]
    until_s: float


def agreement_with(words: Sequence[Word], evidence: Evidence) -> float:
    """Share of a final's words, among those inside the audio the earlier decodes covered,
    that those decodes also had (1.0 when fewer than 4 words are inside: too few to judge)."""
    keys = [k for k in _keys([w for w in words if w.end_s <= evidence.until_s]) if k]
    if len(keys) < 4:
        return 1.0
    return sum(k in evidence.keys for k in keys) / len(keys)
