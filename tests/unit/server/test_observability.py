"""/healthz, /readyz and /metrics of a real server with real aiortc peers in a room
(issue 4: observability; acceptance point 4, the scrape)."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import AsyncIterator

import pytest

from server.app import App
from server.metrics import ForwardTotals, parse_text
from tests.support.app import loopback_settings, ws_url
from tests.support.client import CounterVideo, ParleyClient, SineAudio

pytestmark = pytest.mark.media

EXPECTED_METRICS = (
    "parley_build_info",
    "parley_ready",
    "parley_rooms",
    "parley_participants",
    "parley_tracks",
    "parley_forwarded_frames_total",
    "parley_forwarded_bytes_total",
    "parley_forward_dropped_frames_total",
    "parley_captions_enabled",
    "parley_speech_worker_up",
    "parley_worker_restarts_total",
    "parley_asr_queue_depth_chunks",
    "parley_asr_dropped_chunks_total",
    "parley_event_loop_lag_seconds",
    "parley_caption_latency_seconds",
)


def fetch(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


async def get(app: App, path: str) -> tuple[int, str, str]:
    return await asyncio.to_thread(fetch, f"http://127.0.0.1:{app.port}{path}")


@pytest.fixture
async def app() -> AsyncIterator[App]:
    instance = App(loopback_settings(metrics={"loop_lag_interval_ms": 50}))
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


async def test_metrics_of_a_meeting(app: App) -> None:
    status, content_type, text = await get(app, "/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    before = parse_text(text)
    assert before["parley_rooms"] == 0 and before["parley_ready"] == 1

    url = ws_url(app)
    alice = ParleyClient(url, room="m", name="Alice", video=CounterVideo(), audio=SineAudio(440))
    bob = ParleyClient(url, room="m", name="Bob", video=CounterVideo(), audio=SineAudio(660))
    try:
        await alice.join()
        await bob.join()
        await check_meeting(app, alice, bob)
    finally:
        await alice.close()
        await bob.close()


async def check_meeting(app: App, alice: ParleyClient, bob: ParleyClient) -> None:
    def flowing() -> bool:
        media = bob.remote.get(alice.participant_id or "")
        return media is not None and media.video_frames > 20 and media.audio_frames > 50

    assert await bob.wait_for(flowing, 20)
    status, _, text = await get(app, "/metrics")
    values = parse_text(text)
    samples = {key.split("{")[0] for key in values}
    for name in EXPECTED_METRICS:
        assert name in samples or f"{name}_count" in samples, name
    print({k: v for k, v in values.items() if not k.startswith("parley_event_loop")})
    assert values["parley_rooms"] == 1 and values["parley_participants"] == 2
    assert values['parley_tracks{kind="audio"}'] == 2
    assert values['parley_tracks{kind="video"}'] == 2
    assert values['parley_forwarded_frames_total{kind="video"}'] >= 20
    assert values['parley_forwarded_frames_total{kind="audio"}'] >= 50
    assert values['parley_forwarded_bytes_total{kind="video"}'] > 1000
    assert values["parley_event_loop_lag_seconds_count"] >= 1
    assert values["parley_captions_enabled"] == 0
    # no room or participant name anywhere in the exposition
    assert "Alice" not in text and 'room="' not in text

    frames_then = values['parley_forwarded_frames_total{kind="video"}']
    await alice.leave()
    await bob.leave()
    assert await bob.wait_for(lambda: not app.signaling.rooms, 5)
    after = parse_text((await get(app, "/metrics"))[2])
    assert after["parley_rooms"] == 0 and after["parley_participants"] == 0
    # counters never go back when the room is gone
    assert after['parley_forwarded_frames_total{kind="video"}'] >= frames_then


async def test_readyz_follows_the_life_of_the_server() -> None:
    app = App(loopback_settings())
    await app.start()
    try:
        assert await get(app, "/healthz") == (200, "text/plain; charset=utf-8", "ok\n")
        assert (await get(app, "/readyz"))[0] == 200
        app.phase = "draining"  # what stop() sets first
        status, _, body = await get(app, "/readyz")
        assert status == 503 and "draining" in body
        assert (await get(app, "/ws"))[0] == 503  # no new participants while draining
        assert (await get(app, "/healthz"))[0] == 200  # alive all along
    finally:
        await app.stop()


async def test_metrics_can_be_switched_off() -> None:
    app = App(loopback_settings(metrics={"enabled": False}))
    await app.start()
    try:
        assert (await get(app, "/metrics"))[0] == 404
    finally:
        await app.stop()


def test_forward_totals_survive_rooms_that_end_and_names_reused() -> None:
    totals = ForwardTotals()
    room = {"video": {"frames": 10, "bytes": 1000, "dropped": 0}}
    totals.update({("a", 1): room})
    totals.update({("a", 1): {"video": {"frames": 15, "bytes": 1500, "dropped": 1}}})
    assert totals.totals["video"] == {"frames": 15, "bytes": 1500, "dropped": 1}
    totals.update({})  # the room ended
    totals.update({("a", 2): {"video": {"frames": 3, "bytes": 300, "dropped": 0}}})
    assert totals.totals["video"] == {"frames": 18, "bytes": 1800, "dropped": 1}
    assert totals.totals["audio"] == {"frames": 0, "bytes": 0, "dropped": 0}
