"""Acceptance (issue 4, point 2): lobby (wait until admitted; denial), lock, a host's mute reaches
its target, remove disconnects, the join rate limit answers `rate_limited`; also end of meeting,
passwords, open-mode host succession, per-connection message rate and SDP limits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest

from server.app import App
from tests.support.app import started_app, ws_url
from tests.support.client import ParleyClient, SineAudio
from tests.support.raw import RawClient

SECRET = "0123456789abcdef" * 4
ROOM = "board"


def token(role: str = "participant", room: str = ROOM, **claims: Any) -> str:
    payload = {"room": room, "role": role, "exp": time.time() + 600, **claims}
    return jwt.encode(payload, SECRET, algorithm="HS256")


@pytest.fixture
async def token_app() -> AsyncIterator[App]:
    app = await started_app(auth={"secret": SECRET})
    try:
        yield app
    finally:
        await app.stop()


@pytest.fixture
async def open_app() -> AsyncIterator[App]:
    app = await started_app(auth={"room_passwords": {"secret-room": "hunter2"}})
    try:
        yield app
    finally:
        await app.stop()


async def join(
    app: App, name: str, token_role: str | None = None, *, room: str = ROOM, **extra: Any
) -> tuple[RawClient, dict[str, Any]]:
    """Join ``room`` (with a token for ``token_role`` if given); returns the client and the
    server's answer (``joined``, ``lobby`` or ``error``)."""
    client = await RawClient.connect(ws_url(app))
    message: dict[str, Any] = {"type": "join", "room": room, "name": name, **extra}
    if token_role is not None:
        message["token"] = token(token_role, room)
    await client.send(message)
    answer = await client.recv()
    while answer["type"] not in {"joined", "error", "lobby"}:
        answer = await client.recv()
    return client, answer


def names_in(app: App, room: str = ROOM) -> set[str]:
    state = app.signaling.registry.get(room)
    return set() if state is None else {p.name for p in state.participants.values()}


async def test_lobby_waits_until_admitted_and_denied_joins_stay_out(token_app: App) -> None:
    host, _ = await join(token_app, "Host", "host")
    await host.send({"type": "room_settings", "lobby": True})
    settings = await host.recv("room_settings")
    assert (settings["lobby"], settings["locked"]) == (True, False)

    alice, waiting = await join(token_app, "Alice", "participant")
    assert waiting["type"] == "lobby" and waiting["room"] == ROOM
    request = await host.recv("lobby_request")
    assert request["participant"] == {
        "participant_id": waiting["participant_id"],
        "name": "Alice",
        "role": "participant",
    }
    assert names_in(token_app) == {"Host"}
    # waiting means waiting: nothing arrives, and a waiter cannot act in the room
    assert await alice.drain(0.5) == []
    await alice.send({"type": "publish", "kinds": ["audio"]})
    assert (await alice.error())["code"] == "not_joined"
    await alice.send({"type": "join", "room": ROOM, "name": "Alice", "token": token()})
    assert (await alice.error())["code"] == "already_joined"

    await host.send({"type": "admit", "participant_id": waiting["participant_id"]})
    joined = await alice.recv("joined")
    assert joined["participant_id"] == waiting["participant_id"]
    assert [p["name"] for p in joined["participants"]] == ["Host"]
    assert joined["room_settings"]["lobby"] is True
    assert (await host.recv("participant_joined"))["participant"]["name"] == "Alice"
    assert (await host.recv("lobby_left"))["reason"] == "admitted"
    assert names_in(token_app) == {"Host", "Alice"}

    # denial: Bob is told, stays out, and may try again later
    bob, waiting = await join(token_app, "Bob", "participant")
    assert waiting["type"] == "lobby"
    await host.recv("lobby_request")
    await host.send({"type": "deny", "participant_id": waiting["participant_id"]})
    denied = await bob.error()
    assert (denied["code"], denied["ref"]) == ("lobby_denied", "join")
    assert (await host.recv("lobby_left"))["reason"] == "denied"
    assert names_in(token_app) == {"Host", "Alice"}
    state = token_app.signaling.registry.get(ROOM)
    assert state is not None and state.waiting == {}
    await host.send({"type": "admit", "participant_id": waiting["participant_id"]})
    assert (await host.error())["code"] == "bad_state"
    # Alice never heard of Bob
    assert all(m["type"] != "participant_joined" for m in await alice.drain())

    # a waiter who gives up is gone from the lobby; the host hears it
    carol, waiting = await join(token_app, "Carol", "participant")
    await host.recv("lobby_request")
    await carol.close()
    left = await host.recv("lobby_left")
    assert (left["participant_id"], left["reason"]) == (waiting["participant_id"], "left")
    # hosts pass the lobby
    cohost, joined = await join(token_app, "Cohost", "host")
    assert joined["type"] == "joined" and joined["lobby"] == []


async def test_locked_rooms_refuse_new_joins(token_app: App) -> None:
    host, _ = await join(token_app, "Host", "host")
    await host.send({"type": "room_settings", "locked": True})
    assert (await host.recv("room_settings"))["locked"] is True
    before = names_in(token_app)
    _, refused = await join(token_app, "Late", "participant")
    assert (refused["code"], refused["ref"]) == ("room_locked", "join")
    assert names_in(token_app) == before
    assert [m["type"] for m in await host.drain()] == []
    await host.send({"type": "room_settings", "locked": False})
    await host.recv("room_settings")
    _, joined = await join(token_app, "Late", "participant")
    assert joined["type"] == "joined"


@pytest.mark.media
async def test_host_mute_reaches_the_target_and_remove_disconnects(token_app: App) -> None:
    url = ws_url(token_app)
    host = ParleyClient(url, room=ROOM, name="Host", token=token("host"))
    speaker = ParleyClient(
        url, room=ROOM, name="Speaker", audio=SineAudio(440), token=token("participant")
    )
    listener = ParleyClient(url, room=ROOM, name="Listener", token=token("participant"))
    for client in (host, speaker, listener):
        await client.join()
    try:
        assert await speaker.wait_for(lambda: "audio" in speaker.published, 15)
        track_id = speaker.published["audio"]
        await host.send({"type": "mute_participant", "participant_id": speaker.participant_id})

        def got(client: ParleyClient, type_: str) -> list[dict[str, Any]]:
            return [m for m in client.messages if m["type"] == type_]

        assert await speaker.wait_for(lambda: bool(got(speaker, "mute_request")), 5)
        (request,) = got(speaker, "mute_request")
        assert (request["kinds"], request["by"]) == (["audio"], host.participant_id)
        for client in (host, speaker, listener):
            assert await client.wait_for(lambda c=client: bool(got(c, "muted")), 5)
            (muted,) = got(client, "muted")
            assert muted == {
                **muted,
                "participant_id": speaker.participant_id,
                "track_id": track_id,
                "muted": True,
                "by": host.participant_id,
            }
        state = token_app.signaling.registry.get(ROOM)
        assert state is not None
        assert state.participants[speaker.participant_id or ""].tracks[track_id].muted

        # remove: the speaker is told and closed with 4001, the others see them leave, no ghost
        await host.send({"type": "remove_participant", "participant_id": speaker.participant_id})
        assert speaker.ws is not None
        await asyncio.wait_for(speaker.ws.wait_closed(), 5)
        assert speaker.ws.close_code == 4001
        assert got(speaker, "removed")[0]["by"] == host.participant_id
        for client in (host, listener):
            assert await client.wait_for(
                lambda c=client: speaker.participant_id not in c.participants, 5
            )
            assert any(
                m["participant_id"] == speaker.participant_id
                for m in got(client, "participant_left")
            )
        assert names_in(token_app) == {"Host", "Listener"}
        assert speaker.participant_id not in token_app.signaling.rooms[ROOM].clients
        assert host.errors == [] and listener.errors == []
    finally:
        for client in (host, speaker, listener):
            await client.close()


async def test_end_meeting_closes_everyone_and_the_room(token_app: App) -> None:
    host, _ = await join(token_app, "Host", "host")
    guest, _ = await join(token_app, "Guest", "participant")
    await host.send({"type": "room_settings", "lobby": True})
    waiter, answer = await join(token_app, "Waiter", "viewer")
    assert answer["type"] == "lobby"
    await host.send({"type": "end_meeting"})
    for client in (host, guest, waiter):
        assert await client.closed() == 4002
        assert any(m["type"] == "meeting_ended" for m in client.backlog)
    assert token_app.signaling.registry.get(ROOM) is None and ROOM not in token_app.signaling.rooms
    # a new meeting can start in the same room
    _, joined = await join(token_app, "Host", "host")
    assert joined["type"] == "joined" and joined["participants"] == []


async def test_join_rate_limit_answers_rate_limited() -> None:
    app = await started_app(limits={"joins_per_room_per_s": 2.0, "join_burst": 3})
    try:
        for i in range(3):
            _, joined = await join(app, f"p{i}")
            assert joined["type"] == "joined"
        client, refused = await join(app, "p3")
        assert (refused["code"], refused["ref"]) == ("rate_limited", "join")
        assert 0 < refused["retry_after_ms"] <= 500
        assert names_in(app) == {"p0", "p1", "p2"}
        # another room has its own budget
        _, joined = await join(app, "elsewhere", room="other")
        assert joined["type"] == "joined"
        # waiting as told works, on the same socket
        await asyncio.sleep(refused["retry_after_ms"] / 1000)
        await client.send({"type": "join", "room": ROOM, "name": "p3"})
        assert (await client.recv("joined"))["room"] == ROOM
    finally:
        await app.stop()


async def test_passwords_and_open_mode_roles(open_app: App) -> None:
    _, refused = await join(open_app, "Eve", room="secret-room")
    assert refused["code"] == "password_required"
    _, refused = await join(open_app, "Eve", room="secret-room", password="guess")
    assert refused["code"] == "wrong_password"
    assert open_app.signaling.registry.get("secret-room") is None
    first, joined = await join(open_app, "First", room="secret-room", password="hunter2")
    assert joined["role"] == "host" and joined["room_settings"]["password"] is True

    # open mode: first in is host, then participants; a viewer may ask to be one
    ann, joined = await join(open_app, "Ann")
    assert joined["role"] == "host"
    vic, joined = await join(open_app, "Vic", role="viewer")
    assert joined["role"] == "viewer"
    bea, joined = await join(open_app, "Bea")
    assert joined["role"] == "participant"
    assert [p["role"] for p in joined["participants"]] == ["host", "viewer"]
    # asking to be host is not a thing
    _, refused = await join(open_app, "Mal", role="host")
    assert refused["code"] == "bad_message"
    # the host's password: a new joiner needs it, until the host clears it
    await ann.send({"type": "room_settings", "password": "s3cret"})
    assert (await bea.recv("room_settings"))["password"] is True
    _, refused = await join(open_app, "Dan")
    assert refused["code"] == "password_required"
    dan, joined = await join(open_app, "Dan", password="s3cret")
    assert joined["type"] == "joined"
    await ann.send({"type": "room_settings", "password": ""})
    assert (await bea.recv("room_settings"))["password"] is False
    _, joined = await join(open_app, "Eli")
    assert joined["type"] == "joined"

    # the host leaves: the longest-present non-viewer (Bea) becomes host, not the viewer
    await ann.send({"type": "leave"})
    changed = await vic.recv("role_changed")
    assert changed["role"] == "host"
    state = open_app.signaling.registry.get(ROOM)
    assert state is not None and state.participants[changed["participant_id"]].name == "Bea"
    await bea.send({"type": "room_settings", "locked": True})
    seen = await vic.drain()
    assert {"type": "room_settings", "locked": True, "by": changed["participant_id"]}.items() <= (
        [m for m in seen if m["type"] == "room_settings"][-1].items()
    )
    await vic.send({"type": "room_settings", "locked": False})
    assert (await vic.error())["code"] == "forbidden"


async def test_message_rate_and_sdp_limits() -> None:
    app = await started_app(limits={"messages_per_connection_per_s": 5.0, "message_burst": 20})
    try:
        client, joined = await join(app, "Sam", publish=["audio"])
        offer = await client.recv("offer")
        answer = {"type": "answer", "revision": offer["revision"]}
        await client.send({**answer, "sdp": "v=0\r\n" + "a=x\r\n" * 20_000})
        error = await client.error()
        assert error["code"] == "bad_message" and "65536" in error["message"]
        await client.send({**answer, "sdp": "v=0\r\n" + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n" * 65})
        error = await client.error()
        assert error["code"] == "bad_message" and "media sections" in error["message"]
        # the offer is still outstanding, nothing changed; now flood: 20 at once pass, then 1008
        for _ in range(30):
            await client.send({"type": "captions", "languages": []})
        assert await client.closed() == 1008
        codes = [m.get("code") for m in client.backlog if m["type"] == "error"]
        assert codes[-1] == "too_many_messages" and "too_many_errors" not in codes
        assert names_in(app) == set()
    finally:
        await app.stop()


@pytest.mark.parametrize(
    ("limits", "code"),
    [
        ({}, "too_many_errors"),  # 32 bad frames in a row
        ({"messages_per_connection_per_s": 5.0, "message_burst": 10}, "too_many_messages"),
    ],
)
async def test_a_flooding_client_is_closed_without_waiting_for_it(
    limits: dict[str, Any], code: str
) -> None:
    """The server keeps reading while it closes: with 100 frames queued behind the one that
    crossed the line, the close handshake still completes (it used to stall for 10 s)."""
    app = await started_app(limits=limits)
    try:
        client = await RawClient.connect(ws_url(app))
        for _ in range(100):
            await client.ws.send("nope")
        assert await client.closed(timeout_s=5) == 1008
        assert client.backlog[-1]["code"] == code
    finally:
        await app.stop()
