"""Reliability participants, each in its own process; prints a JSON summary on stdout.

    python -m tests.support.peer blackout --url WS --room R --name N --seconds S \\
        --blackout-at-s A --blackout-s 5
    python -m tests.support.peer speaker --url WS --room R --name N --seconds S \\
        --speech FILE --lang en
    python -m tests.support.peer publisher --url WS --room R --name N --seconds S

``--ice-address`` (default 127.0.0.1) is the one address a peer gathers ICE candidates on.

``blackout``: a subscriber that loses 100 % of its media packets in both directions (SRTP and
SRTCP, dropped inside aiortc's DTLS transport) from ``A`` to ``A + 5`` s after joining: this
container's kernel has no netem, so the loss is made in the process (ICE keep-alives still pass).
Like a browser, it asks for a keyframe (PLI) when packets arrive but no picture decodes: aiortc
itself only does so when a gap overflows its 128-packet jitter buffer, and ~5 s of this test
video is close to that edge.
With ``--blackout-s 0`` nothing is dropped in the process: the test cuts the network link
itself; ``t0`` (``time.monotonic()``, one clock for every process of the machine) places the
frame times next to the test's.
``publisher``: publishes counter video and a 440 Hz tone for ``--seconds``.
``speaker``: publishes counter video and a speech recording played in a loop, reads captions,
answers what it received from whom (the soak and the room-isolation test read it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import numpy as np
from aiortc.rtcdtlstransport import RTCDtlsTransport
from av import AudioFrame

from media.hooks import restrict_host_addresses
from tests.support.client import FileAudio, ParleyClient


class Blackout:
    """Drops every SRTP/SRTCP packet in and out of this process while ``on``."""

    def __init__(self) -> None:
        self.on = False
        self.dropped_in = 0
        self.dropped_out = 0

    def install(self) -> None:
        rtp_in, rtcp_in = RTCDtlsTransport._handle_rtp_data, RTCDtlsTransport._handle_rtcp_data
        rtp_out = RTCDtlsTransport._send_rtp  # SRTP and SRTCP both leave through it
        gate = self

        async def handle_rtp(transport: Any, data: bytes, arrival_time_ms: int) -> None:
            if gate.on:
                gate.dropped_in += 1
                return
            await rtp_in(transport, data, arrival_time_ms)

        async def handle_rtcp(transport: Any, data: bytes) -> None:
            if gate.on:
                gate.dropped_in += 1
                return
            await rtcp_in(transport, data)

        async def send_rtp(transport: Any, data: bytes) -> None:
            if gate.on:
                gate.dropped_out += 1
                return
            await rtp_out(transport, data)

        RTCDtlsTransport._handle_rtp_data = handle_rtp  # type: ignore[method-assign]
        RTCDtlsTransport._handle_rtcp_data = handle_rtcp  # type: ignore[method-assign]
        RTCDtlsTransport._send_rtp = send_rtp  # type: ignore[method-assign]


class LoopingSpeech(FileAudio):
    """A recording played again and again in real time (a speaker who keeps talking), each time
    followed by ``gap_s`` of silence: one utterance per ``period_s``."""

    def __init__(self, path: str, *, gap_s: float = 0.0, speak_s: float | None = None) -> None:
        super().__init__(path)
        #: silence after this many seconds (the captions of what was said have time to come)
        self.speak_s = speak_s
        self.speech_s = len(self.pcm) / 48_000
        self.pcm = np.concatenate([self.pcm, np.zeros(int(gap_s * 48_000), np.int16)])
        self.period_s = len(self.pcm) / 48_000
        #: monotonic time of the very first sample (``started_s`` moves on each loop)
        self.first_s: float | None = None

    def sent_s(self) -> float:
        return 0.0 if self.first_s is None else time.monotonic() - self.first_s

    async def recv(self) -> AudioFrame:
        if self.first_s is None:
            self.first_s = time.monotonic()
        if self._samples >= len(self.pcm) and self.started_s is not None:
            self.started_s += len(self.pcm) / 48_000
            self._samples = 0
        frame = await super().recv()
        if self.speak_s is not None and self.sent_s() > self.speak_s:
            frame.planes[0].update(bytes(frame.planes[0].buffer_size))
        return frame


async def blackout(args: argparse.Namespace) -> dict[str, Any]:
    gate = Blackout()
    if args.blackout_s > 0:
        gate.install()
    client = ParleyClient(args.url, room=args.room, name=args.name)
    await client.join()
    t0 = time.monotonic()
    video_times: list[float] = []
    audio_times: list[float] = []
    last = {"video": 0, "audio": 0}

    async def sample() -> None:
        while True:
            video = sum(m.video_frames for m in client.remote.values())
            audio = sum(m.audio_frames for m in client.remote.values())
            now = time.monotonic() - t0
            video_times.extend([now] * (video - last["video"]))
            audio_times.extend([now] * (audio - last["audio"]))
            last.update(video=video, audio=audio)
            await asyncio.sleep(0.05)

    sampler = asyncio.get_running_loop().create_task(sample())
    pli_sent = [0]

    async def request_keyframes() -> None:
        """Browser behaviour: RTP keeps arriving, no picture for 0.3 s -> PLI (at most 3/s)."""
        from bench.rtpstats import received_by_kind

        last_frames, last_packets, stalled_since = 0, 0, time.monotonic()
        while True:
            await asyncio.sleep(0.1)
            frames = sum(m.video_frames for m in client.remote.values())
            packets = received_by_kind(client.pc).get("video", {}).get("packets", 0)
            now = time.monotonic()
            if frames != last_frames or gate.on:
                stalled_since = now
            elif packets > last_packets and now - stalled_since >= 0.3:
                for transceiver in client.pc.getTransceivers():
                    if transceiver.kind != "video":
                        continue
                    streams = getattr(transceiver.receiver, "_RTCRtpReceiver__remote_streams", {})
                    for ssrc in list(streams):
                        await transceiver.receiver._send_rtcp_pli(ssrc)
                        pli_sent[0] += 1
                stalled_since = now
            last_frames, last_packets = frames, packets

    requester = asyncio.get_running_loop().create_task(request_keyframes())
    await asyncio.sleep(args.blackout_at_s)
    gate.on = True
    await asyncio.sleep(args.blackout_s)
    gate.on = False
    await asyncio.sleep(max(0.0, args.seconds - args.blackout_at_s - args.blackout_s))
    sampler.cancel()
    requester.cancel()
    result = {
        "t0": t0,
        "pli_sent": pli_sent[0],
        "video_times": video_times,
        "audio_times": audio_times,
        "dropped_in": gate.dropped_in,
        "dropped_out": gate.dropped_out,
        "connection_state": client.pc.connectionState,
        "errors": client.errors,
    }
    await client.leave()
    return result


async def publisher(args: argparse.Namespace) -> dict[str, Any]:
    from tests.support.client import CounterVideo, SineAudio

    client = ParleyClient(
        args.url, room=args.room, name=args.name, video=CounterVideo(320, 240), audio=SineAudio(440)
    )
    await client.join()
    await asyncio.sleep(args.seconds)
    result = {"participant_id": client.participant_id, "errors": client.errors}
    await client.leave()
    return result


async def speaker(args: argparse.Namespace) -> dict[str, Any]:
    from tests.support.client import CounterVideo

    client = ParleyClient(
        args.url,
        room=args.room,
        name=args.name,
        video=CounterVideo(160, 120),
        audio=(voice := LoopingSpeech(args.speech, gap_s=args.gap_s, speak_s=args.speak_s)),
        decode=True,
        keep_audio_s=1.0,
        lang=args.lang,
    )
    await client.join()
    await client.send({"type": "captions", "languages": []})
    for message in json.loads(args.forge or "[]"):
        await client.send(message)
    await asyncio.sleep(args.seconds)
    result = {
        "participant_id": client.participant_id,
        "participants": sorted(client.participants),
        "media_from": {
            pid: {"video_frames": m.video_frames, "audio_frames": m.audio_frames}
            for pid, m in client.remote.items()
        },
        "captions_from": sorted(
            {m["participant_id"] for m in client.messages if m["type"] == "caption"}
        ),
        "finals": sum(1 for m in client.messages if m["type"] == "caption" and m["final"]),
        # audio time spans of the finals heard, per speaker (no text): what was captioned
        "final_spans": final_spans(client.messages),
        "speech_s": voice.speech_s,
        "period_s": voice.period_s,
        "sent_s": voice.sent_s(),
        "message_types": sorted({m["type"] for m in client.messages}),
        "messages": [
            {k: v for k, v in m.items() if k not in ("sdp", "_received_s")}
            for m in client.messages
            if m["type"] != "caption"
        ],
        "errors": client.errors,
    }
    await client.leave()
    return result


def final_spans(messages: list[dict[str, Any]]) -> dict[str, list[list[float]]]:
    spans: dict[str, list[list[float]]] = {}
    for m in messages:
        if m["type"] == "caption" and m["final"]:
            spans.setdefault(m["participant_id"], []).append([m["start_s"], m["end_s"]])
    return spans


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("mode", choices=["blackout", "publisher", "speaker"])
    ap.add_argument("--url", required=True)
    ap.add_argument("--room", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--blackout-at-s", type=float, default=4.0)
    ap.add_argument("--blackout-s", type=float, default=5.0)
    ap.add_argument("--speech", default="")
    ap.add_argument("--lang", default=None)
    ap.add_argument("--gap-s", type=float, default=0.0, help="silence after each loop of --speech")
    ap.add_argument("--speak-s", type=float, default=None, help="silence after this many seconds")
    ap.add_argument("--forge", default="", help="JSON list of messages to send after joining")
    ap.add_argument("--ice-address", default="127.0.0.1")
    args = ap.parse_args()
    restrict_host_addresses([args.ice_address])
    run = {"blackout": blackout, "publisher": publisher, "speaker": speaker}[args.mode]
    result = asyncio.run(run(args))
    json.dump(
        result, sys.stdout, default=lambda o: float(o) if isinstance(o, np.floating) else str(o)
    )


if __name__ == "__main__":
    main()
