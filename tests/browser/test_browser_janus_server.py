"""Real headless Chromium pages meet through the real server with ``[media] backend = "janus"``.

Acceptance 3 of issue 18 for the web client: each page publishes on the peer connection it
offers (PROTOCOL.md "Janus engine"), receives on the one the server offers, and decodes the
other's video and hears the other's audio; a page that joins later gets a picture at once.
Janus, the server and Chromium share one private network namespace (``tests/support/janus.py``).
"""

from __future__ import annotations

import math
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.browser import (
    CHROMIUM,
    chromium_args,
    chromium_executable,
    open_page,
    snapshot,
    wait_for_media,
    wait_until,
)
from tests.support.janus import RunningJanus, running_janus
from tests.support.server import ServerProcess, parley_bin

pytestmark = [pytest.mark.browser, pytest.mark.media]
sync_api = pytest.importorskip("playwright.sync_api")


def sine_wav(path: Path, freq_hz: float, seconds: float = 5.0) -> Path:
    rate = 48_000
    t = np.arange(int(rate * seconds)) / rate
    pcm = (0.3 * 32767 * np.sin(2 * math.pi * freq_hz * t)).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return path


@pytest.fixture(scope="module")
def janus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningJanus]:
    with running_janus(Path(tmp_path_factory.mktemp("janus"))) as running:
        yield running


@pytest.fixture(scope="module")
def server_url(janus: RunningJanus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    exe = parley_bin()
    if not Path(exe).exists():
        pytest.skip(f"server entry point {exe} not installed")
    config = (
        f'[media]\nbackend = "janus"\njanus_url = "{janus.url}"\n'
        f'janus_api_secret = "{janus.api_secret}"\njanus_admin_key = "{janus.admin_key}"\n'
        "[captions]\nenabled = false\n"
    )
    workdir = tmp_path_factory.mktemp("server")
    with ServerProcess(workdir, config, netns=janus.namespace) as server:
        yield server.http_url


@pytest.fixture(scope="module")
def browser(janus: RunningJanus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not installed (make system-deps)")
    bin_dir = tmp_path_factory.mktemp("bin")
    executable = chromium_executable(janus.namespace, bin_dir)
    mic = sine_wav(bin_dir / "mic.wav", 440)
    with sync_api.sync_playwright() as pw:
        launched = pw.chromium.launch(
            executable_path=str(executable), headless=True, args=chromium_args(mic)
        )
        try:
            yield launched
        finally:
            launched.close()


def test_two_browsers_see_and_hear_each_other_on_janus(browser: Any, server_url: str) -> None:
    log: list[str] = []
    alice = open_page(browser, server_url, "Alice", "janus-room", log)
    bob = open_page(browser, server_url, "Bob", "janus-room", log)
    try:
        assert alice.evaluate("window.parley.mediaEngine") == "janus"
        for page in (alice, bob):
            stats = wait_for_media(page)
            assert stats.get("video", {}).get("framesDecoded", 0) > 0, (stats, log[-20:])
            assert stats.get("audio", {}).get("totalAudioEnergy", 0) > 0, (stats, log[-20:])
        # both pages learnt their own track ids (track_published after Janus got media)
        for page in (alice, bob):
            local = snapshot(page)["local"]
            assert local and all(entry["trackId"] for entry in local), local

        # a screen share is one more m-line in Alice's next publish offer
        alice.evaluate(
            "async () => { const s = await navigator.mediaDevices.getDisplayMedia({video: true});"
            " window.parley.shareScreen(s.getVideoTracks()[0]); }"
        )
        has_screen = "window.parley.snapshot().remoteTracks.some((t) => t.source === 'screen')"
        wait_until(bob, f"() => {has_screen}")
        alice.evaluate("window.parley.stopScreen()")
        wait_until(bob, f"() => !{has_screen}")

        # a late joiner decodes a picture quickly (Janus asks the publishers for a keyframe)
        carol = open_page(browser, server_url, "Carol", "janus-room", log)
        try:
            stats = wait_for_media(carol)
            assert stats.get("video", {}).get("framesDecoded", 0) > 0, (stats, log[-20:])
        finally:
            carol.close()
        assert not [line for line in log if "pageerror" in line], log
    finally:
        alice.close()
        bob.close()
