"""Acceptance (issue 11, points 2-5): TURN credentials only after admission and never past the
token; a host's removal sticks; one token holds one seat; failed credentials never lock the room's
real participants out. Each test plays the attack against a real server on loopback."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from websockets.asyncio.client import connect

from server.app import App
from tests.support.app import started_app, ws_url
from tests.support.origin import ws_origin
from tests.support.raw import RawClient
from tests.support.waits import wait_until

SECRET = "0123456789abcdef" * 4
TURN_SECRET = "t" * 32
ROOM = "board"


def token(role: str = "participant", *, ttl_s: float = 600, **claims: Any) -> str:
    now = time.time()
    payload = {"room": ROOM, "role": role, "exp": now + ttl_s, **claims}
    return jwt.encode(payload, SECRET, algorithm="HS256")


@pytest.fixture
async def token_app() -> AsyncIterator[App]:
    app = await started_app(
        auth={"secret": SECRET},
        turn={"urls": ["turn:127.0.0.1:3478"], "static_auth_secret": TURN_SECRET},
    )
    try:
        yield app
    finally:
        await app.stop()


async def client_from(app: App, address: str) -> RawClient:
    """A client whose socket comes from ``address`` (any of 127.0.0.0/8): another machine, as
    far as per-address limits can tell."""
    url = ws_url(app)
    ws = await connect(url, max_size=None, local_addr=(address, 0), origin=ws_origin(url))
    client = RawClient(ws)
    await client.send({"type": "hello", "protocol": 1})
    await client.recv("welcome")
    return client


async def answer(client: RawClient, message: dict[str, Any]) -> dict[str, Any]:
    await client.send(message)
    while True:
        reply = await client.recv()
        if reply["type"] in {"joined", "error", "lobby"}:
            return reply


async def join(
    app: App, name: str, tok: str | None = None, **extra: Any
) -> tuple[RawClient, dict[str, Any]]:
    client = await RawClient.connect(ws_url(app))
    message: dict[str, Any] = {"type": "join", "room": ROOM, "name": name, **extra}
    if tok is not None:
        message["token"] = tok
    return client, await answer(client, message)


def turn_expiry(reply: dict[str, Any]) -> int:
    (turn,) = [s for s in reply["ice_servers"] if s["urls"] == ["turn:127.0.0.1:3478"]]
    return int(turn["username"].split(":")[0])


# -- point 3: TURN credentials only after admission -------------------------------------------


async def test_turn_credentials_only_after_admission_and_never_past_the_token(
    token_app: App,
) -> None:
    # a socket that says hello and never joins (or fails to) learns no relay credential
    stranger = await RawClient.connect(ws_url(token_app), hello=False)
    await stranger.send({"type": "hello", "protocol": 1})
    welcome = await stranger.recv("welcome")
    assert "ice_servers" not in welcome and "turn" not in str(welcome)
    refused = await answer(stranger, {"type": "join", "room": ROOM, "name": "Eve"})
    assert refused["code"] == "token_required" and "ice_servers" not in refused
    forged = token(role="host")[:-4] + "AAAA"
    refused = await answer(stranger, {"type": "join", "room": ROOM, "name": "Eve", "token": forged})
    assert refused["code"] == "token_invalid" and "ice_servers" not in refused

    # a lobby waiter is not admitted yet: no credentials until a host lets them in
    host, joined = await join(token_app, "Hana", token("host", ttl_s=7200))
    assert joined["type"] == "joined"
    # the default lifetime is short (1 h), well inside a 2 h token
    assert turn_expiry(joined) - time.time() <= 3600
    await host.send({"type": "room_settings", "lobby": True})
    await host.recv("room_settings")
    short = token(ttl_s=120)
    waiter, lobby = await join(token_app, "Wes", short)
    assert lobby["type"] == "lobby" and "ice_servers" not in lobby
    request = await host.recv("lobby_request")
    await host.send({"type": "admit", "participant_id": request["participant"]["participant_id"]})
    admitted = await waiter.recv("joined")
    # never valid past the token's exp (120 s here, not the 1 h default)
    exp = jwt.decode(short, options={"verify_signature": False})["exp"]
    assert turn_expiry(admitted) <= exp
    assert turn_expiry(admitted) >= time.time() + 60
    for c in (stranger, host, waiter):
        await c.close()


# -- point 4: removal sticks; one token, one seat ------------------------------------------------


async def test_a_removed_token_is_refused_until_it_expires(token_app: App) -> None:
    host, host_joined = await join(token_app, "Hana", token("host"))
    mallory_token = token()
    mallory, joined = await join(token_app, "Mallory", mallory_token)
    pid = joined["participant_id"]
    await host.recv("participant_joined")
    await host.send({"type": "remove_participant", "participant_id": pid})
    assert (await mallory.recv("removed"))["by"] == host_joined["participant_id"]
    assert await mallory.closed() == 4001
    await host.recv("participant_left")

    again, refused = await join(token_app, "Mallory", mallory_token)
    assert refused["type"] == "error" and refused["code"] == "removed"
    # a different token of the same person is another seat: it is the host's removal of this
    # token that sticks (the issuer decides whether to mint another)
    other, joined_other = await join(token_app, "Mallory", token())
    assert joined_other["type"] == "joined"
    # the removal outlives the room: everybody leaves, the room is forgotten, still refused
    for c in (host, other):
        await c.send({"type": "leave"})
        await c.closed()
    assert await wait_until(lambda: ROOM not in token_app.signaling.rooms, 5)
    late, refused = await join(token_app, "Mallory", mallory_token)
    assert refused["code"] == "removed"
    for c in (again, late):
        await c.close()


async def test_a_removed_open_mode_client_id_is_refused() -> None:
    app = await started_app()
    try:
        host, _ = await join(app, "Hana")
        mallory, joined = await join(app, "Mallory", client_id="mallory-browser-1")
        await host.recv("participant_joined")
        await host.send({"type": "remove_participant", "participant_id": joined["participant_id"]})
        assert await mallory.closed() == 4001
        again, refused = await join(app, "Mallory", client_id="mallory-browser-1")
        assert refused["code"] == "removed"
        fresh, ok = await join(app, "Someone", client_id="someone-else-22")
        assert ok["type"] == "joined"
        for c in (host, again, fresh):
            await c.close()
    finally:
        await app.stop()


async def test_a_second_join_with_the_same_token_replaces_the_first(token_app: App) -> None:
    host, _ = await join(token_app, "Hana", token("host"))
    shared = token()
    first, joined1 = await join(token_app, "Ann", shared)
    await host.recv("participant_joined")
    second, joined2 = await join(token_app, "Ann", shared)
    assert joined2["type"] == "joined"
    # the first connection is told and closed; it never doubles the seat
    replaced = await first.recv("error")
    assert replaced["code"] == "replaced"
    assert await first.closed() == 4003
    left = await host.recv("participant_left")
    assert left["participant_id"] == joined1["participant_id"]
    state = token_app.signaling.registry.get(ROOM)
    assert state is not None
    names = sorted(p.name for p in state.participants.values())
    assert names == ["Ann", "Hana"]
    # five more sockets with the same token: still one Ann
    extra = [await join(token_app, "Ann", shared) for _ in range(5)]
    assert sorted(p.name for p in state.participants.values()) == ["Ann", "Hana"]
    assert len(token_app.signaling.rooms[ROOM].clients) == 2
    for c in (host, second, *(c for c, _ in extra)):
        await c.close()


# -- point 5: password guessing -------------------------------------------------------------------


async def test_wrong_passwords_do_not_lock_out_the_right_one() -> None:
    app = await started_app(auth={"room_passwords": {ROOM: "correct horse"}})
    try:
        guesser = await client_from(app, "127.0.0.2")
        codes = []
        for i in range(20):
            reply = await answer(
                guesser, {"type": "join", "room": ROOM, "name": "G", "password": f"guess{i}"}
            )
            codes.append(reply["code"])
        # the guesser is slowed down (exponential backoff), not the room
        assert codes[:3] == ["wrong_password"] * 3
        assert "rate_limited" in codes[3:]
        # a fresh socket from the same address is slowed down too
        again = await client_from(app, "127.0.0.2")
        reply = await answer(
            again, {"type": "join", "room": ROOM, "name": "G", "password": "guess21"}
        )
        assert reply["code"] == "rate_limited" and reply["retry_after_ms"] > 0
        # the real participant, from elsewhere, gets in at once
        ann = await client_from(app, "127.0.0.3")
        reply = await answer(
            ann, {"type": "join", "room": ROOM, "name": "Ann", "password": "correct horse"}
        )
        assert reply["type"] == "joined", reply
        for c in (guesser, again, ann):
            await c.close()
    finally:
        await app.stop()
