"""Composition of the caption pipeline for the command line (``parley interpret`` and
``parley translate``): the same pipeline the server runs, fed from a file or stdin."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from interpret.frames import (
    ASR_SAMPLE_RATE,
    AudioChunk,
    CaptionFrame,
    Samples,
    translation_fields,
)
from interpret.pipeline import CaptionPipeline


def load_audio(path: Path) -> Samples:
    """Any file FFmpeg reads → mono float32 at 16 kHz."""
    import av

    resampler = av.AudioResampler(format="flt", layout="mono", rate=ASR_SAMPLE_RATE)
    parts: list[Samples] = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                parts.append(out.to_ndarray()[0].astype(np.float32, copy=False))
        for out in resampler.resample(None):
            parts.append(out.to_ndarray()[0].astype(np.float32, copy=False))
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


@dataclass
class CaptionLog:
    """Collects emitted frames with their emission time (seconds since the first sample)."""

    out: TextIO
    t0: float = 0.0
    finals: list[tuple[CaptionFrame, float]] | None = None

    def __post_init__(self) -> None:
        self.finals = []
        self._lock = threading.Lock()

    def emit(self, frame: CaptionFrame) -> None:
        emitted_s = time.monotonic() - self.t0
        event: dict[str, Any] = {
            "event": "final" if frame.is_final else "interim",
            "caption_id": frame.caption_id,
            "speaker": frame.speaker_id,
            "lang": frame.lang,
            "text": frame.text,
            "start_s": round(frame.start_s, 3),
            "end_s": round(frame.end_s, 3),
            "emitted_s": round(emitted_s, 3),
            "stable_chars": frame.stable_chars,
        }
        translations = translation_fields(frame.translations)
        if translations["translations"] or frame.is_final:
            event["translations"] = translations["translations"]
            event["engines"] = translations["engines"]
        if translations["untranslated"]:
            event["untranslated"] = translations["untranslated"]
        with self._lock:
            self.out.write(json.dumps(event, ensure_ascii=False) + "\n")
            self.out.flush()
            if frame.is_final:
                assert self.finals is not None
                self.finals.append((frame, emitted_s))


def feed_file(
    pipeline: CaptionPipeline,
    audio: Samples,
    *,
    speaker_id: str,
    realtime: bool,
    chunk_s: float = 0.1,
    on_start: Callable[[], None] = lambda: None,
) -> None:
    """Push ``audio`` in ``chunk_s`` pieces; with ``realtime`` at 1× on the wall clock: a piece
    when its last sample has been spoken, as a microphone delivers it (pushed at its first
    sample's time, every caption looked up to ``chunk_s`` sooner than it can be)."""
    step = int(chunk_s * ASR_SAMPLE_RATE)
    t0 = time.monotonic()
    on_start()
    for i in range(0, len(audio), step):
        if realtime:
            delay = t0 + min(i + step, len(audio)) / ASR_SAMPLE_RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        pipeline.push(AudioChunk(speaker_id, audio[i : i + step], i / ASR_SAMPLE_RATE))


def _timestamp(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def write_subtitles(
    finals: Sequence[CaptionFrame], directory: Path, stem: str, languages: Sequence[str], fmt: str
) -> list[Path]:
    """One WebVTT or SRT file per language (the source language and each target)."""
    directory.mkdir(parents=True, exist_ok=True)
    ordered = sorted(finals, key=lambda f: f.start_s)
    written = []
    for lang in languages:
        cues = []
        for f in ordered:
            text = f.text if lang == f.lang else f.translations.get(lang)
            if text:
                cues.append((f.start_s, max(f.end_s, f.start_s + 0.5), text))
        path = directory / f"{stem}.{lang}.{fmt}"
        with path.open("w", encoding="utf-8") as out:
            if fmt == "vtt":
                out.write("WEBVTT\n\n")
            for n, (start, end, text) in enumerate(cues, 1):
                sep = "." if fmt == "vtt" else ","
                if fmt == "srt":
                    out.write(f"{n}\n")
                out.write(f"{_timestamp(start, sep)} --> {_timestamp(end, sep)}\n{text}\n\n")
        written.append(path)
    return written
