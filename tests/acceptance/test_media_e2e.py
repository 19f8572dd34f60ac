"""Acceptance: real aiortc clients (own processes) exchange media through the real server.

The server runs in this process, so every codec call counted here is the server's.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from aiortc.codecs import opus, vpx

from server.app import App
from tests.support.app import ws_url
from tests.support.processes import run_client_process
from tests.support.waits import TIME_SCALE

pytestmark = pytest.mark.media


@pytest.fixture
def codec_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Counts every encode/decode/pack aiortc performs in this process."""
    calls: Counter[str] = Counter()

    def counting(name: str, original: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return original(*args, **kwargs)

        return wrapper

    for cls, method in [
        (vpx.Vp8Encoder, "encode"),
        (vpx.Vp8Encoder, "pack"),
        (vpx.Vp8Decoder, "__init__"),
        (vpx.Vp8Decoder, "decode"),
        (opus.OpusEncoder, "encode"),
        (opus.OpusEncoder, "pack"),
        (opus.OpusDecoder, "decode"),
    ]:
        monkeypatch.setattr(cls, method, counting(f"{cls.__name__}.{method}", getattr(cls, method)))
    yield calls


async def test_two_clients_see_and_hear_each_other(app: App, codec_calls: Counter[str]) -> None:
    url = ws_url(app)
    a, b = await asyncio.gather(
        run_client_process(
            "--url",
            url,
            "--room",
            "e2e",
            "--name",
            "A",
            "--video",
            "--freq",
            "440",
            "--seconds",
            "7",
        ),
        run_client_process(
            "--url",
            url,
            "--room",
            "e2e",
            "--name",
            "B",
            "--video",
            "--freq",
            "660",
            "--seconds",
            "7",
        ),
    )
    for me, other, tone in ((a, b, 660.0), (b, a, 440.0)):
        assert me["errors"] == []
        seen = me["remote"][other["participant_id"]]
        # video: decoded, the drawn frame counter moves forward
        assert seen["video_frames"] >= 60, seen
        assert seen["counter_last"] > seen["counter_first"], seen
        assert seen["counter_increasing_fraction"] > 0.95, seen
        # audio: decoded Opus carries the other side's tone
        assert seen["audio_frames"] >= 100, seen
        assert abs(seen["audio_frequency_hz"] - tone) <= 5, seen
    # the SFU forwarded encoded frames and never encoded or decoded anything itself
    assert codec_calls["Vp8Encoder.pack"] > 100
    assert codec_calls["OpusEncoder.pack"] > 100
    for name in (
        "Vp8Encoder.encode",
        "Vp8Decoder.__init__",
        "Vp8Decoder.decode",
        "OpusEncoder.encode",
        "OpusDecoder.decode",
    ):
        assert codec_calls[name] == 0, f"server called {name}"


async def test_late_joiner_gets_video_within_a_second(app: App, codec_calls: Counter[str]) -> None:
    url = ws_url(app)
    publisher = asyncio.ensure_future(
        run_client_process(
            "--url",
            url,
            "--room",
            "late",
            "--name",
            "Pub",
            "--video",
            "--freq",
            "440",
            "--keyframes-on-request",
            "--seconds",
            "10",
        )
    )
    await asyncio.sleep(5 * TIME_SCALE)
    before = await _video_source_stats(app, "late")
    late_run = asyncio.ensure_future(
        run_client_process("--url", url, "--room", "late", "--name", "Late", "--seconds", "3")
    )
    await asyncio.sleep(2.5 * TIME_SCALE)
    during = await _video_source_stats(app, "late")
    late = await late_run
    pub = await publisher
    seen = late["remote"][pub["participant_id"]]
    print("late joiner:", seen, "source before:", before, "during:", during)
    # measured from the moment the late client started joining (socket open, hello, join)
    assert seen["first_video_s"] is not None and seen["first_video_s"] <= 1.0, seen
    assert seen["video_frames"] > 30, seen
    # the publisher really sends keyframes only on request: one at start, then only after the
    # late joiner's PLI; so without PLI forwarding the late joiner would have seen nothing
    assert before["keyframes_in"] == 1 and before["frames_in"] > 100, before
    assert during["keyframes_in"] - before["keyframes_in"] in (1, 2), during
    assert during["pli_sent"] >= 1, during
    assert codec_calls["Vp8Decoder.decode"] == 0


async def test_nack_and_rtx_repair_loss_on_both_hops(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """5 % loss into the server (publisher -> SFU) and 5 % into the subscriber (SFU -> viewer):
    the SFU NACKs the publisher and retransmits to the subscriber, whose video stays whole."""
    from aiortc import RTCRtpReceiver, RTCRtpSender

    from tests.support.client import LossyRtp

    counts: Counter[str] = Counter()
    nack, retransmit = RTCRtpReceiver._send_rtcp_nack, RTCRtpSender._retransmit

    async def counting_nack(self: Any, media_ssrc: int, lost: list[int]) -> None:
        counts["server_nacks_upstream"] += len(lost)
        await nack(self, media_ssrc, lost)

    async def counting_retransmit(self: Any, sequence_number: int) -> None:
        counts["server_retransmits"] += 1
        await retransmit(self, sequence_number)

    monkeypatch.setattr(RTCRtpReceiver, "_send_rtcp_nack", counting_nack)
    monkeypatch.setattr(RTCRtpSender, "_retransmit", counting_retransmit)
    lossy = LossyRtp(0.05, seed=7)  # in this process: loss on the way into the server
    lossy.install()
    try:
        url = ws_url(app)
        pub, sub = await asyncio.gather(
            run_client_process(
                "--url", url, "--room", "loss", "--name", "P", "--video", "--seconds", "9"
            ),
            run_client_process(
                "--url",
                url,
                "--room",
                "loss",
                "--name",
                "S",
                "--seconds",
                "8",
                "--drop-rx",
                "0.03",
            ),
        )
    finally:
        lossy.uninstall()
    seen = sub["remote"][pub["participant_id"]]
    print("loss:", dict(counts), "dropped into server:", lossy.dropped, "subscriber saw:", seen)
    assert lossy.dropped >= 5
    assert counts["server_nacks_upstream"] > 0  # hop 1: the SFU asked the publisher to resend
    assert counts["server_retransmits"] > 0  # hop 2: the SFU resent what the subscriber lost
    # the picture stays continuous: nearly every frame sent meanwhile was decoded, in order
    sent = seen["counter_last"] - seen["counter_first"] + 1
    assert seen["video_frames"] >= 0.97 * sent and sent > 100, seen
    assert seen["counter_increasing_fraction"] > 0.97, seen


async def _video_source_stats(app: App, room: str) -> dict[str, Any]:
    media = app.signaling.rooms[room].media
    assert media is not None
    publications = (await media.stats())["publications"]
    return next(p for p in publications.values() if p["kind"] == "video")
