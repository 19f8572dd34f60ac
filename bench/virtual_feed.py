"""Live captions on a virtual clock: caption latency that does not depend on the machine's load.

The speaker streams (:class:`interpret.streaming.SpeakerStream`, the policy the pipeline runs)
get their audio in 100 ms chunks of *stream* time; one decoder serves every speaker in the
pipeline's order (:meth:`SpeakerStream.urgency`), and each decode takes ``base_s + per_s × its
window`` of stream time whatever it really took (the real model still runs, so the words are
real). A caption is
"emitted" at the stream time its decode ended, or at the chunk that concluded it. On a shared
machine this measures the policy's latency for a decoder of the given speed (Whisper base int8
on this 2-core machine at load 3.5: 0.17 s for a 2 s window, 0.35 s for 5 s, 0.64 s for 10 s,
1.64 s for 20 s; the defaults are a little slower); a real-time run measures the machine.
Translation is not modelled (Apertium adds milliseconds; a Whisper translation, de→en, one
more decode per final).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from interpret.frames import ASR_SAMPLE_RATE
from interpret.streaming import CaptionUpdate, DecodeJob, SpeakerStream, StreamingSettings

STEP = ASR_SAMPLE_RATE // 10


def run_virtual(
    recognizer: Any,
    vad: Any,
    audio: dict[str, Any],
    files: dict[str, Path],
    *,
    settings: StreamingSettings,
    base_s: float = 0.05,
    per_s: float = 0.08,
    idle_s: float | None = None,
    vad_settings: Any = None,
) -> dict[str, int]:
    """Caption every speaker's ``audio`` (speaker id = language) on the virtual clock; write
    each speaker's events (CaptionLog's format) to ``files``. Returns the guard counters.
    A speaker whose audio ends before the others' is settled ``idle_s`` after its last chunk
    (the pipeline's ``AUDIO_IDLE_S``), as :class:`~interpret.pipeline.CaptionPipeline` does."""
    import collections

    from interpret.pipeline import AUDIO_IDLE_S

    idle = AUDIO_IDLE_S if idle_s is None else idle_s

    suppressed: collections.Counter[str] = collections.Counter()
    streams = {
        lang: SpeakerStream(
            lang, vad.stream(vad_settings), settings, lang=lang, suppressed=suppressed
        )
        for lang in audio
    }
    outs = {lang: files[lang].open("w") for lang in audio}

    def emit(updates: list[CaptionUpdate], at_s: float) -> None:
        for u in updates:
            event = {
                "event": "final" if u.final else "interim",
                "caption_id": u.caption_id,
                "speaker": u.speaker_id,
                "lang": u.lang,
                "text": u.text,
                "start_s": round(u.start_s, 3),
                "end_s": round(u.end_s, 3),
                "emitted_s": round(at_s, 3),
                "stable_chars": u.stable_chars,
            }
            if u.final:
                event["translations"] = {}
            outs[u.speaker_id].write(json.dumps(event, ensure_ascii=False) + "\n")

    running: tuple[SpeakerStream, DecodeJob, Any, float] | None = None

    def finish(now_s: float) -> None:
        nonlocal running
        if running is not None and running[3] <= now_s + 1e-9:
            stream, job, hypothesis, done_s = running
            running = None
            update = stream.on_result(job, hypothesis)
            emit([*([update] if update else []), *stream.take_ready()], done_s)

    def start(now_s: float) -> bool:
        nonlocal running
        if running is not None:
            return False
        for stream in sorted(streams.values(), key=lambda s: s.urgency()):
            job = stream.next_job()
            if job is not None:
                hypothesis = recognizer.recognize(
                    job.audio, lang=job.lang, prompt=job.prompt, final=job.final
                )
                cost = base_s + per_s * (job.end_s - job.offset_s)
                running = (stream, job, hypothesis, now_s + cost)
                return True
        return False

    longest = max(len(a) for a in audio.values())
    now = 0.0
    for i in range(0, longest, STEP):
        now = (i + STEP) / ASR_SAMPLE_RATE
        finish(now)  # a decode that ended while this chunk was being spoken (0.1 s steps)
        for lang, samples in audio.items():
            if i < len(samples):
                emit(streams[lang].push(samples[i : i + STEP]), now)
            elif now >= len(samples) / ASR_SAMPLE_RATE + idle and not streams[lang].stopped:
                emit(streams[lang].flush(), now)  # its audio stopped arriving
        start(now)
    for stream in streams.values():
        emit(stream.flush(), now)
    while running is not None or any(s.next_job_pending() for s in streams.values()):
        if running is not None:
            now = running[3]
            finish(now)
        if not start(now):
            break
    for out in outs.values():
        out.close()
    return dict(suppressed)
