"""The room transcript and its exports (pure)."""

from __future__ import annotations

import json

from server.transcript import RoomTranscript, TranscriptLine, export_json, export_srt, export_vtt


def line(caption_id: str, start_s: float, text: str, es: str) -> TranscriptLine:
    return TranscriptLine(
        caption_id,
        "p1",
        "Ana <A&B>",
        "en",
        text,
        start_s,
        start_s + 2.5,
        {"es": es},
        {"es": "apertium"},
    )


def test_bounded_and_corrections_recorded() -> None:
    t = RoomTranscript("r", max_lines=2, started_at_unix=100.0)
    for i in range(3):
        t.add(line(f"c{i}", float(i), f"text {i}", f"texto {i}"))
    assert [x.caption_id for x in t] == ["c1", "c2"] and t.get("c0") is None
    c1 = t.get("c1")
    assert c1 is not None
    t.correct(c1, "es", "corregido", by="p2", by_name="Bo", at_s=9.0)
    assert c1.translations["es"] == "corregido" and c1.engines["es"] == "human"
    assert c1.corrections[0].previous == "texto 1" and c1.corrected_langs == ["es"]


def test_exports_carry_corrections_speakers_and_times() -> None:
    t = RoomTranscript("r", max_lines=10, started_at_unix=100.0)
    t.add(line("c2", 3725.5, "late < line", "tarde"))
    t.add(line("c1", 1.25, "first", "primero"))
    first = t.get("c1")
    assert first is not None
    t.correct(first, "en", "First!", by="p2", by_name="Bo", at_s=5.0)
    vtt = export_vtt(t, "en")
    assert vtt.startswith("WEBVTT\n")
    assert "c1\n00:00:01.250 --> 00:00:03.750\n<v Ana &lt;A&amp;B>First!" in vtt
    assert "01:02:05.500 --> 01:02:08.000\n<v Ana &lt;A&amp;B>late &lt; line" in vtt
    assert vtt.index("First!") < vtt.index("late")  # by time, not by arrival
    srt = export_srt(t, "es")
    assert srt.startswith("1\n00:00:01,250 --> 00:00:03,750\nAna <A&B>: primero\n")
    doc = json.loads(export_json(t))
    assert doc["languages"] == ["en", "es"] and doc["speakers"][0]["name"] == "Ana <A&B>"
    row = next(r for r in doc["lines"] if r["caption_id"] == "c1")
    assert row["text"] == "First!" and row["corrections"][0]["previous"] == "first"


def test_line_breaks_and_arrows_in_corrections_cannot_inject_cues() -> None:
    evil = (
        "ok\n\n00:00:01.000 --> 00:00:09.000\nInjected\r\r2\r00:00:10,000 --> 00:00:11,000\u2028x"
    )
    t = RoomTranscript("r", max_lines=10, started_at_unix=100.0)
    t.add(line("c1", 1.0, "first", "primero"))
    first = t.get("c1")
    assert first is not None
    first.speaker_name = "Mal\u2028lory\x85"
    t.correct(first, "en", evil, by="p2", by_name="Bo", at_s=5.0)
    t.correct(first, "es", evil, by="p2", by_name="Bo", at_s=5.0)
    flat = "ok 00:00:01.000 --> 00:00:09.000 Injected 2 00:00:10,000 --> 00:00:11,000 x"
    for lang in ("en", "es"):
        vtt = export_vtt(t, lang).split("\n")
        # WebVTT ends a cue's text at any line with "-->": only the timing line may have one
        assert [x for x in vtt if "-->" in x] == ["00:00:01.000 --> 00:00:03.500"]
        assert vtt[-2] == "<v Mal lory>" + flat.replace("-->", "--&gt;")
        assert len(vtt) == 7 and not any(c in "".join(vtt) for c in "\r\u2028\x85")
        srt = export_srt(t, lang).split("\n")
        assert srt == ["1", "00:00:01,000 --> 00:00:03,500", f"Mal lory: {flat}", ""]
