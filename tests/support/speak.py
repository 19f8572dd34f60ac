"""``python -m tests.support.speak URL ROOM NAME CLIP SECONDS``: an aiortc participant that
speaks an audio file into a room (English) for SECONDS, then leaves. Browser tests run it inside
their loopback-only network namespace, beside the server."""

from __future__ import annotations

import asyncio
import sys

from tests.support.client import FileAudio, ParleyClient


async def speak(url: str, room: str, name: str, clip: str, seconds: float) -> None:
    client = ParleyClient(url, room=room, name=name, audio=FileAudio(clip), lang="en")
    await client.join()
    print("joined", client.participant_id, flush=True)
    await asyncio.sleep(seconds)
    await client.leave()


if __name__ == "__main__":
    url, room, name, clip, seconds = sys.argv[1:6]
    asyncio.run(speak(url, room, name, clip, float(seconds)))
