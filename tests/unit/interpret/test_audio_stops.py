"""When a speaker's audio stops arriving (the stream ended or stalled, the track ended, the
speaker left), every caption waiting for the audio to say how long a pause is, or for the
speech after it, is settled at once: its finals must not depend on whether more audio ever
comes (issue 12: a stream that ended 0.6 s after a sentence waited for the whole feed to end,
22 s). Scripted VAD and recognizer outputs: no model, no clock."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from interpret.frames import AudioChunk, CaptionFrame, Word
from interpret.pipeline import CaptionPipeline
from interpret.streaming import CaptionUpdate, DecodeJob, Hypothesis, SpeakerStream
from interpret.streaming import StreamingSettings as Settings
from tests.support.scripted_policy import (
    Answer,
    ScriptedRecognizer,
    ScriptedVads,
    heard,
    run,
    stops_with_a_period,
    texts,
    words,
)
from tests.support.scripted_vad import ScriptedVad, audio
from tests.support.waits import wait_until


class Feed:
    """One speaker stream fed in 100 ms chunks; every decode answered at once."""

    def __init__(self, speech: list[tuple[float, float]], answer: Answer) -> None:
        self.stream = SpeakerStream("s", ScriptedVad(speech), Settings(), lang="en")  # type: ignore[arg-type]
        self.answer = answer
        self.finals: list[CaptionUpdate] = []
        self.jobs: list[DecodeJob] = []

    def _out(self, updates: list[CaptionUpdate]) -> None:
        self.finals += [u for u in updates if u.final]

    def decode(self) -> None:
        while (job := self.stream.next_job()) is not None:
            self.jobs.append(job)
            got = [
                Word(w.start_s - job.offset_s, w.end_s - job.offset_s, w.text)
                for w in self.answer(job)
            ]
            update = self.stream.on_result(job, Hypothesis(got, "en"))
            self._out([*([update] if update else []), *self.stream.take_ready()])

    def audio(self, seconds: float, *, decode: bool = True) -> None:
        """``decode=False``: the decoder is busy elsewhere meanwhile."""
        for _ in range(round(seconds * 10)):
            self._out(self.stream.push(audio(0.1)))
            if decode:
                self.decode()

    def stop(self, *, decode: bool = True) -> None:
        self._out(self.stream.flush())
        if decode:
            self.decode()


SENTENCE = words(0.5, 3.0, "It holds back the river.")


def test_a_sentence_whose_stream_ends_at_a_short_pause_is_final_when_the_audio_stops() -> None:
    # the stream ends 0.6 s after the sentence: less than the pause a sentence end waits for
    feed = Feed([(0.5, 3.0)], stops_with_a_period(SENTENCE))
    feed.audio(3.6)
    assert feed.finals == []  # the pause may still grow, or speech follow
    feed.stop()
    assert texts(feed.finals) == ["It holds back the river."]
    # the same final as when the audio had gone on in silence
    silent = Feed([(0.5, 3.0)], stops_with_a_period(SENTENCE))
    silent.audio(6.0)
    assert texts(silent.finals) == texts(feed.finals)
    assert feed.finals[0].end_s == silent.finals[0].end_s == 3.0


def test_a_fragment_ending_in_a_comma_does_not_wait_for_audio_that_never_comes() -> None:
    script = words(0.5, 3.0, "After the great flood,")
    feed = Feed([(0.5, 3.0)], heard(script))
    feed.audio(4.0)  # a comma waits 2 s of pause for more speech: 1 s so far
    assert feed.finals == []
    feed.stop()
    assert texts(feed.finals) == ["After the great flood,"]


def test_a_stop_while_the_sentence_end_waits_for_its_confirm_decode_settles_it() -> None:
    # "... the river." | 0.8 s | "Nobody" and the stream ends 0.3 s into the new speech,
    # before the confirm decode's window (0.6 s of it) is there
    script = [*SENTENCE, *words(3.8, 4.4, "Nobody knew")]
    feed = Feed([(0.5, 3.0), (3.8, 4.4)], heard(script))
    feed.audio(4.1)
    assert feed.finals == []
    feed.stop()
    assert texts(feed.finals) == ["It holds back the river.", "Nobody"]
    confirm = [j for j in feed.jobs if j.kind == "confirm"]
    assert [round(j.end_s, 3) for j in confirm] == [4.1]  # the audio there is, no more
    assert feed.stream.next_job_pending() is False  # nothing left waiting


def test_a_stop_in_the_middle_of_speech_ends_the_utterance_there() -> None:
    script = words(0.5, 5.0, "the dam was built in nineteen sixty three by")
    feed = Feed([(0.5, 5.0)], heard(script))
    feed.audio(3.0)
    feed.stop()
    assert texts(feed.finals) == [" ".join(w.text.strip() for w in script if w.end_s <= 3.05)]
    assert feed.stream.next_job_pending() is False


def test_audio_after_a_stop_is_heard_afresh_and_nothing_is_lost() -> None:
    # a stall 2 s into a 4.5 s run of speech: what came before is final at the stop, the rest
    # of the run is a new utterance once the audio resumes
    script = words(0.5, 5.0, "one two three four five six seven eight nine")
    feed = Feed([(0.5, 5.0)], heard(script))
    feed.audio(2.5)
    feed.stop()
    first = [w.text.strip() for w in script if w.end_s <= 2.55]
    assert texts(feed.finals) == [" ".join(first)]
    assert feed.stream.stopped
    feed.audio(5.0)
    assert not feed.stream.stopped
    rest = [w.text.strip() for w in script if w.start_s >= 2.5]
    assert texts(feed.finals) == [" ".join(first), " ".join(rest)]
    feed.stop()
    feed.stop()  # idempotent: nothing more
    assert len(feed.finals) == 2


def test_a_stall_ends_the_pause_whether_or_not_its_decode_came_before_the_audio_resumed() -> None:
    # the audio stalls 0.6 s after a sentence, then resumes 0.2 s (of audio) later with its
    # lower-case continuation: for the listener that was a long pause, so the sentence is
    # final, however late its pause decode ran
    script = [*SENTENCE, *words(3.8, 6.0, "and nobody knew why.")]
    speech = [(0.5, 3.0), (3.8, 6.0)]
    idle = Feed(speech, heard(script))
    idle.audio(3.6)
    idle.stop()
    idle.audio(5.0)
    busy = Feed(speech, heard(script))
    busy.audio(3.6, decode=False)
    busy.stop(decode=False)
    busy.audio(0.3, decode=False)  # the next speech is there before the pause is decoded
    busy.audio(4.7)
    assert (
        texts(idle.finals)
        == texts(busy.finals)
        == ["It holds back the river.", "and nobody knew why."]
    )


def test_without_a_stop_the_finals_do_not_change() -> None:
    # the flush at the end of a stream that went on in silence changes nothing
    script = [*SENTENCE, *words(6.0, 8.0, "Nobody knew.")]
    ended, _ = run([(0.5, 3.0), (6.0, 8.0)], heard(script), 12.0, flush=True)
    open_, _ = run([(0.5, 3.0), (6.0, 8.0)], heard(script), 12.0, flush=False)
    assert texts(ended) == texts(open_) == ["It holds back the river.", "Nobody knew."]


def test_the_pipeline_settles_a_speaker_whose_audio_stopped_arriving() -> None:
    now = [0.0]
    frames: list[CaptionFrame] = []
    lock = threading.Lock()

    def emit(frame: CaptionFrame) -> None:
        with lock:
            frames.append(frame)

    def finals() -> list[str]:
        with lock:
            return [f.text for f in frames if f.is_final]

    def heard_whole_sentence() -> bool:
        with lock:
            return any(f.text == "It holds back the river." for f in frames)

    def until(predicate: Any) -> bool:
        return asyncio.run(wait_until(predicate, 10.0))

    pipeline = CaptionPipeline(
        recognizer=ScriptedRecognizer(SENTENCE),
        vad=ScriptedVads([(0.5, 3.0)]),  # type: ignore[arg-type]
        emit=emit,
        audio_idle_s=1.0,
        clock=lambda: now[0],
    )
    pipeline.add_speaker("s", "en")
    pipeline.start()
    try:
        for i in range(36):  # the stream ends 0.6 s after the sentence
            pipeline.push(AudioChunk("s", audio(0.1), i / 10))
        assert until(heard_whole_sentence)  # the pause decode's interim
        assert finals() == []  # the pause may still grow: no more audio, no clock, no final
        now[0] = 1.0  # the audio stopped arriving 1 s ago
        assert until(lambda: finals() == ["It holds back the river."])
    finally:
        pipeline.stop(drain=True, timeout_s=10.0)
    assert finals() == ["It holds back the river."]
