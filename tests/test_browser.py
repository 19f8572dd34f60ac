"""Two real headless Chromium pages meet in one room through the real server.

Acceptance for the web client (web/protocol.js, web/room.js) and the SFU end to end: each page
decodes the other's VP8 and hears the other's Opus (the microphone is a speech WAV from the
evaluation set), mute is relayed, and Leave updates the other page's participant list.

Needs /usr/bin/chromium (Debian) and Playwright for Python; never `playwright install`.
All traffic stays on 127.0.0.1. Restricting the server's ICE host candidates to loopback is not
enough: Chromium also offers its candidates on the host's other addresses, and the server answers
connectivity checks from them (measured: the nominated pair was 192.0.2.2 -> 127.0.0.1, so the
server sent media to the host's LAN address). So where we can (root, util-linux `unshare` and
`nsenter`), server and browser run in a fresh network namespace that has only `lo`; set
PARLEY_TEST_NETNS=0 to run in the host's namespace instead.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
#: preferred microphone clip (11 s of continuous speech); any English clip will do otherwise
SPEECH_CLIPS = ("fw_jfk.flac", "fleurs-en-000.ogg")
SERVER_START_TIMEOUT_S = 20.0
MEDIA_TIMEOUT_S = 15.0
STATE_TIMEOUT_MS = 10_000

sync_api = pytest.importorskip("playwright.sync_api")


def _evalset_dir() -> Path:
    env = os.environ.get("PARLEY_EVALSET")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "evalset"


def _parley_bin() -> str:
    """The server entry point: $PARLEY_BIN, else the `parley` script beside this interpreter."""
    env = os.environ.get("PARLEY_BIN")
    if env:
        return env
    beside = Path(sys.executable).parent / "parley"
    return str(beside) if beside.exists() else (shutil.which("parley") or str(beside))


class _Netns:
    """A loopback-only network namespace held by a sleeping process; `prefix` runs a command in it.

    An empty prefix means the host's namespace (no isolation available or wanted).
    """

    def __init__(self) -> None:
        self.holder: subprocess.Popen[bytes] | None = None
        self.prefix: list[str] = []
        if os.environ.get("PARLEY_TEST_NETNS", "1") == "0" or os.geteuid() != 0:
            return
        if not all(shutil.which(tool) for tool in ("unshare", "nsenter", "ip")):
            return
        holder = subprocess.Popen(
            ["unshare", "-n", "sh", "-c", "ip link set lo up && echo up && exec sleep 86400"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert holder.stdout is not None
        if holder.stdout.readline().strip() != b"up":  # unshare refused (e.g. no CAP_SYS_ADMIN)
            holder.wait()
            return
        self.holder = holder
        self.prefix = ["nsenter", "-t", str(holder.pid), "-n"]

    def close(self) -> None:
        if self.holder is not None:
            self.holder.kill()
            self.holder.wait()
            assert self.holder.stdout is not None
            self.holder.stdout.close()


@pytest.fixture(scope="module")
def netns() -> Iterator[_Netns]:
    ns = _Netns()
    sys.stderr.write(f"network namespace: {'loopback-only' if ns.prefix else 'host'}\n")
    try:
        yield ns
    finally:
        ns.close()


def _http_ok(netns: _Netns, url: str) -> bool:
    """GET url from inside the namespace (the test process itself lives outside it)."""
    if not netns.prefix:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False
    probe = "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)"
    done = subprocess.run(
        [*netns.prefix, sys.executable, "-c", probe, url], capture_output=True, timeout=10
    )
    return done.returncode == 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 48 kHz mono WAV of real speech for Chromium's fake microphone (made at test time)."""
    clips = _evalset_dir() / "audio" / "en"
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
def server_url(netns: _Netns, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real server as a subprocess on a free loopback port, ICE restricted to loopback."""
    exe = _parley_bin()
    if not Path(exe).exists():
        pytest.skip(f"server entry point {exe} not installed")
    tmp = tmp_path_factory.mktemp("server")
    config = tmp / "parley.toml"
    config.write_text('[media]\nice_host_addresses = ["127.0.0.1"]\n')
    port = _free_port()
    log_path = tmp / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                *netns.prefix,
                *(exe, "serve", "--host", "127.0.0.1", "--port", str(port)),
                *("--config", str(config)),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{log_path.read_text()}")
            if _http_ok(netns, url + "/"):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"server not ready on {url}:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        sys.stderr.write(f"--- server log ({log_path}) ---\n{log_path.read_text()[-4000:]}\n")


@pytest.fixture(scope="module")
def browser(
    speech_wav: Path, netns: _Netns, tmp_path_factory: pytest.TempPathFactory
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


def _wait_until(page: Any, predicate_js: str, timeout_ms: int = STATE_TIMEOUT_MS) -> None:
    """Poll a JS function until it returns true.

    Not page.wait_for_function: Playwright evals its predicate inside the page, which the
    server's Content-Security-Policy (script-src 'self', no unsafe-eval) rightly forbids, and
    the test should run the page under its real CSP.
    """
    deadline = time.monotonic() + timeout_ms / 1000
    while not page.evaluate(predicate_js):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {predicate_js}")
        page.wait_for_timeout(100)


def _open_page(browser: Any, base_url: str, name: str, room: str, log: list[str]) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 760})
    page = context.new_page()
    page.on("console", lambda m: log.append(f"[{name}] {m.type}: {m.text}"))
    page.on("pageerror", lambda e: log.append(f"[{name}] pageerror: {e}"))
    page.goto(f"{base_url}/?room={room}")
    assert (
        page.get_by_label("Room", exact=True).input_value() == room
    )  # the link pre-fills the room
    page.get_by_label("Your name", exact=True).fill(name)
    page.get_by_role("button", name="Join", exact=True).click()
    _wait_until(page, "() => Boolean(window.parley) && window.parley.state === 'joined'")
    return page


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


def _wait_for_media(page: Any) -> dict[str, Any]:
    """Poll getStats until inbound video is decoded and inbound audio carries energy."""
    deadline = time.monotonic() + MEDIA_TIMEOUT_S
    while True:
        stats: dict[str, Any] = page.evaluate(INBOUND_STATS_JS)
        video, audio = stats.get("video", {}), stats.get("audio", {})
        if video.get("framesDecoded", 0) > 0 and audio.get("totalAudioEnergy", 0) > 0:
            return stats
        if time.monotonic() > deadline:
            return stats
        page.wait_for_timeout(250)


def _snapshot(page: Any) -> dict[str, Any]:
    snap: dict[str, Any] = page.evaluate("window.parley.snapshot()")
    return snap


def test_two_browsers_meet_hear_and_leave(browser: Any, server_url: str, tmp_path: Path) -> None:
    log: list[str] = []
    room = "browser-test"
    alice = _open_page(browser, server_url, "Alice", room, log)
    bob = _open_page(browser, server_url, "Bob", room, log)
    try:
        alice_id = _snapshot(alice)["participantId"]
        bob_id = _snapshot(bob)["participantId"]
        assert alice_id and bob_id and alice_id != bob_id

        # Everybody sees everybody: state and DOM list.
        for page, other_id, other_name in ((alice, bob_id, "Bob"), (bob, alice_id, "Alice")):
            _wait_until(page, f"() => window.parley.participants.has({json.dumps(other_id)})")
            item = page.locator(f'#participant-list li[data-participant-id="{other_id}"]')
            item.wait_for(timeout=STATE_TIMEOUT_MS)
            assert other_name in item.inner_text()

        # Media flows both ways through the SFU.
        results = {"alice": _wait_for_media(alice), "bob": _wait_for_media(bob)}
        sys.stderr.write(f"inbound stats: {json.dumps(results)}\n")
        for who, stats in results.items():
            assert stats.get("video", {}).get("framesDecoded", 0) > 0, (who, stats, log)
            assert stats.get("audio", {}).get("totalAudioEnergy", 0) > 0, (who, stats, log)
        for page in (alice, bob):
            # every received track is mapped to the other participant through the offer's slots
            snap = _snapshot(page)
            other = bob_id if page is alice else alice_id
            kinds = sorted(t["kind"] for t in snap["remoteTracks"] if t["participantId"] == other)
            assert kinds == ["audio", "video"], snap

        shot = tmp_path / "two-participants.png"
        alice.screenshot(path=str(shot))
        sys.stderr.write(f"screenshot: {shot}\n")

        # Bob mutes his microphone: Alice's state and DOM show it.
        _wait_until(bob, "() => window.parley.snapshot().local.every((t) => t.trackId)")
        bob.get_by_role("button", name="Mute microphone").click()
        _wait_until(
            alice,
            f"""() => [...window.parley.participants.get({json.dumps(bob_id)}).tracks.values()]
                .some((t) => t.kind === 'audio' && t.muted)""",
        )
        bob_item = alice.locator(f'#participant-list li[data-participant-id="{bob_id}"]')
        assert bob_item.get_by_role("img", name="microphone muted").count() == 1
        bob.screenshot(path=str(tmp_path / "muted.png"))

        for who, page in (("alice", alice), ("bob", bob)):
            sys.stderr.write(
                f"{who} inbound stats later: {json.dumps(page.evaluate(INBOUND_STATS_JS))}\n"
            )

        # Alice leaves: the server closes her socket with 1000 and Bob's list drops her.
        alice.get_by_role("button", name="Leave", exact=True).click()
        _wait_until(alice, "() => window.parley.state === 'closed'")
        assert _snapshot(alice)["closeCode"] == 1000
        bob.locator(f'#participant-list li[data-participant-id="{alice_id}"]').wait_for(
            state="detached", timeout=STATE_TIMEOUT_MS
        )
        assert (
            bob.evaluate(f"() => window.parley.participants.has({json.dumps(alice_id)})") is False
        )
        bob.locator(f'#tiles .tile[data-participant-id="{alice_id}"]').wait_for(
            state="detached", timeout=STATE_TIMEOUT_MS
        )
        assert bob.locator("#participant-list li").count() == 1  # Bob alone
        bob.screenshot(path=str(tmp_path / "after-leave.png"))
    finally:
        if log:
            sys.stderr.write("--- browser console ---\n" + "\n".join(log[-60:]) + "\n")
        for page in (alice, bob):
            page.context.close()
