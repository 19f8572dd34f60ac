"""Issue 12 (de→en latency): a final whose translation is Whisper's own speech translation
(de→en) waited for that second decode after the pause that ends it. The decode thread, with
nothing due, now makes it while the pause grows (the pause decode heard a sentence end); the
final uses it when its audio is the same, so its English is the same as one made after it.
When the speaker goes on, it is thrown away. Scripted VAD and recognizer: no model."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from interpret.frames import AudioChunk, CaptionFrame, Samples, Translated, Word
from interpret.pipeline import CaptionPipeline
from tests.support.scripted_policy import ScriptedRecognizer, ScriptedVads, words
from tests.support.scripted_vad import audio
from tests.support.waits import wait_until

SAMPLES_PER_S = 16000


class Harness:
    def __init__(
        self,
        speech: list[tuple[float, float]],
        script: list[Word],
        *,
        speech_route: bool = True,
        fails: int = 0,
    ) -> None:
        self.lock = threading.Lock()
        self.frames: list[CaptionFrame] = []
        #: the audio (seconds) of each speech translation asked for, in order
        self.translated: list[float] = []

        def emit(frame: CaptionFrame) -> None:
            with self.lock:
                self.frames.append(frame)

        def translate_speech(samples: Samples, lang: str) -> str:
            with self.lock:
                self.translated.append(round(len(samples) / SAMPLES_PER_S, 2))
                if len(self.translated) <= fails:
                    raise RuntimeError("the engine failed")
            return f"english of {len(samples) / SAMPLES_PER_S:.2f} s"

        def translate(
            text: str, source: str, target: str, *, english: str | None = None
        ) -> Translated:
            return Translated(english or "", "whisper")

        self.pipeline = CaptionPipeline(
            recognizer=ScriptedRecognizer(script, lang="de"),
            vad=ScriptedVads(speech),  # type: ignore[arg-type]
            emit=emit,
            translate=translate,
            translate_speech=translate_speech,
            needs_speech=lambda source, targets: speech_route and "en" in targets,
            clock=lambda: 0.0,  # the audio never stops arriving
        )
        self.pipeline.set_targets(["en"])
        self.pipeline.add_speaker("s", "de")
        self.pipeline.start()
        self.at_s = 0.0

    def audio_until(self, end_s: float) -> None:
        while self.at_s < end_s - 1e-6:
            self.pipeline.push(AudioChunk("s", audio(0.1), self.at_s))
            self.at_s += 0.1

    def finals(self) -> list[CaptionFrame]:
        with self.lock:
            return [f for f in self.frames if f.is_final]

    def asked(self) -> list[float]:
        with self.lock:
            return list(self.translated)

    def until(self, predicate: Any) -> bool:
        return asyncio.run(wait_until(predicate, 10.0))

    def idle(self) -> bool:
        return self.pipeline.wait_idle(10.0)

    def close(self) -> None:
        self.pipeline.stop(drain=True, timeout_s=10.0)
        assert self.pipeline.error is None


SENTENCE = words(0.5, 3.0, "Er hält den Fluss auf.")


def test_the_speech_translation_is_made_while_the_pause_grows_and_the_final_uses_it() -> None:
    h = Harness([(0.5, 3.0)], SENTENCE)
    try:
        h.audio_until(3.6)  # the pause is confirmed (0.4 s) and decoded; 0.6 s so far
        assert h.until(lambda: h.asked() == [2.65])  # the sentence's audio and the tail pad
        assert h.finals() == []  # the pause may still grow, or the speaker go on
        h.audio_until(4.5)  # 1.5 s of pause: the sentence end ends the caption
        assert h.until(lambda: len(h.finals()) == 1)
        assert h.idle()
        final = h.finals()[0]
        assert final.text == "Er hält den Fluss auf."
        assert final.translations["en"] == Translated("english of 2.65 s", "whisper")
        assert h.asked() == [2.65]  # not made again for the final
        assert h.pipeline.speech_ahead == {"made": 1, "used": 1}
    finally:
        h.close()


def test_a_speaker_who_goes_on_gets_the_translation_of_the_whole_sentence() -> None:
    # Whisper heard a period at the first pause; the speaker went on ("und …" continues it)
    script = [*SENTENCE, *words(3.8, 6.0, "und die Stadt.")]
    h = Harness([(0.5, 3.0), (3.8, 6.0)], script)
    try:
        h.audio_until(3.7)
        assert h.until(lambda: h.asked() == [2.65])  # made ahead of a final that may come
        h.audio_until(6.6)  # speech came back at 3.8: the sentence goes on to 6.0
        assert h.until(lambda: h.asked() == [2.65, 5.65])  # ahead of the next likely final
        assert h.finals() == []
        h.audio_until(8.0)
        assert h.until(lambda: len(h.finals()) == 1)
        assert h.idle()
        final = h.finals()[0]
        assert final.text == "Er hält den Fluss auf. und die Stadt."
        # its own audio, all of it
        assert final.translations["en"] == Translated("english of 5.65 s", "whisper")
        assert h.asked() == [2.65, 5.65]
        assert h.pipeline.speech_ahead == {"made": 2, "used": 1}
    finally:
        h.close()


def test_nothing_is_made_ahead_for_a_final_no_reader_needs_it_for() -> None:
    h = Harness([(0.5, 3.0)], SENTENCE, speech_route=False)
    try:
        h.audio_until(4.5)
        assert h.until(lambda: len(h.finals()) == 1)
        assert h.idle()
        assert h.asked() == []
        assert h.pipeline.speech_ahead == {}
    finally:
        h.close()


def test_a_translation_that_failed_ahead_is_tried_again_for_the_final() -> None:
    h = Harness([(0.5, 3.0)], SENTENCE, fails=1)
    try:
        h.audio_until(3.6)
        assert h.until(lambda: h.asked() == [2.65])  # failed: not tried ahead again
        h.audio_until(4.5)
        assert h.until(lambda: len(h.finals()) == 1)
        assert h.idle()
        assert h.finals()[0].translations["en"] == Translated("english of 2.65 s", "whisper")
        assert h.asked() == [2.65, 2.65]
        assert h.pipeline.speech_ahead == {"made": 1}
    finally:
        h.close()
