"""Who may watch (PROTOCOL.md "Broadcast", Watching), over real HTTP on loopback: in token mode
/live/ needs a room token of that room as ``Authorization: Bearer`` (a viewer token will do);
none, another room's, an expired or a forged one get 403; with ``[broadcast] public = true``
anyone may, with CORS. The files are written here as the worker would (no worker needed)."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import jwt
import pytest

from server.app import App
from server.auth import issue_token
from tests.support.app import loopback_settings

SECRET = "0123456789abcdef" * 4
ROOM = "stage"


async def app_with(tmp_path: Path, *, public: bool) -> App:
    instance = App(
        loopback_settings(
            auth={"secret": SECRET},
            limits={"credential_failures_free": 100},
            broadcast={"dir": str(tmp_path / "live"), "public": public},
        )
    )
    await instance.start()
    (tmp_path / "live" / ROOM).mkdir(parents=True)
    (tmp_path / "live" / ROOM / "master.m3u8").write_text("#EXTM3U\n")
    return instance


@pytest.fixture
async def token_app(tmp_path: Path) -> AsyncIterator[App]:
    instance = await app_with(tmp_path, public=False)
    try:
        yield instance
    finally:
        await instance.stop()


def get(url: str, token: str | None = None) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


async def test_token_mode_viewers_need_a_token_of_the_room(token_app: App) -> None:
    app = token_app
    url = f"http://127.0.0.1:{app.port}/live/{ROOM}/master.m3u8"
    auth = app.settings.auth

    def viewer(room: str = ROOM, ttl_s: float = 600, now_s: float | None = None) -> str:
        return issue_token(auth, room=room, role="viewer", ttl_s=ttl_s, now_s=now_s)

    status, headers = await asyncio.to_thread(get, url, viewer())
    assert status == 200 and "Access-Control-Allow-Origin" not in headers
    host = issue_token(auth, room=ROOM, role="host", ttl_s=600)
    assert (await asyncio.to_thread(get, url, host))[0] == 200
    forged = jwt.encode({"room": ROOM, "role": "viewer", "exp": time.time() + 60}, "x" * 64)
    for refused in (None, viewer(room="other"), viewer(ttl_s=10, now_s=time.time() - 100), forged):
        assert (await asyncio.to_thread(get, url, refused))[0] == 403, refused
    # a file that is not there is 404 for a viewer, 403 (nothing learned) for anyone else
    missing = url.replace("master", "nothere")
    assert (await asyncio.to_thread(get, missing, viewer()))[0] == 404
    assert (await asyncio.to_thread(get, missing))[0] == 403


async def test_a_public_broadcast_needs_no_token(tmp_path: Path) -> None:
    app = await app_with(tmp_path, public=True)
    try:
        url = f"http://127.0.0.1:{app.port}/live/{ROOM}/master.m3u8"
        status, headers = await asyncio.to_thread(get, url)
        assert status == 200 and headers["Access-Control-Allow-Origin"] == "*"
    finally:
        await app.stop()
