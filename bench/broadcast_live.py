"""The live half of bench/broadcast.py: a camera that shows the time, an HLS watcher that notes
when each segment became available, and the arithmetic of latency and caption offsets.

Clocks: every process here is on one machine, so the wall clock (``time.time()``, Chromium's
``Date.now()``) is one clock for the speaker, the watcher and the browser. The camera writes the
milliseconds of each frame into the frame (blocks at the top, with a check row); the watcher
reads them back from the HLS video, and the watch page in Chromium from the picture it shows,
so "glass" is the instant aiortc took the frame and the other glass the page's video.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import av
import numpy as np
from aiortc import VideoStreamTrack
from av import VideoFrame

from bench.hls_viewers import HttpConnection
from broadcast.hls import MPEGTS_HZ, parse_media_playlist

BITS = 16
#: rows of blocks: low 16 bits, high 16 bits, the low bits inverted (a frame fails the check
#: when scaled or blurred across a block edge)
ROWS = 3


class ClockVideo(VideoStreamTrack):
    """Camera frames carrying ``time.time()`` in ms (low 32 bits) when aiortc asks for them."""

    def __init__(self, width: int = 640, height: int = 360) -> None:
        super().__init__()
        self.width, self.height = width, height

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        value = int(time.time() * 1000) & 0xFFFFFFFF
        y = np.full((self.height, self.width), 96, dtype=np.uint8)
        words = (value & 0xFFFF, value >> 16, ~value & 0xFFFF)
        block_w, block_h = self.width // BITS, self.height // 9
        for row, word in enumerate(words):
            for bit in range(BITS):
                shade = 235 if (word >> bit) & 1 else 16
                y[row * block_h : (row + 1) * block_h, bit * block_w : (bit + 1) * block_w] = shade
        uv = np.full((self.height // 2, self.width), 128, dtype=np.uint8)
        frame = VideoFrame.from_ndarray(np.vstack([y, uv]), format="yuv420p")
        frame.pts, frame.time_base = pts, time_base
        return frame


def read_clock(gray: np.ndarray) -> int | None:
    """The ms value of a decoded frame (any size: the blocks scale with it), or None."""
    h, w = gray.shape
    block_w, block_h = w / BITS, h / 9
    words = []
    for row in range(ROWS):
        word = 0
        for bit in range(BITS):
            if gray[int((row + 0.5) * block_h), int((bit + 0.5) * block_w)] > 128:
                word |= 1 << bit
        words.append(word)
    if words[2] != ~words[0] & 0xFFFF:
        return None
    return words[0] | words[1] << 16


@dataclass(slots=True)
class Fetched:
    sequence: int
    uri: str
    duration_s: float
    #: wall-clock time the watcher first saw it listed (polling every POLL_S)
    listed_s: float
    body: bytes


@dataclass(slots=True)
class Watcher:
    """Polls playlists faster than a player (to date each segment's arrival within POLL_S)
    and keeps every segment."""

    host: str
    port: int
    base: str
    tracks: tuple[str, ...]
    poll_s: float = 0.1
    got: dict[str, list[Fetched]] = field(default_factory=dict)

    async def run(self, stop: asyncio.Event) -> None:
        http = HttpConnection(self.host, self.port)
        last = {t: -1 for t in self.tracks}
        while not stop.is_set():
            for track in self.tracks:
                status, body = await http.get(f"{self.base}/{track}/index.m3u8")
                if status != 200:
                    continue
                now = time.time()
                for segment in parse_media_playlist(body.decode()).segments:
                    if segment.sequence <= last[track]:
                        continue
                    status, data = await http.get(f"{self.base}/{track}/{segment.uri}")
                    if status == 200:
                        self.got.setdefault(track, []).append(
                            Fetched(segment.sequence, segment.uri, segment.duration_s, now, data)
                        )
                        last[track] = segment.sequence
            await asyncio.sleep(self.poll_s)
        await http.close()


def decode_ts(body: bytes, kind: str) -> list[Any]:
    import io

    with av.open(io.BytesIO(body), format="mpegts") as container:
        stream = container.streams.video[0] if kind == "video" else container.streams.audio[0]
        return list(container.decode(stream))


def video_latency(segments: list[Fetched], hold_back_s: float) -> dict[str, Any]:
    """Per frame: capture (from its pixels) -> its segment listed at the origin; and -> shown by
    a player that plays ``hold_back_s`` behind the newest listed segment's end (hls.js:
    liveSyncDuration), i.e. at the first listing whose media end
    reaches the frame's time + hold_back_s."""
    frames: list[tuple[float, float, int]] = []  # (pts s, captured s, segment index)
    ends: list[tuple[float, float]] = []  # (media end s, listed s)
    for index, segment in enumerate(segments):
        decoded = decode_ts(segment.body, "video")
        if not decoded:
            continue
        for frame in decoded:
            value = read_clock(frame.to_ndarray(format="gray"))
            if value is not None and frame.pts is not None:
                frames.append((float(frame.pts * frame.time_base), value / 1000, index))
        first = decoded[0]
        ends.append((float(first.pts * first.time_base) + segment.duration_s, segment.listed_s))
    if not frames:
        return {"frames": 0}
    # the clock is 32 bits of ms: unwrap against the watcher's clock
    now_ms = int(time.time() * 1000)
    high = now_ms - (now_ms & 0xFFFFFFFF)
    origin = [segments[i].listed_s - (high / 1000 + c) for _, c, i in frames]
    shown = []
    for pts, captured, _ in frames:
        listed = next((t for end, t in ends if end >= pts + hold_back_s), None)
        if listed is not None:
            shown.append(listed - (high / 1000 + captured))
    return {
        "frames": len(frames),
        "origin_s": summary(origin),
        "player_s": summary(shown),
        "hold_back_s": hold_back_s,
    }


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    return {
        "n": len(values),
        "median": round(median(ordered), 3),
        "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3),
        "min": round(ordered[0], 3),
        "max": round(ordered[-1], 3),
    }


_MAP = re.compile(r"X-TIMESTAMP-MAP=MPEGTS:(\d+),LOCAL:(\d\d):(\d\d):(\d\d)\.(\d\d\d)")
_CUE = re.compile(
    r"^(\S+)\n(\d\d):(\d\d):(\d\d)\.(\d\d\d) --> (\d\d):(\d\d):(\d\d)\.(\d\d\d)\n(.*)$"
)


def _seconds(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def vtt_cues(segments: list[Fetched]) -> list[tuple[float, float, str, str]]:
    """(start, end, id, text) of every cue on the 90 kHz clock in seconds, first showing."""
    cues: dict[str, tuple[float, float, str, str]] = {}
    for segment in segments:
        text = segment.body.decode()
        found = _MAP.search(text)
        if found is None:
            continue
        base = int(found.group(1)) / MPEGTS_HZ - _seconds(*found.group(2, 3, 4, 5))
        for block in text.split("\n\n")[1:]:
            match = _CUE.match(block.strip())
            if match and match.group(1) not in cues:
                g = match.groups()
                start, end = base + _seconds(*g[1:5]), base + _seconds(*g[5:9])
                cues[g[0]] = (start, end, g[0], g[9])
    return sorted(cues.values())


def cue_listed(segments: list[Fetched]) -> dict[str, float]:
    """Cue id -> when the first caption segment holding it was listed (wall clock)."""
    listed: dict[str, float] = {}
    for segment in segments:
        for block in segment.body.decode().split("\n\n")[1:]:
            match = _CUE.match(block.strip())
            if match:
                listed.setdefault(match.group(1), segment.listed_s)
    return listed


def player_position(video: list[Fetched], hold_back_s: float) -> list[tuple[float, float]]:
    """(wall clock, media time s) at each video listing: where a player that plays
    ``hold_back_s`` behind the newest listed segment's end is then (the model of
    :func:`video_latency`)."""
    points = []
    newest = float("-inf")
    for segment in video:
        decoded = decode_ts(segment.body, "video")
        if decoded and decoded[0].pts is not None:
            first = decoded[0]
            newest = max(newest, float(first.pts * first.time_base) + segment.duration_s)
            points.append((segment.listed_s, newest - hold_back_s))
    return points


def shown_cues(
    cues: list[tuple[float, float, str, str]],
    listed: dict[str, float],
    positions: list[tuple[float, float]],
) -> list[tuple[float, float, str, str]]:
    """The cues as a player shows them: from their start, or from where the player was when
    their caption segment was listed, if that is later (a cue listed after its time shows late,
    until its end; one listed after its end never shows)."""
    shown = []
    for start, end, cue_id, text in cues:
        at = listed.get(cue_id)
        position = max((p for t, p in positions if t <= at), default=None) if at else None
        begin = start if position is None else max(start, position)
        if begin < end:
            shown.append((begin, end, cue_id, text))
    return shown


def chromium_cues(
    cues: list[tuple[float, float, str, str]], late: dict[str, float]
) -> list[tuple[float, float, str, str]]:
    """The cues Chromium showed, from when it showed them (a cue it never showed is left out)."""
    return [
        (start + max(0.0, late[cue_id]), end, cue_id, text)
        for start, end, cue_id, text in cues
        if cue_id in late and start + max(0.0, late[cue_id]) < end
    ]


def program_audio(segments: list[Fetched], rate: int = 100) -> tuple[float, np.ndarray]:
    """The floor audio's envelope (RMS per 1/rate s) from its first PTS (s)."""
    samples: list[np.ndarray] = []
    first_pts: float | None = None
    position = 0
    for segment in segments:
        for frame in decode_ts(segment.body, "audio"):
            pcm = frame.to_ndarray().astype(np.float64).reshape(-1)
            if first_pts is None and frame.pts is not None:
                first_pts = float(frame.pts * frame.time_base)
            samples.append(pcm)
            position += len(pcm)
            frame_rate = frame.sample_rate
    if first_pts is None:
        return 0.0, np.zeros(0)
    pcm = np.concatenate(samples)
    block = frame_rate // rate
    pcm = pcm[: len(pcm) // block * block].reshape(-1, block)
    return first_pts, np.sqrt((pcm**2).mean(axis=1))


def file_envelope(path: Path, rate: int = 100) -> np.ndarray:
    resampler = av.AudioResampler(format="flt", layout="mono", rate=16_000)
    parts: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    pcm = np.concatenate(parts).astype(np.float64)
    block = 16_000 // rate
    pcm = pcm[: len(pcm) // block * block].reshape(-1, block)
    return np.sqrt((pcm**2).mean(axis=1))


def align(program: np.ndarray, clip: np.ndarray, rate: int = 100) -> tuple[float, float]:
    """Where the looping clip's time 0 falls in the program envelope (s from its start, the
    first loop at or after 0) and the correlation there."""
    n = len(program)
    tiled = np.tile(clip, n // len(clip) + 2)
    best, best_lag = -2.0, 0
    p = (program - program.mean()) / (program.std() or 1.0)
    for lag in range(len(clip)):
        ref = tiled[lag : lag + n]
        r = (ref - ref.mean()) / (ref.std() or 1.0)
        score = float((p * r).mean())
        if score > best:
            best, best_lag = score, lag
    # program[i] ~ clip[(i + lag) % L]: clip time 0 is at program index (L - lag) % L
    return ((len(clip) - best_lag) % len(clip)) / rate, best


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9']+", text.lower()))


def caption_offsets(
    cues: list[tuple[float, float, str, str]],
    clip_zero_s: float,
    loop_s: float,
    utterances: list[dict[str, Any]],
    from_s: float,
    until_s: float,
) -> list[dict[str, Any]]:
    """Each cue is matched to the utterance whose reference shares most of its words (at least
    half), in the loop of the clip whose speech start is nearest; per utterance spoken: its
    first cue's start minus the speech start, its last cue's end minus the speech end."""
    spoken = []
    loop = -1  # the program may start inside a loop of the clip
    while clip_zero_s + loop * loop_s < until_s:
        for u in utterances:
            start = clip_zero_s + loop * loop_s + u["speech_start"]
            end = clip_zero_s + loop * loop_s + u["speech_end"]
            if start >= from_s and end <= until_s:
                spoken.append((start, end, u["id"], loop, _words(u["reference"])))
        loop += 1
    found: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for cue_start, cue_end, _, text in cues:
        heard = _words(text)
        if not heard:
            continue
        scored = [(len(heard & ref) / len(heard), s) for s in spoken for ref in (s[4],)]
        best = max((score for score, _ in scored), default=0.0)
        if best < 0.5:
            continue
        candidates = [s for score, s in scored if score == best]
        start, end, uid, loop, _ = min(candidates, key=lambda s: abs(s[0] - cue_start))
        if abs(start - cue_start) > loop_s / 2:
            continue  # its utterance was said outside the window watched
        found.setdefault((uid, loop), []).append((cue_start, cue_end))
    rows = []
    for (uid, loop), times in sorted(found.items(), key=lambda kv: min(kv[1])):
        start, end = next((s[0], s[1]) for s in spoken if s[2] == uid and s[3] == loop)
        rows.append(
            {
                "utterance": uid,
                "loop": loop,
                "start_offset_s": round(min(t[0] for t in times) - start, 3),
                "end_offset_s": round(max(t[1] for t in times) - end, 3),
                "cues": len(times),
            }
        )
    return rows


#: the watch page's picture, read back: the camera's milliseconds, and now
GLASS_JS = """() => {
  const v = document.getElementById('watch-video');
  if (!v || v.readyState < 2 || !v.videoWidth || v.paused) return null;
  const c = window.__glass || (window.__glass = document.createElement('canvas'));
  c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext('2d', { willReadFrequently: true });
  g.drawImage(v, 0, 0);
  const w = c.width, bw = w / 16, bh = c.height / 9;
  const d = g.getImageData(0, 0, w, Math.ceil(bh * 3)).data;
  const words = [];
  for (let row = 0; row < 3; row++) {
    let word = 0;
    for (let bit = 0; bit < 16; bit++) {
      const x = Math.floor((bit + 0.5) * bw), y = Math.floor((row + 0.5) * bh);
      if (d[(y * w + x) * 4] > 128) word |= 1 << bit;
    }
    words.push(word);
  }
  if (words[2] !== (~words[0] & 0xffff)) return null;
  const value = (words[0] | (words[1] << 16)) >>> 0;
  let glass = (Date.now() % 4294967296) - value;
  if (glass < 0) glass += 4294967296;
  const hls = window.watch && window.watch.hls;
  return { glass_ms: glass, hls_latency_s: hls ? hls.latency : null };
}"""


#: the cues the page's showing caption track has active now: id -> how long after its start
#: (the page's media time) it is first seen active
CUES_JS = """() => {
  const v = document.getElementById('watch-video');
  const seen = window.__cues || (window.__cues = {});
  for (const t of v.textTracks) {
    if (t.mode !== 'showing' || !t.activeCues) continue;
    for (const c of t.activeCues) {
      const id = c.id.replace(/^hlsjscc.*?_/, '');  // hls.js prefixes the file's id
      if (id && !(id in seen)) seen[id] = v.currentTime - c.startTime;
    }
  }
  return Object.keys(seen).length;
}"""


def chromium_glass(watch_url: str, seconds: float, folder: Path) -> dict[str, Any]:
    """Headless Chromium plays the watch page with the original-language captions on; every
    250 ms the picture it shows is read back: glass-to-glass = now - the camera's time in that
    picture (a thread of its own: Playwright's sync API runs no event loop); every 100 ms the
    active caption cues: how late each first showed (``cue_late_s``: id -> s after its start,
    on the page's own timeline)."""
    from tests.support.browser import launched_chromium, silent_wav
    from tests.support.netns import Namespace

    samples: list[float] = []
    latencies: list[float] = []
    watching_from: float | None = None
    netns = Namespace(isolated=False)
    try:
        with launched_chromium(netns, folder, silent_wav(folder / "mic.wav")) as browser:
            page = browser.new_page()
            page.goto(watch_url)
            deadline = time.monotonic() + 60
            while page.evaluate(GLASS_JS) is None:
                if time.monotonic() > deadline:
                    return {"error": "the watch page did not play"}
                page.wait_for_timeout(250)
            page.get_by_label("Captions", exact=True).select_option(index=1)  # the original
            page.wait_for_timeout(3000)  # settled at its live position
            watching_from = time.time()
            end = time.monotonic() + seconds
            tick = 0
            while time.monotonic() < end:
                if tick % 3 == 0:
                    got = page.evaluate(GLASS_JS)
                    if got is not None:
                        samples.append(got["glass_ms"] / 1000)
                        if got["hls_latency_s"] is not None:
                            latencies.append(float(got["hls_latency_s"]))
                page.evaluate(CUES_JS)
                tick += 1
                page.wait_for_timeout(80)
            late = page.evaluate("() => window.__cues || {}")
    finally:
        netns.close()
    return {
        "glass_s": summary(samples),
        "hls_latency_s": summary(latencies),
        "cue_late_s": {str(k): round(float(v), 3) for k, v in late.items()},
        "watching_from": watching_from,
    }
