"""Run one :class:`ParleyClient` in its own process and print a JSON summary on stdout.

Acceptance tests run clients out of process so that every codec call in the test process is the
server's (the test asserts there are none).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from media.hooks import restrict_host_addresses
from tests.support.client import CounterVideo, ParleyClient, SineAudio, drop_incoming_rtp


async def run(args: argparse.Namespace) -> dict[str, Any]:
    restrict_host_addresses(["127.0.0.1"])
    if args.drop_rx > 0:
        drop_incoming_rtp(args.drop_rx, seed=hash(args.name))
    client = ParleyClient(
        args.url,
        room=args.room,
        name=args.name,
        video=CounterVideo(args.width, args.height) if args.video else None,
        audio=SineAudio(args.freq) if args.freq else None,
        decode=not args.no_decode,
        keyframes_on_request=args.keyframes_on_request,
    )
    t0 = time.monotonic()
    await client.join()
    deadline = t0 + args.seconds
    await client.wait_for(lambda: time.monotonic() >= deadline, args.seconds + 1)
    result: dict[str, Any] = {
        "participant_id": client.participant_id,
        "errors": client.errors,
        "participants": sorted(client.participants),
        "remote": {},
    }
    for pid, media in client.remote.items():
        counters = media.counters
        steps = [b - a for a, b in zip(counters, counters[1:], strict=False)]
        result["remote"][pid] = {
            "video_frames": media.video_frames,
            "first_video_s": None if media.first_video_s is None else media.first_video_s - t0,
            "counter_first": counters[0] if counters else None,
            "counter_last": counters[-1] if counters else None,
            "counter_increasing_fraction": (sum(s > 0 for s in steps) / len(steps)) if steps else 0,
            "audio_frames": media.audio_frames,
            "audio_frequency_hz": client.audio_frequency(pid),
        }
    await client.leave()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", required=True)
    ap.add_argument("--room", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument(
        "--freq", type=float, default=0.0, help="publish a sine tone (Hz); 0 = no audio"
    )
    ap.add_argument("--video", action="store_true", help="publish counter video")
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--keyframes-on-request", action="store_true")
    ap.add_argument("--no-decode", action="store_true")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--drop-rx", type=float, default=0.0, help="drop this fraction of RTP in")
    args = ap.parse_args()
    result = asyncio.run(run(args))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
