"""Issue 12 (latency of long sentences): a final's pause decode waited for the interim that
was running when the speaker stopped (0.2-1.6 s at 1x on 2 cores). An interim now gives way:
the recognizer asks between its encoder and its decoder whether a decode a final waits for is
due, and stops there. Only interims give way, so the finals' words do not change; an interim
of a speaker who goes on is decoded to the end. Scripted VAD and recognizer: no model."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from interpret.frames import AudioChunk, CaptionFrame
from interpret.pipeline import CaptionPipeline
from interpret.streaming import DecodeAbandoned, Hypothesis
from tests.support.scripted_policy import ScriptedRecognizer, ScriptedVads, words
from tests.support.scripted_vad import audio
from tests.support.waits import wait_until

SENTENCE = words(0.5, 3.8, "It holds back the river.")


class HeldRecognizer(ScriptedRecognizer):
    """Holds its first decode (an interim) after the "encoder" until :attr:`go` is set, then
    asks ``abandon`` as the real recognizer does."""

    def __init__(self) -> None:
        super().__init__(SENTENCE)
        self.holding = threading.Event()
        self.go = threading.Event()
        self.calls: list[str] = []  # "held", "abandoned", "decoded"
        self.lock = threading.Lock()

    def recognize(
        self,
        samples: Any,
        *,
        lang: str | None,
        prompt: str,
        final: bool = False,
        abandon: Any = None,
    ) -> Hypothesis:
        with self.lock:
            first = not self.calls
            if first:
                self.calls.append("held")
        if first:
            self.holding.set()
            assert self.go.wait(10.0)
        if abandon is not None and abandon():
            with self.lock:
                self.calls.append("abandoned")
            raise DecodeAbandoned("after the encoder")
        with self.lock:
            self.calls.append("decoded")
        return super().recognize(samples, lang=lang, prompt=prompt)


def feed(pipeline: CaptionPipeline, from_s: float, to_s: float) -> None:
    for i in range(round(from_s * 10), round(to_s * 10)):
        pipeline.push(AudioChunk("s", audio(0.1), i / 10))


def until(predicate: Any) -> bool:
    return asyncio.run(wait_until(predicate, 10.0))


@pytest.mark.parametrize("speaker_stops", [True, False])
def test_an_interim_gives_way_to_the_pause_decode_a_final_waits_for(speaker_stops: bool) -> None:
    frames: list[CaptionFrame] = []
    lock = threading.Lock()

    def emit(frame: CaptionFrame) -> None:
        with lock:
            frames.append(frame)

    def interim_out() -> bool:
        with lock:
            return any(not f.is_final for f in frames)

    recognizer = HeldRecognizer()
    speech = [(0.5, 3.8)] if speaker_stops else [(0.5, 8.0)]
    pipeline = CaptionPipeline(
        recognizer=recognizer,
        vad=ScriptedVads(speech),  # type: ignore[arg-type]
        emit=emit,
        clock=lambda: 0.0,  # the audio never stops arriving
    )
    pipeline.add_speaker("s", "en")
    pipeline.start()
    try:
        feed(pipeline, 0.0, 1.6)  # an interim starts once 0.5 s of speech is heard
        assert recognizer.holding.wait(10.0)
        # while it runs, the speaker stops at 3.8 s (or goes on): the pause decode is due
        # 0.15 s into the silence
        feed(pipeline, 1.6, 4.1)
        recognizer.go.set()
        feed(pipeline, 4.1, 6.0)  # the pause reaches 2 s: the final
        if speaker_stops:
            assert until(lambda: any(f.is_final for f in frames))
        else:
            # an interim is out before the stop: the output thread drops an interim that
            # waits beside its caption's final (on a loaded machine both could be queued)
            assert until(lambda: recognizer.calls.count("decoded") >= 2 and interim_out())
    finally:
        pipeline.stop(drain=True, timeout_s=10.0)
    with lock:
        finals = [f.text for f in frames if f.is_final]
        interims = [f.text for f in frames if not f.is_final]
    if speaker_stops:
        assert recognizer.calls[:3] == ["held", "abandoned", "decoded"]
        assert pipeline.interims_abandoned == 1
        # the abandoned interim's words (the sentence's start) were never shown: the only
        # interim is the pause decode's (superseded by the final when both are out at once)
        assert set(interims) <= {"It holds back the river."}
        assert finals == ["It holds back the river."]
    else:
        # the held interim is decoded to the end, and so is every one after it
        assert recognizer.calls[:2] == ["held", "decoded"]
        assert "abandoned" not in recognizer.calls
        assert pipeline.interims_abandoned == 0
        assert interims and finals == ["It holds back the river."]
