"""Fixtures of the browser tests: a speech WAV for Chromium's fake microphone and a headless
Chromium (in the module's network namespace) that plays it."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright import sync_api

from tests.support.browser import CHROMIUM
from tests.support.netns import Namespace
from tests.support.paths import evalset_dir

#: preferred microphone clip (11 s of continuous speech); any English clip will do otherwise
SPEECH_CLIPS = ("fw_jfk.flac", "fleurs-en-000.ogg")


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 48 kHz mono WAV of real speech for Chromium's fake microphone (made at test time)."""
    clips = evalset_dir() / "audio" / "en"
    source = next((clips / c for c in SPEECH_CLIPS if (clips / c).exists()), None)
    if source is None:
        pytest.skip(f"no speech clip in {clips} (set PARLEY_EVALSET)")
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    wav = tmp_path_factory.mktemp("mic") / "speech48k.wav"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(source),
            "-ar",
            "48000",
            "-ac",
            "1",
            "-c:a",
            "pcm_s16le",
            str(wav),
        ],
        check=True,
        timeout=60,
    )
    return wav


@pytest.fixture(scope="module")
def browser(
    speech_wav: Path, netns: Namespace, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed")
    executable = CHROMIUM
    if netns.prefix:
        # Playwright talks to Chromium over inherited pipes, which nsenter + exec keep.
        executable = tmp_path_factory.mktemp("bin") / "chromium-in-netns"
        executable.write_text(f'#!/bin/sh\nexec {" ".join(netns.prefix)} {CHROMIUM} "$@"\n')
        executable.chmod(0o755)
    args = [
        "--no-sandbox",  # root in a container
        "--use-fake-ui-for-media-stream",  # grant getUserMedia without a prompt
        "--use-fake-device-for-media-stream",  # fake camera (test pattern) + microphone
        f"--use-file-for-fake-audio-capture={speech_wav}",  # the microphone plays the WAV
        "--allow-loopback-in-peer-connection",  # else no ICE candidates on a loopback-only host
        "--autoplay-policy=no-user-gesture-required",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-pings",
        "--no-first-run",
    ]
    with sync_api.sync_playwright() as pw:
        # launch() always starts Chromium on a fresh temporary --user-data-dir of its own (it
        # refuses that flag in args); each page below also gets its own context.
        b = pw.chromium.launch(executable_path=str(executable), headless=True, args=args)
        try:
            yield b
        finally:
            b.close()
