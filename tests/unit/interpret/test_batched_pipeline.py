"""Issue 17, GPU batching in the caption pipeline: decodes of different speakers that are due
at once go to Whisper as one batch (``PipelineConfig.batch_size``), and the captions are those
of one decode at a time. Real models, real speech; fed as fast as the decoder takes it, so the
decoder always has several speakers' decodes waiting (the captions must not depend on timing)."""

from __future__ import annotations

from typing import Any

import pytest

from interpret.compose import PipelineConfig, build_pipeline, load_models
from interpret.frames import CaptionFrame
from interpret.transcribe import RecognizerSettings
from server.file_captions import feed_file, load_audio
from tests.support.paths import evalset_dir

pytestmark = pytest.mark.models

SPEAKERS = {"ann": ("en", "en/fleurs-en-001.ogg"), "bea": ("es", "es/fleurs-es-001.ogg")}


def captions(models: Any, batch_size: int) -> tuple[dict[str, str], int, int]:
    finals: list[CaptionFrame] = []
    config = PipelineConfig(recognizer=RecognizerSettings(cpu_threads=2), batch_size=batch_size)
    pipeline = build_pipeline(
        config, lambda f: finals.append(f) if f.is_final else None, loaded=models
    ).pipeline
    for speaker, (lang, _) in SPEAKERS.items():
        pipeline.add_speaker(speaker, lang)
    pipeline.start()
    audio = {s: load_audio(evalset_dir() / "audio" / path) for s, (_, path) in SPEAKERS.items()}
    # both speakers' audio at once, in step: their decodes fall due together
    for i in range(0, max(len(a) for a in audio.values()), 16_000):
        for speaker, samples in audio.items():
            if i < len(samples):
                feed_file(pipeline, samples[i : i + 16_000], speaker_id=speaker, realtime=False)
    pipeline.stop(drain=True, timeout_s=120)
    assert pipeline.error is None
    text = {
        s: " ".join(f.text for f in sorted(finals, key=lambda f: f.start_s) if f.speaker_id == s)
        for s in SPEAKERS
    }
    return text, pipeline.decodes, pipeline.recognizer_calls


def test_speakers_decoded_in_batches_get_the_captions_of_one_at_a_time() -> None:
    models = load_models(PipelineConfig(recognizer=RecognizerSettings(cpu_threads=2)))
    try:
        alone, decodes, calls = captions(models, batch_size=1)
        assert calls == decodes > 0
        batched, decodes, calls = captions(models, batch_size=4)
    finally:
        models.router.close()
    assert calls < decodes, (calls, decodes)  # some calls carried both speakers
    assert all(alone.values())
    assert batched == alone
