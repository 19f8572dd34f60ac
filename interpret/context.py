"""Context audio: a segment that starts right after a final is decoded with (the end of) that
final's audio in front of it, so the second half of a sentence cut at a pause is recognized
with its first half. Pure functions: where such a window starts, which of its words are the
segment's own, and when the decode cannot be the segment's final; and where an interim of a
long segment starts (the words the interims agree on stay, as text)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from .agreement import normalized
from .frames import Word
from .segments import Previous, Segment
from .stream_frames import join_words
from .streaming_settings import StreamingSettings


def word_gaps(words: Sequence[Word]) -> list[float]:
    """The middle of the gap between each two consecutive words: where a window may start
    without cutting a word."""
    return [(a.end_s + b.start_s) / 2 for a, b in itertools.pairwise(words)]


def context_window(
    previous: Previous | None,
    seg_start_s: float,
    end_s: float,
    kept_from_s: float,
    settings: StreamingSettings,
) -> tuple[float, str] | None:
    """Where a decode of the segment starting at ``seg_start_s`` up to ``end_s`` starts when
    the previous final's audio goes in front of it (at a word boundary of that final, at most
    ``context_audio_s`` before the segment and ``max_window_s`` before ``end_s``, in the audio
    still kept from ``kept_from_s``), and the text before that start; None without context."""
    s, prev = settings, previous
    if prev is None or seg_start_s - prev.end_s > s.context_gap_s:
        return None
    if end_s - seg_start_s > s.context_max_segment_s:
        return None  # a long segment hears its sentence in its own audio
    starts = [prev.audio_from_s, *word_gaps(prev.words)]
    for k, start in enumerate(starts):
        if (
            start >= kept_from_s
            and seg_start_s - start <= s.context_audio_s
            and end_s - start <= s.max_window_s
            and start < seg_start_s
        ):
            before = join_words(prev.words[:k])
            return start, f"{prev.prompt} {before}".strip()
    return None


def interim_window(
    committed: Sequence[Word], seg_start_s: float, end_s: float, window_s: float
) -> tuple[float, str] | None:
    """Where an interim decode of a segment from ``seg_start_s`` up to ``end_s`` starts when
    the segment is longer than ``window_s``: between two of the words the interims already
    agree on (``committed``), at the first such boundary at most ``window_s`` before
    ``end_s`` (the last one if all lie further back), and the committed text before it (the
    decode's prompt: whisper_streaming's trimmed buffer). None: the whole segment (it is
    short, ``window_s`` is 0, or too little is committed). Only interims are trimmed: the
    decodes a final comes from hear the whole segment."""
    if window_s <= 0 or end_s - seg_start_s <= window_s or len(committed) < 2:
        return None
    starts = word_gaps(committed)
    k = next((k for k, start in enumerate(starts) if end_s - start <= window_s), len(starts) - 1)
    if starts[k] <= seg_start_s:
        return None
    return starts[k], join_words(committed[: k + 1])


#: a text match of the previous final's last words is the seam only if it ends no earlier than
#: this long before the last of them started (the same audio, two decodes: Whisper's word times
#: differ by tenths of a second). A slow French speaker's final ended in misheard words
#: ("… eu lieu en terrement à lieu" for "… en terrain montagneux"); its last word "lieu" matched
#: the "lieu" 1.2 s earlier in the next decode, and "en terrain montagneux" came out twice.
SEAM_SLACK_S = 1.0


def words_after_seam(words: list[Word], seam_s: float, previous: Previous | None) -> list[Word]:
    """The words of a decode with context audio that are the segment's own: those after
    the previous final's last words where the text shows them (compared as letters, so
    "Nicht-Juden gleichermaßen" matches "Nicht-Judengleichermaßen") at about the time the
    final heard them (``SEAM_SLACK_S``), else those whose middle lies after ``seam_s``
    (Whisper smears a word's start or end into a long pause: "letter, even | (2 s) the
    middle" gave "even" a start 0.8 s before the seam)."""
    prev = previous
    if prev is not None and prev.words:
        keys = [normalized(w.text) for w in words]
        tail = [normalized(w.text) for w in prev.words]
        earliest = prev.words[-1].start_s - SEAM_SLACK_S
        for n in range(min(3, len(tail)), 0, -1):
            wanted = "".join(tail[-n:])
            if len(wanted) < 4 and n < len(tail):
                continue  # "a", "the": too common to place the seam by
            text = ""
            ends = []
            for e, (key, word) in enumerate(zip(keys, words, strict=True), start=1):
                text += key
                if (
                    earliest <= word.end_s
                    and word.start_s < seam_s + 0.5
                    and key
                    and text.endswith(wanted)
                ):
                    ends.append(e)
            if ends:
                return words[max(ends) :]
    return [w for w in words if (w.start_s + w.end_s) / 2 >= seam_s]


def context_failure(
    seg: Segment, words: list[Word], key: float, settings: StreamingSettings
) -> str | None:
    """Why a decode with context audio cannot be the segment's final, or None."""
    least = settings.min_tail_speech_s
    if not words:
        return "context_empty" if seg.speech_s(key) >= least else None
    if seg.speech_s(key) - seg.speech_s(words[-1].end_s) >= least:
        return "context_short"  # ≥ 1 s of speech after the last word recognized
    return None
