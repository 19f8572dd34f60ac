"""Acceptance (issue 3, point 1): an aiortc client speaks English evalset speech into a room in
real time; a participant reading Spanish receives final Spanish captions within 3 s of the
utterance's end, and the English finals are about as accurate as offline recognition."""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.app import App
from tests.conftest import loopback_settings, ws_url
from tests.support.client import FileAudio, ParleyClient

pytestmark = [pytest.mark.media, pytest.mark.models]

EVALSET = Path(
    os.environ.get("PARLEY_EVALSET", Path(__file__).resolve().parents[2] / "shared" / "evalset")
)


@pytest.fixture
async def captioning_app() -> AsyncIterator[App]:
    instance = App(loopback_settings(captions={"enabled": True}))
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


def words(text: str) -> list[str]:
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


async def test_spanish_reader_gets_captions_of_english_speech(captioning_app: App) -> None:
    import jiwer

    longform = json.loads((EVALSET / "longform" / "en_fleurs_concat.json").read_text())
    segment = longform["segments"][0]  # = audio/en/fleurs-en-000.ogg, starting at 0.0
    clip = EVALSET / "audio" / "en" / "fleurs-en-000.ogg"
    url = ws_url(captioning_app)
    voice = FileAudio(str(clip))
    speaker = ParleyClient(url, room="talk", name="Speaker", audio=voice, lang="en")
    reader = ParleyClient(url, room="talk", name="Reader")
    await reader.join()
    await reader.send({"type": "captions", "languages": ["es"]})
    await speaker.join()

    def finals() -> list[dict[str, object]]:
        return [m for m in reader.messages if m["type"] == "caption" and m["final"]]

    speech_end = segment["speech_end"]
    assert await reader.wait_for(
        lambda: (
            voice.started_s is not None
            and finals()
            and float(finals()[-1]["end_s"]) >= speech_end - 0.5
        ),  # type: ignore[arg-type]
        25,
    ), reader.messages[-5:]
    assert voice.started_s is not None
    for final in finals():
        assert final["participant_id"] == speaker.participant_id
        assert final["lang"] == "en" and final["machine_generated"] is True
        assert final["translations"]["es"], final  # type: ignore[index]
        assert final["engines"] == {"es": "apertium"}
    last = finals()[-1]
    latency_s = float(last["_received_s"]) - (voice.started_s + speech_end)  # type: ignore[arg-type]
    english = " ".join(str(f["text"]) for f in finals())
    spanish = " ".join(str(f["translations"]["es"]) for f in finals())  # type: ignore[index]
    print(f"latency {latency_s:.2f} s | {english} | {spanish}")
    assert latency_s <= 3.0
    # the same model offline on the same clip: the bar for the live finals' accuracy
    from interpret.models import ModelResolver
    from interpret.transcribe import WhisperRecognizer, words_text
    from server.captioning import load_audio

    offline = WhisperRecognizer(ModelResolver().resolve("base")).recognize(
        load_audio(clip), lang="en"
    )
    reference = " ".join(words(segment["reference"]))
    live_wer = jiwer.wer(reference, " ".join(words(english)))
    offline_wer = jiwer.wer(reference, " ".join(words(words_text(offline.words))))
    print(f"WER live {live_wer:.3f} offline {offline_wer:.3f}")
    assert live_wer <= offline_wer + 0.03
    assert "comunicación" in spanish
    await speaker.leave()
    await reader.leave()
