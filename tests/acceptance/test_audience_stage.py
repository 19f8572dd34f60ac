"""On stage (issue 16 point 5), through the real server's sockets: a moderator invites the viewer
who asked a question; the viewer accepts and gets a stage pass, the one credential that lets it
join the room as a participant (past the lobby, and in token mode without a token of its own),
one seat per pass (a second join takes it over, as a reconnect does); dismissed, its room
socket closes with 4004 and the pass is dead. Bad input gets its documented
answer (PROTOCOL.md "Audience: on stage"): an unknown item, a viewer who is not watching, accept
without an invitation, a replayed expired invitation, a banned viewer, a viewer inviting, a
forged or dead pass. (Real media on stage, in Chromium with a live broadcast:
tests/browser/test_audience_browser.py.)"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import jwt

from server.app import App
from tests.acceptance.test_audience import ROOM, Viewer, host_link
from tests.support.app import started_app, ws_url
from tests.support.raw import RawClient


async def pushed(viewer: Viewer, type_: str, timeout_s: float = 10.0) -> dict[str, Any]:
    """The next message of ``type_`` on a viewer's socket (others skipped)."""
    async with asyncio.timeout(timeout_s):
        while True:
            message: dict[str, Any] = json.loads(await viewer.ws.recv())
            if message["type"] == type_:
                return message


async def asked(viewer: Viewer, text: str) -> str:
    answer = await viewer.call({"type": "ask", "text": text})
    assert answer["type"] == "accepted", answer
    item_id: str = answer["id"]
    return item_id


async def join_with(app: App, stage_pass: str, **fields: Any) -> RawClient:
    client = await RawClient.connect(ws_url(app))
    await client.send(
        {"type": "join", "room": ROOM, "name": "Guest", "stage_pass": stage_pass, **fields}
    )
    return client


async def test_invite_accept_join_dismiss_and_every_bad_input() -> None:
    app = await started_app(audience={"stage_invite_ttl_s": 1.0, "stage_join_window_s": 5.0})
    try:
        host, key = await host_link(app)
        moderator = await Viewer.open(app, "en", moderator_key=key)
        vera = await Viewer.open(app, "en")
        item = await asked(vera, "May I ask it myself?")
        # bad input first: each its documented answer, nothing changes
        unknown = await moderator.call({"type": "stage_invite", "id": "q999"})
        assert (unknown["code"], unknown["ref"]) == ("not_found", "stage_invite")
        gone = await Viewer.open(app, "en")
        gone_item = await asked(gone, "I will not stay")
        await gone.ws.close()
        await asyncio.sleep(0.2)
        away = await moderator.call({"type": "stage_invite", "id": gone_item})
        assert away["code"] == "not_connected", away
        uninvited = await vera.call({"type": "stage_accept", "invite_id": "s0123456789ab"})
        assert uninvited["code"] == "not_invited", uninvited
        assert (await vera.call({"type": "stage_invite", "id": item}))["code"] == "forbidden"
        forged = await join_with(app, "x" * 24)
        refused = await forged.error()
        assert (refused["code"], refused["ref"]) == ("stage_pass_invalid", "join")

        # an invitation nobody answers expires; replaying it later: invite_expired
        invited = await moderator.call({"type": "stage_invite", "id": item})
        assert invited["type"] == "accepted", invited
        push = await pushed(vera, "stage_invite")
        assert push["invite_id"] == invited["id"] and push["expires_in_ms"] == 1000
        ended = await pushed(vera, "stage_ended", 5.0)
        assert ended == {"type": "stage_ended", "invite_id": invited["id"], "reason": "expired"}
        replay = await vera.call({"type": "stage_accept", "invite_id": invited["id"]})
        assert replay["code"] == "invite_expired", replay

        # invited again, accepted: the pass joins the room as a participant, past the lobby
        await host.send({"type": "room_settings", "lobby": True})
        await host.recv("room_settings")
        invited = await moderator.call({"type": "stage_invite", "id": item})
        await pushed(vera, "stage_invite")
        accepted = await vera.call({"type": "stage_accept", "invite_id": invited["id"]})
        assert accepted["type"] == "accepted" and accepted["room"] == ROOM, accepted
        assert accepted["name"] is None and 0 < accepted["join_within_ms"] <= 5000
        guest = await join_with(app, accepted["stage_pass"])
        joined = await guest.recv("joined")
        assert joined["role"] == "participant"
        assert (await host.recv("participant_joined"))["participant"]["name"] == "Guest"
        queue = await moderator.queue(lambda q: q["stage"] and q["stage"][0]["state"] == "on_stage")
        assert queue["stage"][0]["participant_id"] == joined["participant_id"]
        assert "stage_pass" not in json.dumps(queue)
        # one pass, one seat: a second join with it takes the seat over (as a reconnect does)
        rejoined = await join_with(app, accepted["stage_pass"])
        first, joined = joined, await rejoined.recv("joined")
        assert (await guest.error())["code"] == "replaced"
        assert await guest.closed() == 4003
        assert (await host.recv("participant_left"))["participant_id"] == first["participant_id"]
        guest = rejoined
        queue = await moderator.queue(
            lambda q: q["stage"] and q["stage"][0]["participant_id"] == joined["participant_id"]
        )
        assert queue["stage"][0]["state"] == "on_stage"

        # dismissed: closed 4004, the viewer is told, the pass is dead
        dismissed = await moderator.call({"type": "stage_dismiss", "invite_id": invited["id"]})
        assert dismissed["type"] == "accepted", dismissed
        assert await guest.closed() == 4004
        assert (await pushed(vera, "stage_ended"))["reason"] == "dismissed"
        assert (await host.recv("participant_left"))["participant_id"] == joined["participant_id"]
        again = await join_with(app, accepted["stage_pass"])
        assert (await again.error())["code"] == "stage_pass_invalid"
        twice = await moderator.call({"type": "stage_dismiss", "invite_id": invited["id"]})
        assert twice["code"] == "not_found"

        # a viewer banned while invited: told, and never invited again
        invited = await moderator.call({"type": "stage_invite", "id": item})
        await pushed(vera, "stage_invite")
        assert (await moderator.call({"type": "ban", "id": item}))["type"] == "accepted"
        assert (await pushed(vera, "stage_ended"))["reason"] == "banned"
        banned = await moderator.call({"type": "stage_invite", "id": item})
        assert banned["code"] == "banned", banned
        for client in (host, forged, again):
            await client.close()
        for viewer in (moderator, vera):
            await viewer.ws.close()
    finally:
        await app.stop()


async def test_token_mode_a_viewer_token_becomes_a_participant_only_through_the_invitation() -> (
    None
):
    secret = "0123456789abcdef" * 4
    app = await started_app(auth={"secret": secret})

    def token(role: str, name: str) -> str:
        now = time.time()
        claims = {"room": ROOM, "role": role, "name": name, "nbf": now - 1, "exp": now + 600}
        return jwt.encode(claims, secret, algorithm="HS256")

    try:
        host = await RawClient.connect(ws_url(app))
        await host.send({"type": "join", "room": ROOM, "name": "H", "token": token("host", "H")})
        await host.recv("joined")
        viewer_token = token("viewer", "Vera")
        # the viewer's own token does not let it publish in the room
        plain = await RawClient.connect(ws_url(app))
        await plain.send(
            {"type": "join", "room": ROOM, "name": "x", "token": viewer_token, "publish": ["audio"]}
        )
        assert (await plain.error())["code"] == "forbidden"
        vera = await Viewer.open(app, "en", token=viewer_token)
        moderator = await Viewer.open(app, "en", token=token("host", "Hana"))
        item = await asked(vera, "A named question")
        invited = await moderator.call({"type": "stage_invite", "id": item})
        await pushed(vera, "stage_invite")
        accepted = await vera.call({"type": "stage_accept", "invite_id": invited["id"]})
        assert accepted["name"] == "Vera"
        guest = await join_with(app, accepted["stage_pass"], publish=["audio", "video"])
        joined = await guest.recv("joined")
        assert joined["role"] == "participant"
        offer = await guest.recv("offer")
        assert {s["direction"] for s in offer["slots"].values()} == {"publish"}
        seen = await host.recv("participant_joined")
        assert seen["participant"]["name"] == "Vera"  # the viewer token's name, not the join's
        await vera.call({"type": "stage_leave", "invite_id": invited["id"]})
        assert await guest.closed() == 4004
        for client in (host, plain):
            await client.close()
        for viewer in (vera, moderator):
            await viewer.ws.close()
    finally:
        await app.stop()
