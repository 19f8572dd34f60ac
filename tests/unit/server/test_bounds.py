"""Issue 11, point 7: everything a client can grow is bounded. Each test floods one structure
and checks its bound (pure parts; the acceptance tests are in tests/acceptance/test_bounds.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from structlog.testing import capture_logs

from interpret.frames import Translated
from interpret.languages import KNOWN_LANGUAGES, WHISPER_LANGUAGES
from server.channels import MAX_CHANNELS_PER_ROOM, ChannelError, RoomChannels
from server.chat import TRANSLATION_BUSY, RoomChat
from server.protocol import ProtocolError, parse_client_message
from server.retention import Retention
from server.settings import load_settings
from server.transcript import MAX_CORRECTIONS_PER_LINE, RoomTranscript, TranscriptLine

FAKE_CODES = [f"q{a}{b}" for a in "abcdefghij" for b in "abcdefghij"]  # 100 codes


# -- 1. languages and channels -------------------------------------------------------------
def test_known_languages_are_whispers() -> None:
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    assert WHISPER_LANGUAGES == _LANGUAGE_CODES
    assert KNOWN_LANGUAGES == {*_LANGUAGE_CODES, "nb"}
    assert not KNOWN_LANGUAGES & set(FAKE_CODES)


@pytest.mark.parametrize(
    "message",
    [
        {"type": "join", "room": "r", "name": "A", "lang": "zz"},
        {"type": "captions", "languages": ["es", "zz"]},
        {"type": "captions", "languages": ["es"] * 9},  # at most 8
        {"type": "chat", "text": "hi", "lang": "qqq"},
        {"type": "on_air", "channel": "zz"},
        {"type": "handover_request", "channel": "zz"},
        {"type": "handover_answer", "channel": "zz", "accept": True},
        {"type": "listen", "channel": "zz"},
        {"type": "correct", "caption_id": "c1", "lang": "zz", "text": "x"},
        {"type": "export", "format": "vtt", "lang": "zz"},
        {"type": "glossary_set", "entries": [{"term": "x", "renderings": {"zz": "y"}}]},
    ],
)
def test_unknown_languages_are_bad_message(message: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_client_message(json.dumps(message))
    assert caught.value.code == "bad_message"
    if message.get("languages") != ["es"] * 9:
        assert "unknown language" in caught.value.message


def test_known_languages_still_parse() -> None:
    for lang in ("en", "nb", "haw", "yue"):
        parse_client_message(json.dumps({"type": "on_air", "channel": lang}))
        parse_client_message(json.dumps({"type": "captions", "languages": [lang]}))
    parse_client_message(json.dumps({"type": "listen", "channel": "floor"}))


def test_channels_per_room_are_capped() -> None:
    channels = RoomChannels(max_channels=3)
    codes = sorted(KNOWN_LANGUAGES)
    refused = 0
    for lang in codes:
        try:
            channels.go_on_air("marie", lang)
        except ChannelError as exc:
            assert exc.code == "too_many_channels"
            refused += 1
        assert len(channels.known) <= 3
    assert refused == len(codes) - 3
    assert channels.known == codes[:3]
    assert channels.channel_of("marie") == codes[2]  # a refused one changes nothing
    # a known channel is still usable at the cap
    channels.go_on_air("jean", codes[0])
    assert RoomChannels().max_channels == MAX_CHANNELS_PER_ROOM


# -- 2. chat translation jobs ----------------------------------------------------------------
class FakeClient:
    def __init__(self) -> None:
        self.languages = frozenset({"es"})
        self.spoken_lang: str | None = "en"
        self.sent: list[dict[str, Any]] = []
        self.got = asyncio.Event()

    def send(self, message: str) -> None:
        self.sent.append(json.loads(message))
        self.got.set()


@dataclass
class FakeRoom:
    name: str = "r"
    clients: dict[str, Any] = field(default_factory=dict)


async def test_chat_job_queue_is_bounded_and_never_loses_an_accepted_message() -> None:
    stuck = asyncio.Event()  # the speech worker hangs on the first message
    calls: list[str] = []
    called = asyncio.Event()

    async def translate(text: str, source: str, targets: tuple[str, ...]) -> dict[str, Translated]:
        calls.append(text)
        called.set()
        if len(calls) == 1:
            await stuck.wait()
        return {t: Translated(f"{text}@{t}", "fake") for t in targets}

    room = FakeRoom()
    reader = FakeClient()
    room.clients["p1"] = reader
    chat = RoomChat(
        room,  # type: ignore[arg-type]
        history_max_messages=100,
        translate=translate,
        timeout_s=60.0,
        max_queued_jobs=32,
        shed_translation_queued_jobs=4,
    )
    chat.joined(reader, "p1")  # type: ignore[arg-type]

    def post(i: int) -> None:
        chat.post(sender_id="p1", sender_name="A", lang="en", text=f"m{i}", to=None)

    post(0)
    await asyncio.wait_for(called.wait(), 5)  # the runner took it and waits for translation
    accepted, refused = [0], 0
    for i in range(1, 1000):
        try:
            post(i)
            accepted.append(i)
        except ProtocolError as exc:
            assert exc.code == "rate_limited" and exc.details["retry_after_ms"] > 0
            refused += 1
        assert chat.queued_jobs <= 32
    assert len(accepted) == 33 and refused == 1000 - 33  # one running, 32 waiting
    # a joiner meanwhile gets the history at once (the queue is full), untranslated
    late = FakeClient()
    room.clients["p2"] = late
    chat.joined(late, "p2")  # type: ignore[arg-type]
    assert chat.queued_jobs <= 32
    [history] = late.sent
    assert history["type"] == "chat_history"
    assert [m["text"] for m in history["messages"]] == [f"m{i}" for i in accepted]
    assert history["messages"][5]["untranslated"] == {"es": TRANSLATION_BUSY}

    stuck.set()
    async with asyncio.timeout(5):
        while len(reader.sent) < len(accepted):
            reader.got.clear()
            await reader.got.wait()
    got = [m for m in reader.sent if m["type"] == "chat"]
    assert [m["text"] for m in got] == [f"m{i}" for i in accepted]  # all of them, in order
    assert got[0]["translations"] == {"es": "m0@es"}
    busy = [m for m in got if m["untranslated"] == {"es": TRANSLATION_BUSY}]
    assert len(busy) == len(accepted) - 1 - 4  # the backlog went out untranslated
    assert len(calls) == 1 + 4
    assert chat.queued_jobs == 0
    await chat.aclose()


# -- 3. corrections per caption ----------------------------------------------------------------
def test_corrections_kept_per_caption_are_bounded() -> None:
    transcript = RoomTranscript("r", max_lines=10, started_at_unix=0.0)
    line = TranscriptLine("c1", "s1", "Sam", "en", "hello", 0.0, 1.0, translations={"fr": "salut"})
    transcript.add(line)
    transcript.correct(line, "fr", "bonjour", by="i1", by_name="Ines", at_s=1.0)
    for i in range(1000):
        transcript.correct(line, "en", f"hello {i}", by="i1", by_name="Ines", at_s=2.0 + i)
        assert len(line.corrections) <= MAX_CORRECTIONS_PER_LINE
    assert len(line.corrections) == MAX_CORRECTIONS_PER_LINE
    assert line.corrections[-1].previous == "hello 998"  # the latest are kept
    assert line.text == "hello 999"
    # the French correction fell out of the history but French stays human-corrected
    assert line.corrected_langs == ["en", "fr"]
    assert line.engines["fr"] == "human"
    assert len(line.to_wire()["corrections"]) == MAX_CORRECTIONS_PER_LINE


# -- 4. retention file size ----------------------------------------------------------------
def test_retention_files_are_bounded_with_one_warning(tmp_path: Path) -> None:
    settings = load_settings(retention={"mode": "jsonl", "max_file_bytes": 4096})
    retention = Retention(settings.retention, tmp_path)
    with capture_logs() as logs:
        for i in range(1000):
            retention.record("r", "chat", {"text": f"secret words {i} " * 4})
    files = sorted((tmp_path / "transcripts" / "r").glob("*.jsonl"))
    assert files
    for path in files:
        size = path.stat().st_size
        assert 3000 < size <= 4096, size
        for row in path.read_text().splitlines():
            json.loads(row)  # whole records only
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == len(files)  # one per full file (two if the hour turned meanwhile)
    assert "secret" not in repr(warnings)
    assert warnings[0]["room"] == "r" and warnings[0]["max_file_bytes"] == 4096
    assert retention.written < 1000 and retention.skipped == 1000 - retention.written


# -- 5. translation targets per room ---------------------------------------------------------
def test_speaker_targets_are_their_rooms_readers() -> None:
    from server.captions import speaker_targets

    rooms = {"A": [frozenset({"fr"}), frozenset({"es", "fr"})], "B": [frozenset({"de"})]}
    speakers = {"ann": "A", "bob": "B", "cy": "C"}
    assert speaker_targets(speakers, rooms) == {
        "ann": frozenset({"es", "fr"}),
        "bob": frozenset({"de"}),
        "cy": frozenset(),
    }


class FakeWorker:
    """What the caption service asks of the speech worker."""

    def __init__(self) -> None:
        self.targets: tuple[str, ...] = ()
        self.speaker_targets: dict[str, tuple[str, ...]] = {}
        self.speakers: list[str] = []
        self.added = asyncio.Event()

    def set_targets(self, langs: Iterable[str]) -> None:
        self.targets = tuple(langs)

    def set_speaker_targets(self, speaker_id: str, langs: Iterable[str]) -> None:
        self.speaker_targets[speaker_id] = tuple(langs)

    def add_speaker(self, speaker_id: str, lang: str | None = None) -> None:
        self.speakers.append(speaker_id)
        self.added.set()

    def remove_speaker(self, speaker_id: str) -> None:
        self.speakers.remove(speaker_id)

    def push(self, chunk: Any) -> None:
        pass

    def translating(self, speaker_id: str) -> set[str]:
        """The languages the worker translates this speaker's captions into."""
        return set(self.speaker_targets.get(speaker_id, self.targets))


@dataclass
class Reader:
    languages: frozenset[str] = frozenset()
    spoken_lang: str | None = "en"


@dataclass
class Router:
    """The rooms' side of the caption service (server.features.captions.CaptionsFeature)."""

    rooms: dict[str, FakeRoom] = field(default_factory=dict)

    def readers(self) -> dict[str, list[frozenset[str]]]:
        return {n: [c.languages for c in r.clients.values()] for n, r in self.rooms.items()}

    def speaker(self, room: str, participant_id: str) -> Any:
        from server.features.captions import Speaker

        reader = self.rooms[room].clients.get(participant_id) if room in self.rooms else None
        return None if reader is None else Speaker(reader.spoken_lang, ())

    def deliver(self, room: str, frame: Any, **_: Any) -> None:
        return None


async def test_one_rooms_readers_do_not_make_another_rooms_speaker_translated() -> None:
    from interpret.compose import PipelineConfig
    from interpret.frames import AudioChunk
    from media.api import SpeakerAudio
    from media.tap import SpeakerAudioQueue
    from server.captions import CaptionService

    router = Router()
    room_a, room_b = FakeRoom("A"), FakeRoom("B")
    router.rooms.update(A=room_a, B=room_b)
    room_a.clients["reader"] = Reader(frozenset({"fr"}))
    room_b.clients["bob"] = Reader()
    room_b.clients["bea"] = Reader(frozenset({"de"}))
    audio = SpeakerAudioQueue(max_chunks=8)
    service = CaptionService(config=PipelineConfig(), audio=audio)
    service.router = router
    worker = FakeWorker()
    service._worker = worker  # type: ignore[assignment]
    service.languages_changed()
    feed = asyncio.create_task(service._feed())
    audio.put(SpeakerAudio("B", "bob", "t1", AudioChunk("bob", np.zeros(1600, np.float32), 0.0)))
    await asyncio.wait_for(worker.added.wait(), 5)
    assert worker.speakers == ["bob"]
    assert worker.translating("bob") == {"de"}  # not room A's French
    room_a.clients["reader2"] = Reader(frozenset({"it"}))
    service.languages_changed()
    assert worker.translating("bob") == {"de"}
    room_b.clients["bea"].languages = frozenset({"de", "es"})
    service.languages_changed()
    assert worker.translating("bob") == {"de", "es"}
    feed.cancel()
    await asyncio.gather(feed, return_exceptions=True)
