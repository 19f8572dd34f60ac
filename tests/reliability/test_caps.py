"""Acceptance (issue 11, point 6): sockets that never say ``hello`` (or never ``join``) are
closed within their deadline and leave nothing behind; connection and room caps answer with
their documented close code or error. Against a real ``parley serve`` process."""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.support.origin import ws_origin
from tests.support.raw import RawClient
from tests.support.reliability import open_fds, rss_bytes, served_config, unhandled_in_log
from tests.support.server import ServerProcess
from tests.support.waits import TIME_SCALE

pytestmark = pytest.mark.reliability

IDLE_SOCKETS = 50
HELLO_TIMEOUT_S = 2.0
JOIN_TIMEOUT_S = 2.0
MAX_ROOMS = 3


@pytest.fixture
def capped_server(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path,
        served_config(
            "[captions]\nenabled = false\n\n[limits]\n"
            f"hello_timeout_s = {HELLO_TIMEOUT_S}\njoin_timeout_s = {JOIN_TIMEOUT_S}\n"
            f"max_rooms = {MAX_ROOMS}\nmax_connections_per_address = 60\n"
            "rooms_created_per_address_per_minute = 2\n"
        ),
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def raw_socket(url: str, address: str = "127.0.0.1") -> ClientConnection:
    # keepalive pings are answered by the client library: they must not keep the socket open
    return await connect(url, max_size=None, local_addr=(address, 0), origin=ws_origin(url))


async def closed_by_server(ws: ClientConnection, timeout_s: float) -> tuple[float, int | None, str]:
    """Seconds until the server closed ``ws``, its close code and the error it sent first."""
    t0 = time.monotonic()
    said = ""
    try:
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), timeout_s))
            said = message.get("code", said)
    except Exception:  # noqa: BLE001 - ConnectionClosed (the point) or a timeout (the failure)
        pass
    return time.monotonic() - t0, ws.close_code, said


async def settled(read: Any, limit: float, timeout_s: float) -> float:
    deadline = time.monotonic() + timeout_s * TIME_SCALE
    value = read()
    while value > limit and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        value = read()
    return float(value)


async def test_idle_sockets_are_closed_within_their_deadline(
    capped_server: ServerProcess,
) -> None:
    url = capped_server.ws_url
    # warm-up: imports and the allocator's first arenas are not a leak
    warm = [await raw_socket(url) for _ in range(5)]
    await asyncio.gather(*(closed_by_server(ws, 10 * TIME_SCALE) for ws in warm))
    await asyncio.sleep(0.5 * TIME_SCALE)  # the warm-up's closes settle
    gc.collect()
    pid = capped_server.pid
    fds_before, rss_before = open_fds(pid), rss_bytes(pid)

    silent = [await raw_socket(url) for _ in range(IDLE_SOCKETS)]
    results = await asyncio.gather(
        *(closed_by_server(ws, (HELLO_TIMEOUT_S + 5) * TIME_SCALE) for ws in silent)
    )
    waits = sorted(t for t, _, _ in results)
    assert {code for _, code, _ in results} == {1008}, results[:3]
    assert {said for _, _, said in results} == {"hello_timeout"}
    assert waits[-1] < (HELLO_TIMEOUT_S + 2) * TIME_SCALE, waits[-5:]

    # hello, then never join: the join deadline
    greeted = []
    for _ in range(10):
        client = await RawClient.connect(url)
        greeted.append(client.ws)
    results = await asyncio.gather(
        *(closed_by_server(ws, (JOIN_TIMEOUT_S + 5) * TIME_SCALE) for ws in greeted)
    )
    assert {code for _, code, _ in results} == {1008}
    assert {said for _, _, said in results} == {"join_timeout"}

    fds_after = await settled(lambda: open_fds(pid), fds_before, 10)
    rss_after = await settled(lambda: rss_bytes(pid), rss_before * 1.10, 10)
    print(
        f"{IDLE_SOCKETS} silent sockets closed after {waits[0]:.2f}-{waits[-1]:.2f} s "
        f"(deadline {HELLO_TIMEOUT_S} s); fds {fds_before} -> {fds_after:.0f}; RSS "
        f"{rss_before / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB"
    )
    assert fds_after <= fds_before
    assert rss_after <= rss_before * 1.10
    assert unhandled_in_log(capped_server.log_text()) == []


async def test_connection_and_room_caps(capped_server: ServerProcess) -> None:
    url = capped_server.ws_url
    # connections per address: the 61st from one address is closed with 1013 before hello;
    # another address still gets in
    held = [await raw_socket(url, "127.0.0.2") for _ in range(60)]
    extra = await raw_socket(url, "127.0.0.2")
    _, code, _ = await closed_by_server(extra, 5 * TIME_SCALE)
    assert (code, extra.close_reason) == (1013, "too_many_connections")
    other = await RawClient.connect(url)
    await other.send({"type": "join", "room": "r0", "name": "Ann"})
    assert (await other.recv("joined"))["room"] == "r0"
    for ws in held:
        await ws.close()

    # rooms created per address per minute (2 here): the third new room from one address waits
    second = await RawClient.connect(url)
    await second.send({"type": "join", "room": "r1", "name": "Bob"})
    await second.recv("joined")
    third = await RawClient.connect(url)
    await third.send({"type": "join", "room": "r2", "name": "Cy"})
    refused = await third.recv("error")
    assert refused["code"] == "rate_limited" and refused["retry_after_ms"] > 0
    # joining a room that exists creates nothing: not limited
    await third.send({"type": "join", "room": "r1", "name": "Cy"})
    await third.recv("joined")

    # rooms per server (3 here), from other addresses: the fourth room is refused
    clients = []
    for i, address in enumerate(("127.0.0.3", "127.0.0.4")):
        ws = await raw_socket(url, address)
        client = RawClient(ws)
        await client.send({"type": "hello", "protocol": 1})
        await client.recv("welcome")
        await client.send({"type": "join", "room": f"s{i}", "name": "Dee"})
        clients.append(client)
    assert (await clients[0].recv())["type"] == "joined"
    refused = await clients[1].recv("error")
    assert refused["code"] == "too_many_rooms", refused
    for c in (other, second, third, *clients):
        await c.close()
    assert unhandled_in_log(capped_server.log_text()) == []


async def test_the_join_deadline_spares_lobby_waiters_and_starts_again_after_a_denial(
    capped_server: ServerProcess,
) -> None:
    url = capped_server.ws_url
    host = await RawClient.connect(url)
    await host.send({"type": "join", "room": "r0", "name": "Hana"})
    await host.recv("joined")
    await host.send({"type": "room_settings", "lobby": True})
    await host.recv("room_settings")
    waiter = await RawClient.connect(url)
    await waiter.send({"type": "join", "room": "r0", "name": "Wes"})
    lobby = await waiter.recv("lobby")
    await host.recv("lobby_request")
    # waiting in the lobby is not idling: twice the join deadline, still open
    with pytest.raises(TimeoutError):
        await waiter.recv("error", timeout_s=2 * JOIN_TIMEOUT_S)
    assert waiter.ws.close_code is None
    await host.send({"type": "deny", "participant_id": lobby["participant_id"]})
    assert (await waiter.recv("error"))["code"] == "lobby_denied"
    # denied and silent: the deadline runs again
    t0 = time.monotonic()
    assert (await waiter.recv("error", timeout_s=(JOIN_TIMEOUT_S + 5) * TIME_SCALE))[
        "code"
    ] == "join_timeout"
    assert JOIN_TIMEOUT_S - 0.5 <= time.monotonic() - t0 < (JOIN_TIMEOUT_S + 2) * TIME_SCALE
    assert await waiter.closed() == 1008
    # the host, in the room, was never timed out
    assert host.ws.close_code is None
    await host.close()
