"""The commit policy (issue 12) with scripted recognizer outputs: no model, no clock.

A script says which words are spoken when; the scripted recognizer answers a decode with the
script's words inside its window, so a decode of a fragment hears only the fragment. These
tests failed with the policy before issue 12 (every confirmed pause a final, no text guards):
see the commit message for the run against the old ``interpret/streaming.py``.
"""

from __future__ import annotations

from interpret.frames import Word
from interpret.streaming import DecodeJob, SpeakerStream
from interpret.streaming import StreamingSettings as Settings
from tests.support.scripted_policy import heard, run, texts, words

# "The dam was built in 1963 | (1.4 s pause) | after the great flood." and a second sentence
SENTENCE = [
    *words(0.5, 3.0, "The dam was built in 1963"),
    *words(4.4, 6.5, "after the great flood."),
    *words(8.5, 11.0, "It holds back the river."),
]
SPEECH = [(0.5, 3.0), (4.4, 6.5), (8.5, 11.0)]


def test_a_pause_mid_sentence_is_not_a_final() -> None:
    finals, _ = run(SPEECH, heard(SENTENCE), 14.0)
    assert texts(finals) == [
        "The dam was built in 1963 after the great flood.",
        "It holds back the river.",
    ]


def test_the_words_after_a_pause_are_decoded_with_the_sentence_before_them() -> None:
    _, jobs = run(SPEECH, heard(SENTENCE), 14.0)
    after_pause = [j for j in jobs if j.final and 6.5 <= j.end_s <= 7.0]
    assert after_pause and all(j.offset_s <= 0.5 for j in after_pause)


def test_a_sentence_end_at_a_pause_is_final_once_the_pause_is_long_enough() -> None:
    finals, _ = run(SPEECH, heard(SENTENCE), 7.6, flush=False)  # 1.1 s after "flood."
    assert finals == []  # the speaker may go on (test_sentence_confirm.py)
    finals, _ = run(SPEECH, heard(SENTENCE), 7.8, flush=False)  # sentence_pause_s = 1.2
    assert texts(finals) == ["The dam was built in 1963 after the great flood."]


def test_without_a_sentence_end_a_long_pause_still_ends_the_caption() -> None:
    script = words(0.5, 3.5, "so we went on and on")
    finals, _ = run([(0.5, 3.5)], heard(script), 4.9, flush=False)
    assert finals == []  # 1.4 s of pause: the speaker may go on
    finals, _ = run([(0.5, 3.5)], heard(script), 5.2, flush=False)  # long_pause_s = 1.5
    assert texts(finals) == ["so we went on and on"]


def test_after_a_long_pause_mid_sentence_the_rest_hears_the_first_half() -> None:
    # a pause of long_pause_s with no punctuation ends the caption (the speaker may have
    # stopped); when they go on, the rest is decoded with the first half's audio in front
    script = [*words(0.5, 3.5, "so we went on and on"), *words(5.1, 6.5, "until the end.")]
    finals, jobs = run([(0.5, 3.5), (5.1, 6.5)], heard(script), 10.0)
    assert texts(finals) == ["so we went on and on", "until the end."]
    rest = [j for j in jobs if j.final and j.end_s > 6.0]
    assert rest and all(j.offset_s <= 0.5 and j.seam_s is not None for j in rest)


def test_the_finals_do_not_depend_on_decode_timing() -> None:
    script = [
        *words(0.5, 2.0, "However,"),
        *words(2.8, 6.0, "the committee decided that"),
        *words(6.7, 9.0, "the vote would wait."),
        *words(10.5, 12.0, "Nobody agreed."),
        *words(13.0, 26.0, "then a very long sentence with no pause at all that goes on and on"),
    ]
    speech = [(0.5, 2.0), (2.8, 6.0), (6.7, 9.0), (10.5, 12.0), (13.0, 26.0)]
    idle, _ = run(speech, heard(script), 30.0)
    busy, _ = run(speech, heard(script), 30.0, busy_chunks=12)  # each decode takes 1.2 s
    assert texts(idle) == texts(busy)
    assert texts(idle)[0] == "However, the committee decided that the vote would wait."


def test_a_repeated_ngram_inside_a_final_is_dropped() -> None:
    def looping(job: DecodeJob) -> list[Word]:
        got = heard(SENTENCE)(job)
        if job.final and got and got[-1].text.endswith("flood."):
            # Whisper's loop: the first half again after the second
            return [*got, *words(job.end_s - 0.05, job.end_s - 0.01, "after the great flood.")]
        return got

    streams: list[SpeakerStream] = []
    finals, _ = run(SPEECH, looping, 8.0, flush=False, streams=streams)
    assert texts(finals) == ["The dam was built in 1963 after the great flood."]
    assert streams[0].suppressed == {"repeat": 1}  # parley_asr_suppressed_total{reason}


def test_a_final_repeating_the_end_of_the_previous_one_is_trimmed() -> None:
    def rereading(job: DecodeJob) -> list[Word]:
        got = heard(SENTENCE)(job)
        if job.final and got and got[-1].text.endswith("river."):
            return [*words(job.offset_s, job.offset_s + 0.1, "great flood."), *got]
        return got

    streams: list[SpeakerStream] = []
    # without context audio (which would place the seam after "flood." by itself)
    no_context = Settings(context_gap_s=0.0)
    finals, _ = run(SPEECH, rereading, 14.0, settings=no_context, streams=streams)
    assert texts(finals)[-1] == "It holds back the river."
    assert streams[0].suppressed["repeat_previous"] == 1


def test_a_short_tail_after_a_final_is_decoded_with_that_finals_audio() -> None:
    script = [*words(0.5, 4.0, "The hospital was taken away."), *words(4.8, 5.5, "Of others.")]
    finals, jobs = run([(0.5, 4.0), (4.8, 5.5)], heard(script), 9.0)
    tail = [j for j in jobs if j.final and j.end_s > 5.0]
    assert tail and tail[-1].offset_s <= 0.5  # the previous final's audio in front
    assert tail[-1].seam_s is not None and 4.0 < tail[-1].seam_s < 4.8
    assert texts(finals) == ["The hospital was taken away.", "Of others."]


def test_a_long_segment_after_a_final_is_decoded_without_its_audio() -> None:
    # the context is for a tail; a 10 s sentence is in its own audio, and its decode is the
    # final's latency
    script = [
        *words(0.5, 9.0, "The first sentence runs on for quite a long while here."),
        *words(10.5, 20.5, "The second one is just as long and ends only much later on."),
    ]
    finals, jobs = run([(0.5, 9.0), (10.5, 20.5)], heard(script), 24.0)
    limit = Settings().context_max_segment_s
    second = [j for j in jobs if j.final and j.end_s > 10.5 + limit]
    assert second
    assert all(j.seam_s is None and j.offset_s >= 10.0 for j in second)
    # (a short tail still has it: test_a_short_tail_after_a_final_is_decoded_with_...)
    assert texts(finals) == [
        "The first sentence runs on for quite a long while here.",
        "The second one is just as long and ends only much later on.",
    ]


def test_a_tail_with_no_words_of_its_own_is_dropped_and_counted() -> None:
    script = [*words(0.5, 4.0, "The hospital was taken away."), *words(5.4, 6.1, "away.")]

    def rereading_only(job: DecodeJob) -> list[Word]:
        got = heard(script)(job)
        # decoded with context, the tail's audio gives nothing after the previous words
        return got[:-1] if job.seam_s is not None else got

    streams: list[SpeakerStream] = []
    finals, _ = run([(0.5, 4.0), (5.4, 6.1)], rereading_only, 9.0, streams=streams)
    assert texts(finals) == ["The hospital was taken away."]
    assert streams[0].suppressed["short_tail"] == 1


def test_a_final_unlike_its_earlier_pause_decodes_is_decoded_again_without_prompt() -> None:
    # one sentence over two runs: the pause decode at the first pause (a comma, the caption
    # goes on) heard "one … six,"; the final's decode at the second pause reads a made-up text
    script = [*words(0.5, 3.5, "one two three four five six,"), *words(4.0, 6.0, "seven eight.")]

    def odd_final(job: DecodeJob) -> list[Word]:
        got = heard(script)(job)
        if job.kind == "pause" and job.end_s > 6.0:  # a made-up final
            return words(job.offset_s + 0.5, 6.0, "thank you for watching my channel today.")
        return got

    streams: list[SpeakerStream] = []
    finals, jobs = run([(0.5, 3.5), (4.0, 6.0)], odd_final, 9.0, streams=streams)
    assert [j.kind for j in jobs][-1] == "retry" and jobs[-1].prompt == ""
    assert texts(finals) == ["one two three four five six, seven eight."]
    assert streams[0].suppressed["decode_mismatch"] == 1


def test_the_mismatch_guard_reads_no_interim() -> None:
    # the same made-up final, with interims every 0.5 s and with none (a busy recognizer runs
    # fewer): the same decision, since timing decides the interims and must not change a final
    script = [*words(0.5, 3.5, "one two three four five six,"), *words(4.0, 6.0, "seven eight.")]

    def odd_final(job: DecodeJob) -> list[Word]:
        if job.kind == "pause" and job.end_s > 6.0:
            return words(job.offset_s + 0.5, 6.0, "thank you for watching my channel today.")
        return heard(script)(job)

    results = []
    for interim_interval_s in (0.5, 100.0):
        settings = Settings(
            interim_interval_s=interim_interval_s, first_interim_after_s=interim_interval_s
        )
        finals, jobs = run([(0.5, 3.5), (4.0, 6.0)], odd_final, 9.0, settings=settings)
        results.append((texts(finals), sum(j.kind == "interim" for j in jobs)))
    assert results[0][1] > 0 and results[1][1] == 0
    assert results[0][0] == results[1][0] == ["one two three four five six, seven eight."]


def test_the_mismatch_guard_reads_no_decode_made_only_when_the_recognizer_was_free() -> None:
    # a decode at a short silence (one the VAD never confirms) is made when the recognizer is
    # free during it: on a busy machine it is not, and the guard must decide the same
    script = [*words(0.5, 3.5, "one two three four five six"), *words(3.9, 8.0, "seven eight.")]

    def odd_final(job: DecodeJob) -> list[Word]:
        if job.kind == "pause" and job.end_s > 8.0:
            made_up = "thank you all for watching my channel and see you again next time today."
            return words(job.offset_s + 0.5, 8.0, made_up)
        return heard(script)(job)

    results = []
    for busy in (0, 12):
        finals, jobs = run([(0.5, 8.0)], odd_final, 11.0, busy_chunks=busy, pauses=((3.5, 3.9),))
        results.append((texts(finals), sum(j.kind == "pause" and j.end_s < 5 for j in jobs)))
    assert results[0][1] == 1 and results[1][1] == 0  # the decode at the silence: idle only
    assert results[0][0] == results[1][0]


def test_a_speaker_who_never_pauses_is_cut_at_a_fixed_window() -> None:
    script = words(0.0, 40.0, " ".join(f"w{i}." if i % 12 == 11 else f"w{i}" for i in range(80)))
    settings = Settings(max_segment_s=20.0)
    idle, jobs = run([(0.0, 40.0)], heard(script), 42.0, settings=settings)
    busy, _ = run([(0.0, 40.0)], heard(script), 42.0, settings=settings, busy_chunks=15)
    assert texts(idle) == texts(busy)
    assert [j.end_s - j.offset_s for j in jobs if j.kind == "cut"][0] == 20.0
    assert " ".join(texts(idle)).split() == [w.text.strip() for w in script]


def test_a_context_decode_that_stops_early_is_redone_without_context() -> None:
    script = [*words(0.5, 4.0, "The hospital was taken away."), *words(5.5, 10.0, SECOND)]

    def truncating(job: DecodeJob) -> list[Word]:
        got = heard(script)(job)
        if job.seam_s is not None:  # Whisper gave up half-way through the long window
            return [w for w in got if w.end_s < 7.5]
        return got

    streams: list[SpeakerStream] = []
    finals, jobs = run([(0.5, 4.0), (5.5, 10.0)], truncating, 13.0, streams=streams)
    assert texts(finals) == ["The hospital was taken away.", SECOND]
    assert streams[0].suppressed["context_short"] == 1


SECOND = "It was moved to the north of the town."
