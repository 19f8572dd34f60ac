"""A speaker's caption in the making (a *segment*: speech runs between the VAD's pauses, and
what every decode of it said), the latest final, and the punctuation the policy reads."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .agreement import LocalAgreement
from .frames import Word, avg_logprob
from .stream_frames import DecodeJob

SENTENCE_END = (".", "?", "!", "。", "？", "！")
CLAUSE_END = (",", ";", ":", "，", "、", "；")


def ends(word: Word, marks: tuple[str, ...]) -> bool:
    """Does ``word`` end with one of ``marks`` (closing quotes and brackets aside; "..." is no
    sentence end)?"""
    return word.text.rstrip().rstrip("\"'”»)").endswith(marks) and not word.text.rstrip().endswith(
        "..."
    )


@dataclass(slots=True)
class Run:
    """Speech between two pauses, as the VAD saw it."""

    start_s: float  # audio start (padded)
    onset_s: float  # where speech was heard
    end_s: float | None = None  # confirmed end (a pause starts here)


@dataclass(eq=False)
class Segment:
    """A caption being recognized: speech runs from its start, and what the decodes said."""

    uid: int
    part: int
    start_s: float
    lang: str | None
    runs: list[Run]
    agreement: LocalAgreement = field(default_factory=LocalAgreement)
    #: confirmed pauses decided so far (the first ``decided`` runs' ends)
    decided: int = 0
    #: pause decode results: pause start -> words (absolute times, inside the segment)
    results: dict[float, list[Word]] = field(default_factory=dict)
    retried: set[float] = field(default_factory=set)
    retry_s: float | None = None  # a pause whose final is to be decoded again
    cut: list[Word] | None = None  # the result of the bound's cut decode
    inflight: DecodeJob | None = None
    decoded_to_s: float = 0.0
    heard_lang: str = ""
    #: pauses whose decode had the previous final's audio in front
    with_context: set[float] = field(default_factory=set)
    #: pauses to decode without it (with it Whisper gave nothing of the segment's own)
    no_context: set[float] = field(default_factory=set)
    #: pauses after a sentence end where speech came back soon: did the sentence end hold
    #: when the speech after the pause was decoded too?
    confirms: dict[float, bool] = field(default_factory=dict)

    @property
    def onset_s(self) -> float:
        return self.runs[0].onset_s if self.runs else self.start_s

    @property
    def caption_lang(self) -> str:
        return self.heard_lang or self.lang or ""

    @property
    def confirmed_pauses(self) -> list[float]:
        """Where the runs the VAD has ended stop: the segment's confirmed pauses, in order."""
        return [run.end_s for run in self.runs if run.end_s is not None]

    def speech_s(self, until_s: float) -> float:
        """Seconds of speech (the runs) from the segment's start up to ``until_s``."""
        total = 0.0
        for run in self.runs:
            end = until_s if run.end_s is None else min(run.end_s, until_s)
            total += max(0.0, end - max(run.onset_s, self.start_s))
        return total


@dataclass(frozen=True, slots=True)
class Previous:
    """The latest final: context for what follows."""

    text: str
    words: tuple[Word, ...]
    audio_from_s: float
    end_s: float
    #: the text before it (the prompt when its audio is the context)
    prompt: str

    def sure(self, least: float) -> bool:
        """Did Whisper hear it with at least ``least`` probability per word (the geometric
        mean)? Text it was unsure of is no prompt for what follows (Whisper's own long-form
        decoding drops its prompt after a low-confidence window too)."""
        mean = avg_logprob(self.words)
        return least <= 0 or mean is None or mean >= math.log(least)
