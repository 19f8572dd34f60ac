"""Real headless Chromium pages meet in one room through the real server.

Acceptance for the web client (web/protocol.js, web/room.js) and the SFU end to end: each page
decodes the other's VP8 and hears the other's Opus (the microphone is a speech WAV from the
evaluation set), mute is relayed, and Leave updates the other page's participant list. Then the
server's m-line reuse: a participant who joins after another left gets the old m-lines, and the
page that stayed shows and decodes the newcomer on them. Helpers are in tests/support/browser.py.

Needs /usr/bin/chromium (Debian) and Playwright for Python; never `playwright install`.
All traffic stays on 127.0.0.1. Restricting the server's ICE host candidates to loopback is not
enough: Chromium also offers its candidates on the host's other addresses, and the server answers
connectivity checks from them (measured: the nominated pair was 192.0.2.2 -> 127.0.0.1, so the
server sent media to the host's LAN address). So where we can (root, util-linux `unshare` and
`nsenter`), server and browser run in a fresh network namespace that has only `lo`; set
PARLEY_TEST_NETNS=0 to run in the host's namespace instead.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import (
    HOLD_OFFERS_JS,
    INBOUND_STATS_JS,
    MID_STATS_JS,
    MIN_NEW_FRAMES,
    RELEASE_OFFERS_JS,
    STATE_TIMEOUT_MS,
    mid_counters,
    open_page,
    snapshot,
    tile_state,
    wait_for_media,
    wait_for_mid_media,
    wait_for_remote_tracks,
    wait_until,
)
from tests.support.netns import Namespace
from tests.support.server import ServerProcess, parley_bin
from tests.support.waits import TIME_SCALE

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def server_url(netns: Namespace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real server as a subprocess on a free loopback port, ICE restricted to loopback."""
    exe = parley_bin()
    if not Path(exe).exists():
        pytest.skip(f"server entry point {exe} not installed")
    # captions are on by default; these tests are about media (their models would only slow the
    # start: the server is ready once they are loaded)
    config = '[media]\nice_host_addresses = ["127.0.0.1"]\n[captions]\nenabled = false\n'
    with ServerProcess(tmp_path_factory.mktemp("server"), config, netns=netns) as server:
        yield server.http_url


def test_two_browsers_meet_hear_and_leave(browser: Any, server_url: str, tmp_path: Path) -> None:
    log: list[str] = []
    room = "browser-test"
    alice = open_page(browser, server_url, "Alice", room, log)
    bob = open_page(browser, server_url, "Bob", room, log)
    try:
        alice_id = snapshot(alice)["participantId"]
        bob_id = snapshot(bob)["participantId"]
        assert alice_id and bob_id and alice_id != bob_id

        # Everybody sees everybody: state and DOM list.
        for page, other_id, other_name in ((alice, bob_id, "Bob"), (bob, alice_id, "Alice")):
            wait_until(page, f"() => window.parley.participants.has({json.dumps(other_id)})")
            item = page.locator(f'#participant-list li[data-participant-id="{other_id}"]')
            item.wait_for(timeout=STATE_TIMEOUT_MS)
            assert other_name in item.inner_text()

        # Media flows both ways through the SFU.
        results = {"alice": wait_for_media(alice), "bob": wait_for_media(bob)}
        sys.stderr.write(f"inbound stats: {json.dumps(results)}\n")
        for who, stats in results.items():
            assert stats.get("video", {}).get("framesDecoded", 0) > 0, (who, stats, log)
            assert stats.get("audio", {}).get("totalAudioEnergy", 0) > 0, (who, stats, log)
        for page in (alice, bob):
            # every received track is mapped to the other participant through the offer's slots
            snap = snapshot(page)
            other = bob_id if page is alice else alice_id
            kinds = sorted(t["kind"] for t in snap["remoteTracks"] if t["participantId"] == other)
            assert kinds == ["audio", "video"], snap

        shot = tmp_path / "two-participants.png"
        alice.screenshot(path=str(shot))
        sys.stderr.write(f"screenshot: {shot}\n")

        # Bob mutes his microphone: Alice's state and DOM show it.
        wait_until(bob, "() => window.parley.snapshot().local.every((t) => t.trackId)")
        bob.get_by_role("button", name="Mute microphone").click()
        wait_until(
            alice,
            f"""() => [...window.parley.participants.get({json.dumps(bob_id)}).tracks.values()]
                .some((t) => t.kind === 'audio' && t.muted)""",
        )
        bob_item = alice.locator(f'#participant-list li[data-participant-id="{bob_id}"]')
        assert bob_item.get_by_role("img", name="microphone muted").count() == 1
        bob.screenshot(path=str(tmp_path / "muted.png"))

        for who, page in (("alice", alice), ("bob", bob)):
            sys.stderr.write(
                f"{who} inbound stats later: {json.dumps(page.evaluate(INBOUND_STATS_JS))}\n"
            )

        # Alice leaves: the server closes her socket with 1000 and Bob's list drops her.
        alice.get_by_role("button", name="Leave", exact=True).click()
        wait_until(alice, "() => window.parley.state === 'closed'")
        assert snapshot(alice)["closeCode"] == 1000
        bob.locator(f'#participant-list li[data-participant-id="{alice_id}"]').wait_for(
            state="detached", timeout=STATE_TIMEOUT_MS
        )
        assert (
            bob.evaluate(f"() => window.parley.participants.has({json.dumps(alice_id)})") is False
        )
        bob.locator(f'#tiles .tile[data-participant-id="{alice_id}"]').wait_for(
            state="detached", timeout=STATE_TIMEOUT_MS
        )
        assert bob.locator("#participant-list li").count() == 1  # Bob alone
        bob.screenshot(path=str(tmp_path / "after-leave.png"))
    finally:
        if log:
            sys.stderr.write("--- browser console ---\n" + "\n".join(log[-60:]) + "\n")
        for page in (alice, bob):
            page.context.close()


def _leave(page: Any) -> None:
    page.get_by_role("button", name="Leave", exact=True).click()
    wait_until(page, "() => window.parley.state === 'closed'")


def _tile(page: Any, participant_id: str) -> Any:
    return page.locator(f'#tiles .tile[data-participant-id="{participant_id}"]')


def _assert_tile_plays(
    page: Any, participant_id: str, name: str, mids: dict[str, str], log: list[str]
) -> dict[str, Any]:
    """The participant's tile has the name and plays the receiver tracks of exactly `mids`."""
    state = tile_state(page, participant_id, mids)
    sys.stderr.write(f"tile of {name}: {json.dumps(state)}\n")
    assert state["name"] == name, (state, log)
    assert all(t["inTile"] and t["readyState"] == "live" for t in state["tracks"]), (state, log)
    assert state["videoWidth"] > 0, (state, log)
    return state


def test_next_participant_reuses_the_mlines(browser: Any, server_url: str, tmp_path: Path) -> None:
    """Alice publishes and leaves; Carol's tracks then arrive on Alice's old (inactive) m-lines,
    and Bob's page shows them as Carol's tile and decodes them (PROTOCOL.md, `offer`)."""
    log: list[str] = []
    pages: list[Any] = []
    room = "browser-reuse"
    try:
        bob = open_page(browser, server_url, "Bob", room, log)
        pages.append(bob)
        bob_id = snapshot(bob)["participantId"]
        wait_until(bob, "() => window.parley.snapshot().local.every((t) => t.trackId)")
        alice = open_page(browser, server_url, "Alice", room, log)
        pages.append(alice)
        alice_id = snapshot(alice)["participantId"]
        alice_mids = wait_for_remote_tracks(bob, alice_id)
        with_alice = wait_for_mid_media(bob, alice_mids)
        sys.stderr.write(f"bob, Alice on {alice_mids}: {json.dumps(with_alice)}\n")
        assert with_alice["mlines"] == 4, with_alice  # Bob's 2 publish slots + Alice's 2
        assert mid_counters(with_alice, alice_mids["video"])[0] >= MIN_NEW_FRAMES, (with_alice, log)
        assert mid_counters(with_alice, alice_mids["audio"])[1] > 0, (with_alice, log)
        for mid in alice_mids.values():
            assert with_alice["offer"][mid]["msid"].split()[0] == alice_id, with_alice

        # Alice leaves: her tile goes; her m-lines go inactive but stay in Bob's SDP.
        _leave(alice)
        _tile(bob, alice_id).wait_for(state="detached", timeout=STATE_TIMEOUT_MS)
        wait_until(
            bob,
            """() => window.parley.remoteTracks.size === 0
                && window.parley.pc.signalingState === 'stable'
                && Object.values(window.parley.snapshot().slots)
                     .every((s) => s.direction === 'publish')""",
        )
        bob.wait_for_timeout(500 * TIME_SCALE)  # let the jitter buffers run dry
        idle = bob.evaluate(MID_STATS_JS)
        bob.wait_for_timeout(1000 * TIME_SCALE)
        idle_later = bob.evaluate(MID_STATS_JS)
        sys.stderr.write(f"bob, alone: {json.dumps(idle)}\n")
        assert idle["mlines"] == 4, idle
        for mid in alice_mids.values():
            assert idle["offer"][mid]["direction"] == "inactive", idle
            assert idle["directions"][mid] == "inactive", idle
            assert mid_counters(idle_later, mid) == mid_counters(idle, mid), (idle, idle_later)

        # Carol joins: the server reuses Alice's m-lines; Bob's page shows and decodes Carol.
        carol = open_page(browser, server_url, "Carol", room, log)
        pages.append(carol)
        carol_id = snapshot(carol)["participantId"]
        _tile(bob, carol_id).wait_for(timeout=STATE_TIMEOUT_MS)
        carol_mids = wait_for_remote_tracks(bob, carol_id)
        assert carol_mids == alice_mids, (carol_mids, alice_mids)
        with_carol = wait_for_mid_media(bob, carol_mids, since=idle_later)
        sys.stderr.write(f"bob, Carol on {carol_mids}: {json.dumps(with_carol)}\n")
        assert with_carol["mlines"] == 4, with_carol  # reused, not grown
        for mid in carol_mids.values():
            assert with_carol["offer"][mid]["msid"].split()[0] == carol_id, with_carol
            assert with_carol["directions"][mid] == "recvonly", with_carol
        frames, energy = (
            mid_counters(with_carol, carol_mids["video"])[0],
            mid_counters(with_carol, carol_mids["audio"])[1],
        )
        assert frames >= mid_counters(idle_later, carol_mids["video"])[0] + MIN_NEW_FRAMES, (
            idle_later,
            with_carol,
            log,
        )
        assert energy > mid_counters(idle_later, carol_mids["audio"])[1], (idle_later, with_carol)
        state = _assert_tile_plays(bob, carol_id, "Carol", carol_mids, log)
        assert sorted(state["tiles"]) == sorted([bob_id, carol_id]), state  # Alice's is gone
        bob.screenshot(path=str(tmp_path / "carol-on-reused-mlines.png"))
    finally:
        if log:
            sys.stderr.write("--- browser console ---\n" + "\n".join(log[-60:]) + "\n")
        for page in pages:
            page.context.close()


def test_mlines_handed_over_within_one_offer(browser: Any, server_url: str) -> None:
    """Alice leaves and Carol publishes while Bob's previous offer is still unanswered: Bob then
    answers an offer that still names Alice (who already left: no tile for her), and the next
    offer hands Alice's m-lines straight to Carol (never inactive, only the msid changes)."""
    log: list[str] = []
    pages: list[Any] = []
    room = "browser-handover"
    try:
        bob = open_page(browser, server_url, "Bob", room, log)
        pages.append(bob)
        bob_id = snapshot(bob)["participantId"]
        wait_until(bob, "() => window.parley.snapshot().local.every((t) => t.trackId)")
        alice = open_page(browser, server_url, "Alice", room, log)
        pages.append(alice)
        alice_id = snapshot(alice)["participantId"]
        alice_mids = wait_for_remote_tracks(bob, alice_id)

        bob.evaluate(HOLD_OFFERS_JS)
        dave = open_page(browser, server_url, "Dave", room, log)  # Bob gets an offer, held
        pages.append(dave)
        dave_id = snapshot(dave)["participantId"]
        wait_until(bob, "() => window.parley._held.length === 1")
        _leave(alice)
        wait_until(bob, f"() => !window.parley.participants.has({json.dumps(alice_id)})")
        carol = open_page(browser, server_url, "Carol", room, log)
        pages.append(carol)
        carol_id = snapshot(carol)["participantId"]
        # track_published goes out once the server has subscribed Bob to Carol's tracks
        wait_until(
            bob, f"() => window.parley.participants.get({json.dumps(carol_id)})?.tracks.size === 2"
        )
        assert bob.evaluate(RELEASE_OFFERS_JS) == 1

        carol_mids = wait_for_remote_tracks(bob, carol_id)
        dave_mids = wait_for_remote_tracks(bob, dave_id)
        wait_until(bob, "() => window.parley.pc.signalingState === 'stable'")
        offers = bob.evaluate("() => window.parley._offersSeen")
        sys.stderr.write(f"bob's offers: {json.dumps(offers)}\n")
        assert carol_mids == alice_mids, (carol_mids, alice_mids, offers)
        for offer in offers:  # Alice's, then Carol's: never inactive in between
            assert all(mid in offer["slots"] for mid in alice_mids.values()), offers
        before = bob.evaluate(MID_STATS_JS)
        with_carol = wait_for_mid_media(bob, carol_mids, since=before)
        sys.stderr.write(f"bob, Carol on {carol_mids}: {json.dumps(with_carol)}\n")
        assert with_carol["mlines"] == 6, with_carol  # 2 publish + Carol's 2 (reused) + Dave's 2
        assert mid_counters(with_carol, carol_mids["video"])[0] >= (
            mid_counters(before, carol_mids["video"])[0] + MIN_NEW_FRAMES
        ), (before, with_carol, log)
        assert (
            mid_counters(with_carol, carol_mids["audio"])[1]
            > (mid_counters(before, carol_mids["audio"])[1])
        ), (before, with_carol, log)
        state = _assert_tile_plays(bob, carol_id, "Carol", carol_mids, log)
        # Dave's m-lines are new ones, live only since Bob answered the released offer: his
        # first keyframe comes on its own clock, not Carol's
        with_dave = wait_for_mid_media(bob, dave_mids)
        assert mid_counters(with_dave, dave_mids["video"])[0] >= MIN_NEW_FRAMES, (with_dave, log)
        _assert_tile_plays(bob, dave_id, "Dave", dave_mids, log)
        assert alice_id not in state["tiles"], (alice_id, state)  # not even from the stale offer
        assert sorted(state["tiles"]) == sorted([bob_id, carol_id, dave_id]), state
    finally:
        if log:
            sys.stderr.write("--- browser console ---\n" + "\n".join(log[-60:]) + "\n")
        for page in pages:
            page.context.close()
