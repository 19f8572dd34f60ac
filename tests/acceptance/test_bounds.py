"""Acceptance (issue 11, point 7), real server on loopback: a client cannot grow a room's channel
list (unknown language codes are `bad_message`, past the cap of channels per room
`too_many_channels`; every `channels` broadcast stays small); one room's readers do not make the
speech worker translate another room's speakers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from interpret.languages import KNOWN_LANGUAGES
from server.app import App
from server.channels import MAX_CHANNELS_PER_ROOM
from tests.support.app import loopback_settings, ws_url
from tests.support.client import FileAudio, ParleyClient
from tests.support.paths import EVALSET
from tests.support.raw import RawClient

FAKE_CODES = [f"q{a}{b}" for a in "abcde" for b in "abcd"]  # 20 (fewer than 32 errors in a row)


@pytest.fixture
async def flood_app() -> AsyncIterator[App]:
    # the per-connection message rate is not what this test is about
    limits = {"messages_per_connection_per_s": 1000.0, "message_burst": 1000}
    app = App(loopback_settings(limits=limits))
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


async def test_channel_flood_is_refused_and_broadcasts_stay_small(flood_app: App) -> None:
    listener = await RawClient.connect(ws_url(flood_app))  # the first joiner is the host
    await listener.send({"type": "join", "room": "r", "name": "Lena"})
    await listener.recv("joined")
    interpreter = await RawClient.connect(ws_url(flood_app))
    await interpreter.send({"type": "join", "room": "r", "name": "Ines", "role": "interpreter"})
    assert (await interpreter.recv("joined"))["role"] == "interpreter"
    await interpreter.drain()
    await listener.drain()

    for code in FAKE_CODES:
        await interpreter.send({"type": "on_air", "channel": code})
        error = await interpreter.error()
        assert error["code"] == "bad_message" and "unknown language" in error["message"], error
    assert not [m for m in await listener.drain() if m["type"] == "channels"]

    codes = sorted(KNOWN_LANGUAGES)[: MAX_CHANNELS_PER_ROOM + 10]
    for code in codes:
        await interpreter.send({"type": "on_air", "channel": code})
    await interpreter.send({"type": "listen", "channel": "floor"})  # answered after the floods
    answers = []
    while True:
        message = await interpreter.recv()
        answers.append(message)
        if message["type"] == "channels" and "event" not in message:
            break
    refused = [m for m in answers if m["type"] == "error"]
    assert len(refused) == 10 and {m["code"] for m in refused} == {"too_many_channels"}
    broadcasts = [m for m in await listener.drain() if m["type"] == "channels"]
    assert len(broadcasts) == MAX_CHANNELS_PER_ROOM
    last = broadcasts[-1]
    assert [c["channel"] for c in last["channels"]] == codes[:MAX_CHANNELS_PER_ROOM]
    assert len(json.dumps(last, separators=(",", ":"))) < 80 * MAX_CHANNELS_PER_ROOM + 300
    await interpreter.close()
    await listener.close()


@pytest.mark.media
@pytest.mark.models
async def test_one_rooms_readers_do_not_get_another_room_translated(tmp_path: Path) -> None:
    """Room A reads Spanish; a speaker in room B, where nobody reads another language, is not
    translated (the retained finals carry what the worker made)."""
    settings = loopback_settings(
        captions={"enabled": True},
        retention={"mode": "jsonl", "kinds": ["captions"]},
        server={"data_dir": str(tmp_path)},
    )
    app = App(settings)
    await app.start()
    url = ws_url(app)
    reader = ParleyClient(url, room="a", name="Lectora")
    voice = FileAudio(str(EVALSET / "audio" / "en" / "fleurs-en-000.ogg"))
    speaker = ParleyClient(url, room="b", name="Speaker", audio=voice, lang="en")
    try:
        await reader.join()
        await reader.send({"type": "captions", "languages": ["es"]})
        await speaker.join()
        assert await speaker.wait_for(
            lambda: any(m["type"] == "caption" and m["final"] for m in speaker.messages), 30
        ), speaker.messages[-5:]
    finally:
        await speaker.close()
        await reader.close()
        await app.stop()
    files = sorted((tmp_path / "transcripts" / "b").glob("*.jsonl"))
    records = [json.loads(row) for f in files for row in f.read_text().splitlines()]
    assert records
    assert [r["translations"] for r in records] == [{} for _ in records]
