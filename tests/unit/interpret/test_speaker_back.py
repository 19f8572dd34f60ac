"""A speaker placed on a worker again while their last final there is still being decoded (a
pool moved them away and back, within the time one decode takes under load): their new audio
is captioned. The 30-minute soak lost every caption of one speaker for 29 minutes this way:
the worker kept the closing stream, which takes no audio, then forgot it."""

from __future__ import annotations

from typing import Any

import numpy as np

from interpret.frames import ASR_SAMPLE_RATE, AudioChunk, CaptionFrame, Word
from interpret.pipeline import CaptionPipeline
from interpret.streaming import Hypothesis
from tests.support.scripted_vad import ScriptedVad


class Vads:
    """Each new stream of the speaker hears speech from 0.5 s to 2.5 s of its own audio."""

    def stream(self, settings: Any) -> ScriptedVad:
        return ScriptedVad([(0.5, 2.5)])


class Words:
    def recognize(
        self,
        audio: Any,
        *,
        lang: str | None,
        prompt: str,
        final: bool = False,
        abandon: Any = None,
    ) -> Hypothesis:
        seconds = len(audio) / ASR_SAMPLE_RATE
        return Hypothesis([Word(0.0, seconds, " Hello there.")], lang or "en")


def push(pipeline: CaptionPipeline, seconds: float) -> None:
    for i in range(int(seconds * 10)):
        chunk = np.full(ASR_SAMPLE_RATE // 10, 0.1, np.float32)
        pipeline.push(AudioChunk("s", chunk, i / 10))


def test_a_speaker_back_before_their_last_final_is_done_is_captioned_again() -> None:
    finals: list[CaptionFrame] = []
    pipeline = CaptionPipeline(
        recognizer=Words(),
        vad=Vads(),  # type: ignore[arg-type]
        emit=lambda f: finals.append(f) if f.is_final else None,
    )
    pipeline.add_speaker("s", "en")
    push(pipeline, 2.0)  # mid-utterance: its final is due when the speaker goes
    pipeline.remove_speaker("s")  # moved to another worker...
    first = pipeline._speakers["s"]
    assert first.closing and first.next_job_pending()
    pipeline.add_speaker("s", "en")  # ...and back, before the decoder got to it
    second = pipeline._speakers["s"]
    assert second is not first and not second.closing
    push(pipeline, 4.0)  # a whole utterance on the new stream
    assert second.position_s > 0  # the audio reached a stream that takes it
    pipeline.start()
    pipeline.stop(drain=True, timeout_s=10)
    assert pipeline.error is None
    ids = {f.caption_id for f in finals}
    # the utterance in progress when they left, and the one after they came back
    assert len(ids) == 2, [(f.caption_id, f.text) for f in finals]
