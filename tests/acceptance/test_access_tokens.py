"""Acceptance (issue 4, point 1): every token attack, a viewer publishing and a participant using
a host power are refused with the documented code, and the room state does not change (checked
in the room registry and by a host watching from inside the room)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest

from server.app import App
from tests.support.app import loopback_settings, ws_url
from tests.support.raw import RawClient

SECRET = "0123456789abcdef" * 4
ROOM = "board"


@pytest.fixture
async def token_app() -> AsyncIterator[App]:
    # every attack below is a failed credential from 127.0.0.1: the backoff after failures has
    # its own test (test_doors.py); here each attack must get its own code
    instance = App(
        loopback_settings(auth={"secret": SECRET}, limits={"credential_failures_free": 100})
    )
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


def token(key: str = SECRET, algorithm: str = "HS256", **overrides: Any) -> str:
    now = time.time()
    claims = {"room": ROOM, "role": "participant", "nbf": now - 1, "exp": now + 600, **overrides}
    return jwt.encode(claims, key, algorithm=algorithm)


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def snapshot(app: App) -> Any:
    """Everything the registry knows, as plain values."""
    return {
        room.name: (
            room.locked,
            room.lobby,
            room.password,
            {
                pid: (p.name, p.role, {t.track_id: (t.kind, t.muted) for t in p.tracks.values()})
                for pid, p in room.participants.items()
            },
            {wid: (w.name, w.role) for wid, w in room.waiting.items()},
        )
        for room in app.signaling.registry
    }, sorted(app.signaling.rooms)


async def join(
    app: App, name: str, tok: str | None, room: str = ROOM, **extra: Any
) -> tuple[RawClient, dict[str, Any]]:
    """Connect and join; returns the client and the server's answer (joined or error)."""
    client = await RawClient.connect(ws_url(app))
    message: dict[str, Any] = {"type": "join", "room": room, "name": name, **extra}
    if tok is not None:
        message["token"] = tok
    await client.send(message)
    answer = await client.recv()
    while answer["type"] not in {"joined", "error", "lobby"}:
        answer = await client.recv()
    return client, answer


async def test_token_attacks_are_refused_before_room_state_changes(
    token_app: App, capsys: pytest.CaptureFixture[str]
) -> None:
    greeter = await RawClient.connect(ws_url(token_app), hello=False)
    await greeter.send({"type": "hello", "protocol": 1})
    assert (await greeter.recv("welcome"))["auth"] == "token"  # the client knows to bring one
    await greeter.close()
    host, joined = await join(token_app, "Host", token(role="host", name="Hana"))
    assert joined["type"] == "joined" and joined["role"] == "host"
    before = snapshot(token_app)
    assert list(before[0][ROOM][3].values()) == [("Hana", "host", {})]  # the token's name counts

    now = time.time()
    attacks = {
        "no token": (None, "token_required"),
        "expired": (token(exp=now - 60), "token_expired"),
        "not yet valid": (token(nbf=now + 600), "token_not_yet_valid"),
        "alg none (PyJWT)": (
            jwt.encode({"room": ROOM, "role": "host", "exp": now + 600}, None, algorithm="none"),
            "token_invalid",
        ),
        "alg none (hand-made)": (
            f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64({'room': ROOM, 'role': 'host'})}.",
            "token_invalid",
        ),
        "wrong key": (token(key="f" * 64, role="host"), "token_invalid"),
        "wrong room": (token(room="elsewhere", role="host"), "token_wrong_room"),
        "garbage": ("eyJhbGciOi.not-a-token", "token_invalid"),
        "forged payload": (
            ".".join(
                [token().split(".")[0], b64({"room": ROOM, "role": "host", "exp": now + 600})]
                + [token().split(".")[2]]
            ),
            "token_invalid",
        ),
    }
    for what, (tok, code) in attacks.items():
        client, answer = await join(token_app, f"Mallory {what}", tok, publish=["audio"])
        assert answer["type"] == "error", what
        assert (answer["code"], answer["ref"]) == (code, "join"), (what, answer)
        assert answer["message"]
        assert snapshot(token_app) == before, what
        # the socket is not in any room
        await client.send({"type": "publish", "kinds": ["audio"]})
        assert (await client.error())["code"] == "not_joined", what
        await client.close()
    # an attack on a room nobody is in creates nothing either
    _, answer = await join(token_app, "Mallory", token(room=ROOM, role="host"), room="empty")
    assert answer["code"] == "token_wrong_room"
    assert snapshot(token_app) == before
    # the host inside the room saw none of it
    seen = await host.drain()
    assert [m["type"] for m in seen if m["type"] != "offer"] == []
    # operators see the refusals, never the tokens
    captured = capsys.readouterr()
    logged = captured.out + captured.err
    assert logged.count("join refused") == len(attacks) + 1
    for tok, code in attacks.values():
        assert code in logged
        assert tok is None or tok.split(".")[1] not in logged


async def test_viewers_receive_only(token_app: App) -> None:
    host, _ = await join(token_app, "Host", token(role="host"))
    viewer_token = token(role="viewer")
    client, answer = await join(token_app, "Vic", viewer_token, publish=["audio", "video"])
    assert (answer["code"], answer["ref"]) == ("forbidden", "join")
    before = snapshot(token_app)
    assert len(before[0][ROOM][3]) == 1
    viewer, joined = await join(token_app, "Vic", viewer_token)
    assert joined["type"] == "joined" and joined["role"] == "viewer"
    participant_joined = await host.recv("participant_joined")
    assert participant_joined["participant"]["role"] == "viewer"
    with_viewer = snapshot(token_app)
    await viewer.send({"type": "publish", "kinds": ["audio"]})
    error = await viewer.error()
    assert (error["code"], error["ref"]) == ("forbidden", "publish")
    assert snapshot(token_app) == with_viewer
    # no publish slot was offered
    assert [m for m in await viewer.drain() if m["type"] == "offer"] == []


HOST_ACTIONS: list[dict[str, Any]] = [
    {"type": "mute_participant", "participant_id": "HOST"},
    {"type": "remove_participant", "participant_id": "HOST"},
    {"type": "room_settings", "locked": True},
    {"type": "room_settings", "lobby": True},
    {"type": "room_settings", "password": "mine now"},
    {"type": "admit", "participant_id": "WAITER"},
    {"type": "deny", "participant_id": "WAITER"},
    {"type": "end_meeting"},
]


@pytest.mark.parametrize("role", ["participant", "interpreter", "viewer"])
async def test_only_hosts_use_host_powers(token_app: App, role: str) -> None:
    host, joined = await join(token_app, "Host", token(role="host"))
    host_id = joined["participant_id"]
    other, joined = await join(token_app, "Pat", token(role=role))
    assert joined["role"] == role
    before = snapshot(token_app)
    for action in HOST_ACTIONS:
        message = {k: (host_id if v == "HOST" else v) for k, v in action.items()}
        await other.send(message)
        error = await other.error()
        assert (error["code"], error["ref"]) == ("forbidden", action["type"]), error
        assert snapshot(token_app) == before, action
    # the host heard nothing of it and is still in the (unlocked) room
    seen = [m["type"] for m in await host.drain()]
    assert not {"muted", "mute_request", "removed", "room_settings", "meeting_ended"} & set(seen)
    assert host.ws.close_code is None
