"""What the streaming policy, the pipeline and the recognizer hand each other: a decode to run,
what the recognizer heard, and the caption concluded from it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .frames import Samples, Word


@dataclass(frozen=True, slots=True)
class DecodeJob:
    """Audio for the recognizer. ``offset_s`` is the stream time of ``audio[0]``."""

    speaker_id: str
    utterance_id: int
    caption_id: str
    audio: Samples
    offset_s: float
    #: stream time the audio reaches
    end_s: float
    #: a decode a final may come from (a pause decode or a cut)
    final: bool
    lang: str | None
    #: text before the audio (the previous final, or what precedes the context audio)
    prompt: str = ""
    #: "interim", "pause", "confirm", "cut" or "retry"
    kind: str = "interim"
    #: the pause (or cut) this decode is for
    key_s: float | None = None
    #: words starting before this stream time belong to the context audio, not the segment
    seam_s: float | None = None


class DecodeAbandoned(Exception):
    """A decode stopped before its result because its caller no longer wanted it (an interim
    overtaken by a decode a final waits for)."""


#: asked by the recognizer between a decode's stages: True stops it (:class:`DecodeAbandoned`)
AbandonFn = Callable[[], bool]


@dataclass(slots=True)
class Hypothesis:
    """What the recognizer returned for a job; word times are relative to the job's audio."""

    words: Sequence[Word]
    lang: str
    lang_probability: float = 1.0


@dataclass(frozen=True, slots=True)
class CaptionUpdate:
    """An interim or final caption concluded from a decode."""

    speaker_id: str
    caption_id: str
    lang: str
    text: str
    stable_chars: int
    start_s: float
    end_s: float
    final: bool
    #: where the audio recognized starts (``start_s`` is where the speech starts)
    audio_from_s: float | None = None
    #: Whisper's own English translation of the utterance's audio (finals, when a route
    #: starts with the "whisper" engine)
    english: str | None = None
    #: a final's words with their probabilities (for confidence display)
    words: tuple[Word, ...] = ()
    #: the languages to translate it into, fixed when it is queued for output (the speaker's
    #: may change, or go with the speaker, before it is translated); None: not yet fixed
    targets: frozenset[str] | None = None

    @property
    def audio_span(self) -> tuple[float, float]:
        """Where the audio recognized starts, and where its words end."""
        return self.start_s if self.audio_from_s is None else self.audio_from_s, self.end_s


def join_words(words: Sequence[Word]) -> str:
    """Whisper words carry their leading space ("Hello", " world")."""
    return "".join(w.text for w in words).strip()
