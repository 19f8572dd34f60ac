"""Acceptance (issue 17, point 3): two rooms, four speakers, two speech workers: placement
balances them, /metrics shows it per worker, and ``parley workers`` lists them."""

from __future__ import annotations

import asyncio
import urllib.request

import pytest
from typer.testing import CliRunner

from server.app import App
from server.cli import cli
from server.metrics import parse_text
from tests.support.app import loopback_settings, ws_url
from tests.support.client import FileAudio, ParleyClient
from tests.support.paths import EVALSET

pytestmark = [pytest.mark.media, pytest.mark.models]


def _fetch(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode()


async def test_two_rooms_four_speakers_two_workers_balanced() -> None:
    app = App(loopback_settings(captions={"enabled": True, "workers": 2, "cpu_threads": 1}))
    await app.start()
    clients: list[ParleyClient] = []
    try:
        assert app.captions is not None
        pool = app.captions.worker
        base = f"http://127.0.0.1:{app.port}"
        status, body = await asyncio.to_thread(_fetch, f"{base}/readyz")
        assert status == 200 and "speech workers up: 2 of 2" in body
        url = ws_url(app)
        clips = ["en/fleurs-en-000.ogg", "en/fleurs-en-001.ogg", "es/fleurs-es-000.ogg"]
        clips.append("es/fleurs-es-001.ogg")
        for i, clip in enumerate(clips):
            voice = FileAudio(str(EVALSET / "audio" / clip), loop=True)
            room = "room-a" if i < 2 else "room-b"
            lang = clip[:2]
            client = ParleyClient(url, room=room, name=f"S{i}", audio=voice, lang=lang)
            clients.append(client)
            await client.join()
        ids = [c.participant_id for c in clients]

        def placed() -> bool:
            return all(pool.worker_of(p or "") is not None for p in ids)

        assert await clients[0].wait_for(placed, 30), [pool.worker_of(p or "") for p in ids]
        per_worker = {w.worker_id: w.speakers for w in pool.workers()}
        assert per_worker == {"local-0": 2, "local-1": 2}, per_worker
        _, text = await asyncio.to_thread(_fetch, f"{base}/metrics")
        metrics = parse_text(text)
        for worker in ("local-0", "local-1"):
            assert metrics[f'parley_speech_worker_speakers{{worker="{worker}"}}'] == 2
            assert metrics[f'parley_speech_worker_capacity{{worker="{worker}"}}'] == 2
            key = f'parley_speech_worker_moves_total{{reason="worker_down",worker="{worker}"}}'
            assert metrics[key] == 0
        assert metrics["parley_speech_workers_up"] == 2
        info = 'parley_speech_worker_info{device="cpu",kind="local",model="base",worker="local-0"}'
        assert metrics[info] == 1
        result = await asyncio.to_thread(
            CliRunner().invoke, cli, ["workers", "--url", f"{base}/metrics"]
        )
        print(result.output)
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert lines[0].split()[:3] == ["WORKER", "KIND", "UP"]
        assert [line.split()[:6] for line in lines[1:]] == [
            ["local-0", "local", "yes", "base", "cpu", "2/2"],
            ["local-1", "local", "yes", "base", "cpu", "2/2"],
        ]
        # nothing spoken is in the listing or the metrics (counts only)
        assert "fleurs" not in result.output and "S0" not in text
    finally:
        for client in clients:
            await client.leave()
        await app.stop()
