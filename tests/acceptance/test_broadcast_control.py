"""Broadcast control over the real protocol (server/broadcast.py, a real server on loopback, the
real worker process and ffmpeg): only hosts start and stop it, everybody in the room (and each
later joiner) is told, the worker's seat is in no participant list, a wrong secret is refused,
/live/ serves the playlists with their cache rules, and stopping ends the stream with ENDLIST."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from server.app import App
from tests.support.app import loopback_settings, ws_url
from tests.support.origin import ws_origin
from tests.support.waits import wait_until

pytestmark = [pytest.mark.media]
ROOM = "aired"


@pytest.fixture
async def broadcast_app(tmp_path: Path) -> AsyncIterator[App]:
    settings = loopback_settings(
        broadcast={
            "dir": str(tmp_path / "live"),
            "renditions": [{"width": 160, "height": 90, "video_kbps": 100}],
            "fps": 5,
        }
    )
    instance = App(settings)
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


class Peer:
    """A signaling-only client: joins, keeps every message (answers no offer: no media)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.joined: dict[str, Any] = {}

    @classmethod
    async def join(cls, app: App, name: str) -> Peer:
        url = ws_url(app)
        peer = cls(await connect(url, origin=ws_origin(url)))
        await peer.send({"type": "hello", "protocol": 1})
        await peer.send({"type": "join", "room": ROOM, "name": name})
        peer.joined = await peer.expect("joined")
        return peer

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def expect(self, kind: str, timeout_s: float = 10.0, **fields: Any) -> dict[str, Any]:
        async with asyncio.timeout(timeout_s):
            while True:
                for message in self.messages:
                    if message["type"] == kind and all(
                        message.get(k) == v for k, v in fields.items()
                    ):
                        self.messages.remove(message)
                        return message
                self.messages.append(json.loads(await self.ws.recv()))


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), b""


async def test_hosts_broadcast_everyone_sees_it_nobody_sees_the_worker(
    broadcast_app: App, tmp_path: Path
) -> None:
    app = broadcast_app
    host = await Peer.join(app, "Hana")
    guest = await Peer.join(app, "Gus")
    await guest.send({"type": "broadcast_start"})
    error = await guest.expect("error")
    assert error["code"] == "forbidden" and error["ref"] == "broadcast_start"

    await host.send({"type": "broadcast_start"})
    for peer in (host, guest):
        state = await peer.expect("broadcast", on_air=True)
        assert state["watch_url"] == f"/watch.html?room={ROOM}"
    # the worker joins unseen: nobody hears of it, a joiner's list does not have it
    master = tmp_path / "live" / ROOM / "master.m3u8"
    assert await wait_until(master.exists, 30)
    live = app.signaling.rooms[ROOM]
    assert await wait_until(lambda: bool(live.hidden), 30)
    late = await Peer.join(app, "Lou")
    assert [p["name"] for p in late.joined["participants"]] == ["Hana", "Gus"]
    assert await late.expect("broadcast", on_air=True)
    snapshot = app.signaling.registry.get(ROOM)
    assert snapshot is not None and len(snapshot.participants) == 3
    assert not any(m["type"] == "participant_joined" and m["participant"]["name"] == "broadcast"
                   for m in host.messages)  # fmt: skip
    assert len(live.hidden) == 1 and len(live.clients) == 4

    # a host cannot remove (or mute) the hidden seat: for them it is nobody
    [hidden] = live.hidden
    await host.send({"type": "remove_participant", "participant_id": hidden})
    assert (await host.expect("error", ref="remove_participant"))["code"] == "bad_state"
    await host.send({"type": "mute_participant", "participant_id": hidden, "kinds": ["audio"]})
    assert (await host.expect("error", ref="mute_participant"))["code"] == "bad_state"
    assert live.hidden == {hidden}

    # a wrong secret is refused
    intruder_url = ws_url(app)
    async with connect(intruder_url, origin=ws_origin(intruder_url)) as ws:
        await ws.send(json.dumps({"type": "hello", "protocol": 1}))
        await ws.recv()
        await ws.send(json.dumps({"type": "broadcaster_join", "room": ROOM, "secret": "x" * 32}))
        assert json.loads(await ws.recv())["code"] == "forbidden"

    base = f"http://127.0.0.1:{app.port}/live/{ROOM}"
    status, headers, body = await asyncio.to_thread(fetch, f"{base}/master.m3u8")
    assert status == 200 and body.startswith(b"#EXTM3U")
    assert headers["Cache-Control"] == "max-age=1"
    assert headers["Content-Type"] == "application/vnd.apple.mpegurl"
    for bad in ("../x.m3u8", "v0/..%2Fx.m3u8", ".hidden.m3u8", "job.json"):
        assert (await asyncio.to_thread(fetch, f"{base}/{bad}"))[0] == 404

    playlist = tmp_path / "live" / ROOM / "v0" / "index.m3u8"
    assert await wait_until(lambda: playlist.exists() and ".ts" in playlist.read_text(), 30)
    segment = next(line for line in playlist.read_text().splitlines() if line.endswith(".ts"))
    status, headers, _ = await asyncio.to_thread(fetch, f"{base}/v0/{segment}")
    assert status == 200 and headers["Cache-Control"].endswith("immutable")

    await host.send({"type": "broadcast_stop"})
    await guest.expect("broadcast", timeout_s=20, on_air=False)
    assert "#EXT-X-ENDLIST" in playlist.read_text()
    assert "#EXT-X-ENDLIST" in (tmp_path / "live" / ROOM / "s_orig" / "index.m3u8").read_text()
    assert not live.hidden and len(live.clients) == 3
    for peer in (host, guest, late):
        await peer.ws.close()
