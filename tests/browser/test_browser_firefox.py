"""Acceptance 2 of issue 13: Firefox ESR and Chromium in one meeting through the real server
(captions on, real Whisper), loopback only.

A Chromium participant (Alice, Playwright) and a Firefox participant (Fox, puppeteer-core over
WebDriver BiDi: tests/support/firefox.py) see and hear each other (per received track:
getStats frames decoded for video, bytes for audio) and read each other's captions (each one's
final captions reach the other's transcript). Alice shares her screen: Firefox decodes it. Then
Cai (Chromium) joins: both renegotiate and receive his video and audio.

Firefox's needs here: a default route in the namespace (`default dev lo src 127.0.0.1`, else it
gathers no candidate), loopback ICE and unobfuscated host addresses, fake
devices (tests/browser/firefox/driver.mjs). Headless Firefox has no audio device
(AudioContext.resume() never resolves) and no getDisplayMedia, so Fox's microphone is an <audio>
element playing a speech clip, captured with mozCaptureStream() (no audio output needed), in
place of the fake tone; and nobody shares a screen from Firefox.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import (
    MIN_NEW_FRAMES,
    browser_server_config,
    launched_chromium,
    make_speech_wav,
    wait_for_remote_tracks,
    wait_until,
)
from tests.support.firefox import FIREFOX, FirefoxPage, install_driver
from tests.support.netns import Namespace
from tests.support.paths import evalset_dir
from tests.support.server import ServerProcess
from tests.support.waits import TIME_SCALE

pytestmark = [pytest.mark.browser, pytest.mark.models]

sync_api = pytest.importorskip("playwright.sync_api")

ROOM = "firefox"
MEDIA_DEADLINE_S = 20.0 * TIME_SCALE
CAPTION_DEADLINE_S = 45.0 * TIME_SCALE
#: Alice's microphone (Chromium's fake capture) and Fox's (an <audio> element in Firefox)
ALICE_CLIP = "fleurs-en-000.ogg"  # "however due to the slow communication channels styles …"
ALICE_WORDS = ("communication", "channels", "styles", "west")
FOX_CLIP = "fw_jfk.flac"  # "… ask not what your country can do for you …"
FOX_WORDS = ("country", "americans", "fellow")

#: per mid of `mids`: what the page's receiver of it got (getStats of that receiver only, which
#: both browsers support; Firefox's inbound-rtp stats carry no `mid`)
RECEIVED_JS = """async (mids) => {
  const out = {};
  for (const t of window.parley.pc.getTransceivers()) {
    if (!mids.includes(t.mid)) continue;
    const m = {packetsReceived: 0, bytesReceived: 0, framesDecoded: 0};
    (await t.receiver.getStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      m.packetsReceived += s.packetsReceived || 0;
      m.bytesReceived += s.bytesReceived || 0;
      m.framesDecoded += s.framesDecoded || 0;
    });
    out[t.mid] = m;
  }
  return out;
}"""

#: Fox's microphone: the speech clip played by an <audio> element and captured, in place of
#: Firefox's fake tone, in the pre-join stream that Join hands to the session
SPEECH_MIC_JS = """async (b64) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const audio = document.createElement('audio');
  audio.src = URL.createObjectURL(new Blob([bytes], {type: 'audio/wav'}));
  audio.loop = true;
  document.body.append(audio);
  const captured = audio.mozCaptureStream();
  await audio.play();
  const stream = window.parleyPreJoin.stream;
  for (const t of stream.getAudioTracks()) { stream.removeTrack(t); t.stop(); }
  stream.addTrack(captured.getAudioTracks()[0]);
  window.speechClip = audio;
  return stream.getTracks().map((t) => t.kind);
}"""

#: fill the pre-join form and join (as a user would, through the form's own handlers)
JOIN_JS = """(name) => {
  const set = (id, value) => {
    const el = document.getElementById(id);
    el.value = value;
    el.dispatchEvent(new Event('input', {bubbles: true}));
    el.dispatchEvent(new Event('change', {bubbles: true}));
  };
  set('name-input', name);
  set('speak-select', 'en');
  set('read-select', 'en');
  document.getElementById('join-button').click();
  return true;
}"""

#: the final captions of `pid` in this page's transcript
TRANSCRIPT_OF_JS = """(pid) => window.parleyView.transcript.transcript.entries
  .filter((e) => e.participantId === pid).map((e) => e.text)"""


def speech_wav(out: Path, clip: str) -> Path:
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg not installed (make system-deps)")
    return make_speech_wav(
        out, evalset_dir() / "audio" / "en" / clip, lead_s=2.0, take_s=11.0, tail_s=6.0
    )


@pytest.fixture(scope="module")
def firefox_netns(netns: Namespace) -> Namespace:
    """The module's loopback-only namespace, with the default route Firefox needs to gather a
    host candidate at all."""
    if netns.prefix:
        subprocess.run(
            [*netns.prefix, "ip", "route", "add", "default", "dev", "lo", "src", "127.0.0.1"],
            check=True,
        )
    return netns


@pytest.fixture(scope="module")
def server(
    firefox_netns: Namespace, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    config = browser_server_config(captions=True)
    with ServerProcess(tmp_path_factory.mktemp("server"), config, netns=firefox_netns) as instance:
        yield instance


@pytest.fixture(scope="module")
def chromium(firefox_netns: Namespace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("chromium")
    with launched_chromium(firefox_netns, tmp, speech_wav(tmp / "alice.wav", ALICE_CLIP)) as b:
        yield b


@pytest.fixture
def firefox(firefox_netns: Namespace, tmp_path: Path) -> Iterator[FirefoxPage]:
    if not FIREFOX.exists():
        pytest.fail(f"{FIREFOX} not installed (make system-deps: Debian firefox-esr)")
    install_driver()
    page = FirefoxPage(firefox_netns.prefix, tmp_path / "firefox.log")
    try:
        yield page
    finally:
        page.close()
        sys.stderr.write(f"--- firefox log ---\n{page.log()}\n")


def chromium_join(browser: Any, base_url: str, name: str, log: list[str]) -> Any:
    page = browser.new_context(viewport={"width": 1280, "height": 760}).new_page()
    page.on("console", lambda m: log.append(f"[{name}] {m.type}: {m.text}"))
    page.on("pageerror", lambda e: log.append(f"[{name}] pageerror: {e}"))
    page.goto(f"{base_url}/?room={ROOM}")
    wait_until(page, "() => Boolean(window.parleyPreJoin && window.parleyPreJoin.stream)")
    page.evaluate(JOIN_JS, name)
    wait_until(page, "() => Boolean(window.parley) && window.parley.state === 'joined'")
    return page


def firefox_join(page: FirefoxPage, base_url: str, fox_wav: Path) -> None:
    page.goto(f"{base_url}/?room={ROOM}")
    wait_until(
        page,
        "() => Boolean(window.parleyPreJoin && window.parleyPreJoin.stream"
        " && window.parleyPreJoin.stream.getVideoTracks().length)",
    )
    kinds = page.evaluate(SPEECH_MIC_JS, base64.b64encode(fox_wav.read_bytes()).decode())
    assert sorted(kinds) == ["audio", "video"], kinds
    page.evaluate(JOIN_JS, "Fox")
    wait_until(page, "() => Boolean(window.parley) && window.parley.state === 'joined'")


def wait_for_received(page: Any, mids: dict[str, str], who: str) -> dict[str, Any]:
    """Until the video mid decoded MIN_NEW_FRAMES frames and the audio mid got 5 kB."""
    deadline = time.monotonic() + MEDIA_DEADLINE_S
    while True:
        got: dict[str, Any] = page.evaluate(RECEIVED_JS, list(mids.values()))
        video, audio = got.get(mids["video"], {}), got.get(mids["audio"], {})
        if video.get("framesDecoded", 0) >= MIN_NEW_FRAMES and audio.get("bytesReceived", 0) > 5000:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{who}: media did not flow: {got} (mids {mids})")
        page.wait_for_timeout(250)


def wait_for_frames(page: Any, mid: str, who: str) -> dict[str, Any]:
    """Until the video on `mid` decoded MIN_NEW_FRAMES frames."""
    deadline = time.monotonic() + MEDIA_DEADLINE_S
    while True:
        got: dict[str, Any] = page.evaluate(RECEIVED_JS, [mid]).get(mid, {})
        if got.get("framesDecoded", 0) >= MIN_NEW_FRAMES:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{who}: no video on {mid}: {got}")
        page.wait_for_timeout(250)


def wait_for_captions(page: Any, pid: str, words: tuple[str, ...], who: str) -> list[str]:
    deadline = time.monotonic() + CAPTION_DEADLINE_S
    while True:
        texts: list[str] = page.evaluate(TRANSCRIPT_OF_JS, pid)
        if any(w in " ".join(texts).lower() for w in words):
            return texts
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{who}: no caption with {words} in {CAPTION_DEADLINE_S} s: {texts}"
            )
        page.wait_for_timeout(500)


def test_firefox_and_chromium_see_hear_and_read_each_other(
    chromium: Any, firefox: FirefoxPage, server: ServerProcess, tmp_path: Path
) -> None:
    log: list[str] = []
    fox_wav = speech_wav(tmp_path / "fox.wav", FOX_CLIP)
    try:
        alice = chromium_join(chromium, server.http_url, "Alice", log)
        firefox_join(firefox, server.http_url, fox_wav)
        alice_id = alice.evaluate("() => window.parley.participantId")
        fox_id = firefox.evaluate("() => window.parley.participantId")
        ua = firefox.evaluate("() => navigator.userAgent")
        print("Firefox:", ua)
        assert "Firefox/" in ua

        # they see and hear each other
        fox_at_alice = wait_for_remote_tracks(alice, fox_id)
        alice_at_fox = wait_for_remote_tracks(firefox, alice_id)
        print("Alice receives Fox:", wait_for_received(alice, fox_at_alice, "Alice"))
        print("Fox receives Alice:", wait_for_received(firefox, alice_at_fox, "Fox"))

        # and read each other's captions (real Whisper on each one's speech)
        started = time.monotonic()
        print("Alice reads Fox:", wait_for_captions(alice, fox_id, FOX_WORDS, "Alice"))
        print("Fox reads Alice:", wait_for_captions(firefox, alice_id, ALICE_WORDS, "Fox"))
        print(f"captions both ways within {time.monotonic() - started:.1f} s")

        # Alice shares her screen (Chromium's fake display media): Firefox decodes it too
        alice.locator("#screen-button").click()
        wait_for_remote_tracks(firefox, alice_id, count=3)
        screen_mid = next(
            t["mid"]
            for t in firefox.evaluate("() => window.parley.snapshot()")["remoteTracks"]
            if t["participantId"] == alice_id and t["source"] == "screen"
        )
        print("Fox receives Alice's screen:", wait_for_frames(firefox, screen_mid, "Fox"))

        # a third participant: both renegotiate, and receive his media
        cai = chromium_join(chromium, server.http_url, "Cai", log)
        cai_id = cai.evaluate("() => window.parley.participantId")
        for page, who in ((alice, "Alice"), (firefox, "Fox")):
            mids = wait_for_remote_tracks(page, cai_id)
            print(f"{who} receives Cai:", wait_for_received(page, mids, who))
        # and the first two still receive each other on their old m-lines
        wait_for_received(alice, fox_at_alice, "Alice (after Cai)")
        wait_for_received(firefox, alice_at_fox, "Fox (after Cai)")
        snapshot = firefox.evaluate("() => window.parley.snapshot()")
        names = sorted(p["name"] for p in snapshot["participants"])
        assert names == ["Alice", "Cai"], json.dumps(snapshot)[:2000]
    finally:
        print("\n".join(log[-80:]))
