"""WebVTT caption segments (broadcast/webvtt.py): X-TIMESTAMP-MAP, cue times on the program's
timeline, late finals, the rebase when ffmpeg restarts (a new epoch: new origin, new PTS), and
live cues rolled up from interims as the words are said."""

from __future__ import annotations

from broadcast.webvtt import (
    MIN_CUE_S,
    ROLLUP_CHARS,
    Epoch,
    RollUp,
    VttPackager,
    escape,
    media_time_s,
    tail,
    timestamp,
    words_of,
)


def cues(document: str) -> list[tuple[str, str]]:
    """(timing line, text) of each cue."""
    blocks = document.strip().split("\n\n")[1:]
    return [(block.split("\n")[1], block.split("\n")[2]) for block in blocks]


def test_timestamps_and_escaping() -> None:
    assert timestamp(0) == "00:00:00.000"
    assert timestamp(3723.4567) == "01:02:03.457"
    assert escape("a < b &\n\nc") == "a &lt; b &amp; c"


def test_cue_lands_in_its_segment_with_the_timestamp_map() -> None:
    packager = VttPackager(tracks=("s_orig", "s_es"))
    epoch = Epoch(origin_s=100.0, mpegts=126_000)
    packager.add("c1", 102.5, 104.0, {"s_orig": "Hello there", "s_es": "Hola"})
    first = packager.segment(epoch, 0.0, 2.0)
    assert first["s_es"].startswith("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:126000,LOCAL:00:00:00.000\n")
    second = packager.segment(epoch, 2.0, 2.0)
    assert cues(first["s_es"]) == []
    assert cues(second["s_es"]) == [("00:00:02.500 --> 00:00:04.500", "Hola")]
    assert cues(second["s_orig"]) == [("00:00:02.500 --> 00:00:04.500", "Hello there")]
    # the cue spans two segments: repeated in both with the same times (players merge them)
    third = packager.segment(epoch, 4.0, 2.0)
    assert cues(third["s_es"]) == [("00:00:02.500 --> 00:00:04.500", "Hola")]
    assert cues(packager.segment(epoch, 6.0, 2.0)["s_es"]) == []


def test_a_track_without_text_gets_no_cue_and_unknown_tracks_are_ignored() -> None:
    packager = VttPackager(tracks=("s_orig", "s_es"))
    packager.add("c1", 0.5, 1.0, {"s_orig": "Bonjour", "s_de": "Hallo"})
    out = packager.segment(Epoch(0.0, 0), 0.0, 2.0)
    assert cues(out["s_orig"]) == [("00:00:00.500 --> 00:00:02.500", "Bonjour")]
    assert cues(out["s_es"]) == []


def test_a_late_final_goes_into_the_next_segment_written() -> None:
    packager = VttPackager(tracks=("s_es",))
    epoch = Epoch(0.0, 0)
    assert cues(packager.segment(epoch, 0.0, 1.0)["s_es"]) == []
    assert cues(packager.segment(epoch, 1.0, 1.0)["s_es"]) == []
    # said at 0.2-0.9 s, final arrives after the segments of that time were published
    packager.add("late", 0.2, 0.9, {"s_es": "Tarde"})
    moved = cues(packager.segment(epoch, 2.0, 1.0)["s_es"])
    assert moved == [("00:00:02.000 --> 00:00:04.000", "Tarde")]
    # shown from there for its display time, once: the next segment still overlaps it
    assert cues(packager.segment(epoch, 3.0, 1.0)["s_es"]) == moved
    assert cues(packager.segment(epoch, 4.0, 1.0)["s_es"]) == []


def test_restart_rebases_on_the_new_epoch() -> None:
    packager = VttPackager(tracks=("s_es",))
    before = Epoch(origin_s=1000.0, mpegts=126_000)
    assert cues(packager.segment(before, 10.0, 1.0)["s_es"]) == []
    # ffmpeg restarted at monotonic 1020 s: its PTS start over
    after = Epoch(origin_s=1020.0, mpegts=130_500)
    packager.add("c2", 1021.25, 1021.25 + MIN_CUE_S, {"s_es": "Otra vez"})
    doc = packager.segment(after, 1.0, 1.0)["s_es"]
    assert "X-TIMESTAMP-MAP=MPEGTS:130500,LOCAL:00:00:00.000" in doc
    assert cues(doc) == [("00:00:01.250 --> 00:00:03.250", "Otra vez")]


def test_media_time_from_pts_wraps() -> None:
    assert media_time_s(126_000 + 90_000, 126_000) == 1.0
    assert media_time_s(45_000, (1 << 33) - 45_000) == 1.0


def test_whole_words_of_a_stable_prefix() -> None:
    assert words_of("the slow channels", 7) == ["the"]  # "slow" cut mid-word
    assert words_of("the slow channels", 8) == ["the", "slow"]
    assert words_of("the slow channels", 8 + 1 + 100) == ["the", "slow", "channels"]
    assert words_of("the slow", 0) == []
    assert tail(["a" * 50, "b" * 30, "c" * 20], limit=ROLLUP_CHARS) == "b" * 30 + " " + "c" * 20
    assert tail(["x" * 100]) == "x" * 100  # one word always shows


def test_stable_words_roll_up_from_where_they_were_said_and_the_final_ends_them() -> None:
    rollup = RollUp(original="s_orig", stable_only=True)
    text = "one two three four five six seven eight"
    # 4 s of speech from 10.0: one stable word is not worth a cue
    assert rollup.interim("c", 10.0, 12.0, {"s_orig": text[:13]}, stable_chars=4) == []
    # 2 of 4 words stable after 2 s of audio: they took the first half of it
    [first] = rollup.interim(
        "c", 10.0, 12.0, {"s_orig": "one two three four", "s_es": "uno dos tres cuatro"}, 8
    )
    assert (first.start_s, first.end_s, first.last) == (10.0, 11.0, False)
    assert first.texts == {"s_orig": "one two", "s_es": "uno dos"}
    # no new stable word: nothing
    assert rollup.interim("c", 10.0, 12.5, {"s_orig": "one two three four x"}, 8) == []
    # 6 of 8 stable after 4 s: the cue starts where the last one stopped and shows them all
    [second] = rollup.interim("c", 10.0, 14.0, {"s_orig": text}, len("one two three four five six"))
    assert (second.start_s, second.end_s) == (11.0, 13.0)
    assert second.texts == {"s_orig": "one two three four five six"}
    assert second.cue_id != first.cue_id
    final = rollup.final("c", 10.0, 14.2, {"s_orig": text + " nine", "s_es": "todo"})
    assert (final.cue_id, final.start_s, final.end_s, final.last) == ("c", 13.0, 14.2, True)
    assert final.texts == {"s_orig": text + " nine", "s_es": "todo"}
    assert rollup.open == {}


def test_a_final_without_interims_is_one_cue_over_its_utterance() -> None:
    rollup = RollUp(original="s_orig")
    final = rollup.final("d", 5.0, 6.5, {"s_orig": "short one"})
    assert (final.start_s, final.end_s, final.texts) == (5.0, 6.5, {"s_orig": "short one"})
    packager = VttPackager(tracks=("s_orig",))
    packager.add(final.cue_id, final.start_s, final.end_s, final.texts, stretch=final.last)
    # the last cue of an utterance stays on screen MIN_CUE_S
    assert packager.cues[0].end_s == 5.0 + MIN_CUE_S


def test_every_word_of_an_interim_rolls_up_when_not_only_stable_ones_are_shown() -> None:
    rollup = RollUp(original="s_orig")
    [first] = rollup.interim("c", 3.0, 4.0, {"s_orig": "bonjour à", "s_es": "hola a"}, 0)
    assert (first.start_s, first.end_s) == (3.0, 4.0)
    assert first.texts == {"s_orig": "bonjour à", "s_es": "hola a"}
    # revised and grown: the next cue shows the revision, from where the first one stopped
    [second] = rollup.interim("c", 3.0, 5.0, {"s_orig": "bonjour à tous les amis"}, 7)
    assert (second.start_s, second.end_s, second.texts) == (
        4.0,
        5.0,
        {"s_orig": "bonjour à tous les amis"},
    )
    assert rollup.interim("c", 3.0, 5.5, {"s_orig": "bonjour à tous les amis ce"}, 7) == []


def test_rolled_up_cues_keep_their_times_in_the_segments_that_were_not_written_yet() -> None:
    rollup = RollUp(original="s_orig", stable_only=True)
    packager = VttPackager(tracks=("s_orig",))
    epoch = Epoch(0.0, 0)
    [cue] = rollup.interim("c", 0.2, 2.2, {"s_orig": "alpha beta gamma delta"}, 11)
    packager.add(cue.cue_id, cue.start_s, cue.end_s, cue.texts, stretch=cue.last)
    # shown from 0.2 s, not stretched (the next cue of the utterance follows at 1.2 s)
    assert cues(packager.segment(epoch, 0.0, 1.0)["s_orig"]) == [
        ("00:00:00.200 --> 00:00:01.200", "alpha beta")
    ]
