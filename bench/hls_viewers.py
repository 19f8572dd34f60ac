"""Simulated HLS viewers against an origin (bench/broadcast.py, "origin capacity").

Each viewer does what hls.js does on the watch page, over one keep-alive HTTP/1.1 connection:
the master playlist once, then every target duration its three media playlists (one video
rendition, the floor audio, one caption track), and each segment new in them, in order; it
starts playing once it holds ``START_SEGMENTS`` segments and from then on its playhead advances
in real time: a **stall** is the playhead reaching the end of what it has fetched. A small
asyncio HTTP client of our own (no aiohttp in the venv; Content-Length bodies only, which is
what nginx sends for static files).

The live source is a replay of a recorded broadcast (its VOD, broadcast/vod.py): a playlist
window that moves on by one segment every segment duration, as ffmpeg's does, so that the load
on the origin is the origin's alone (no encoder on the same two cores).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from broadcast.hls import SegmentEntry, parse_media_playlist, subtitle_playlist

#: a player starts once it holds this many segments (hls.js: liveSyncDuration 2.5 s + 1)
START_SEGMENTS = 3


class HttpConnection:
    """GET over one keep-alive connection; reconnects when the server closed it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        for attempt in (0, 1):
            try:
                return await self._get(path)
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def _get(self, path: str) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        request = f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nUser-Agent: parley-bench\r\n\r\n"
        self._writer.write(request.encode())
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = 0
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                close = True
        body = await self._reader.readexactly(length)
        if close:
            await self.close()
        return status, body

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None


@dataclass(slots=True)
class ViewerStats:
    requests: int = 0
    bytes: int = 0
    errors: int = 0
    stalls: int = 0
    stalled_s: float = 0.0
    started: bool = False
    segment_fetch_s: list[float] = field(default_factory=list)


async def viewer(
    host: str,
    port: int,
    base: str,
    tracks: tuple[str, ...],
    stats: ViewerStats,
    stop: asyncio.Event,
    target_s: float,
) -> None:
    """One player: ``tracks`` are the media playlists it follows (video, audio, captions);
    the first one's segments make its buffer."""
    http = HttpConnection(host, port)
    seen: dict[str, int] = {t: -1 for t in tracks}
    buffered_s = 0.0  # media held in the first track, ahead of the playhead once started
    played_at = time.monotonic()
    stalled_since: float | None = None
    try:
        status, body = await http.get(f"{base}/master.m3u8")
        stats.requests += 1
        stats.bytes += len(body)
        while not stop.is_set():
            cycle = time.monotonic()
            for track in tracks:
                status, body = await http.get(f"{base}/{track}/index.m3u8")
                stats.requests += 1
                stats.bytes += len(body)
                if status != 200:
                    stats.errors += 1
                    continue
                playlist = parse_media_playlist(body.decode())
                fresh = [s for s in playlist.segments if s.sequence > seen[track]]
                if seen[track] < 0:
                    fresh = fresh[-START_SEGMENTS:]  # a live player starts near the edge
                for segment in fresh:
                    t0 = time.monotonic()
                    status, body = await http.get(f"{base}/{track}/{segment.uri}")
                    stats.requests += 1
                    stats.bytes += len(body)
                    if status != 200:
                        stats.errors += 1
                        continue
                    stats.segment_fetch_s.append(time.monotonic() - t0)
                    seen[track] = segment.sequence
                    if track == tracks[0]:
                        buffered_s += segment.duration_s
            now = time.monotonic()
            if not stats.started:
                if buffered_s >= START_SEGMENTS * target_s - 0.01:
                    stats.started, played_at = True, now
            else:
                # the playhead moved on by the time since the last look
                buffered_s -= now - played_at
                played_at = now
                if buffered_s < 0:
                    if stalled_since is None:
                        stats.stalls += 1
                        stalled_since = now + buffered_s
                    buffered_s = 0.0
                elif stalled_since is not None:
                    stats.stalled_s += now - stalled_since
                    stalled_since = None
            await asyncio.sleep(max(0.0, target_s - (time.monotonic() - cycle)))
    except (OSError, asyncio.IncompleteReadError, ValueError):
        stats.errors += 1
    finally:
        await http.close()


class LiveReplay:
    """Replays a recording's renditions as a live stream: every ``segment_s`` one more segment
    enters each playlist's window (hard links; the oldest leave)."""

    def __init__(self, vod_hls: Path, out: Path, tracks: tuple[str, ...], window: int) -> None:
        self.vod_hls, self.out, self.tracks, self.window = vod_hls, out, tracks, window
        self.segments = {
            t: list(parse_media_playlist((vod_hls / t / "index.m3u8").read_text()).segments)
            for t in tracks
        }
        self.count = min(len(s) for s in self.segments.values())
        self.sequence = 0

    def start(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        os.link(self.vod_hls / "master.m3u8", self.out / "master.m3u8")
        for track in self.tracks:
            (self.out / track).mkdir(exist_ok=True)
        for _ in range(self.window):
            self.step()

    def step(self) -> None:
        """One more segment in every playlist (the recording loops; names stay unique)."""
        n = self.sequence
        for track, segments in self.segments.items():
            source = segments[n % self.count]
            uri = f"r{n:06d}{Path(source.uri).suffix}"
            with contextlib.suppress(FileExistsError):
                os.link(self.vod_hls / track / source.uri, self.out / track / uri)
            first = max(0, n - self.window + 1)
            entries = [
                SegmentEntry(
                    i, f"r{i:06d}{Path(source.uri).suffix}", segments[i % self.count].duration_s
                )
                for i in range(first, n + 1)
            ]
            text = subtitle_playlist(entries, target_duration_s=1, ended=False)
            tmp = self.out / track / "index.m3u8.tmp"
            tmp.write_text(text)
            os.replace(tmp, self.out / track / "index.m3u8")
            old = self.out / track / f"r{n - self.window - 5:06d}{Path(source.uri).suffix}"
            with contextlib.suppress(FileNotFoundError):
                old.unlink()
        self.sequence += 1

    async def run(self, stop: asyncio.Event, segment_s: float) -> None:
        start = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(
                max(0.0, start + (self.sequence - self.window + 1) * segment_s - time.monotonic())
            )
            self.step()
