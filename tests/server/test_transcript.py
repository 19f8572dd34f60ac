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
