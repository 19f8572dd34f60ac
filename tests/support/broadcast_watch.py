"""Helpers for the broadcast tests (tests/browser/test_broadcast_watch.py): speakers in their own
processes, the watch page's audio envelope (WebAudio, in the page), envelope correlation with a
looping clip, and nginx started on a free loopback port with the shipped configuration."""

from __future__ import annotations

import getpass
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import av
import numpy as np

REPO = Path(__file__).resolve().parents[2]
NGINX_CONF = REPO / "config" / "nginx-broadcast.conf"

#: record the page's <video> output: RMS per ScriptProcessor block (1024 samples)
RECORD_JS = """() => {
  if (window.__env) return window.__sr;
  const video = document.getElementById('watch-video');
  const ctx = new AudioContext();
  const source = ctx.createMediaElementSource(video);
  const proc = ctx.createScriptProcessor(1024, 1, 1);
  window.__env = [];
  window.__sr = ctx.sampleRate;
  proc.onaudioprocess = (e) => {
    const d = e.inputBuffer.getChannelData(0);
    let s = 0;
    for (let i = 0; i < d.length; i++) s += d[i] * d[i];
    window.__env.push(Math.sqrt(s / d.length));
  };
  source.connect(proc);
  proc.connect(ctx.destination);
  source.connect(ctx.destination);
  ctx.resume();
  return ctx.sampleRate;
}"""
BLOCK = 1024

#: what the player does: position, frames, audio and caption tracks, the latency it reports
PLAYER_JS = """() => {
  const v = document.getElementById('watch-video');
  const q = v.getVideoPlaybackQuality();
  const w = window.watch;
  const hls = w.hls;
  const showing = [...v.textTracks].filter((t) => t.mode === 'showing');
  return {
    currentTime: v.currentTime, paused: v.paused, frames: q.totalVideoFrames,
    dropped: q.droppedVideoFrames, ended: w.ended,
    audioTrack: hls ? hls.audioTrack : null,
    audioNames: hls ? hls.audioTracks.map((t) => t.name) : [],
    subtitleNames: hls ? hls.subtitleTracks.map((t) => t.name) : [],
    subtitleTrack: hls ? hls.subtitleTrack : null,
    showing: showing.map((t) => ({language: t.language, label: t.label,
      cues: t.cues ? [...t.cues].map((c) => ({id: c.id, text: c.text, start: c.startTime})) : []})),
    latency: hls ? hls.latency : null,
    playingDate: hls && hls.playingDate ? hls.playingDate.getTime() : null,
    now: Date.now(),
    status: document.getElementById('watch-status').textContent,
  };
}"""


def speaker(
    prefix: list[str], ws: str, room: str, name: str, clip: Path, seconds: float, *extra: str
) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [*prefix, sys.executable, "-m", "tests.support.speak", ws, room, name, str(clip)]
        + [str(seconds), "--loop", *extra],
        cwd=REPO,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    assert line.startswith("joined"), line
    return proc


def clip_samples(path: Path, rate: int) -> np.ndarray:
    """The clip as the speaker sends it: mono float at ``rate``."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    parts: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    return np.concatenate(parts)


def envelope(samples: np.ndarray, block: int = BLOCK) -> np.ndarray:
    frames = samples[: len(samples) // block * block].reshape(-1, block).astype(np.float64)
    return np.sqrt((frames**2).mean(axis=1))


def looped_correlation(received: np.ndarray, clip_env: np.ndarray) -> float:
    """Best Pearson correlation of ``received`` (an envelope) with the looping clip's envelope
    at any offset in the loop."""
    n = len(received)
    if n < 20 or received.std() == 0:
        return 0.0
    tiled = np.tile(clip_env, n // len(clip_env) + 2)
    best = -1.0
    for lag in range(len(clip_env)):
        ref = tiled[lag : lag + n]
        if ref.std() == 0:
            continue
        best = max(best, float(np.corrcoef(received, ref)[0, 1]))
    return best


def record(page: Any, seconds: float) -> np.ndarray:
    """The page's audio envelope over the next ``seconds``."""
    start = int(page.evaluate("() => window.__env.length"))
    page.wait_for_timeout(int(seconds * 1000))
    values = page.evaluate(f"() => window.__env.slice({start})")
    return np.asarray(values, dtype=np.float64)


def wait_for(predicate: Any, timeout_s: float, what: str, page: Any | None = None) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {what}")
        if page is not None:
            page.wait_for_timeout(250)
        else:
            time.sleep(0.25)


def start_nginx(
    prefix: list[str], tmp: Path, *, port: int, parley_port: int, live_dir: Path
) -> subprocess.Popen[bytes]:
    """Debian's nginx with the shipped config, its listen address, upstream and broadcast
    directory pointed at this test's (the only lines a deployment edits)."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    conf = NGINX_CONF.read_text()
    conf = re.sub(r"listen\s+[^;]+;", f"listen 127.0.0.1:{port};", conf)
    conf = re.sub(r"server\s+127\.0\.0\.1:8750;", f"server 127.0.0.1:{parley_port};", conf)
    conf = conf.replace("/var/lib/parley/broadcast/", f"{live_dir}/")
    conf = conf.replace("/var/log/nginx/", f"{tmp}/")
    conf = conf.replace("/run/nginx-parley.pid", f"{tmp}/nginx.pid")
    # pytest's tmp folders are private to their owner: the workers must run as that owner
    conf = conf.replace("user www-data;", f"user {getpass.getuser()};" if os.geteuid() == 0 else "")
    (tmp / "nginx-temp").mkdir(exist_ok=True)
    path = tmp / "nginx.conf"
    path.write_text(conf)
    with (tmp / "nginx.stderr").open("wb") as stderr:
        return subprocess.Popen(
            [*prefix, nginx, "-c", str(path), "-p", str(tmp), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
