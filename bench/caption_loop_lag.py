"""Does transcription disturb the SFU? Issue 3, acceptance point 6.

K aiortc speakers play evalset speech into one room of an in-process server with captions on
(speech worker in its own process); a reader asks for Spanish. A 10 ms timer on the server's
event loop measures its lag while everyone speaks. JSON + markdown to --json.

    PYTHONPATH=. .venv/bin/python bench/caption_loop_lag.py --speakers 3 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from media.hooks import restrict_host_addresses  # noqa: E402
from server.app import App  # noqa: E402
from server.settings import load_settings  # noqa: E402
from tests.support.client import FileAudio, ParleyClient  # noqa: E402

EVALSET = REPO.parent / "shared" / "evalset"
CLIPS = [
    "en/fleurs-en-000.ogg",
    "es/fleurs-es-000.ogg",
    "de/fleurs-de-000.ogg",
    "fr/fleurs-fr-000.ogg",
]


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--speakers", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument(
        "--json", type=Path, default=REPO / "bench" / "results" / "caption-loop-lag.json"
    )
    args = ap.parse_args()
    restrict_host_addresses(["127.0.0.1"])
    settings = load_settings(
        None,
        server={"port": 0},
        media={"ice_host_addresses": ["127.0.0.1"]},
        captions={"enabled": True},
        logging={"level": "warning"},
    )
    app = App(settings)
    await app.start()
    url = f"ws://127.0.0.1:{app.port}/ws"
    reader = ParleyClient(url, room="lag", name="reader")
    await reader.join()
    await reader.send({"type": "captions", "languages": ["es"]})
    speakers = []
    for i in range(args.speakers):
        clip = EVALSET / "audio" / CLIPS[i % len(CLIPS)]
        client = ParleyClient(url, room="lag", name=f"s{i}", audio=_Looping(str(clip)))
        await client.join()
        speakers.append(client)
    lags: list[float] = []
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        t = time.perf_counter()
        await asyncio.sleep(0.01)
        lags.append((time.perf_counter() - t - 0.01) * 1000)
    captions = [m for m in reader.messages if m["type"] == "caption"]
    lags.sort()
    result = {
        "speakers": args.speakers,
        "seconds": args.seconds,
        "loop_lag_p50_ms": round(lags[len(lags) // 2], 2),
        "loop_lag_p99_ms": round(lags[int(len(lags) * 0.99)], 2),
        "loop_lag_max_ms": round(lags[-1], 2),
        "captions": len(captions),
        "finals": sum(1 for m in captions if m["final"]),
        "speakers_captioned": len({m["participant_id"] for m in captions}),
        "note": "server, speakers and reader share this process's loop (pessimistic)",
    }
    for client in [*speakers, reader]:
        await client.leave()
    await app.stop()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


class _Looping(FileAudio):
    """The clip over and over with 1 s pauses (a speaker who keeps talking)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        pause = np.zeros(48_000, np.int16)
        self.pcm = np.tile(np.concatenate([self.pcm, pause]), 20)


if __name__ == "__main__":
    asyncio.run(main())
