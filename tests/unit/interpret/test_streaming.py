"""The speaker stream's decision logic with a scripted VAD and synthetic audio; the recognizer
is replaced by a scripted one (this tests *when* and *what* to decode, not ASR). The policy's
issue-12 behaviour (pauses are not sentence ends, guards) is in test_commit_policy.py."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from interpret.frames import ASR_SAMPLE_RATE, Word
from interpret.streaming import (
    CaptionUpdate,
    DecodeJob,
    Hypothesis,
    SpeakerStream,
    StreamingSettings,
)
from tests.support.scripted_vad import ScriptedVad, audio


def speech_stream(
    speech: list[tuple[float, float]],
    settings: StreamingSettings | None = None,
    pauses: tuple[tuple[float, float], ...] = (),
) -> SpeakerStream:
    vad = ScriptedVad(speech, pauses=pauses)
    return SpeakerStream("s", vad, settings, lang="en")  # type: ignore[arg-type]


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * ASR_SAMPLE_RATE), np.float32)


def feed(stream: SpeakerStream, audio: np.ndarray, chunk_s: float = 0.1) -> list:
    out = []
    step = int(chunk_s * ASR_SAMPLE_RATE)
    for i in range(0, len(audio), step):
        out.extend(stream.push(audio[i : i + step]))
    return out


def hyp(n_words: int, duration_s: float, end: str = ".") -> Hypothesis:
    """``n_words`` words over ``duration_s``, the last one ending with ``end``."""
    step = duration_s / max(1, n_words)
    return Hypothesis(
        [
            Word(i * step, (i + 1) * step, f" w{i}{end if i == n_words - 1 else ''}")
            for i in range(n_words)
        ],
        "en",
    )


def test_silence_costs_nothing() -> None:
    stream = speech_stream([])
    feed(stream, audio(5))
    assert stream.next_job() is None


def test_pause_decode_becomes_the_final_without_another_decode() -> None:
    # no interims: only the pause decode
    settings = StreamingSettings(interim_interval_s=100, first_interim_after_s=100)
    stream = speech_stream([(0.5, 3.5)], settings)
    feed(stream, audio(3.5))
    assert stream.next_job() is None  # still talking, interims off
    feed(stream, audio(0.2))  # a pause began: decode right away, before the end is confirmed
    job = stream.next_job()
    assert job is not None and job.kind == "pause"
    assert job.offset_s == 0.5 and abs(job.end_s - 3.65) < 0.06
    update = stream.on_result(job, hyp(6, 3.0))
    assert update is not None and not update.final
    assert feed(stream, audio(0.5)) == []  # the VAD confirms the end; the speaker may go on
    finals = feed(stream, audio(0.6))  # a pause of sentence_pause_s: that decode was the final
    assert len(finals) == 1 and finals[0].final and finals[0].text == "w0 w1 w2 w3 w4 w5."
    assert finals[0].caption_id == update.caption_id
    assert (finals[0].start_s, finals[0].end_s) == (0.5, 3.5)
    assert stream.next_job() is None and not stream.next_job_pending()


def test_end_confirmed_while_decoding_promotes_that_decode() -> None:
    stream = speech_stream(
        [(0.0, 2.0)], StreamingSettings(interim_interval_s=100, first_interim_after_s=100)
    )
    feed(stream, audio(2.2))
    job = stream.next_job()
    assert job is not None
    assert feed(stream, audio(1.1)) == []  # end confirmed, the pause long, decode still running
    update = stream.on_result(job, hyp(4, 2.0))
    assert update is not None and update.final


def test_speech_resuming_after_a_pause_needs_a_final_decode() -> None:
    stream = speech_stream(
        [(0.0, 4.0)],
        StreamingSettings(interim_interval_s=100, first_interim_after_s=100),
        pauses=((2.0, 2.3),),
    )
    feed(stream, audio(2.2))
    pause_job = stream.next_job()  # pause at 2.0
    assert pause_job is not None
    feed(stream, audio(3.1))  # speech went on; the end of 4.0 is confirmed at 4.4, long by 5.2
    interim = stream.on_result(pause_job, hyp(4, 2.0))
    assert interim is not None and not interim.final  # the pause decode serves as an interim
    final_job = stream.next_job()
    assert final_job is not None and final_job.final
    assert final_job.offset_s == 0.0 and final_job.end_s >= 4.0  # the whole utterance
    update = stream.on_result(final_job, hyp(9, 4.0))
    assert update is not None and update.final and update.caption_id == interim.caption_id


def test_interims_come_while_speaking_and_commit_with_agreement() -> None:
    settings = StreamingSettings(interim_interval_s=1.0, first_interim_after_s=0.8)
    stream = speech_stream([(0.0, 10.0)], settings)
    feed(stream, audio(1.5))
    first = stream.next_job()
    assert first is not None and not first.final
    u1 = stream.on_result(first, hyp(3, 1.0, end=""))
    assert u1 is not None and u1.stable_chars == 0  # nothing agreed yet
    assert stream.next_job() is None  # not enough new audio yet
    feed(stream, audio(1.2))
    second = stream.next_job()
    assert second is not None
    u2 = stream.on_result(second, hyp(5, 1.666, end=""))
    assert u2 is not None and u2.caption_id == u1.caption_id
    assert u2.stable_chars > 0 and u2.text.startswith(u2.text[: u2.stable_chars])


def test_the_first_interim_comes_its_delay_into_the_speech_whatever_audio_is_before_it() -> None:
    # the VAD's utterance starts 0.3 s before its speech (pad): the first interim still comes
    # 0.5 s into the speech, not ``interim_interval_s`` after the padded start; the next one
    # ``interim_interval_s`` after it
    settings = StreamingSettings(interim_interval_s=1.0, first_interim_after_s=0.5)
    vad = ScriptedVad([(1.0, 10.0)], lead_s=0.3)
    stream = SpeakerStream("s", vad, settings, lang="en")  # type: ignore[arg-type]
    feed(stream, audio(1.4))
    assert stream.next_job() is None  # 0.4 s of speech
    feed(stream, audio(0.1))
    first = stream.next_job()
    assert first is not None and first.kind == "interim"
    assert first.offset_s == 0.7 and first.end_s == 1.5
    stream.on_result(first, hyp(2, 0.8, end=""))
    feed(stream, audio(0.9))
    assert stream.next_job() is None
    feed(stream, audio(0.1))
    second = stream.next_job()
    assert second is not None and second.kind == "interim" and second.end_s == 2.5


def test_the_scheduler_key_puts_finals_first() -> None:
    talking = speech_stream([(0.0, 10.0)])
    feed(talking, audio(3.0))
    ended = speech_stream([(0.0, 1.0)])
    feed(ended, audio(2.0))  # ended, never decoded: the decode a final waits for is due
    assert ended.urgency() < talking.urgency()


def test_long_segments_are_cut_with_a_decode_of_exactly_the_bound() -> None:
    settings = StreamingSettings(
        max_segment_s=6.0, interim_interval_s=100, first_interim_after_s=100
    )
    stream = speech_stream([(0.0, 30.0)], settings)
    feed(stream, audio(6.5))
    job = stream.next_job()
    assert job is not None and job.final and job.kind == "cut"
    assert (job.offset_s, job.end_s) == (0.0, 6.0)


def test_a_short_fragment_is_joined_with_what_follows() -> None:
    settings = StreamingSettings(interim_interval_s=100, first_interim_after_s=100)
    stream = speech_stream([(0.0, 0.7), (1.3, 4.0)], settings)  # "However," ... the sentence
    finals = []
    for _ in range(60):
        finals += feed(stream, audio(0.1))
        job = stream.next_job()
        if job is not None:
            update = stream.on_result(job, hyp(2 if job.end_s < 1 else 8, job.end_s - 0.15))
            finals += [update] if update is not None and update.final else []
    assert len(finals) == 1 and finals[0].start_s == 0.0  # one caption from the fragment on
    assert finals[0].text.endswith("w7.")


def test_a_short_utterance_alone_is_final_after_a_long_pause() -> None:
    stream = speech_stream(
        [(0.0, 0.7)], StreamingSettings(interim_interval_s=100, first_interim_after_s=100)
    )
    feed(stream, audio(1.2))
    job = stream.next_job()
    assert job is not None and job.final and job.offset_s == 0.0
    assert stream.on_result(job, hyp(1, 0.7)) is not None
    assert not feed(stream, audio(0.9))  # "Yes." alone: more speech may follow
    finals = feed(stream, audio(0.7))  # 2 s of silence (short_long_pause_s): the speaker stopped
    assert [f.text for f in finals] == ["w0."]


def _script(n: int, every_s: float, punct: dict[int, str]) -> list[Word]:
    return [Word(i * every_s, (i + 0.8) * every_s, f" w{i}{punct.get(i, '')}") for i in range(n)]


def _run(
    stream: SpeakerStream, script: list[Word], seconds: float
) -> tuple[list[CaptionUpdate], list[DecodeJob]]:
    """Feed speech, answering every decode with the script's words heard so far."""
    finals: list[CaptionUpdate] = []
    jobs: list[DecodeJob] = []
    for _ in range(int(seconds * 10)):
        finals += stream.push(audio(0.1))
        job = stream.next_job()
        if job is not None:
            jobs.append(job)
            heard = [
                Word(w.start_s - job.offset_s, w.end_s - job.offset_s, w.text)
                for w in script
                if job.offset_s <= w.start_s and w.end_s <= job.end_s
            ]
            update = stream.on_result(job, Hypothesis(heard, "en"))
            if update is not None and update.final:
                finals.append(update)
            finals += stream.take_ready()
    return finals, jobs


def test_a_long_segment_is_cut_at_a_sentence_end_heard_before_a_pause() -> None:
    settings = StreamingSettings(sentence_cut_after_s=6.0, clause_cut_after_s=100)
    # sentence ends at 6.9 s; a short pause at 9.0-9.5 s without a sentence end
    stream = speech_stream([(0.0, 9.0), (9.5, 60.0)], settings)
    script = [w for w in _script(100, 0.5, {13: ".", 30: "."}) if not 9.0 <= w.start_s < 9.5]
    finals, _ = _run(stream, script, 10.5)
    assert [f.text for f in finals] == [" ".join(f"w{i}" for i in range(14)) + "."]
    assert 6.9 <= finals[0].end_s <= 7.0  # between "w13." and "w14"


def test_a_clause_end_at_a_pause_ends_only_a_long_segment() -> None:
    settings = StreamingSettings(sentence_cut_after_s=100, clause_cut_after_s=10.0)
    pauses = [(3.0, 3.6), (12.5, 13.1)]
    speech = [(0.0, 3.0), (3.6, 12.5), (13.1, 60.0)]
    script = [
        w
        for w in _script(100, 0.5, {5: ",", 24: ","})
        if not any(a <= w.start_s < b for a, b in pauses)
    ]
    stream = speech_stream(speech, settings)
    finals, _ = _run(stream, script, 14.0)
    assert [(f.text.split()[0], f.text.split()[-1]) for f in finals] == [("w0", "w24,")]


def decode_prompts(
    stream: SpeakerStream, answer: Callable[[DecodeJob], Hypothesis], chunks: int
) -> dict[int, str]:
    """Feed ``chunks`` of 100 ms, answering each decode at once with ``answer``; the prompt
    of the (last) decode starting at each second."""
    prompts: dict[int, str] = {}
    for _ in range(chunks):
        feed(stream, audio(0.1))
        job = stream.next_job()
        if job is not None:
            prompts[round(job.offset_s)] = job.prompt
            stream.on_result(job, answer(job))
    return prompts


def test_the_previous_final_is_the_next_segments_context_unless_long_ago() -> None:
    # (context_gap_s=0: no context audio, which test_commit_policy.py covers)
    settings = StreamingSettings(
        interim_interval_s=100, first_interim_after_s=100, context_max_gap_s=30.0, context_gap_s=0
    )
    stream = speech_stream([(0.0, 2.5), (4.0, 6.6), (40.0, 42.5)], settings)
    by_start = decode_prompts(
        stream,
        lambda job: hyp({0: 2, 4: 3, 40: 1}.get(round(job.offset_s), 1), job.end_s - job.offset_s),
        450,
    )
    assert by_start[0] == ""  # nothing said before
    assert by_start[4] == "w0 w1."  # the first segment's final, not its own words
    assert by_start[40] == ""  # 35 s later: a new topic, no context


def test_a_final_whisper_was_unsure_of_is_no_prompt() -> None:
    """As Whisper's long-form decoding drops its prompt after a low-confidence window: a
    misheard final ("mar, o mar, fara, e o ar.", 0.3 per word) would lead the next decode
    astray; a final heard clearly is the next segment's prompt."""
    settings = StreamingSettings(interim_interval_s=100, first_interim_after_s=100, context_gap_s=0)
    for probability, prompt in ((0.3, ""), (0.9, "w0 w1.")):
        stream = speech_stream([(0.0, 2.5), (4.0, 6.6)], settings)

        def heard(job: DecodeJob, probability: float = probability) -> Hypothesis:
            got = hyp(2 if round(job.offset_s) == 0 else 3, job.end_s - job.offset_s)
            words = [Word(w.start_s, w.end_s, w.text, probability) for w in got.words]
            return Hypothesis(words, "en")

        prompts = decode_prompts(stream, heard, 100)
        assert prompts[4] == prompt, (probability, prompts)
