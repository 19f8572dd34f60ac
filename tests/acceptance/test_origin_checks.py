"""Who may open /ws, against a real server: the Origin check (cross-site WebSocket hijacking) and
open mode behind a proxy (issue 11, points 1 and 2). The decisions themselves are unit-tested in
tests/unit/server/test_origins.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from server.app import App
from tests.support.app import started_app, ws_url
from tests.support.origin import ws_origin
from tests.support.raw import RawClient

EVIL = "https://evil.example"
SECRET = "origin-test-secret-origin-test-secret"


@pytest.fixture
async def token_app() -> AsyncIterator[App]:
    instance = await started_app(auth={"secret": SECRET})
    try:
        yield instance
    finally:
        await instance.stop()


@pytest.fixture
async def explicit_open_app() -> AsyncIterator[App]:
    instance = await started_app(auth={"mode": "open"})
    try:
        yield instance
    finally:
        await instance.stop()


async def attempt_join(
    url: str, *, origin: str | None, room: str, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    """What a hijacking page does: open /ws with ``origin`` and join ``room``. Returns the
    upgrade's HTTP status and the refusal's body (101 and "" when it went through and joined)."""
    try:
        ws = await connect(
            url,
            origin=None if origin is None else Origin(origin),
            additional_headers=headers,
            max_size=None,
        )
    except InvalidStatus as exc:
        return exc.response.status_code, exc.response.body.decode()
    client = RawClient(ws)
    await client.send({"type": "hello", "protocol": 1})
    await client.recv("welcome")
    await client.send({"type": "join", "room": room, "name": "Mallory"})
    await client.recv("joined")
    # stays in the room (as a page that listens in would) until the test's server stops
    return 101, ""


async def upgrade_status(port: int, headers: dict[str, str]) -> tuple[int, str]:
    """A hand-written upgrade request (any Host header), its status and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [
        "GET /ws HTTP/1.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status = int(head.split(b" ", 2)[1])
        body = b""
        if status != 101:
            body = await asyncio.wait_for(reader.read(4096), 10)
        return status, body.decode()
    finally:
        writer.close()
        await writer.wait_closed()


# -- point 1: Origin ---------------------------------------------------------------------------


async def test_a_page_on_another_origin_cannot_join_or_take_a_room(app: App) -> None:
    url = ws_url(app)
    host = await RawClient.connect(url)
    await host.send({"type": "join", "room": "board", "name": "Ada"})
    await host.recv("joined")
    await host.drain()

    status, reason = await attempt_join(url, origin=EVIL, room="board")
    assert (status, "Origin" in reason) == (403, True), (status, reason)
    status, reason = await attempt_join(url, origin=EVIL, room="unused")
    assert status == 403, status

    seen = await host.drain()
    assert [m["type"] for m in seen if m["type"] == "participant_joined"] == []
    assert sorted(app.signaling.rooms) == ["board"]
    assert len(app.signaling.rooms["board"].clients) == 1
    await host.close()


async def test_open_mode_refuses_a_socket_without_origin(app: App) -> None:
    status, reason = await attempt_join(ws_url(app), origin=None, room="unused")
    assert (status, "Origin" in reason) == (403, True), (status, reason)
    assert app.signaling.rooms == {}


async def test_token_mode_lets_a_non_browser_client_in_without_origin_but_not_a_foreign_page(
    token_app: App,
) -> None:
    url = ws_url(token_app)
    async with connect(url) as ws:  # no Origin: the token (in join) is the credential
        client = RawClient(ws)
        await client.send({"type": "hello", "protocol": 1})
        assert (await client.recv("welcome"))["protocol"] == 1
    status, _ = await upgrade_status(
        token_app.port, {"Host": f"127.0.0.1:{token_app.port}", "Origin": EVIL}
    )
    assert status == 403


async def test_the_servers_own_origins_are_accepted(app: App) -> None:
    for name in ("127.0.0.1", "localhost", "LOCALHOST", "[::1]"):
        origin = f"http://{name}:{app.port}"
        status, body = await upgrade_status(
            app.port, {"Host": f"127.0.0.1:{app.port}", "Origin": origin}
        )
        assert status == 101, (origin, status, body)
    status, _ = await upgrade_status(
        app.port, {"Host": f"127.0.0.1:{app.port}", "Origin": f"http://127.0.0.1:{app.port + 1}"}
    )
    assert status == 403  # another port is another origin


# -- point 2: open mode behind a proxy -----------------------------------------------------------


async def test_automatic_open_mode_refuses_proxied_requests(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    url = ws_url(app)
    for headers in (
        {"X-Forwarded-For": "203.0.113.7"},
        {"Forwarded": "for=203.0.113.7;proto=https"},
        {"X-Forwarded-Proto": "https"},
    ):
        status, reason = await attempt_join(url, origin=ws_origin(url), room="r", headers=headers)
        assert status == 403, (headers, status)
        assert 'mode = "open"' in reason and "token" in reason, reason
    status, reason = await upgrade_status(
        app.port, {"Host": "meet.example.org", "Origin": ws_origin(url)}
    )
    assert status == 403, (status, reason)
    assert app.signaling.rooms == {}
    # a direct browser on the machine itself still gets in
    assert (await attempt_join(url, origin=ws_origin(url), room="r"))[0] == 101


async def test_explicit_open_mode_accepts_proxied_requests(explicit_open_app: App) -> None:
    url = ws_url(explicit_open_app)
    status, reason = await attempt_join(
        url, origin=ws_origin(url), room="r", headers={"X-Forwarded-For": "203.0.113.7"}
    )
    assert status == 101, reason
    assert len(explicit_open_app.signaling.rooms["r"].clients) == 1
