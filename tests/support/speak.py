"""``python -m tests.support.speak URL ROOM NAME CLIP SECONDS [--lang L] [--on-air CHANNEL]
[--video] [--broadcast-after S] [--loop]``: an aiortc participant that speaks an audio file into
a room for SECONDS, then leaves; with ``--on-air`` it joins as an interpreter and goes on air in
CHANNEL first; ``--video`` also sends a camera (the counter pattern); ``--broadcast-after S`` (a
host) sends ``broadcast_start`` S seconds after joining; ``--loop`` plays the clip over and over.
Browser tests run it inside their network namespace, beside the server."""

from __future__ import annotations

import argparse
import asyncio

from tests.support.client import CounterVideo, FileAudio, ParleyClient


async def speak(
    url: str,
    room: str,
    name: str,
    clip: str,
    seconds: float,
    lang: str,
    on_air: str | None,
    *,
    video: bool = False,
    broadcast_after_s: float | None = None,
    loop: bool = False,
) -> None:
    role = "interpreter" if on_air else None
    client = ParleyClient(
        url,
        room=room,
        name=name,
        audio=FileAudio(clip, loop=loop),
        video=CounterVideo() if video else None,
        lang=lang,
        role=role,
    )
    await client.join()
    if on_air:
        await client.send({"type": "on_air", "channel": on_air})
    print("joined", client.participant_id, flush=True)
    if broadcast_after_s is not None:
        await asyncio.sleep(broadcast_after_s)
        await client.send({"type": "broadcast_start"})
        seconds -= broadcast_after_s
    await asyncio.sleep(seconds)
    await client.leave()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    for arg in ("url", "room", "name", "clip"):
        parser.add_argument(arg)
    parser.add_argument("seconds", type=float)
    parser.add_argument("--lang", default="en")
    parser.add_argument("--on-air", default=None)
    parser.add_argument("--video", action="store_true")
    parser.add_argument("--broadcast-after", type=float, default=None)
    parser.add_argument("--loop", action="store_true")
    a = parser.parse_args()
    asyncio.run(
        speak(
            a.url,
            a.room,
            a.name,
            a.clip,
            a.seconds,
            a.lang,
            a.on_air,
            video=a.video,
            broadcast_after_s=a.broadcast_after,
            loop=a.loop,
        )
    )
