"""An interim of a long segment hears only its last seconds, with the words the interims
already agree on as the text before them; the decodes a final comes from still hear the whole
segment, so the finals' words do not change."""

from __future__ import annotations

from interpret.context import interim_window
from interpret.frames import Word
from interpret.streaming import CaptionUpdate, DecodeJob, Hypothesis, SpeakerStream
from interpret.streaming import StreamingSettings as Settings
from tests.support.scripted_policy import stops_with_a_period, words
from tests.support.scripted_vad import ScriptedVad, audio

# one long sentence without a pause: 16 s, a word every 0.5 s, then silence
SCRIPT = words(0.5, 16.5, " ".join(f"w{i}" for i in range(32)))


def committed(*ends: float) -> list[Word]:
    return [Word(end - 0.4, end, f" c{i}") for i, end in enumerate(ends)]


def test_a_short_segment_or_nothing_agreed_is_decoded_whole() -> None:
    agreed = committed(1.0, 1.5, 2.0)
    assert interim_window(agreed, 0.5, 6.0, 6.0) is None  # 5.5 s: short
    assert interim_window([], 0.5, 12.0, 6.0) is None  # nothing agreed yet
    assert interim_window(agreed[:1], 0.5, 12.0, 6.0) is None  # no boundary between two
    assert interim_window(agreed, 0.5, 12.0, 0.0) is None  # switched off


def test_a_long_segment_starts_between_agreed_words_within_the_window() -> None:
    agreed = committed(1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0)
    start, before = interim_window(agreed, 0.5, 11.0, 6.0) or (0.0, "")
    # boundaries lie at 5.3 (c4 | c5: 5.0 and 5.6) and 6.3: the first within 6 s of 11.0
    assert abs(start - 5.3) < 1e-9
    assert before == "c0 c1 c2 c3 c4"
    # all agreed words far back: the last boundary (the rest is the window)
    start, before = interim_window(agreed, 0.5, 20.0, 6.0) or (0.0, "")
    assert abs(start - 6.3) < 1e-9 and before == "c0 c1 c2 c3 c4 c5"


def feed_all(
    settings: Settings,
) -> tuple[list[CaptionUpdate], list[CaptionUpdate], list[DecodeJob]]:
    """The script spoken into a stream, each decode answered at once with what its window
    hears (a final's window ends in silence: Whisper gives its last word a period)."""
    stream = SpeakerStream("s", ScriptedVad([(0.5, 16.5)]), settings, lang="en")  # type: ignore[arg-type]
    answer = stops_with_a_period(SCRIPT)
    interims: list[CaptionUpdate] = []
    finals: list[CaptionUpdate] = []
    jobs: list[DecodeJob] = []

    def out(updates: list[CaptionUpdate]) -> None:
        for u in updates:
            (finals if u.final else interims).append(u)

    for _ in range(220):  # 22 s in 100 ms chunks
        out(stream.push(audio(0.1)))
        job = stream.next_job()
        if job is None:
            continue
        jobs.append(job)
        got = [Word(w.start_s - job.offset_s, w.end_s - job.offset_s, w.text) for w in answer(job)]
        update = stream.on_result(job, Hypothesis(got, "en"))
        out(([update] if update is not None else []) + stream.take_ready())
    out(stream.flush())
    return interims, finals, jobs


def test_interims_of_a_long_sentence_hear_its_last_seconds_and_show_all_of_it() -> None:
    interims, finals, jobs = feed_all(Settings(interim_window_s=6.0))
    late = [j for j in jobs if j.kind == "interim" and j.end_s > 10.0]
    assert late, "interims while the sentence goes on"
    for job in late:
        assert job.offset_s > 0.5 and job.end_s - job.offset_s <= 6.0 + 0.5
        # the agreed words before the window are the text before it
        spoken_before = [w.text.strip() for w in SCRIPT if w.end_s <= job.offset_s]
        assert job.prompt.split()[-3:] == spoken_before[-3:]
    # the caption still shows the whole sentence so far, agreed part first
    last = interims[-1]
    assert last.text.split()[:3] == ["w0", "w1", "w2"]
    shown = last.text.rstrip(".").split()
    assert shown == [f"w{i}" for i in range(len(shown))]
    assert len(shown) >= 28
    assert last.stable_chars > 0
    # the final's decode heard the whole segment
    final_jobs = [j for j in jobs if j.kind in ("pause", "cut")]
    assert final_jobs and all(j.offset_s <= 0.5 for j in final_jobs)


def test_the_finals_do_not_change() -> None:
    _, trimmed, _ = feed_all(Settings(interim_window_s=6.0))
    _, whole, whole_jobs = feed_all(Settings(interim_window_s=0.0))
    assert all(j.offset_s <= 0.5 for j in whole_jobs)  # 0: every interim hears it all
    assert [f.text for f in trimmed] == [f.text for f in whole]
    assert trimmed and trimmed[-1].text.endswith("w31.")
