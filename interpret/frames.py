"""The pipeline's vocabulary: typed, immutable frames (pipecat's TranscriptionFrame family)."""

from __future__ import annotations

import math
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypedDict

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


def avg_logprob(words: Sequence[Word]) -> float | None:
    """Mean log-probability of ``words`` (Whisper's confidence); None without words."""
    if not words:
        return None
    return sum(math.log(max(w.probability, 1e-6)) for w in words) / len(words)


@dataclass(frozen=True, slots=True)
class Translated:
    """A text in one target language, and the engine that made it ("apertium", "argos",
    "whisper", ...)."""

    text: str
    engine: str


@dataclass(frozen=True, slots=True)
class Untranslated:
    """Why there is no text in one target language, for people ("no translation es→ja")."""

    reason: str


#: the outcome of translating into one language
Translation = Translated | Untranslated


class TranslationFields(TypedDict):
    """The three maps by language of the client protocol (PROTOCOL.md)."""

    translations: dict[str, str]
    engines: dict[str, str]
    #: why there is no translation
    untranslated: dict[str, str]


def translation_fields(
    translations: Mapping[str, Translation], languages: Container[str] | None = None
) -> TranslationFields:
    """``translations`` (only those into ``languages``, when given) as the client protocol's
    three maps."""
    fields = TranslationFields(translations={}, engines={}, untranslated={})
    for lang, t in translations.items():
        if languages is not None and lang not in languages:
            continue
        if isinstance(t, Translated):
            fields["translations"][lang] = t.text
            fields["engines"][lang] = t.engine
        else:
            fields["untranslated"][lang] = t.reason
    return fields


def translated_texts(translations: Mapping[str, Translation]) -> dict[str, str]:
    """The texts among ``translations``, by language."""
    return {lang: t.text for lang, t in translations.items() if isinstance(t, Translated)}


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
    #: target language -> its translation or why there is none (finals always; interims when
    #: cheap enough)
    translations: Mapping[str, Translation] = field(default_factory=dict)
    #: stable prefix of ``text`` that later interims will not change (for flicker-free display)
    stable_chars: int = 0
    #: a final's recognised words with their probabilities (empty for interims)
    words: tuple[Word, ...] = ()

    @property
    def avg_logprob(self) -> float | None:
        """Mean log-probability of the words (Whisper's confidence); None without words."""
        return avg_logprob(self.words)
