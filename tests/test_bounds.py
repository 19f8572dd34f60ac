"""Acceptance (issue 11, point 7): a client cannot grow a room's channel list: unknown language
codes are refused (`bad_message`), and past the cap of channels per room `too_many_channels`;
every `channels` broadcast stays small. Real server on loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from interpret.languages import KNOWN_LANGUAGES
from server.app import App
from server.channels import MAX_CHANNELS_PER_ROOM
from tests.conftest import loopback_settings, ws_url
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
