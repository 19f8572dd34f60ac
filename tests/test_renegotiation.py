"""Acceptance: publish, unpublish, publish again and mute, seen by the other participants."""

from __future__ import annotations

from typing import Any

import pytest

from server.app import App
from tests.conftest import ws_url
from tests.support.client import CounterVideo, ParleyClient, SineAudio

pytestmark = pytest.mark.media


def of_type(client: ParleyClient, type_: str) -> list[dict[str, Any]]:
    return [m for m in client.messages if m["type"] == type_]


async def test_unpublish_republish_and_mute(app: App) -> None:
    url = ws_url(app)
    alice = ParleyClient(url, room="r", name="Alice", video=CounterVideo(), audio=SineAudio(440))
    bob = ParleyClient(url, room="r", name="Bob")
    await alice.join()
    await bob.join()
    assert await alice.wait_for(lambda: set(alice.published) == {"audio", "video"}, 10)
    aid = alice.participant_id or ""
    assert await bob.wait_for(lambda: aid in bob.remote and bob.remote[aid].video_frames > 10, 10)

    # mute is relayed to everybody and remembered for late joiners
    await alice.mute("audio", True)
    assert await bob.wait_for(lambda: bool(of_type(bob, "muted")), 5)
    assert of_type(bob, "muted")[-1] == {
        "type": "muted",
        "participant_id": aid,
        "track_id": alice.published["audio"],
        "muted": True,
    }
    carol = ParleyClient(url, room="r", name="Carol")
    await carol.join()
    alice_seen = carol.participants[aid]
    audio = next(t for t in alice_seen["tracks"] if t["kind"] == "audio")
    assert audio["muted"] is True

    # unpublish: everybody hears of it, Bob's m-line goes inactive, frames stop
    old_video = alice.published["video"]
    offers_before = len(of_type(bob, "offer"))
    await alice.unpublish("video")
    assert await bob.wait_for(lambda: bool(of_type(bob, "track_unpublished")), 5)
    assert of_type(bob, "track_unpublished")[-1]["track_id"] == old_video
    assert await bob.wait_for(lambda: len(of_type(bob, "offer")) > offers_before, 5)
    listed = {s["track_id"] for s in of_type(bob, "offer")[-1]["slots"].values()}
    assert old_video not in listed
    await bob.wait_for(lambda: False, 0.5)
    frozen = bob.remote[aid].video_frames
    await bob.wait_for(lambda: False, 1.0)
    assert bob.remote[aid].video_frames - frozen <= 1

    # publish again: a new track id, and video flows to Bob and Carol
    await alice.publish(["video"])
    assert await alice.wait_for(lambda: alice.published.get("video") not in (None, old_video), 10)
    assert await bob.wait_for(lambda: bob.remote[aid].video_frames > frozen + 30, 10)
    assert await carol.wait_for(
        lambda: aid in carol.remote and carol.remote[aid].video_frames > 30, 10
    )
    assert alice.errors == bob.errors == carol.errors == []

    # publishing a kind twice is refused
    await alice.publish(["audio"])
    assert await alice.wait_for(lambda: bool(alice.errors), 5)
    assert alice.errors[-1]["code"] == "bad_state"
    for client in (alice, bob, carol):
        await client.leave()
