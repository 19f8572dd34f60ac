"""Acceptance: the real server with ``[media] backend = "janus"``: two aiortc participants speak
PROTOCOL.md (its "Janus engine" flow: ``publish`` + ``publish_offer`` → ``publish_answer`` on a
second peer connection; ``offer``/``answer`` on the receiving one) and see and hear each other;
a listener of a language channel hears the interpreter instead of the floor.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, VideoFrame
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from media.hooks import restrict_host_addresses
from media.peer import rtc_configuration
from server.app import App
from tests.support.app import started_app, ws_url
from tests.support.client import CounterVideo, SineAudio
from tests.support.janus import ICE_ADDRESS, RunningJanus, running_janus
from tests.support.origin import ws_origin
from tests.support.waits import wait_until

pytestmark = pytest.mark.media


class JanusFlowClient:
    """A participant speaking the Janus engine's flow of PROTOCOL.md."""

    def __init__(self, url: str, room: str, name: str) -> None:
        self.url, self.room, self.name = url, room, name
        self.sub_pc = RTCPeerConnection(rtc_configuration(()))
        self.pub_pc = RTCPeerConnection(rtc_configuration(()))
        self.ws: ClientConnection | None = None
        self.participant_id = ""
        self.joined: dict[str, Any] = {}
        self.slots: dict[str, dict[str, Any]] = {}
        self.frames: dict[tuple[str, str], int] = {}  # (publisher, kind) -> frames
        self.errors: list[dict[str, Any]] = []
        self._joined = asyncio.Event()
        self._publish_answer: asyncio.Future[dict[str, Any]] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._revision = 0
        self.on_caption: Callable[[dict[str, Any]], None] | None = None
        self.sub_pc.on("track", self._on_track)

    async def join(self, **extra: Any) -> None:
        self.ws = await connect(self.url, origin=ws_origin(self.url))
        self._spawn(self._read())
        await self._send({"type": "hello", "protocol": 1})
        await self._send({"type": "join", "room": self.room, "name": self.name, **extra})
        await asyncio.wait_for(self._joined.wait(), 10)

    async def publish(self, tracks: list[MediaStreamTrack]) -> None:
        await self._send({"type": "publish", "kinds": [t.kind for t in tracks]})
        for track in tracks:
            self.pub_pc.addTransceiver(track, direction="sendonly")
        await self.pub_pc.setLocalDescription(await self.pub_pc.createOffer())
        sources = {
            str(t.mid): "microphone" if t.kind == "audio" else "camera"
            for t in self.pub_pc.getTransceivers()
        }
        self._revision += 1
        self._publish_answer = asyncio.get_running_loop().create_future()
        await self._send(
            {
                "type": "publish_offer",
                "sdp": self.pub_pc.localDescription.sdp,
                "revision": self._revision,
                "sources": sources,
            }
        )
        answer = await asyncio.wait_for(self._publish_answer, 10)
        assert answer["revision"] == self._revision
        await self.pub_pc.setRemoteDescription(
            RTCSessionDescription(sdp=answer["sdp"], type="answer")
        )

    async def send(self, message: dict[str, Any]) -> None:
        await self._send(message)

    async def _send(self, message: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send(json.dumps(message))

    async def _read(self) -> None:
        assert self.ws is not None
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.ws:
                message = json.loads(raw)
                kind = message["type"]
                if kind == "joined":
                    self.joined = message
                    self.participant_id = message["participant_id"]
                    self._joined.set()
                elif kind == "offer":
                    self.slots.update(message["slots"])
                    self._spawn(self._answer(message))
                elif kind == "publish_answer" and self._publish_answer is not None:
                    self._publish_answer.set_result(message)
                elif kind == "caption" and self.on_caption is not None:
                    self.on_caption(message)
                elif kind == "error":
                    self.errors.append(message)

    async def _answer(self, offer: dict[str, Any]) -> None:
        await self.sub_pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        await self.sub_pc.setLocalDescription(await self.sub_pc.createAnswer())
        await self._send(
            {
                "type": "answer",
                "sdp": self.sub_pc.localDescription.sdp,
                "revision": offer["revision"],
            }
        )

    def _on_track(self, track: MediaStreamTrack) -> None:
        mid = next(str(t.mid) for t in self.sub_pc.getTransceivers() if t.receiver.track is track)
        self._spawn(self._consume(track, mid))

    async def _consume(self, track: MediaStreamTrack, mid: str) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                publisher = self.slots.get(mid, {}).get("participant_id", "?")
                kind = "video" if isinstance(frame, VideoFrame) else "audio"
                assert isinstance(frame, VideoFrame | AudioFrame)
                self.frames[(publisher, kind)] = self.frames.get((publisher, kind), 0) + 1

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def count(self, publisher: str, kind: str) -> int:
        return self.frames.get((publisher, kind), 0)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        await self.sub_pc.close()
        await self.pub_pc.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@pytest.fixture(scope="module")
def janus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningJanus]:
    with running_janus(Path(tmp_path_factory.mktemp("janus"))) as running:
        yield running


@contextlib.asynccontextmanager
async def janus_server(janus: RunningJanus, **overrides: Any) -> AsyncIterator[App]:
    """The real server on Janus, this thread in Janus's namespace; the test's aiortc clients
    announce the veth address (another test's server may have left aioice on 127.0.0.1)."""
    with janus.namespace.entered():
        restrict_host_addresses([ICE_ADDRESS])
        app = await started_app(
            media={
                "backend": "janus",
                "janus_url": janus.url,
                "janus_api_secret": janus.api_secret,
                "janus_admin_key": janus.admin_key,
            },
            **overrides,
        )
        try:
            yield app
        finally:
            await app.stop()
            restrict_host_addresses(())


@pytest.fixture
async def janus_app(janus: RunningJanus) -> AsyncIterator[App]:
    async with janus_server(janus) as app:
        yield app


async def test_two_participants_through_the_server_on_janus(janus_app: App) -> None:
    url = ws_url(janus_app)
    a, b = JanusFlowClient(url, "jr", "A"), JanusFlowClient(url, "jr", "B")
    try:
        await a.join()
        await b.join()
        assert a.joined["media_engine"] == "janus"
        await a.publish([SineAudio(440), CounterVideo(160, 120)])
        await b.publish([SineAudio(660), CounterVideo(160, 120)])
        pa, pb = a.participant_id, b.participant_id
        assert await wait_until(
            lambda: (
                min(b.count(pa, "video"), a.count(pb, "video")) >= 20
                and min(b.count(pa, "audio"), a.count(pb, "audio")) >= 50
            ),
            20,
        ), (a.frames, b.frames, a.errors, b.errors)
        assert not a.errors and not b.errors
    finally:
        await a.close()
        await b.close()


async def test_a_channel_listener_hears_the_interpreter_not_the_floor(janus_app: App) -> None:
    url = ws_url(janus_app)
    floor = JanusFlowClient(url, "jc", "Floor")
    interpreter = JanusFlowClient(url, "jc", "Interpreter")
    listener = JanusFlowClient(url, "jc", "Listener")
    try:
        await floor.join()
        await interpreter.join(role="interpreter")
        await listener.join()
        await floor.publish([SineAudio(440)])
        await interpreter.publish([SineAudio(880)])
        pf, pi = floor.participant_id, interpreter.participant_id
        assert await wait_until(
            lambda: listener.count(pf, "audio") >= 50 and listener.count(pi, "audio") >= 50, 20
        ), listener.frames
        await interpreter.send({"type": "on_air", "channel": "es"})
        await listener.send({"type": "listen", "channel": "es"})
        await asyncio.sleep(1.0)  # the hold reaches Janus; what was in flight arrives
        floor_at, interpreter_at = listener.count(pf, "audio"), listener.count(pi, "audio")
        await asyncio.sleep(1.5)
        assert listener.count(pf, "audio") - floor_at < 5  # the floor is held
        assert listener.count(pi, "audio") - interpreter_at >= 40  # the interpreter flows
        await listener.send({"type": "listen", "channel": "floor"})
        assert await wait_until(lambda: listener.count(pf, "audio") >= floor_at + 40, 10)
        assert not (floor.errors or interpreter.errors or listener.errors)
    finally:
        for client in (floor, interpreter, listener):
            await client.close()


async def test_parleys_own_engine_refuses_publish_offers(app: App) -> None:
    client = JanusFlowClient(ws_url(app), "own", "A")
    try:
        await client.join()
        assert "media_engine" not in client.joined  # the server offers, as ever
        await client.send(
            {"type": "publish_offer", "sdp": "v=0\r\n", "revision": 1, "sources": {"0": "camera"}}
        )
        assert await wait_until(lambda: bool(client.errors), 5)
        assert client.errors[0]["code"] == "bad_state"
        assert client.errors[0]["ref"] == "publish_offer"
    finally:
        await client.close()


@pytest.mark.models
async def test_captions_flow_from_janus_taps(janus: RunningJanus) -> None:
    """A speaker's audio reaches the speech worker through Janus's rtp_forward: captions."""
    from tests.support.client import FileAudio
    from tests.support.paths import EVALSET
    from tests.support.transcripts import wer

    longform = json.loads((EVALSET / "longform" / "en_fleurs_concat.json").read_text())
    segment = longform["segments"][0]  # = audio/en/fleurs-en-000.ogg, starting at 0.0
    clip = EVALSET / "audio" / "en" / "fleurs-en-000.ogg"
    async with janus_server(janus, captions={"enabled": True}) as app:
        url = ws_url(app)
        speaker, reader = JanusFlowClient(url, "jt", "Speaker"), JanusFlowClient(url, "jt", "R")
        captions: list[dict[str, Any]] = []
        try:
            await reader.join()
            reader.on_caption = captions.append
            await speaker.join(lang="en")
            await speaker.publish([FileAudio(str(clip))])

            def finals() -> list[dict[str, Any]]:
                return [c for c in captions if c["final"]]

            assert await wait_until(
                lambda: (
                    bool(finals()) and float(finals()[-1]["end_s"]) >= segment["speech_end"] - 1
                ),
                40,
            ), captions[-3:]
            assert all(c["participant_id"] == speaker.participant_id for c in finals())
            heard = " ".join(str(c["text"]) for c in finals())
            assert wer(segment["reference"], heard) < 0.35, heard
        finally:
            await speaker.close()
            await reader.close()
