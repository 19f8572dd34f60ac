"""Acceptance: publish, unpublish, publish again and mute, seen by the other participants."""

from __future__ import annotations

from typing import Any

import pytest

from server.app import App
from tests.support.app import ws_url
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
    muted = {k: v for k, v in of_type(bob, "muted")[-1].items() if not k.startswith("_")}
    assert muted == {
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


async def test_mlines_are_reused_when_people_come_and_go(app: App) -> None:
    """A participant who stays while others come and go keeps a bounded SDP: m-lines of
    departed publishers carry the next publisher's media."""
    url = ws_url(app)
    bob = ParleyClient(url, room="churn", name="Bob")
    await bob.join()
    for i in range(6):
        guest = ParleyClient(
            url,
            room="churn",
            name=f"Guest{i}",
            video=CounterVideo(),
            audio=SineAudio(300 + 100 * i),
        )
        await guest.join()
        gid = guest.participant_id or ""
        assert await bob.wait_for(
            lambda gid=gid: gid in bob.remote and len(bob.remote[gid].counters) > 10, 10
        ), f"guest {i}"
        # (the first frames may still be the previous guest's, in flight while the m-line
        # switched: look at the newest ones)
        counters = bob.remote[gid].counters
        assert counters[-1] > counters[-8]
        await guest.leave()
        assert await bob.wait_for(lambda: not bob.participants, 5)
    offers = of_type(bob, "offer")
    last_sdp = offers[-1]["sdp"]
    assert last_sdp.count("m=") == 2, last_sdp  # one audio + one video m-line, reused 6 times
    assert len(bob.pc.getTransceivers()) == 2
    assert bob.errors == []
    # the last guest's tone arrived on the reused audio m-line
    freq = bob.audio_frequency(gid, seconds=0.5)
    assert freq is not None and abs(freq - 800) <= 5, freq
    await bob.leave()
