"""Room features with the speech worker and real engines (issue 5, server side): chat translated
by Apertium for each reader (the original kept), history translated for a late joiner, the
transcription notice before any caption, and a speaker who opts out produces no captions."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import pytest

from server.app import App
from tests.support.app import ws_url
from tests.support.client import FileAudio, ParleyClient
from tests.support.paths import EVALSET
from tests.support.raw import RawClient

pytestmark = [pytest.mark.media, pytest.mark.models]

ENGLISH = "Good morning, everyone. The meeting starts in five minutes."


async def join(app: App, name: str, room: str, **extra: Any) -> tuple[RawClient, str]:
    """Join; checks that the transcription notice is the very next message after ``joined``."""
    client = await RawClient.connect(ws_url(app))
    await client.send({"type": "join", "room": room, "name": name, **extra})
    joined = await client.recv()
    assert joined["type"] == "joined", joined
    notice = await client.recv()
    assert notice["type"] == "notice", notice
    assert notice["kind"] == "transcription" and notice["machine_generated"] is True
    assert "transcribed" in notice["text"]
    return client, joined["participant_id"]


async def test_chat_is_translated_for_each_reader_by_the_caption_engines(
    captioning_app: App,
) -> None:
    ann, ann_id = await join(captioning_app, "Ann", "chat", lang="en")
    bea, bea_id = await join(captioning_app, "Bea", "chat")
    await bea.send({"type": "captions", "languages": ["es"]})
    sent_s = time.monotonic()
    await ann.send({"type": "chat", "text": ENGLISH})
    for_bea = await bea.recv("chat")
    latency_s = time.monotonic() - sent_s
    spanish = for_bea["translations"]["es"]
    print(f"chat en→es in {latency_s:.2f} s: {spanish}")
    assert for_bea["text"] == ENGLISH and for_bea["lang"] == "en"  # the original, one click away
    assert for_bea["engines"] == {"es": "apertium"} and for_bea["untranslated"] == {}
    assert "reunión" in spanish.lower() and "minutos" in spanish.lower(), spanish
    for_ann = await ann.recv("chat")
    assert for_ann["text"] == ENGLISH and for_ann["translations"] == {}  # Ann reads English
    # a private reply in Spanish, translated into Ann's language, seen by Ann and Bea only
    await bea.send({"type": "chat", "text": "Buenos días, gracias.", "lang": "es", "to": ann_id})
    reply = await ann.recv("chat")
    assert reply["private"] is True and reply["from"] == bea_id and reply["to"] == ann_id
    assert reply["engines"] == {"en": "apertium"}
    assert "thank" in reply["translations"]["en"].lower(), reply
    assert (await bea.recv("chat"))["private"] is True
    # a late joiner who speaks French gets the room's history (not the private reply) in French
    cem, _ = await join(captioning_app, "Cem", "chat", lang="fr")
    history = (await cem.recv("chat_history"))["messages"]
    assert [m["text"] for m in history] == [ENGLISH]
    (first,) = history
    assert first["translations"]["fr"] and first["translations"]["fr"] != ENGLISH
    assert first["engines"]["fr"].startswith("apertium"), first  # en→es→fr
    for client in (ann, bea, cem):
        await client.close()


async def test_french_chat_reaches_an_english_reader_translated(captioning_app: App) -> None:
    """Issue 13 bug 2: Whisper's fr→en translates speech only; chat takes a text route (Apertium
    through Spanish), and no engine name reaches the reader."""
    fay, _ = await join(captioning_app, "Fay", "chat-fr", lang="fr")
    eli, _ = await join(captioning_app, "Eli", "chat-fr", lang="en")
    await eli.send({"type": "captions", "languages": ["en"]})
    await fay.send({"type": "chat", "text": "Bonjour à tous, merci beaucoup.", "lang": "fr"})
    for_eli = await eli.recv("chat")
    assert for_eli["untranslated"] == {}, for_eli
    english = for_eli["translations"]["en"]
    assert "thank" in english.lower(), for_eli
    assert for_eli["engines"] == {"en": "apertium"}  # fr→es→en, for the console and metrics
    for client in (fay, eli):
        await client.close()


async def test_chat_follows_the_room_glossary(captioning_app: App) -> None:
    """A glossary entry set by an interpreter renders its term in chat translations too."""
    text = "We meet in the town of Cintra tomorrow."
    ann, _ = await join(captioning_app, "Ann", "gloss-chat", lang="en")
    bea, _ = await join(captioning_app, "Bea", "gloss-chat")
    ivo, _ = await join(captioning_app, "Ivo", "gloss-chat", role="interpreter")
    await bea.send({"type": "captions", "languages": ["es"]})
    await ann.send({"type": "chat", "text": text})
    without = (await bea.recv("chat"))["translations"]["es"]
    entries = [{"term": "town of Cintra", "lang": "en", "renderings": {"es": "villa de Sintra"}}]
    await ivo.send({"type": "glossary_set", "entries": entries})
    assert (await bea.recv("glossary"))["entries"][0]["term"] == "town of Cintra"
    await ann.send({"type": "chat", "text": text})
    with_entry = (await bea.recv("chat"))["translations"]["es"]
    print(f"chat without the entry: {without!r}; with it: {with_entry!r}")
    assert "villa de Sintra" not in without
    assert "villa de Sintra" in with_entry, with_entry
    for client in (ann, bea, ivo):
        await client.close()


async def test_chat_goes_out_untranslated_with_a_reason_while_the_worker_restarts(
    captioning_app: App,
) -> None:
    import signal

    assert captioning_app.captions is not None
    worker = captioning_app.captions.worker
    ann, _ = await join(captioning_app, "Ann", "down")
    bea, _ = await join(captioning_app, "Bea", "down", lang="es")
    assert worker.pid is not None
    os.kill(worker.pid, signal.SIGKILL)
    await ann.send({"type": "chat", "text": ENGLISH})
    message = await bea.recv("chat", timeout_s=5)
    assert message["text"] == ENGLISH and message["translations"] == {}
    assert message["untranslated"] == {"es": "translation is unavailable just now"}
    for client in (ann, bea):
        await client.close()


async def test_opted_out_speaker_produces_no_captions_until_they_opt_in(
    captioning_app: App,
) -> None:
    clip = EVALSET / "audio" / "en" / "fleurs-en-000.ogg"
    voice = FileAudio(str(clip))
    voice.pcm = np.tile(np.concatenate([voice.pcm, np.zeros(48_000, np.int16)]), 4)
    url = ws_url(captioning_app)
    reader = ParleyClient(url, room="quiet", name="Reader")
    await reader.join()
    await reader.send({"type": "captions", "languages": ["es"]})
    speaker = ParleyClient(url, room="quiet", name="Speaker", audio=voice, lang="en")
    await speaker.join()
    # sent before the answer to the first offer, so before any of the speaker's audio arrives
    await speaker.send({"type": "transcription", "opt_out": True})
    sid = speaker.participant_id
    assert sid is not None

    def captions_of_speaker() -> list[dict[str, Any]]:
        return [m for m in reader.messages if m["type"] == "caption" and m["participant_id"] == sid]

    def heard() -> int:
        media = reader.remote.get(sid)
        return 0 if media is None else media.audio_frames

    assert await reader.wait_for(
        lambda: any(m["type"] == "transcription" and m["opt_out"] for m in reader.messages), 5
    )
    # a whole utterance (8.7 s of speech) plays and reaches the reader: no caption of it
    assert await reader.wait_for(
        lambda: voice.started_s is not None and time.monotonic() > voice.started_s + 11, 20
    )
    assert heard() > 400  # 20 ms frames: the audio itself went on
    assert captions_of_speaker() == []
    # a late joiner's first messages: joined, then the notice (before any caption)
    late = ParleyClient(url, room="quiet", name="Late")
    await late.join()
    # the speaker opts in again: the next utterance is captioned
    await speaker.send({"type": "transcription", "opt_out": False})
    assert await reader.wait_for(lambda: any(c["final"] for c in captions_of_speaker()), 25), (
        reader.messages[-3:]
    )
    finals = [c for c in captions_of_speaker() if c["final"]]
    assert "communication" in " ".join(str(c["text"]) for c in finals).lower()
    kinds = [m["type"] for m in late.messages]
    assert kinds[:3] == ["welcome", "joined", "notice"], kinds[:5]
    assert "caption" in kinds  # late got captions too, all after the notice
    for client in (late, speaker, reader):
        await client.leave()
