"""Load generators for ``bench/sfu.py``: one publisher, or a batch of subscribers, per process.

Both are ``tests.support.client.ParleyClient``s speaking the real protocol to the real server
(``--target parley``, or ``parley-janus`` for a server whose ``[media] backend`` is "janus": the
publisher then offers a second, publishing connection), or Janus VideoRoom's JSON API
(``--target janus``, bench/janus.py).

    python -m bench.sfu_peers publish   --url WS --control DIR --deadline-s MONO [--video-kbps K]
    python -m bench.sfu_peers subscribe --url WS --control DIR --deadline-s MONO --name NAME
        --indices 0,2,4 --decode 0 --t0-s MONO --join-interval-s 0.2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiortc.rtcrtpsender
import numpy as np
from aiortc import RTCPeerConnection
from aiortc.codecs import get_encoder
from aiortc.codecs.base import Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.mediastreams import VideoStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from av import VideoFrame

from media.hooks import restrict_host_addresses
from tests.support.client import COUNTER_BITS, ParleyClient, SineAudio

from .control import ControlChannel, Json
from .janus_client import JanusClient, JanusEngineClient
from .lagprobe import LagProbe
from .rtpstats import received_by_kind, sent_by_kind

ROOM = "bench"
LOOPBACK = "127.0.0.1"
AUDIO_HZ = 440.0


def loopback_only(sdp: str, address: str = LOOPBACK) -> bool:
    """Every ICE candidate in ``sdp`` is on ``address`` (127.0.0.1 unless the run is in a private
    network namespace, see bench/janus.py), and there is at least one."""
    candidates = [line.split() for line in sdp.splitlines() if line.startswith("a=candidate:")]
    return bool(candidates) and all(c[4] == address for c in candidates)


class BenchVideo(VideoStreamTrack):
    """A VGA test card that makes VP8 spend its bitrate: a scrolling random texture, a moving box,
    and the frame number as 16 blocks across the top sixth (``tests.support.client.read_counter``
    reads it back from a decoded frame)."""

    def __init__(self, width: int = 640, height: int = 480, seed: int = 1) -> None:
        super().__init__()
        self.width, self.height = width, height
        rng = np.random.default_rng(seed)
        blocks = rng.integers(16, 236, (height // 8, 2 * width // 8), dtype=np.uint8)
        self._texture = np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1)
        self._uv = np.full((height // 2, width), 128, dtype=np.uint8)
        self.frames = 0

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        w, h = self.width, self.height
        offset = (self.frames * 4) % w
        y = self._texture[:, offset : offset + w].copy()
        block, strip = w // COUNTER_BITS, h // 6
        for bit in range(COUNTER_BITS):
            y[:strip, bit * block : (bit + 1) * block] = 235 if (self.frames >> bit) & 1 else 16
        x = (self.frames * 7) % (w - 80)
        y[h // 2 : h // 2 + 80, x : x + 80] = 255
        frame = VideoFrame.from_ndarray(np.vstack([y, self._uv]), format="yuv420p")
        frame.pts, frame.time_base = pts, time_base
        self.frames += 1
        return frame


class FixedRateVp8Encoder(Vp8Encoder):
    """aiortc's VP8 encoder at a constant target bitrate: REMB from the server is ignored.

    aiortc sets ``target_bitrate`` from every REMB; the server's delay-based estimate moves with
    its own load, so the input rate would change between the baseline and the loaded window.
    """

    def __init__(self, bitrate_bps: int) -> None:
        super().__init__()
        Vp8Encoder.target_bitrate.fset(self, bitrate_bps)  # type: ignore[attr-defined]
        self._fixed_bps = super().target_bitrate

    @property
    def target_bitrate(self) -> int:
        return self._fixed_bps

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        pass  # REMB: ignored on purpose


def install_fixed_vp8_bitrate(bitrate_bps: int) -> None:
    """Make this process's ``RTCRtpSender``s encode VP8 with :class:`FixedRateVp8Encoder`."""

    def bench_get_encoder(codec: RTCRtpCodecParameters) -> Encoder:
        if codec.mimeType.lower() == "video/vp8":
            return FixedRateVp8Encoder(bitrate_bps)
        return get_encoder(codec)

    aiortc.rtcrtpsender.get_encoder = bench_get_encoder  # type: ignore[attr-defined]


@dataclass(slots=True)
class JoinTimeline:
    """When a client got through each step of joining (``time.monotonic()``)."""

    joined_s: float | None = None
    offer_s: float | None = None
    connected_s: float | None = None

    def relative(self, client: ParleyClient) -> dict[str, float | None]:
        t0 = client.t_join or 0.0
        steps = {"joined": self.joined_s, "offer": self.offer_s, "connected": self.connected_s}
        return {k: None if v is None else round(v - t0, 3) for k, v in steps.items()}


def watch(client: ParleyClient, violations: list[str], address: str = LOOPBACK) -> JoinTimeline:
    """Time the join steps and check that every offer keeps ICE on 127.0.0.1."""
    timeline = JoinTimeline()

    def on_message(message: dict[str, Any]) -> None:
        if message["type"] == "joined" and timeline.joined_s is None:
            timeline.joined_s = time.monotonic()
        elif message["type"] == "offer":
            if timeline.offer_s is None:
                timeline.offer_s = time.monotonic()
            if not loopback_only(message["sdp"], address):
                violations.append(f"{client.name}: server offered a non-loopback candidate")

    def on_state() -> None:
        if client.pc.connectionState == "connected" and timeline.connected_s is None:
            timeline.connected_s = time.monotonic()

    client.on_message = on_message
    client.pc.on("connectionstatechange", on_state)
    return timeline


async def publish(args: argparse.Namespace) -> None:
    restrict_host_addresses([args.ice_address])
    install_fixed_vp8_bitrate(args.video_kbps * 1000)
    channel = ControlChannel(args.control, "publisher", deadline_s=args.deadline_s)
    video = BenchVideo(args.width, args.height)
    client = client_class(args)(
        args.url, room=ROOM, name="publisher", video=video, audio=SineAudio(AUDIO_HZ), decode=False
    )
    violations: list[str] = []
    watch(client, violations, args.ice_address)
    await client.join()
    if not await client.wait_for(lambda: len(client.published) == 2, 20):
        raise SystemExit(f"publisher: tracks not published: {client.errors}")
    pc = sending_pc(client)
    if not loopback_only(pc.localDescription.sdp, args.ice_address):
        violations.append("publisher: local description has a non-loopback candidate")
    if not loopback_only(pc.remoteDescription.sdp, args.ice_address):
        violations.append("publisher: the server's answer has a non-loopback candidate")

    async def snapshot() -> Json:
        return {"rtp": await sent_by_kind(pc), "video_frames": video.frames}

    channel.set_snapshot(snapshot)
    channel.ready({"published": client.published, "violations": violations})
    await channel.wait_stop()
    await asyncio.wait_for(client.leave(), 10)
    channel.final({"errors": client.errors, "violations": violations})


def _video_frames(client: ParleyClient) -> int:
    media = client.remote.values()
    return sum(m.video_frames if client.decode else m.encoded_video_frames for m in media)


def _first_frame_s(client: ParleyClient) -> float | None:
    firsts = [m.first_video_s for m in client.remote.values() if m.first_video_s is not None]
    if not firsts or client.t_join is None:
        return None
    return round(min(firsts) - client.t_join, 3)


def _has_first_frame(client: ParleyClient) -> bool:
    return _first_frame_s(client) is not None


def _decode_check(client: ParleyClient) -> Json:
    """What the decoding subscriber saw over the whole session: frame numbers in order, and the
    publisher's tone.

    A repeated or backwards frame number means the decoder showed a picture built on a missing
    reference: a frame was lost on one of the two hops, NACK did not repair it, and delta frames
    kept coming until the next keyframe.
    """
    result: Json = {}
    for pid, media in client.remote.items():
        counters = np.asarray(media.counters, dtype=np.int64)
        steps = np.diff(counters)
        odd = np.flatnonzero(steps != 1)[:10]
        frequency = client.audio_frequency(pid)
        result[pid] = {
            "decoded_frames": media.video_frames,
            "counter_last": int(counters[-1]) if len(counters) else None,
            "counter_steps_ok": int(np.sum(steps == 1)),
            "counter_skips": int(np.sum(steps > 1)),
            "counter_repeats": int(np.sum(steps == 0)),
            "counter_backwards": int(np.sum(steps < 0)),
            "first_anomalies": [[int(i), int(counters[i]), int(counters[i + 1])] for i in odd],
            "audio_frames": media.audio_frames,
            "audio_hz": None if frequency is None else round(frequency, 1),
            "audio_hz_expected": AUDIO_HZ,
        }
    return result


async def subscribe(args: argparse.Namespace) -> None:
    restrict_host_addresses([args.ice_address])
    channel = ControlChannel(args.control, args.name, deadline_s=args.deadline_s)
    probe = LagProbe()
    clients: dict[int, ParleyClient] = {}
    timelines: dict[int, JoinTimeline] = {}
    violations: list[str] = []

    async def join_one(index: int) -> None:
        await asyncio.sleep(max(0.0, args.t0_s + index * args.join_interval_s - time.monotonic()))
        client = client_class(args)(
            args.url, room=ROOM, name=f"sub-{index}", decode=index in args.decode
        )
        timelines[index] = watch(client, violations, args.ice_address)
        clients[index] = client
        await client.join()

    async with asyncio.TaskGroup() as group:
        probe_task = group.create_task(probe.run(), name="loop-lag-probe")
        joins = [asyncio.create_task(join_one(i), name=f"join-{i}") for i in args.indices]
        results = await asyncio.gather(*joins, return_exceptions=True)
        failed = {i: repr(r) for i, r in zip(args.indices, results, strict=True) if r is not None}
        live = [c for i, c in clients.items() if i not in failed]
        await asyncio.gather(
            *(
                c.wait_for(functools.partial(_has_first_frame, c), args.first_frame_timeout_s)
                for c in live
            )
        )
        for c in live:
            local = c.pc.localDescription
            if local is not None and not loopback_only(local.sdp, args.ice_address):
                violations.append(f"{c.name}: local description has a non-loopback candidate")

        async def snapshot() -> Json:
            subs: Json = {}
            for index, client in clients.items():
                subs[str(index)] = {
                    "decodes": client.decode,
                    "video_frames": _video_frames(client),
                    "audio_frames": sum(m.audio_frames for m in client.remote.values()),
                    "rtp": received_by_kind(client.pc),
                    "errors": len(client.errors),
                }
            return {"subscribers": subs, "loop_lag": probe.take()}

        channel.set_snapshot(snapshot)
        channel.ready(
            {
                "joined": sorted(i for i in clients if i not in failed),
                "failed": failed,
                "first_frame_s": {str(i): _first_frame_s(c) for i, c in clients.items()},
                "join_steps_s": {str(i): timelines[i].relative(c) for i, c in clients.items()},
                "violations": violations,
            }
        )
        await channel.wait_stop()
        probe_task.cancel()
    checks = {str(i): _decode_check(c) for i, c in clients.items() if c.decode}
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(c.leave() for c in clients.values())), 15)
    errors = {str(i): c.errors for i, c in clients.items() if c.errors}
    channel.final({"decode_check": checks, "errors": errors, "violations": violations})


def client_class(args: argparse.Namespace) -> type[ParleyClient]:
    """Parley's protocol, or Janus VideoRoom's (``--target janus``, bench/janus.py); a publisher
    of a Parley on Janus (``--target parley-janus``) offers its own publishing connection."""
    if args.target == "janus":
        return JanusClient
    if args.target == "parley-janus" and args.role == "publish":
        return JanusEngineClient
    return ParleyClient


def sending_pc(client: ParleyClient) -> RTCPeerConnection:
    """The connection that carries the client's own tracks."""
    return client.pub_pc if isinstance(client, JanusEngineClient) else client.pc


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("role", choices=["publish", "subscribe"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--target", choices=["parley", "parley-janus", "janus"], default="parley")
    parser.add_argument("--ice-address", default=LOOPBACK, help="the only ICE host candidate")
    parser.add_argument("--control", type=Path, required=True)
    parser.add_argument("--deadline-s", type=float, required=True, help="time.monotonic() to stop")
    parser.add_argument("--video-kbps", type=int, default=1200)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--name", default="subscribers")
    parser.add_argument("--indices", type=_ints, default=[])
    parser.add_argument("--decode", type=_ints, default=[])
    parser.add_argument("--t0-s", type=float, default=0.0, help="time.monotonic() of join 0")
    parser.add_argument("--join-interval-s", type=float, default=0.2)
    parser.add_argument("--first-frame-timeout-s", type=float, default=15.0)
    args = parser.parse_args()
    asyncio.run(publish(args) if args.role == "publish" else subscribe(args))


if __name__ == "__main__":
    main()
