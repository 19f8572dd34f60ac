"""A sentence end heard at a pause is confirmed with the speech after it (issue 12): Whisper,
hearing the audio stop mid-sentence, ends the fragment with a period. Scripted recognizer
outputs: no model, no clock."""

from __future__ import annotations

from interpret.frames import Word
from interpret.streaming import DecodeJob, SpeakerStream
from interpret.streaming import StreamingSettings as Settings
from tests.support.scripted_policy import heard, run, stops_with_a_period, texts, words

# "The dam was built in 1963 | (0.8 s) | after the great flood." (then the speaker stops)
HESITANT = [
    *words(0.5, 3.0, "The dam was built in 1963"),
    *words(3.8, 5.8, "after the great flood."),
]
HESITANT_SPEECH = [(0.5, 3.0), (3.8, 5.8)]


def test_a_period_at_a_short_pause_that_whisper_drops_when_it_hears_more_is_no_sentence_end() -> (
    None
):
    finals, jobs = run(HESITANT_SPEECH, stops_with_a_period(HESITANT), 9.0)
    assert texts(finals) == ["The dam was built in 1963 after the great flood."]
    confirm = [j for j in jobs if j.kind == "confirm"]
    assert confirm and confirm[0].offset_s <= 0.5 and confirm[0].key_s == 3.0
    # without the confirm decode (every sentence end final at once) the sentence was split
    at_once = Settings(sentence_pause_s=0.0)
    split, _ = run(HESITANT_SPEECH, stops_with_a_period(HESITANT), 9.0, settings=at_once)
    assert texts(split) == ["The dam was built in 1963.", "after the great flood."]


def test_a_sentence_end_that_holds_is_final_once_the_next_speech_is_decoded() -> None:
    script = [*words(0.5, 3.0, "It holds back the river."), *words(3.8, 7.8, "Nobody knew why.")]
    times: list[float] = []
    finals, jobs = run([(0.5, 3.0), (3.8, 7.8)], heard(script), 12.0, times=times)
    assert texts(finals) == ["It holds back the river.", "Nobody knew why."]
    confirm = [j for j in jobs if j.kind == "confirm"][0]
    assert confirm.end_s == 3.8 + Settings().confirm_speech_s  # fixed by the audio
    assert times[0] <= confirm.end_s + 0.1  # not after the next sentence's end


def test_a_lower_case_word_after_the_period_continues_the_sentence() -> None:
    script = [
        *words(0.5, 3.0, "Die Höhle liegt auf der Spitze."),
        *words(3.8, 5.0, "eines der Berge"),
    ]
    finals, _ = run([(0.5, 3.0), (3.8, 5.0)], heard(script), 9.0)
    assert texts(finals) == ["Die Höhle liegt auf der Spitze. eines der Berge"]


def test_a_capital_after_the_period_proves_nothing_the_period_stands() -> None:
    # German nouns are capitalised: "Berge" may start a sentence or continue one
    script = [*words(0.5, 3.0, "Die Höhle liegt oben."), *words(3.8, 6.0, "Berge gibt es viele.")]
    finals, _ = run([(0.5, 3.0), (3.8, 6.0)], heard(script), 9.0)
    assert texts(finals) == ["Die Höhle liegt oben.", "Berge gibt es viele."]


def test_a_sentence_end_followed_by_a_long_pause_is_final_after_the_wait() -> None:
    script = [*words(0.5, 3.0, "It holds back the river."), *words(6.0, 8.0, "Nobody knew.")]
    times: list[float] = []
    finals, jobs = run([(0.5, 3.0), (6.0, 8.0)], heard(script), 11.0, times=times)
    assert texts(finals) == ["It holds back the river.", "Nobody knew."]
    assert not [j for j in jobs if j.kind == "confirm"]
    wait = Settings().sentence_pause_s
    assert 3.0 + wait <= times[0] <= 3.0 + wait + 0.15


def test_the_confirmed_finals_do_not_depend_on_decode_timing() -> None:
    script = [
        *HESITANT,
        *words(6.4, 8.0, "It held."),
        *words(8.6, 11.0, "Nobody knew why"),
        *words(11.7, 13.0, "it broke."),
    ]
    speech = [(0.5, 3.0), (3.8, 5.8), (6.4, 8.0), (8.6, 11.0), (11.7, 13.0)]
    streams: list[SpeakerStream] = []
    idle, idle_jobs = run(speech, stops_with_a_period(script), 16.0, streams=streams)
    busy, busy_jobs = run(speech, stops_with_a_period(script), 16.0, busy_chunks=12)
    assert (
        texts(idle)
        == texts(busy)
        == [
            "The dam was built in 1963 after the great flood.",
            "It held.",  # short, but decoded with the previous final's audio in front
            "Nobody knew why it broke.",
        ]
    )

    def windows(jobs: list[DecodeJob]) -> list[tuple[float, float]]:
        return [(j.offset_s, j.end_s) for j in jobs if j.kind == "confirm"]

    assert windows(idle_jobs) == windows(busy_jobs)
    assert streams[0].suppressed["sentence_continued"] == 2  # after "1963", "why"


def test_the_confirm_decode_of_a_long_segment_hears_only_its_end() -> None:
    script = [
        *words(0.5, 8.0, "In the valley below the old town the river dam was built in 1963"),
        *words(8.8, 10.8, "after the great flood."),
    ]
    speech = [(0.5, 8.0), (8.8, 10.8)]
    tail = Settings(confirm_window_s=4.0)
    finals, jobs = run(speech, stops_with_a_period(script), 14.0, settings=tail)
    assert texts(finals) == [
        "In the valley below the old town the river dam was built in 1963 after the great flood."
    ]
    confirm = [j for j in jobs if j.kind == "confirm"]
    assert len(confirm) == 1
    assert 8.0 - 4.0 <= confirm[0].offset_s < 8.0  # the segment's last 4 s, at a word boundary
    assert confirm[0].end_s == 8.8 + Settings().confirm_speech_s
    assert confirm[0].prompt.endswith("the old town")  # the words before the window
    # a sentence end that holds: the final keeps the pause decode's words (the whole segment)
    held = [*script[:-4], *words(8.8, 10.8, "Nobody knew why.")]
    held[len(script) - 5] = Word(
        held[len(script) - 5].start_s, held[len(script) - 5].end_s, " 1963."
    )
    finals, _ = run(speech, heard(held), 14.0, settings=tail)
    assert texts(finals) == [
        "In the valley below the old town the river dam was built in 1963.",
        "Nobody knew why.",
    ]


def test_a_pause_is_as_long_as_the_vad_knows_not_as_the_audio_goes() -> None:
    # the VAD reports speech only once it has lasted min_speech_ms: at 4.2 s the audio runs
    # 1.2 s past the period, but the speech that came back at 4.1 s is not reported until
    # 4.4 s. Measured up to the audio's end, the pause looked long enough for the sentence end
    # to stand (a final at once, the sentence split); how far the VAD is sure gives 1.1 s,
    # and the confirm decode hears "eines der Berge" go on. A hard French stream at 1x (the
    # pause decode done early) and on the virtual clock (done late) differed by 4 words here.
    script = [
        *words(0.5, 3.0, "Die Höhle liegt auf der Spitze."),
        *words(4.1, 5.3, "eines der Berge"),
    ]
    speech = [(0.5, 3.0), (4.1, 5.3)]
    whole = ["Die Höhle liegt auf der Spitze. eines der Berge"]
    for busy in (0, 3):  # the pause decode's answer at once, or 0.3 s later
        finals, jobs = run(speech, heard(script), 9.0, onset_lag_s=0.3, busy_chunks=busy)
        assert texts(finals) == whole, busy
        assert [j.key_s for j in jobs if j.kind == "confirm"] == [3.0]
