"""Rooms in media worker processes (``[media] isolation = "process"``), with real workers.

The acceptance tests run the real server in this process and real aiortc clients beside it;
the backend tests drive :class:`ProcessMediaBackend` directly, as ``server/membership.py`` does.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from interpret.framing import receive_frame
from media.api import MediaEvent, MediaSettings, OfferReady, PeerFailed
from media.errors import (
    MediaStateError,
    MediaWorkerError,
    SdpError,
    StaleAnswerError,
    UnknownPeerError,
)
from media.hooks import restrict_host_addresses
from media.process import ProcessMediaBackend, WorkerRoom, WorkerTimeouts, spawn_worker
from media.wire import AddPeer, Init, Reply, Request, decode_worker_message, encode_request
from server.app import App
from tests.support.app import loopback_settings, ws_url
from tests.support.client import CounterVideo, ParleyClient, SineAudio
from tests.support.waits import TIME_SCALE, wait_until

pytestmark = pytest.mark.media

SETTINGS = MediaSettings(ice_host_addresses=("127.0.0.1",), isolation="process")


@pytest.fixture
def loopback_clients() -> Iterator[None]:
    """The clients in this process announce 127.0.0.1 only, like the workers."""
    restrict_host_addresses(["127.0.0.1"])
    yield
    restrict_host_addresses([])


@pytest.fixture
async def app(loopback_clients: None) -> AsyncIterator[App]:
    instance = App(loopback_settings(media={"isolation": "process"}))
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


async def join_call(app: App, room: str) -> tuple[ParleyClient, ParleyClient]:
    url = ws_url(app)
    a = ParleyClient(url, room=room, name="A", video=CounterVideo(), audio=SineAudio(440))
    b = ParleyClient(url, room=room, name="B", video=CounterVideo(), audio=SineAudio(660))
    await a.join()
    await b.join()
    return a, b


async def assert_media_flows(a: ParleyClient, b: ParleyClient, *, video_frames: int) -> None:
    """Each side decodes the other's video counter and hears the other's tone."""

    def enough() -> bool:
        return all(
            (m := me.remote.get(other.participant_id or "")) is not None
            and m.video_frames >= video_frames
            and m.audio_frames >= 100  # 2 s of 20 ms frames
            for me, other in ((a, b), (b, a))
        )

    assert await wait_until(enough, 20), {c.name: c.remote for c in (a, b)}
    for me, other, tone in ((a, b, 660.0), (b, a, 440.0)):
        assert me.errors == []
        seen = me.remote[other.participant_id or ""]
        steps = [y - x for x, y in zip(seen.counters, seen.counters[1:], strict=False)]
        assert sum(s > 0 for s in steps) / len(steps) > 0.95, seen.counters
        assert seen.counters[-1] > seen.counters[0]
        frequency = me.audio_frequency(other.participant_id or "")
        assert frequency is not None and abs(frequency - tone) <= 5, frequency


def worker_room(app: App, room: str) -> WorkerRoom:
    media = app.signaling.rooms[room].media
    assert isinstance(media, WorkerRoom)
    return media


# -- acceptance: the real server ------------------------------------------------------------------
async def test_two_clients_see_and_hear_each_other_through_a_worker(app: App) -> None:
    a, b = await join_call(app, "proc")
    try:
        room = worker_room(app, "proc")
        assert room.pid != os.getpid() and room.returncode is None
        await assert_media_flows(a, b, video_frames=60)
        stats = await room.stats()
        assert stats["peers"] == 2 and len(stats["publications"]) == 4
    finally:
        await a.leave()
        await b.leave()
    # the last leave closed the room, and its worker exited cleanly
    assert await wait_until(lambda: "proc" not in app.signaling.rooms, 5)
    assert room.returncode == 0


async def test_a_killed_worker_ends_its_call_and_the_server_goes_on(app: App) -> None:
    a, b = await join_call(app, "doomed")
    readers: set[asyncio.Task[Any]] = set()
    try:
        await assert_media_flows(a, b, video_frames=30)
        room = worker_room(app, "doomed")
        # ParleyClient drops its finished tasks, so the readers' ConnectionClosedError (1011)
        # would be logged as never retrieved; hold them here and retrieve it below.
        readers |= set(a._tasks) | set(b._tasks)
        os.kill(room.pid, signal.SIGKILL)
        for client in (a, b):
            assert client.ws is not None
            await asyncio.wait_for(client.ws.wait_closed(), 10 * TIME_SCALE)
            assert client.ws.close_code == 1011
            assert [e["code"] for e in client.errors] == ["media_failed"], client.errors
        assert await wait_until(lambda: "doomed" not in app.signaling.rooms, 5)
        assert room.returncode == -signal.SIGKILL
    finally:
        await a.close()
        await b.close()
        await asyncio.gather(*readers, return_exceptions=True)
    # a new room (its own worker) works as before
    c, d = await join_call(app, "after")
    try:
        await assert_media_flows(c, d, video_frames=30)
    finally:
        await c.leave()
        await d.leave()


# -- the backend, driven directly -----------------------------------------------------------------
@pytest.fixture
async def backend() -> AsyncIterator[ProcessMediaBackend]:
    instance = ProcessMediaBackend(SETTINGS, timeouts=WorkerTimeouts(call_s=1.0, close_s=5.0))
    try:
        yield instance
    finally:
        await instance.aclose()


async def test_room_errors_keep_their_types(backend: ProcessMediaBackend) -> None:
    events: list[MediaEvent] = []
    room = await backend.open_room("errors", events.append)
    with pytest.raises(UnknownPeerError):
        await room.publish("nobody", ["audio"])
    await room.add_peer("p")
    with pytest.raises(MediaStateError):
        await room.add_peer("p")
    await room.publish("p", ["audio", "video"])
    with pytest.raises(MediaStateError):
        await room.publish("p", ["video"])
    with pytest.raises(MediaStateError):
        await room.unpublish("p", "p-audio-99")
    assert await wait_until(lambda: any(isinstance(e, OfferReady) for e in events), 10)
    offer = next(e for e in events if isinstance(e, OfferReady))
    assert offer.peer_id == "p" and offer.revision == 1
    assert {s.kind for s in offer.slots.values()} == {"audio", "video"}
    with pytest.raises(StaleAnswerError):
        await room.answer("p", "v=0\r\n", offer.revision + 1)
    with pytest.raises(SdpError):
        await room.answer("p", "not sdp", offer.revision)
    await room.remove_peer("p")
    await room.remove_peer("p")  # like the inline room: removing twice is fine
    await room.aclose()
    assert not any(isinstance(e, PeerFailed) for e in events)


async def test_aclose_is_idempotent_and_ends_the_worker(backend: ProcessMediaBackend) -> None:
    first = await backend.open_room("one", lambda event: None)
    second = await backend.open_room("two", lambda event: None)
    await first.add_peer("p")
    await first.aclose()
    await first.aclose()
    assert first.returncode == 0
    with pytest.raises(MediaWorkerError):
        await first.add_peer("q")
    await first.remove_peer("p")  # the peer went with the room: not an error
    await backend.aclose()
    await backend.aclose()
    assert second.returncode == 0
    with pytest.raises(MediaWorkerError):
        await backend.open_room("three", lambda event: None)


async def test_a_hung_worker_is_killed_and_its_peers_fail(backend: ProcessMediaBackend) -> None:
    events: list[MediaEvent] = []
    room = await backend.open_room("hung", events.append)
    await room.add_peer("p1")
    await room.add_peer("p2")
    os.kill(room.pid, signal.SIGSTOP)  # alive, but answers nothing
    with pytest.raises(MediaWorkerError):
        await room.publish("p1", ["audio"])
    assert await wait_until(lambda: room.returncode is not None, 5)
    assert await wait_until(lambda: sum(isinstance(e, PeerFailed) for e in events) == 2, 5)
    assert {e.peer_id for e in events if isinstance(e, PeerFailed)} == {"p1", "p2"}
    assert room.returncode == -signal.SIGKILL
    await room.aclose()
    # the backend still opens rooms
    other = await backend.open_room("fine", lambda event: None)
    await other.add_peer("p")


async def test_a_worker_that_ignores_close_is_killed() -> None:
    backend = ProcessMediaBackend(SETTINGS, timeouts=WorkerTimeouts(close_s=0.3))
    try:
        room = await backend.open_room("stuck", lambda event: None)
        os.kill(room.pid, signal.SIGSTOP)  # a stopped process does not act on SIGTERM either
        started = time.monotonic()
        await room.aclose()
        assert room.returncode == -signal.SIGKILL
        # close_s for the reply to Close, then kill (no reply: it hangs)
        assert time.monotonic() - started < 3
    finally:
        await backend.aclose()


async def test_a_worker_that_garbles_its_output_is_killed() -> None:
    fake_worker = (
        "import sys; sys.stdin.buffer.read(8); print('not a frame', flush=True); sys.stdin.read()"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        fake_worker,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    room = WorkerRoom("garbled", process, emit=lambda event: None, timeouts=WorkerTimeouts())
    with pytest.raises(MediaWorkerError, match="wire protocol"):
        await room.start(SETTINGS)
    await room.aclose()
    assert room.returncode == -signal.SIGKILL


async def test_a_worker_exits_when_the_server_is_gone() -> None:
    """End of input (the server died) closes the room and ends the worker."""
    process = await spawn_worker()
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(encode_request(Request(1, Init("orphan", SETTINGS, logging.INFO))))
    process.stdin.write(encode_request(Request(2, AddPeer("p"))))
    for request_id in (1, 2):
        frame = await receive_frame(process.stdout)
        assert frame is not None and decode_worker_message(*frame) == Reply(request_id)
    process.stdin.close()
    assert await asyncio.wait_for(process.wait(), 10 * TIME_SCALE) == 0
