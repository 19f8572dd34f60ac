"""Chromium on the Janus engine: a browser publishes (with VP8 simulcast) on the peer connection
it offers and receives on the one Janus offers, next to an aiortc participant.

The test plays the signaling server's part (it hands SDP between the page and the
:class:`media.janus_room.JanusRoom` with ``page.evaluate``), so it checks the engine and the
browser's side of PROTOCOL.md's "Janus engine" flow, not the server's relay.
"""

from __future__ import annotations

import asyncio
import json
import math
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.async_api import Page, async_playwright

from media.api import MediaEvent, OfferReady, PublishAnswer, TrackSource
from media.hooks import restrict_host_addresses
from tests.support.browser import CHROMIUM, chromium_args, chromium_executable
from tests.support.client import CounterVideo, SineAudio
from tests.support.janus import ICE_ADDRESS, RunningJanus, running_janus
from tests.support.janus_seam import Rig, open_rig, tone_of
from tests.support.waits import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.media]

PAGE_JS = """
window.parley = (() => {
  const gathered = (pc) => new Promise((done) => {
    if (pc.iceGatheringState === "complete") return done();
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") done();
    });
  });
  const sub = new RTCPeerConnection({iceServers: []});
  sub.ontrack = (e) => {
    // audio is decoded only when played out (NetEq is pulled by a sink)
    if (e.track.kind === "audio") {
      const sink = new Audio();
      sink.srcObject = new MediaStream([e.track]);
      sink.play();
    }
  };
  let pub = null;
  return {
    async publish(simulcast) {
      const stream = await navigator.mediaDevices.getUserMedia({
        audio: {echoCancellation: false, noiseSuppression: false, autoGainControl: false},
        video: {width: 640, height: 480},
      });
      pub = new RTCPeerConnection({iceServers: []});
      const audio = pub.addTransceiver(stream.getAudioTracks()[0], {direction: "sendonly"});
      const video = pub.addTransceiver(stream.getVideoTracks()[0], {
        direction: "sendonly",
        sendEncodings: simulcast
          ? [{rid: "l", scaleResolutionDownBy: 2}, {rid: "h"}] : undefined,
      });
      await pub.setLocalDescription();
      await gathered(pub);
      return {sdp: pub.localDescription.sdp,
              sources: {[audio.mid]: "microphone", [video.mid]: "camera"}};
    },
    async publishAnswer(sdp) { await pub.setRemoteDescription({type: "answer", sdp}); },
    async answer(sdp) {
      await sub.setRemoteDescription({type: "offer", sdp});
      await sub.setLocalDescription();
      await gathered(sub);
      return sub.localDescription.sdp;
    },
    async stats() {
      const out = {in: {}, out: []};
      for (const r of (await sub.getStats()).values()) {
        if (r.type === "inbound-rtp") out.in[r.kind] = {
          frames: r.framesDecoded || 0, packets: r.packetsReceived || 0,
          energy: r.totalAudioEnergy || 0};
      }
      if (pub) for (const r of (await pub.getStats()).values()) {
        if (r.type === "outbound-rtp" && r.kind === "video")
          out.out.push({rid: r.rid || null, frames: r.framesEncoded || 0,
                        width: r.frameWidth || 0,
                        limited: r.qualityLimitationReason || "none"});
      }
      return out;
    },
  };
})();
"""


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


@pytest.fixture
async def rig(janus: RunningJanus) -> AsyncIterator[Rig]:
    with janus.namespace.entered():
        restrict_host_addresses([ICE_ADDRESS])
        try:
            async with open_rig(janus, "janus-browser") as rig:
                yield rig
        finally:
            restrict_host_addresses(())


@pytest.fixture
async def page(janus: RunningJanus, tmp_path: Path) -> AsyncIterator[Page]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not installed (make system-deps)")
    executable = chromium_executable(janus.namespace, tmp_path)
    mic = sine_wav(tmp_path / "mic.wav", 440)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(executable), headless=True, args=chromium_args(mic)
        )
        try:
            # localhost is a secure context (getUserMedia); nothing listens there
            context = await browser.new_context()
            page = await context.new_page()
            await page.route("http://localhost/", lambda r: r.fulfill(body="<html></html>"))
            await page.goto("http://localhost/")
            await page.evaluate(PAGE_JS)
            yield page
        finally:
            await browser.close()


class PagePeer:
    """Relays a page's SDP to the room, as the signaling server would."""

    def __init__(self, peer_id: str, rig: Rig, page: Page) -> None:
        self.peer_id, self.rig, self.page = peer_id, rig, page
        self._answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._tasks: set[asyncio.Task[None]] = set()
        self.publish_answer_sdp = ""
        rig.extra[peer_id] = self.on_event

    def on_event(self, event: MediaEvent) -> None:
        if isinstance(event, OfferReady):
            task = asyncio.get_running_loop().create_task(self._answer_offer(event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif isinstance(event, PublishAnswer):
            self._answer.set_result(event.sdp)

    async def _answer_offer(self, offer: OfferReady) -> None:
        sdp = await self.page.evaluate("(sdp) => parley.answer(sdp)", offer.sdp)
        await self.rig.room.answer(self.peer_id, sdp, offer.revision)

    async def publish(self, *, simulcast: bool) -> None:
        await self.rig.room.publish(self.peer_id, ["audio", "video"])
        offer = await self.page.evaluate("(s) => parley.publish(s)", simulcast)
        sources: dict[str, TrackSource] = offer["sources"]
        await self.rig.room.publish_offer(self.peer_id, offer["sdp"], 1, sources)
        sdp = await asyncio.wait_for(self._answer, 10)
        self.publish_answer_sdp = sdp
        await self.page.evaluate("(sdp) => parley.publishAnswer(sdp)", sdp)

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.page.evaluate("() => parley.stats()")
        return result


async def test_chromium_publishes_simulcast_and_receives_through_janus(
    rig: Rig, page: Page
) -> None:
    browser = PagePeer("browser", rig, page)
    await rig.room.add_peer("browser")
    bot = await rig.join("bot")
    await bot.publish([SineAudio(660), CounterVideo(160, 120)])
    await browser.publish(simulcast=True)

    # the aiortc participant sees and hears the browser (the simulcast's top layer)
    assert await wait_until(
        lambda: (
            bot.media_from("browser").video_frames >= 30
            and bot.media_from("browser").audio_frames >= 100
        ),
        30,
    ), {o: (r.video_frames, r.audio_frames) for o, r in bot.received.items()}
    assert abs(tone_of(bot.media_from("browser").audio, 48_000) - 440) < 10

    # the browser sees and hears the aiortc participant
    async def browser_receives() -> bool:
        s = await browser.stats()
        return (
            s["in"].get("video", {}).get("frames", 0) >= 30
            and s["in"].get("audio", {}).get("packets", 0) >= 50
            and s["in"]["audio"]["energy"] > 0
        )

    for _ in range(300):
        if await browser_receives():
            break
        await asyncio.sleep(0.1)
    stats = await browser.stats()
    assert await browser_receives(), json.dumps(stats)
    # Janus took both simulcast layers; Chrome sends the high one once its bandwidth estimate
    # and CPU allow (a loaded test machine may hold it back: Chrome says so)
    assert "a=simulcast:recv l;h" in browser.publish_answer_sdp.replace("~", "")
    for _ in range(200):
        out = (await browser.stats())["out"]
        if {o["rid"] for o in out if o["frames"] > 0} == {"l", "h"}:
            break
        await asyncio.sleep(0.1)
    assert {o["rid"] for o in out if o["frames"] > 0} == {"l", "h"} or any(
        o["limited"] in ("cpu", "bandwidth") for o in out
    ), out

    # the browser's microphone reaches captions through Janus's rtp_forward
    assert await wait_until(lambda: any(t.peer_id == "browser" for t in rig.taps), 10)
    taps = [t.chunk.samples for t in rig.taps if t.peer_id == "browser"]
    assert abs(tone_of(taps, 16_000) - 440) < 10
