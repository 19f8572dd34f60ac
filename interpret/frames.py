"""The pipeline's vocabulary: typed, immutable frames (pipecat's TranscriptionFrame family)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

ASR_SAMPLE_RATE = 16_000

Samples = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True, eq=False)
class AudioChunk:
    """Mono float32 speech at 16 kHz from one speaker; ``start_s`` is on the speaker's stream
    clock (seconds since the speaker's first sample)."""

    speaker_id: str
    samples: Samples
    start_s: float

    @property
    def end_s(self) -> float:
        return self.start_s + len(self.samples) / ASR_SAMPLE_RATE


@dataclass(frozen=True, slots=True)
class Word:
    """A recognised word with its audio time (stream clock, seconds)."""

    start_s: float
    end_s: float
    text: str
    probability: float = 1.0


@dataclass(frozen=True, slots=True)
class CaptionFrame:
    """One caption update. Interims may change (droppable, superseded by the next one with the
    same ``caption_id``); a final never changes and must be delivered."""

    caption_id: str
    speaker_id: str
    lang: str
    text: str
    start_s: float
    end_s: float
    is_final: bool
    #: target language -> translated text (finals always; interims when cheap enough)
    translations: Mapping[str, str] = field(default_factory=dict)
    #: target language -> engine that produced it ("apertium", "argos", "whisper", ...)
    engines: Mapping[str, str] = field(default_factory=dict)
    #: target language -> why there is no translation ("no translation es→ja")
    untranslated: Mapping[str, str] = field(default_factory=dict)
    #: stable prefix of ``text`` that later interims will not change (for flicker-free display)
    stable_chars: int = 0
    #: a final's recognised words with their probabilities (empty for interims)
    words: tuple[Word, ...] = ()

    @property
    def avg_logprob(self) -> float | None:
        """Mean log-probability of the words (Whisper's confidence); None without words."""
        if not self.words:
            return None
        return sum(math.log(max(w.probability, 1e-6)) for w in self.words) / len(self.words)
