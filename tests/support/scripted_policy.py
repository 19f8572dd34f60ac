"""A scripted recognizer for the unit tests of the caption commit policy: a script says which
words are spoken when, and a decode hears the script's words inside its window (a decode of a
fragment hears only the fragment). No model, no clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from interpret.frames import Word
from interpret.streaming import CaptionUpdate, DecodeJob, Hypothesis, SpeakerStream
from interpret.streaming import StreamingSettings as Settings
from tests.support.scripted_vad import ScriptedVad, audio

Answer = Callable[[DecodeJob], list[Word]]


def words(start_s: float, end_s: float, text: str) -> list[Word]:
    """The words of ``text`` spread evenly over ``start_s``..``end_s``."""
    parts = text.split()
    step = (end_s - start_s) / len(parts)
    return [
        Word(start_s + i * step, start_s + (i + 0.8) * step, f" {w}") for i, w in enumerate(parts)
    ]


def heard(script: list[Word]) -> Answer:
    def answer(job: DecodeJob) -> list[Word]:
        return [w for w in script if job.offset_s <= w.start_s and w.end_s <= job.end_s + 0.05]

    return answer


def stops_with_a_period(script: list[Word]) -> Answer:
    """Whisper on a window that ends in silence after a word: that word gets a period."""

    def answer(job: DecodeJob) -> list[Word]:
        got = heard(script)(job)
        if got and job.end_s - got[-1].end_s >= 0.1 and got[-1].text[-1].isalnum():
            last = got[-1]
            got[-1] = Word(last.start_s, last.end_s, last.text + ".")
        return got

    return answer


def run(
    speech: list[tuple[float, float]],
    answer: Answer,
    seconds: float,
    *,
    settings: Settings | None = None,
    busy_chunks: int = 0,
    flush: bool = True,
    streams: list[SpeakerStream] | None = None,
    times: list[float] | None = None,
    pauses: tuple[tuple[float, float], ...] = (),
    onset_lag_s: float = 0.0,
) -> tuple[list[CaptionUpdate], list[DecodeJob]]:
    """Feed audio in 100 ms chunks; a decode's answer comes ``busy_chunks`` chunks later (a
    busy machine) or at once. Returns the finals and the decodes made; ``times`` gets the
    stream time each final came out at. ``pauses``: silences too short for the VAD to
    confirm. ``onset_lag_s``: the VAD reports a start this long after it."""
    vad = ScriptedVad(speech, pauses=pauses, onset_lag_s=onset_lag_s)
    stream = SpeakerStream("s", vad, settings, lang="en")  # type: ignore[arg-type]
    if streams is not None:
        streams.append(stream)
    finals: list[CaptionUpdate] = []
    jobs: list[DecodeJob] = []
    running: tuple[DecodeJob, int] | None = None
    now_s = 0.0

    def out(updates: list[CaptionUpdate]) -> None:
        new = [u for u in updates if u.final]
        finals.extend(new)
        if times is not None:
            times.extend(now_s for _ in new)

    def answer_job(job: DecodeJob) -> None:
        got = [Word(w.start_s - job.offset_s, w.end_s - job.offset_s, w.text) for w in answer(job)]
        update = stream.on_result(job, Hypothesis(got, "en"))
        ready = [update] if update is not None else []
        ready += getattr(stream, "take_ready", list)()
        out(ready)

    for i in range(int(seconds * 10)):
        now_s = (i + 1) / 10
        out(stream.push(audio(0.1)))
        if running is not None and i >= running[1]:
            answer_job(running[0])
            running = None
        if running is None:
            job = stream.next_job()
            if job is not None:
                jobs.append(job)
                running = (job, i + busy_chunks)
                if busy_chunks == 0:
                    answer_job(job)
                    running = None
    if flush:
        out(stream.flush())
        for _ in range(20):
            if running is not None:
                answer_job(running[0])
                running = None
            job = stream.next_job()
            if job is None:
                break
            jobs.append(job)
            answer_job(job)
    return finals, jobs


def texts(finals: list[CaptionUpdate]) -> list[str]:
    return [f.text for f in finals]


class ScriptedVads:
    """What a :class:`~interpret.pipeline.CaptionPipeline` asks for (``vad.stream(settings)``):
    one scripted VAD per speaker."""

    def __init__(self, speech: list[tuple[float, float]]) -> None:
        self.speech = speech

    def stream(self, settings: Any) -> ScriptedVad:
        return ScriptedVad(self.speech)


class ScriptedRecognizer:
    """A pipeline's recognizer: every window starts at the segment's start (``start_s``, no
    earlier final) and hears the script's words that end inside it."""

    def __init__(self, script: list[Word], lang: str = "en", start_s: float = 0.5) -> None:
        self.script = script
        self.lang = lang
        self.start_s = start_s

    def recognize(
        self,
        samples: Any,
        *,
        lang: str | None,
        prompt: str,
        final: bool = False,
        abandon: Any = None,
    ) -> Hypothesis:
        # the pipeline's jobs carry the audio only: its length tells the window's end
        end_s = self.start_s + len(samples) / 16000
        got = [w for w in self.script if w.end_s <= end_s + 0.05]
        start = self.start_s
        return Hypothesis(
            [Word(w.start_s - start, w.end_s - start, w.text) for w in got], self.lang
        )
