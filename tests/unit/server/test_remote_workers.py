"""Remote speech workers at the server's /speech-worker endpoint, with a scripted worker on the
other end of a real WebSocket (no models: the server runs no local worker): refused without the
secret (and logged), configured and given speakers with it, their audio as Opus; the speakers
wait when it leaves, and /readyz says captions are paused (issue 17)."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from interpret.frames import AudioChunk, CaptionFrame
from interpret.framing import split_frame
from interpret.opus import OpusEncoder, OpusSpeakers
from interpret.wire import (
    AddSpeaker,
    Announce,
    Configure,
    OpusAudio,
    Ready,
    SetSpeakerTargets,
    SetTargets,
    decode_inbound,
    decode_outbound,
    encode_opus_audio,
    encode_outbound,
)
from server.app import App
from server.cli import cli
from server.metrics import parse_text
from tests.support.app import loopback_settings
from tests.support.client import ParleyClient
from tests.support.waits import wait_until

SECRET = "s3cret-for-remote-speech-workers"


def _fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
async def app(tmp_path: Path) -> App:
    secret_file = tmp_path / "worker-secret"
    secret_file.write_text(SECRET + "\n")
    settings = loopback_settings(
        captions={"enabled": True, "workers": 0, "worker_secret_file": str(secret_file)}
    )
    instance = App(settings)
    await instance.start()
    try:
        yield instance  # type: ignore[misc]
    finally:
        await instance.stop()


def _url(app: App) -> str:
    return f"ws://127.0.0.1:{app.port}/speech-worker"


async def _recv(ws: ClientConnection) -> object:
    message = await asyncio.wait_for(ws.recv(), 5)
    assert isinstance(message, bytes)
    return decode_inbound(*split_frame(message))


async def test_wrong_or_missing_secret_is_refused_and_logged(
    app: App, capsys: pytest.CaptureFixture[str]
) -> None:
    for headers, reason in (
        ({"Authorization": "Bearer not-the-secret-at-all"}, "wrong secret"),
        ({}, "no secret presented"),
    ):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(_url(app), additional_headers=headers):
                pass
        assert refused.value.response.status_code == 403
        assert reason in refused.value.response.body.decode()
        logged = capsys.readouterr()
        assert "speech worker refused" in logged.out + logged.err
        assert reason in logged.out + logged.err
        assert "not-the-secret" not in logged.out + logged.err


async def test_no_worker_captions_paused_then_a_remote_worker_serves_speakers(app: App) -> None:
    base = f"http://127.0.0.1:{app.port}"
    status, body = await asyncio.to_thread(_fetch, f"{base}/readyz")
    assert status == 200 and "captions paused" in body
    listing = await asyncio.to_thread(
        CliRunner().invoke, cli, ["workers", "--url", f"{base}/metrics"]
    )
    assert listing.exit_code == 0 and "captions paused" in listing.output, listing.output
    assert app.captions is not None
    pool = app.captions.worker
    # a participant is told captions are paused, and later that they are live again
    reader = ParleyClient(f"ws://127.0.0.1:{app.port}/ws", room="r", name="Reader")
    await reader.join()

    def states() -> list[object]:
        return [m["state"] for m in reader.messages if m["type"] == "captions_status"]

    assert await reader.wait_for(lambda: states() == ["paused"], 5), reader.messages
    pool.add_speaker("alice", "en")  # no worker: waits, audio buffered
    pool.set_speaker_targets("alice", ["es"])
    rng = np.random.default_rng(1)
    audio = (rng.standard_normal(16_000) * 0.1).astype(np.float32)
    for i in range(0, 8000, 1600):
        pool.push(AudioChunk("alice", audio[i : i + 1600], i / 16_000))
    auth = {"Authorization": f"Bearer {SECRET}"}
    async with connect(_url(app), additional_headers=auth) as ws:
        await ws.send(encode_outbound(Announce("gpu-box", "cuda", 8)))
        configure = await _recv(ws)
        assert isinstance(configure, Configure)
        assert configure.config.recognizer.model == "base"
        assert await _recv(ws) == SetTargets(())
        await ws.send(encode_outbound(Ready(4242, 1.0, 0.5)))
        # the waiting speaker is placed here, told their targets, and their buffered audio
        # comes as Opus
        assert await _recv(ws) == AddSpeaker("alice", "en")
        assert await _recv(ws) == SetSpeakerTargets("alice", ("es",))
        decoders = OpusSpeakers()
        got: list[np.ndarray] = []
        while sum(len(g) for g in got) < 8000 - 400:
            item = await _recv(ws)
            if isinstance(item, OpusAudio):
                assert len(item.payload) < 1600  # not 6,400 bytes of float32
                got.append(decoders.decode(item.speaker_id, item.start_s, item.payload).samples)
        assert pool.worker_of("alice") == "remote-gpu-box"
        assert await reader.wait_for(lambda: states() == ["paused", "live"], 5)
        for i in range(8000, 16_000, 1600):  # live audio follows
            pool.push(AudioChunk("alice", audio[i : i + 1600], i / 16_000))
        status, body = await asyncio.to_thread(_fetch, f"{base}/readyz")
        assert status == 200 and "speech workers up: 1 of 1" in body
        _, text = await asyncio.to_thread(_fetch, f"{base}/metrics")
        metrics = parse_text(text)
        info = (
            'parley_speech_worker_info{device="cuda",kind="remote",model="base",'
            'worker="remote-gpu-box"}'
        )
        assert metrics[info] == 1
        assert metrics['parley_speech_worker_speakers{worker="remote-gpu-box"}'] == 1
        assert metrics['parley_speech_worker_capacity{worker="remote-gpu-box"}'] == 8
        listing = await asyncio.to_thread(
            CliRunner().invoke, cli, ["workers", "--url", f"{base}/metrics"]
        )
        row = listing.output.splitlines()[1].split()
        assert row[:6] == ["remote-gpu-box", "remote", "yes", "base", "cuda", "1/8"], row
        # a caption from the worker reaches the pool (whose reader, the caption service, fans
        # it out)
        frames: list[CaptionFrame] = []
        on_caption = pool._on_caption
        pool._on_caption = lambda frame: (frames.append(frame), on_caption(frame))  # type: ignore[method-assign]
        caption = CaptionFrame("alice-1-0", "alice", "en", "hello", 0.0, 0.5, True)
        await ws.send(encode_outbound(caption))
        assert await wait_until(lambda: frames == [caption], 5)
    # the worker left: the speaker waits again, captions paused, the server still ready
    assert await wait_until(lambda: pool.worker_of("alice") is None, 5)
    assert await wait_until(lambda: pool.workers() == [], 5)
    status, body = await asyncio.to_thread(_fetch, f"{base}/readyz")
    assert status == 200 and "captions paused" in body
    assert pool.moves["worker_down"] == 1
    assert await reader.wait_for(lambda: states() == ["paused", "live", "paused"], 5)
    await reader.leave()


def test_opus_round_trip_keeps_the_signal() -> None:
    t = np.arange(16_000) / 16_000
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    encoder, decoders = OpusEncoder(), OpusSpeakers()
    out, size = [], 0
    for i in range(0, len(tone), 1600):
        payload = encoder.encode(tone[i : i + 1600])
        size += len(payload)
        frame = encode_opus_audio(OpusAudio("s", i / 16_000, payload))
        item = decode_inbound(*split_frame(frame))
        assert isinstance(item, OpusAudio)
        out.append(decoders.decode("s", item.start_s, item.payload).samples)
    decoded = np.concatenate(out)
    assert abs(len(decoded) - len(tone)) <= 320
    assert size < len(tone) * 4 / 10  # at least 10x smaller than float32
    lag = 103  # Opus' look-ahead at 16 kHz
    err = decoded[4000:12_000] - tone[4000 - lag : 12_000 - lag]
    snr_db = 10 * np.log10(np.sum(tone[4000:12_000] ** 2) / np.sum(err**2))
    assert snr_db > 10, snr_db


def test_announce_round_trip() -> None:
    message = Announce("box", "cuda", 8)
    assert decode_outbound(*split_frame(encode_outbound(message))) == message
