"""Issue 15, acceptance 3 in real headless Chromium: a kept broadcast plays as a VOD with hls.js.

A room is broadcast (an English speaker on camera, a French interpreter on air) for about 25 s
with ``[retention] kinds = ["broadcasts"]``; the room empties, the broadcast ends. A host lists
the recording (``recordings``) and Chromium plays its ``vod_url`` with the vendored hls.js: a VOD
of the whole length, both audio renditions and the caption track listed; it plays from the
start, then, sought to 3 s before the end, plays to the end (``ended``), with the French
rendition selected on the way. Captions are off here (no models: the corrected line is the
acceptance test's, tests/acceptance/test_broadcast_vod.py).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect
from websockets.typing import Origin

from tests.browser.test_broadcast_watch import start_room, stop_all
from tests.support.browser import launched_chromium, silent_wav
from tests.support.netns import Namespace
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.browser]

ROOM = "onair"
BROADCAST_S = 25

PLAY_JS = """async (url) => {
  const { default: Hls } = await import('/vendor/hls/hls.esm.js');
  const video = document.createElement('video');
  video.muted = true;
  document.body.append(video);
  const hls = new Hls();
  window.__vod = { hls, video, errors: [], ended: false };
  hls.on(Hls.Events.ERROR, (_, d) => { if (d.fatal) window.__vod.errors.push(d.details); });
  video.addEventListener('ended', () => { window.__vod.ended = true; });
  hls.loadSource(url);
  hls.attachMedia(video);
  await new Promise((ok) => hls.on(Hls.Events.MANIFEST_PARSED, ok));
  await video.play();
  return true;
}"""

STATE_JS = """() => {
  const { hls, video, errors, ended } = window.__vod;
  return { time: video.currentTime, duration: video.duration, ended, errors,
           frames: video.getVideoPlaybackQuality().totalVideoFrames,
           audio: hls.audioTracks.map((t) => t.name), audioTrack: hls.audioTrack,
           subtitles: hls.subtitleTracks.map((t) => t.name),
           live: hls.levels.length ? hls.levels[0].details?.live : null };
}"""


def server_config(tmp: Path) -> str:
    return (
        f'[server]\ndata_dir = "{tmp / "data"}"\n'
        '[media]\nice_host_addresses = ["127.0.0.1"]\n'
        "[captions]\nenabled = false\n"
        '[retention]\nmode = "jsonl"\nkinds = ["broadcasts"]\n'
        f'[broadcast]\ndir = "{tmp / "live"}"\n'
        "renditions = [{ width = 320, height = 180, video_kbps = 300 }]\n"
        "fps = 10\nsegment_s = 1.0\n"
    )


def listing(ws_url: str) -> dict[str, Any]:
    """A host of the room (the first to join it again) lists its recordings."""
    origin = ws_url.replace("ws://", "http://").rsplit("/", 1)[0]
    with connect(ws_url, origin=Origin(origin)) as ws:
        ws.send(json.dumps({"type": "hello", "protocol": 1}))
        ws.send(json.dumps({"type": "join", "room": ROOM, "name": "Host"}))
        ws.send(json.dumps({"type": "recordings"}))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            message = json.loads(ws.recv(timeout=10))
            if message["type"] == "recordings":
                result: dict[str, Any] = message
                return result
    raise AssertionError("no recordings message")


def test_a_kept_broadcast_plays_as_a_vod_in_chromium(host_netns: Namespace, tmp_path: Path) -> None:
    netns = host_netns
    procs = []
    with ServerProcess(tmp_path, server_config(tmp_path), netns=netns) as server:
        try:
            procs = start_room(netns, server.ws_url)
            time.sleep(BROADCAST_S)
        finally:
            stop_all(procs)  # the room empties: the broadcast ends
        recordings = tmp_path / "data" / "recordings" / ROOM
        deadline = time.monotonic() + 60
        while not list(recordings.glob("*/info.json")):
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.5)
        kept = listing(server.ws_url)["recordings"][0]
        info = json.loads(next(recordings.glob("*/info.json")).read_text())
        assert info["audio"] == ["a_floor", "a_fr"], info
        length_s = info["duration_s"]
        assert BROADCAST_S - 10 < length_s < BROADCAST_S + 10, info
        with launched_chromium(netns, tmp_path, silent_wav(tmp_path / "mic.wav")) as browser:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{server.http_url}/healthz")
            assert page.evaluate(PLAY_JS, server.http_url + kept["vod_url"])
            page.wait_for_timeout(3000)
            state = page.evaluate(STATE_JS)
            print(f"VOD from the start: {state}")
            assert state["live"] is False and not state["errors"], state
            assert abs(state["duration"] - length_s) < 2.0, state
            assert state["time"] > 1.0 and state["frames"] > 5, state
            # captions off: the original track only (its segments empty)
            assert len(state["audio"]) == 2 and len(state["subtitles"]) == 1, state
            page.evaluate("() => { window.__vod.hls.audioTrack = 1; }")
            page.evaluate("(t) => { window.__vod.video.currentTime = t; }", length_s - 3)
            deadline = time.monotonic() + 30
            while not (state := page.evaluate(STATE_JS))["ended"]:
                assert time.monotonic() < deadline and not state["errors"], state
                page.wait_for_timeout(500)
            print(f"VOD at its end: {state}")
            assert state["audioTrack"] == 1 and state["time"] > length_s - 1.5, state
            assert not errors, errors
