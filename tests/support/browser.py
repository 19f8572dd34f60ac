"""Helpers for the browser tests (tests/browser): Chromium's flags and launch, joining a page,
page and stats probes, fake-microphone WAVs, dropping connections.

`page` arguments are Playwright sync-API pages (tests.support.firefox.FirefoxPage has the part
the probes use). The server is tests.support.server.ServerProcess, the namespace
tests.support.netns.Namespace.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright import sync_api

from tests.support.netns import Namespace
from tests.support.waits import TIME_SCALE

MEDIA_TIMEOUT_S = 15.0
STATE_TIMEOUT_MS = 10_000


def wait_until(page: Any, predicate_js: str, timeout_ms: int = STATE_TIMEOUT_MS) -> None:
    """Poll a JS function until it returns true.

    Not page.wait_for_function: Playwright evals its predicate inside the page, which the
    server's Content-Security-Policy (script-src 'self', no unsafe-eval) rightly forbids, and
    the test should run the page under its real CSP.
    """
    deadline = time.monotonic() + timeout_ms / 1000 * TIME_SCALE
    while not page.evaluate(predicate_js):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {predicate_js}")
        page.wait_for_timeout(100)


def open_page(
    browser: Any, base_url: str, name: str, room: str, log: list[str], query: str = ""
) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 760})
    page = context.new_page()
    page.on("console", lambda m: log.append(f"[{name}] {m.type}: {m.text}"))
    page.on("pageerror", lambda e: log.append(f"[{name}] pageerror: {e}"))
    page.goto(f"{base_url}/?room={room}{query}")
    # the link pre-fills the room; the page's modules finish after the load event (web/i18n.js
    # awaits its message catalog at the top level), so wait for it rather than read it at once
    try:
        wait_until(
            page, f"() => document.getElementById('room-input').value === {json.dumps(room)}"
        )
    except AssertionError as exc:  # say what the page said (a module that failed to load…)
        raise AssertionError(f"{exc}; {page.url}; page log: {log[-20:]}") from None
    assert page.get_by_label("Room", exact=True).input_value() == room
    page.get_by_label("Your name", exact=True).fill(name)
    page.get_by_role("button", name="Join", exact=True).click()
    wait_until(page, "() => Boolean(window.parley) && window.parley.state === 'joined'")
    return page


def snapshot(page: Any) -> dict[str, Any]:
    snap: dict[str, Any] = page.evaluate("window.parley.snapshot()")
    return snap


#: inbound-rtp numbers from the page's RTCPeerConnection, per kind
INBOUND_STATS_JS = """async () => {
  const out = {connection: window.parley.pc.connectionState};
  const report = await window.parley.pc.getStats();
  report.forEach((s) => {
    if (s.type !== 'inbound-rtp') return;
    const prev = out[s.kind] || {packetsReceived: 0, framesDecoded: 0, totalAudioEnergy: 0};
    out[s.kind] = {
      packetsReceived: prev.packetsReceived + (s.packetsReceived || 0),
      framesDecoded: prev.framesDecoded + (s.framesDecoded || 0),
      totalAudioEnergy: prev.totalAudioEnergy + (s.totalAudioEnergy || 0),
      frameWidth: s.frameWidth, framesPerSecond: s.framesPerSecond,
      codec: report.get(s.codecId)?.mimeType,
    };
  });
  return out;
}"""


def wait_for_media(page: Any) -> dict[str, Any]:
    """Poll getStats until inbound video is decoded and inbound audio carries energy."""
    deadline = time.monotonic() + MEDIA_TIMEOUT_S * TIME_SCALE
    while True:
        stats: dict[str, Any] = page.evaluate(INBOUND_STATS_JS)
        video, audio = stats.get("video", {}), stats.get("audio", {})
        if video.get("framesDecoded", 0) > 0 and audio.get("totalAudioEnergy", 0) > 0:
            return stats
        if time.monotonic() > deadline:
            return stats
        page.wait_for_timeout(250)


#: Per mid: inbound-rtp counters, the transceiver's currentDirection, and the m-section of the
#: remote offer (direction, msid = "<participant_id> <track_id>"); `mlines` counts m-sections.
MID_STATS_JS = r"""async () => {
  const pc = window.parley.pc;
  const sdp = pc.remoteDescription ? pc.remoteDescription.sdp : '';
  const sections = sdp.split(/\r\n(?=m=)/).slice(1);
  const out = {mlines: sections.length, offer: {}, directions: {}, mids: {}};
  for (const s of sections) {
    const mid = (s.match(/^a=mid:([^\r\n]+)/m) || [])[1];
    out.offer[mid] = {
      direction: (s.match(/^a=(sendrecv|sendonly|recvonly|inactive)\r?$/m) || [])[1],
      msid: (s.match(/^a=msid:([^\r\n]+)/m) || [])[1] || null,
    };
  }
  for (const t of pc.getTransceivers()) out.directions[t.mid] = t.currentDirection;
  (await pc.getStats()).forEach((s) => {
    if (s.type !== 'inbound-rtp' || s.mid == null) return;
    const m = out.mids[s.mid] ||
      {kind: s.kind, ssrcs: [], packetsReceived: 0, framesDecoded: 0, totalAudioEnergy: 0};
    m.ssrcs.push(s.ssrc);
    m.packetsReceived += s.packetsReceived || 0;
    m.framesDecoded += s.framesDecoded || 0;
    m.totalAudioEnergy += s.totalAudioEnergy || 0;
    out.mids[s.mid] = m;
  });
  return out;
}"""

#: Frames that count as "video flows" on a mid (not a stray keyframe), about 1 s at 30 fps.
MIN_NEW_FRAMES = 30


def mid_counters(stats: dict[str, Any], mid: str) -> tuple[int, float]:
    """(framesDecoded, totalAudioEnergy) of one mid in a MID_STATS_JS result."""
    got = stats["mids"].get(mid, {})
    return got.get("framesDecoded", 0), got.get("totalAudioEnergy", 0.0)


def wait_for_mid_media(
    page: Any, mids: dict[str, str], since: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Poll MID_STATS_JS until mids["video"] decoded MIN_NEW_FRAMES more frames and mids["audio"]
    gained audio energy, compared with the MID_STATS_JS result `since` (if given)."""
    frames0 = mid_counters(since, mids["video"])[0] if since else 0
    energy0 = mid_counters(since, mids["audio"])[1] if since else 0.0
    deadline = time.monotonic() + MEDIA_TIMEOUT_S * TIME_SCALE
    while True:
        stats: dict[str, Any] = page.evaluate(MID_STATS_JS)
        frames = mid_counters(stats, mids["video"])[0]
        energy = mid_counters(stats, mids["audio"])[1]
        if frames >= frames0 + MIN_NEW_FRAMES and energy > energy0:
            return stats
        if time.monotonic() > deadline:
            return stats
        page.wait_for_timeout(250)


def remote_mids(page: Any, participant_id: str) -> dict[str, str]:
    """kind -> mid of the tracks the page maps to `participant_id` (through the offer's slots)."""
    return {
        t["kind"]: t["mid"]
        for t in snapshot(page)["remoteTracks"]
        if t["participantId"] == participant_id
    }


def wait_for_remote_tracks(page: Any, participant_id: str, count: int = 2) -> dict[str, str]:
    """Wait until the page receives `count` tracks of `participant_id`; return kind -> mid."""
    wait_until(
        page,
        f"""() => [...window.parley.remoteTracks.values()]
            .filter((t) => t.participantId === {json.dumps(participant_id)}).length === {count}""",
    )
    return remote_mids(page, participant_id)


def tile_state(page: Any, participant_id: str, mids: dict[str, str]) -> dict[str, Any]:
    """What the participant's tile plays: is each mid's receiver track in its <video>, is it
    live and unmuted, the decoded width; and which tiles exist."""
    return dict(
        page.evaluate(
            """([id, mids]) => {
              const tile = [...document.querySelectorAll('#tiles .tile')]
                .find((t) => t.dataset.participantId === id);
              const video = tile && tile.querySelector('video');
              const played = video && video.srcObject ? video.srcObject.getTracks() : [];
              const byMid = new Map(window.parley.pc.getTransceivers().map((t) => [t.mid, t]));
              return {
                name: tile ? tile.querySelector('.name').textContent : null,
                videoWidth: video ? video.videoWidth : 0,
                tracks: Object.entries(mids).map(([kind, mid]) => {
                  const track = byMid.get(mid).receiver.track;
                  return {kind, mid, inTile: played.includes(track), muted: track.muted,
                          readyState: track.readyState};
                }),
                tiles: [...document.querySelectorAll('#tiles .tile')]
                  .map((t) => t.dataset.participantId),
              };
            }""",
            [participant_id, mids],
        )
    )


#: Hold every offer the page's session gets (each is answered only on RELEASE_OFFERS_JS) and
#: record them all in window.parley._offersSeen, so that changes fold into one later offer.
HOLD_OFFERS_JS = """() => {
  const s = window.parley;
  const handle = s._handleOffer;
  s._offersSeen = [];
  s._held = [];
  s._handleOffer = (msg) => {
    s._offersSeen.push({revision: msg.revision, slots: msg.slots});
    if (!s._held) return handle.call(s, msg);
    return new Promise((ok, fail) => s._held.push(() => handle.call(s, msg).then(ok, fail)));
  };
}"""
RELEASE_OFFERS_JS = """() => {
  const s = window.parley;
  const held = s._held;
  s._held = null;
  held.forEach((answer) => answer());
  return held.length;
}"""


# -- shared setup for the real-browser tests -------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")


def chromium_args(fake_audio_wav: Path) -> list[str]:
    """Chromium flags for a hermetic test: fake camera and microphone (the WAV), fake screen."""
    return [
        "--no-sandbox",  # root in a container
        "--use-fake-ui-for-media-stream",  # grant getUserMedia/getDisplayMedia without a prompt
        "--use-fake-device-for-media-stream=fps=15",  # fake camera (test pattern) + microphone
        f"--use-file-for-fake-audio-capture={fake_audio_wav}",  # the microphone plays the WAV
        "--auto-select-desktop-capture-source=Entire screen",
        "--allow-loopback-in-peer-connection",  # else no ICE candidates on a loopback-only host
        "--autoplay-policy=no-user-gesture-required",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-pings",
        "--no-first-run",
    ]


def chromium_executable(netns: Namespace, bin_dir: Path) -> Path:
    """Debian's Chromium, wrapped to run inside the test's network namespace (if any)."""
    if not netns.prefix:
        return CHROMIUM
    # Playwright talks to Chromium over inherited pipes, which nsenter + exec keep.
    wrapper = bin_dir / "chromium-in-netns"
    wrapper.write_text(f'#!/bin/sh\nexec {" ".join(netns.prefix)} {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


@contextlib.contextmanager
def launched_chromium(netns: Namespace, bin_dir: Path, mic: Path) -> Iterator[Any]:
    """Headless Debian Chromium in the test's namespace, its microphone playing ``mic``."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not installed (make system-deps)")
    executable = chromium_executable(netns, bin_dir)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(executable), headless=True, args=chromium_args(mic)
        )
        try:
            yield browser
        finally:
            browser.close()


#: a server config for browser tests in a namespace: loopback ICE, captions on or off
def browser_server_config(*, captions: bool) -> str:
    return (
        '[media]\nice_host_addresses = ["127.0.0.1"]\n'
        f"[captions]\nenabled = {'true' if captions else 'false'}\n"
    )


def silent_wav(path: Path, seconds: float = 1.0) -> Path:
    """A 48 kHz mono WAV of silence for the fake microphone of a page that only listens."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(48_000)
        out.writeframes(b"\0\0" * int(48_000 * seconds))
    return path


def make_speech_wav(
    out: Path, source: Path, *, lead_s: float, take_s: float, tail_s: float
) -> Path:
    """48 kHz mono WAV for the fake microphone: `lead_s` of silence, the first `take_s` of
    `source`, `tail_s` of silence (Chromium loops the file)."""
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(source),
            "-filter_complex",
            f"[0:a]atrim=0:{take_s},asetpts=N/SR/TB,aresample=48000,"
            f"adelay={int(lead_s * 1000)}:all=1,apad=pad_dur={tail_s}",
            "-ac",
            "1",
            "-c:a",
            "pcm_s16le",
            str(out),
        ],
        check=True,
        timeout=60,
    )
    return out


def established_peers(netns: Namespace, server_port: int) -> set[int]:
    """Client ports of the TCP connections established to the server's port."""
    done = subprocess.run(
        [*netns.prefix, "ss", "-Htn", "state", "established", f"( sport = :{server_port} )"],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    ports = set()
    for line in done.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 4:
            ports.add(int(fields[3].rsplit(":", 1)[1]))
    return ports


def drop_connections(netns: Namespace, server_port: int, client_ports: set[int]) -> None:
    """Destroy the server's end of these connections (the client sees a reset): what a network
    failure or a server dropping a client looks like. Needs root (sock_destroy)."""
    for port in client_ports:
        subprocess.run(
            [
                *netns.prefix,
                *("ss", "-K", "-tn", "state", "established"),
                f"( sport = :{server_port} and dport = :{port} )",
            ],
            capture_output=True,
            check=True,
            timeout=10,
        )
