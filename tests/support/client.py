"""A Parley participant on aiortc, speaking PROTOCOL.md: for acceptance tests and benchmarks.

Publishes synthetic media whose content can be checked after it crossed the SFU: VP8 video with
the frame number drawn as 16 black/white blocks, and an Opus sine tone of a chosen frequency.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack, VideoStreamTrack
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket
from av import AudioFrame, VideoFrame
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from .origin import ws_origin
from .waits import wait_until

COUNTER_BITS = 16
AUDIO_RATE = 48_000
AUDIO_FRAME_SAMPLES = 960  # 20 ms


class CounterVideo(VideoStreamTrack):
    """Grey frames with the frame number as 16 blocks (white = 1) and a moving square."""

    def __init__(self, width: int = 320, height: int = 240) -> None:
        super().__init__()
        self.width, self.height = width, height
        self.count = 0

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        y = np.full((self.height, self.width), 96, dtype=np.uint8)
        block = self.width // COUNTER_BITS
        for bit in range(COUNTER_BITS):
            if (self.count >> bit) & 1:
                y[: self.height // 6, bit * block : (bit + 1) * block] = 235
            else:
                y[: self.height // 6, bit * block : (bit + 1) * block] = 16
        x = (self.count * 5) % (self.width - 40)
        y[self.height // 2 : self.height // 2 + 40, x : x + 40] = 200
        uv = np.full((self.height // 2, self.width), 128, dtype=np.uint8)
        frame = VideoFrame.from_ndarray(np.vstack([y, uv]), format="yuv420p")
        frame.pts, frame.time_base = pts, time_base
        self.count += 1
        return frame


def read_counter(frame: VideoFrame) -> int:
    """Inverse of :class:`CounterVideo` on a decoded frame."""
    y = frame.to_ndarray(format="gray")
    h, w = y.shape
    block = w // COUNTER_BITS
    row = h // 12
    value = 0
    for bit in range(COUNTER_BITS):
        if y[row, bit * block + block // 2] > 128:
            value |= 1 << bit
    return value


class FileAudio(MediaStreamTrack):
    """A recording played in real time (48 kHz mono, 20 ms frames), then silence (or, with
    ``loop``, again and again)."""

    kind = "audio"

    def __init__(self, path: str, *, loop: bool = False) -> None:
        super().__init__()
        self.loop = loop
        import av

        resampler = av.AudioResampler(format="s16", layout="mono", rate=AUDIO_RATE)
        parts = []
        with av.open(path) as container:
            for frame in container.decode(audio=0):
                parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        self.pcm = np.concatenate(parts).astype(np.int16)
        self._samples = 0
        #: monotonic time of the first sample sent
        self.started_s: float | None = None

    async def recv(self) -> AudioFrame:
        if self.started_s is None:
            self.started_s = time.monotonic()
        else:
            delay = self.started_s + self._samples / AUDIO_RATE - time.monotonic()
            await asyncio.sleep(max(0.0, delay))
        if self.loop:
            index = (self._samples + np.arange(AUDIO_FRAME_SAMPLES)) % len(self.pcm)
            chunk = self.pcm[index]
        else:
            chunk = self.pcm[self._samples : self._samples + AUDIO_FRAME_SAMPLES]
        if len(chunk) < AUDIO_FRAME_SAMPLES:
            chunk = np.concatenate([chunk, np.zeros(AUDIO_FRAME_SAMPLES - len(chunk), np.int16)])
        frame = AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._samples
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self._samples += AUDIO_FRAME_SAMPLES
        return frame


class SineAudio(MediaStreamTrack):
    """A continuous sine tone, paced in real time, 20 ms per frame."""

    kind = "audio"

    def __init__(self, frequency_hz: float, amplitude: float = 0.3) -> None:
        super().__init__()
        self.frequency_hz = frequency_hz
        self.amplitude = amplitude
        self._samples = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        else:
            await asyncio.sleep(
                max(0.0, self._start + self._samples / AUDIO_RATE - time.monotonic())
            )
        t = (self._samples + np.arange(AUDIO_FRAME_SAMPLES)) / AUDIO_RATE
        pcm = (self.amplitude * 32767 * np.sin(2 * np.pi * self.frequency_hz * t)).astype(np.int16)
        frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._samples
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self._samples += AUDIO_FRAME_SAMPLES
        return frame


def dominant_frequency(samples: np.ndarray, rate: int = AUDIO_RATE) -> float:
    """Peak of the spectrum, refined by parabolic interpolation (Hz)."""
    x = samples.astype(np.float64) * np.hanning(len(samples))
    spectrum = np.abs(np.fft.rfft(x))
    k = int(np.argmax(spectrum[1:])) + 1
    if 1 <= k < len(spectrum) - 1:
        a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-12)
        k += 0.5 * (a - c) / (a - 2 * b + c)
    return float(k * rate / (2 * (len(spectrum) - 1)))


@dataclass
class RemoteMedia:
    """What this client received from one other participant."""

    participant_id: str
    video_frames: int = 0
    first_video_s: float | None = None
    counters: list[int] = field(default_factory=list)
    audio: list[np.ndarray] = field(default_factory=list)
    audio_frames: int = 0
    encoded_video_frames: int = 0
    encoded_keyframes: int = 0


class LossyRtp:
    """Drops a fraction of the RTP packets (media and RTX) a process receives; RTCP is kept.

    Installed on aiortc's DTLS transport class, after SRTP decryption, so it stands for loss on
    the network path into this process.
    """

    def __init__(self, fraction: float, *, seed: int) -> None:
        self.fraction = fraction
        self.rng = random.Random(seed)
        self.dropped = 0
        self.original = RTCDtlsTransport._handle_rtp_data

    def install(self) -> None:
        original, lossy = self.original, self

        async def handle_rtp_data(transport: Any, data: bytes, arrival_time_ms: int) -> None:
            if lossy.rng.random() < lossy.fraction:
                lossy.dropped += 1
                return
            await original(transport, data, arrival_time_ms)

        RTCDtlsTransport._handle_rtp_data = handle_rtp_data

    def uninstall(self) -> None:
        RTCDtlsTransport._handle_rtp_data = self.original


def drop_incoming_rtp(fraction: float, *, seed: int) -> LossyRtp:
    lossy = LossyRtp(fraction, seed=seed)
    lossy.install()
    return lossy


def ignore_remb(sender: Any) -> None:
    """Make a publisher send keyframes only on request, like a browser.

    aiortc's VP8 encoder restarts (with a keyframe) whenever REMB moves its target bitrate by
    more than 10 %; without REMB it sends one keyframe at start and then only on PLI/FIR.
    """
    inner = sender._handle_rtcp_packet

    async def handle(packet: Any) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            return
        await inner(packet)

    sender._handle_rtcp_packet = handle


def _slot_key(slot: dict[str, Any]) -> str:
    """A slot's or track's kind, or "screen" for a shared screen."""
    return "screen" if slot.get("source") == "screen" else str(slot["kind"])


class ParleyClient:
    """Joins a room over the real signaling protocol and exchanges media with the SFU."""

    def __init__(
        self,
        url: str,
        *,
        room: str,
        name: str,
        video: MediaStreamTrack | None = None,
        audio: MediaStreamTrack | None = None,
        decode: bool = True,
        keep_audio_s: float = 3.0,
        keyframes_on_request: bool = False,
        lang: str | None = None,
        token: str | None = None,
        screen: MediaStreamTrack | None = None,
        role: str | None = None,
    ) -> None:
        self.url, self.room, self.name = url, room, name
        self.role = role
        self.token = token
        self.local = {"video": video, "audio": audio}
        #: sent once :meth:`share_screen` is called (a second video track, source "screen")
        self.screen = screen
        self.decode = decode
        self.keyframes_on_request = keyframes_on_request
        self.lang = lang
        self.keep_audio_samples = int(keep_audio_s * AUDIO_RATE)
        # MAX_BUNDLE, not aiortc's default BALANCED: as an answerer with BALANCED, aiortc
        # leaves the second m-line of a kind that arrives in one offer on a transport it then
        # discards (its media never arrives). Browsers bundle everything anyway.
        self.pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self.ws: ClientConnection | None = None
        self.participant_id: str | None = None
        self.participants: dict[str, dict[str, Any]] = {}
        self.remote: dict[str, RemoteMedia] = {}
        #: what arrives from each participant's screen (their camera is in ``remote``)
        self.remote_screen: dict[str, RemoteMedia] = {}
        self.slots: dict[str, dict[str, Any]] = {}
        #: the last participant seen on each m-line (see ``_media_of``)
        self._mid_owner: dict[str, str] = {}
        self.errors: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self.t_join: float | None = None
        self.published: dict[str, str] = {}  # kind (or "screen") -> track_id
        self.on_message: Callable[[dict[str, Any]], None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._joined = asyncio.Event()
        self.pc.on("track", self._on_track)

    # -- lifecycle -----------------------------------------------------------------------------
    async def join(self) -> None:
        self.t_join = time.monotonic()
        self.ws = await connect(self.url, max_size=2**20, origin=ws_origin(self.url))
        await self._send({"type": "hello", "protocol": 1, "client": "parley-test"})
        self._spawn(self._read())
        kinds = [k for k, t in self.local.items() if t is not None]
        join: dict[str, Any] = {"type": "join", "room": self.room, "name": self.name}
        join["publish"] = kinds
        if self.lang is not None:
            join["lang"] = self.lang
        if self.token is not None:
            join["token"] = self.token
        if self.role is not None:
            join["role"] = self.role
        await self._send(join)
        await asyncio.wait_for(self._joined.wait(), 10)

    async def leave(self) -> None:
        if self.ws is not None:
            try:
                await self._send({"type": "leave"})
                await asyncio.wait_for(self.ws.wait_closed(), 5)
            except Exception:  # noqa: BLE001 - leaving anyway
                pass
        await self.close()

    async def send(self, message: dict[str, Any]) -> None:
        await self._send(message)

    async def publish(self, kinds: list[str]) -> None:
        await self._send({"type": "publish", "kinds": kinds})

    async def share_screen(self) -> None:
        await self._send({"type": "publish", "kinds": ["video"], "source": "screen"})

    async def unpublish(self, kind: str) -> None:
        """Stop sending ``kind`` and tell the server (which then renegotiates)."""
        track_id = self.published.pop(kind)
        for transceiver in self.pc.getTransceivers():
            slot = self.slots.get(transceiver.mid or "")
            if slot and slot["direction"] == "publish" and _slot_key(slot) == kind:
                if transceiver.sender.track is not None:
                    transceiver.sender.replaceTrack(None)
                    transceiver.direction = "inactive"
        await self._send({"type": "unpublish", "track_id": track_id})

    async def mute(self, kind: str, muted: bool) -> None:
        await self._send({"type": "mute", "track_id": self.published[kind], "muted": muted})

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.ws is not None:
            await self.ws.close()
        await self.pc.close()

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """:func:`tests.support.waits.wait_until`: the client's state is its callbacks' work."""
        return await wait_until(predicate, timeout_s)

    # -- signaling -----------------------------------------------------------------------------
    async def _send(self, message: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send(json.dumps(message))

    async def _read(self) -> None:
        assert self.ws is not None
        with contextlib.suppress(ConnectionClosed):
            await self._read_messages(self.ws)

    async def _read_messages(self, ws: ClientConnection) -> None:
        async for raw in ws:
            message = json.loads(raw)
            message["_received_s"] = time.monotonic()
            self.messages.append(message)
            if self.on_message is not None:
                self.on_message(message)
            kind = message["type"]
            if kind == "joined":
                self.participant_id = message["participant_id"]
                for p in message["participants"]:
                    self.participants[p["participant_id"]] = p
                self._joined.set()
            elif kind == "participant_joined":
                p = message["participant"]
                self.participants[p["participant_id"]] = p
            elif kind == "participant_left":
                self.participants.pop(message["participant_id"], None)
            elif kind == "track_published" and message["participant_id"] == self.participant_id:
                self.published[_slot_key(message["track"])] = message["track"]["track_id"]
            elif kind == "offer":
                await self._answer(message)
            elif kind == "error":
                self.errors.append(message)

    async def _answer(self, offer: dict[str, Any]) -> None:
        self.slots = dict(offer["slots"])
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
        for transceiver in self.pc.getTransceivers():
            slot = offer["slots"].get(transceiver.mid)
            if slot and slot["direction"] == "publish" and transceiver.sender.track is None:
                track = self.screen if _slot_key(slot) == "screen" else self.local.get(slot["kind"])
                if track is not None:
                    transceiver.sender.replaceTrack(track)
                    transceiver.direction = "sendonly"
                    if self.keyframes_on_request and slot["kind"] == "video":
                        ignore_remb(transceiver.sender)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self._send(
            {"type": "answer", "sdp": self.pc.localDescription.sdp, "revision": offer["revision"]}
        )

    # -- media in ------------------------------------------------------------------------------
    def _on_track(self, track: MediaStreamTrack) -> None:
        transceiver = next(t for t in self.pc.getTransceivers() if t.receiver.track is track)
        mid = transceiver.mid or ""
        if not self.decode:
            from media.forward import vp8_is_keyframe
            from media.hooks import tap_decoder_queue

            def count(codec: Any, frame: Any) -> None:
                media = self._media_of(mid)
                if track.kind == "video":
                    media.encoded_video_frames += 1
                    media.encoded_keyframes += vp8_is_keyframe(frame.data)
                    if media.first_video_s is None:
                        media.first_video_s = time.monotonic()
                else:
                    media.audio_frames += 1

            tap_decoder_queue(transceiver.receiver, count, decode=False)
        self._spawn(self._consume(track, mid))

    def _media_of(self, mid: str) -> RemoteMedia:
        """Whose media arrives on ``mid`` now (the server reuses m-lines for new tracks). A
        slot freed by a renegotiation (its publisher left) has no participant: frames still in
        the decoder's queue then are its last owner's."""
        slot = self.slots.get(mid, {})
        pid = slot.get("participant_id") or self._mid_owner.get(mid, "?")
        self._mid_owner[mid] = pid
        remote = self.remote_screen if slot.get("source") == "screen" else self.remote
        return remote.setdefault(pid, RemoteMedia(pid))

    async def _consume(self, track: MediaStreamTrack, mid: str) -> None:
        kept: dict[str, int] = {}
        try:
            while True:
                frame = await track.recv()
                media = self._media_of(mid)
                if track.kind == "video":
                    media.video_frames += 1
                    if media.first_video_s is None:
                        media.first_video_s = time.monotonic()
                    media.counters.append(read_counter(frame))
                else:
                    media.audio_frames += 1
                    pcm = frame.to_ndarray()
                    mono = pcm.reshape(-1, len(frame.layout.channels))[:, 0]
                    media.audio.append(mono.astype(np.float32) / 32768)
                    n = kept.get(media.participant_id, 0) + len(mono)
                    while n > self.keep_audio_samples and len(media.audio) > 1:
                        n -= len(media.audio.pop(0))
                    kept[media.participant_id] = n
        except MediaStreamError:
            pass

    def audio_frequency(self, participant_id: str, seconds: float = 1.0) -> float | None:
        media = self.remote.get(participant_id)
        if media is None or not media.audio:
            return None
        samples = np.concatenate(media.audio)[-int(seconds * AUDIO_RATE) :]
        return dominant_frequency(samples)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
