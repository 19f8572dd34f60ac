"""Acceptance: bad input gets the documented error or close code, and a call in the same room
keeps going throughout."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from server.app import App
from tests.support.app import loopback_settings, ws_url
from tests.support.client import CounterVideo, ParleyClient, SineAudio
from tests.support.origin import ws_origin

pytestmark = pytest.mark.media


@pytest.fixture
async def small_app() -> AsyncIterator[App]:
    instance = App(loopback_settings(rooms={"max_participants_per_room": 3}))
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


class Raw:
    """A bare protocol client; messages skipped while waiting for another type are kept."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.backlog: list[dict[str, Any]] = []

    async def send(self, payload: str | bytes) -> None:
        await self.ws.send(payload)

    async def recv(self, type_: str | None = None, timeout_s: float = 10) -> dict[str, Any]:
        for i, message in enumerate(self.backlog):
            if type_ is None or message["type"] == type_:
                return self.backlog.pop(i)
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), timeout_s))
            if type_ is None or message["type"] == type_:
                return message
            self.backlog.append(message)

    async def close(self) -> None:
        await self.ws.close()


async def raw(app: App, *, hello: bool = True) -> Raw:
    url = ws_url(app)
    client = Raw(await connect(url, max_size=None, origin=ws_origin(url)))
    if hello:
        await client.send(json.dumps({"type": "hello", "protocol": 1}))
        assert (await client.recv())["type"] == "welcome"
    return client


async def recv(client: Raw, type_: str | None = None) -> dict[str, Any]:
    return await client.recv(type_)


async def expect_error(client: Raw, payload: str | bytes, code: str) -> None:
    await client.send(payload)
    message = await client.recv("error")
    assert message["code"] == code, message
    assert message["message"]


async def expect_close(client: Raw, code: int) -> None:
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(client.ws.recv(), 10)
    assert client.ws.close_code == code, (client.ws.close_code, client.ws.close_reason)


async def test_bad_input_never_disturbs_the_call(small_app: App) -> None:
    url = ws_url(small_app)
    alice = ParleyClient(url, room="call", name="Alice", video=CounterVideo(), audio=SineAudio(440))
    bob = ParleyClient(url, room="call", name="Bob")
    await alice.join()
    await bob.join()
    assert await bob.wait_for(lambda: _frames(bob) > 20, 10)

    # before hello
    ws = await raw(small_app, hello=False)
    await expect_error(
        ws, json.dumps({"type": "join", "room": "call", "name": "x"}), "hello_required"
    )
    await expect_close(ws, 1008)
    ws = await raw(small_app, hello=False)
    await expect_error(ws, json.dumps({"type": "hello", "protocol": 99}), "unsupported_protocol")
    await expect_close(ws, 1008)

    # malformed frames on a greeted socket: error, socket stays usable
    ws = await raw(small_app)
    await expect_error(ws, "{not json", "bad_json")
    await expect_error(ws, "[1, 2]", "bad_json")
    await expect_error(ws, b"\x00\x01binary", "bad_json")
    await expect_error(ws, json.dumps({"type": "teleport"}), "unknown_type")
    await expect_error(ws, json.dumps({"no": "type"}), "unknown_type")
    await expect_error(
        ws, json.dumps({"type": "join", "room": "../etc", "name": "x"}), "bad_message"
    )
    await expect_error(ws, json.dumps({"type": "join", "room": "call"}), "bad_message")
    await expect_error(ws, json.dumps({"type": "publish", "kinds": ["audio"]}), "not_joined")
    await expect_error(ws, json.dumps({"type": "hello", "protocol": 1}), "bad_state")

    # joins the call as the third participant; a second join on the socket is refused
    await ws.send(json.dumps({"type": "join", "room": "call", "name": "Mallory"}))
    joined = await recv(ws, "joined")
    assert {p["name"] for p in joined["participants"]} == {"Alice", "Bob"}
    await expect_error(
        ws, json.dumps({"type": "join", "room": "other", "name": "M"}), "already_joined"
    )

    # malformed SDP in answers: bad_sdp, the offer stays outstanding; a stale revision is refused
    offer = await recv(ws, "offer")
    bad = {"type": "answer", "revision": offer["revision"]}
    await expect_error(ws, json.dumps({**bad, "sdp": "garbage"}), "bad_sdp")
    await expect_error(ws, json.dumps({**bad, "sdp": "v=0\r\nm=video oops\r\n"}), "bad_sdp")
    await expect_error(
        ws, json.dumps({**bad, "sdp": offer["sdp"]}), "bad_sdp"
    )  # an offer, not an answer
    await expect_error(ws, json.dumps({**bad, "revision": 999, "sdp": "v=0"}), "stale_answer")
    await expect_error(ws, json.dumps({"type": "unpublish", "track_id": "not-mine"}), "bad_state")
    # captions are off on this server
    await expect_error(ws, json.dumps({"type": "captions", "languages": ["es"]}), "bad_state")
    alice_track = alice.published["video"]
    await expect_error(
        ws, json.dumps({"type": "mute", "track_id": alice_track, "muted": True}), "bad_state"
    )

    # the room is full now (limit 3)
    full = await raw(small_app)
    await expect_error(
        full, json.dumps({"type": "join", "room": "call", "name": "Dave"}), "room_full"
    )
    # ...and the refused socket may join another room
    await full.send(json.dumps({"type": "join", "room": "elsewhere", "name": "Dave"}))
    assert (await recv(full, "joined"))["room"] == "elsewhere"
    await full.close()

    # a message over the size cap closes that connection with 1009
    cap = small_app.settings.server.max_message_bytes
    await ws.send(json.dumps({"type": "answer", "revision": 1, "sdp": "x" * (cap + 1)}))
    await expect_close(ws, 1009)

    # too many errors in a row: 1008
    noisy = await raw(small_app)
    for _ in range(31):
        await noisy.send("nope")
    await noisy.send("nope")
    await expect_close(noisy, 1008)

    # the call went on: Bob still decodes Alice's moving counter, nobody saw an error
    before = _frames(bob)
    assert await bob.wait_for(lambda: _frames(bob) > before + 30, 10)
    counters = bob.remote[alice.participant_id or ""].counters
    assert counters[-1] > counters[-31]
    assert alice.errors == [] and bob.errors == []
    # Mallory's socket closed, so she left: both see only each other
    assert await bob.wait_for(lambda: set(bob.participants) == {alice.participant_id}, 5)
    assert set(alice.participants) == {bob.participant_id}
    await alice.leave()
    await bob.leave()


def _frames(client: ParleyClient) -> int:
    return sum(m.video_frames for m in client.remote.values())
