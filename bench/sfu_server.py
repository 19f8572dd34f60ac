"""The Parley server under test, in a process of its own, plus a loop-lag probe.

It runs exactly what ``parley serve`` runs (``server.app.App`` from the same settings) and adds
one coroutine on the same event loop: :class:`bench.lagprobe.LagProbe`. The server has no hook
for loop lag or media counters yet, so this wrapper reads them from the outside of the public
objects (``App.signaling.rooms[...].media.stats()``, aiortc's ``getStats()`` of every peer
connection the server makes); see bench/README.md for the hook we want.

    python -m bench.sfu_server --config FILE --port PORT --control DIR --deadline-s MONO
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import inspect
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiortc import RTCPeerConnection

import media.peer
from server.app import App, configure_logging
from server.settings import load_settings

from .control import ControlChannel, Json
from .lagprobe import LagProbe
from .rtpstats import Counts, add, received_by_kind, sent_by_kind


class _PeerRegistry:
    """Every ``RTCPeerConnection`` the server creates, so that its RTP counters can be read
    through aiortc's public ``getStats()`` (the media plane's own ``stats()`` keeps changing)."""

    def __init__(self) -> None:
        self.connections: weakref.WeakSet[RTCPeerConnection] = weakref.WeakSet()
        self.created = 0

    def install(self) -> None:
        registry = self

        class TrackedPeerConnection(RTCPeerConnection):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                registry.connections.add(self)
                registry.created += 1

        media.peer.RTCPeerConnection = TrackedPeerConnection  # type: ignore[attr-defined]

    async def rtp(self) -> Json | None:
        """RTP packets sent (``outbound-rtp``) and received (ingest, with losses) by every live
        connection, by kind; ``None`` when the hook saw no connection at all (the media plane
        no longer builds them in this process)."""
        if self.created == 0:
            return None
        sent: Counts = {}
        received: Counts = {}
        for pc in list(self.connections):
            add(sent, await sent_by_kind(pc))
            add(received, received_by_kind(pc))
        return {"sent": sent, "received": received}


async def media_counters(app: App) -> Json:
    """Totals over every room's ``stats()``: frames in, keyframes, PLIs, forwarded frames."""
    totals: dict[str, dict[str, int]] = {}
    for live in list(app.signaling.rooms.values()):
        stats_fn = getattr(live.media, "stats", None)
        if stats_fn is None:
            continue
        result = stats_fn()
        stats: Mapping[str, Any] = await result if inspect.isawaitable(result) else result
        for publication in stats.get("publications", {}).values():
            kind = totals.setdefault(publication.get("kind", "?"), {})
            for key in ("frames_in", "keyframes_in", "pli_sent", "pli_requests"):
                kind[key] = kind.get(key, 0) + int(publication.get(key, 0))
            for sub in publication.get("subscribers", {}).values():
                kind["subscribers"] = kind.get("subscribers", 0) + 1
                for key in ("forwarded", "dropped"):
                    kind[f"{key}_frames"] = kind.get(f"{key}_frames", 0) + int(sub.get(key, 0))
    return totals


async def serve(args: argparse.Namespace) -> None:
    # the SFU alone: no captions (they would decode every audio track)
    settings = load_settings(args.config, server={"port": args.port}, captions={"enabled": False})
    configure_logging(settings)
    peers = _PeerRegistry()
    peers.install()
    app = App(settings)
    await app.start()
    probe = LagProbe()
    channel = ControlChannel(args.control, "server", deadline_s=args.deadline_s)

    profiler: cProfile.Profile | None = None
    windows = 0

    def toggle_profile() -> None:
        """Odd snapshots open a window, even ones close it: profile exactly the windows."""
        nonlocal profiler, windows
        if args.profile_dir is None:
            return
        if profiler is None:
            profiler = cProfile.Profile()
            profiler.enable()
        else:
            profiler.disable()
            windows += 1
            profiler.dump_stats(args.profile_dir / f"server-window-{windows}.prof")
            profiler = None

    async def snapshot() -> Json:
        toggle_profile()
        lag = probe.take()
        return {"loop_lag": lag, "media": await media_counters(app), "rtp": await peers.rtp()}

    channel.set_snapshot(snapshot)
    async with asyncio.TaskGroup() as group:
        probe_task = group.create_task(probe.run(), name="loop-lag-probe")
        channel.ready({"port": app.port})
        await channel.wait_stop()
        probe_task.cancel()
    t0 = time.monotonic()
    await app.stop()
    channel.final({"stop_s": round(time.monotonic() - t0, 3)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control", type=Path, required=True)
    parser.add_argument(
        "--profile-dir",
        type=Path,
        default=None,
        help="cProfile each measurement window into this folder",
    )
    parser.add_argument("--deadline-s", type=float, required=True, help="time.monotonic() to stop")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
