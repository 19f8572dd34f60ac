"""Issue 11, point 7: the pipeline translates each speaker's captions into their own targets
(their room's readers), not into the union over every speaker; a leaving speaker's last final
keeps the targets it had."""

from __future__ import annotations

from typing import Any

from interpret.frames import Translated
from interpret.pipeline import CaptionPipeline
from interpret.streaming import CaptionUpdate


class SilentVadStream:
    """The tests below never push audio: the VAD never heard anything."""

    silence_since_s = None

    def end(self) -> list[Any]:
        return []


class FakeVad:
    def stream(self, settings: Any) -> Any:
        return SilentVadStream()


def update(speaker_id: str, final: bool = True) -> CaptionUpdate:
    return CaptionUpdate(speaker_id, f"{speaker_id}-1", "en", "hello", 5, 0.0, 1.0, final)


def test_each_speaker_is_translated_into_their_own_targets() -> None:
    asked: list[tuple[str, str]] = []

    def translate(text: str, source: str, target: str, *, english: str | None = None) -> Translated:
        asked.append((source, target))
        return Translated(f"{text}@{target}", "fake")

    pipeline = CaptionPipeline(
        recognizer=None,  # type: ignore[arg-type]
        vad=FakeVad(),  # type: ignore[arg-type]
        emit=lambda frame: None,
        translate=translate,
    )
    pipeline.set_targets(["it"])  # the default, for speakers without targets of their own
    for speaker in ("ann", "bob", "cy"):
        pipeline.add_speaker(speaker, "en")
    pipeline.set_speaker_targets("ann", ["fr"])  # room A reads French
    pipeline.set_speaker_targets("bob", ["de"])  # room B reads German
    pipeline.set_speaker_targets("nobody", ["es"])  # not a speaker: ignored

    def frame_of(speaker: str) -> Any:
        with pipeline._work:
            pipeline._queue_updates([update(speaker)], pipeline._speakers[speaker])
        return pipeline._frame(pipeline._out.get_nowait())

    assert set(frame_of("bob").translations) == {"de"}
    assert asked == [("en", "de")]
    assert set(frame_of("ann").translations) == {"fr"}
    assert set(frame_of("cy").translations) == {"it"}

    # bob leaves: his last final, queued before he is forgotten, keeps his targets
    with pipeline._work:
        pipeline._queue_updates([update("bob")], pipeline._speakers["bob"])
    pipeline.remove_speaker("bob")
    with pipeline._work:
        pipeline._pick()  # forgets bob (nothing left to decode)
    assert "bob" not in pipeline._speakers and "bob" not in pipeline._speaker_targets
    assert set(pipeline._frame(pipeline._out.get_nowait()).translations) == {"de"}
