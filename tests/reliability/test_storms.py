"""Join storms against a real ``parley serve`` process (signaling only, no media): many rooms at
once, and one room at once."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.raw import RawClient
from tests.support.reliability import report, rss_bytes, served_config, unhandled_in_log
from tests.support.server import ServerProcess
from tests.support.waits import TIME_SCALE

pytestmark = pytest.mark.reliability

ROOMS = 20
JOINS = 200
STORM_S = 10.0


@pytest.fixture
def storm_server(tmp_path: Path) -> Iterator[ServerProcess]:
    # every storm client comes from 127.0.0.1: the per-address caps (test_caps.py) are raised so
    # that the server's capacity is what is measured
    server = ServerProcess(
        tmp_path,
        served_config(
            "[captions]\nenabled = false\n\n[limits]\nmax_connections_per_address = 1000\n"
            "rooms_created_per_address_per_minute = 1000\n"
        ),
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def join(url: str, room: str, name: str) -> tuple[RawClient, float, dict[str, Any]]:
    """Connect, hello, join; returns the client, seconds from sending ``join`` to ``joined`` (or
    the refusal), and the answer."""
    client = await RawClient.connect(url)
    t0 = time.monotonic()
    await client.send({"type": "join", "room": room, "name": name})
    while True:
        answer = await client.recv(timeout_s=30)
        if answer["type"] in ("joined", "error"):
            return client, time.monotonic() - t0, answer


async def leave_all(clients: list[RawClient]) -> None:
    async def leave(client: RawClient) -> None:
        with contextlib.suppress(Exception):
            await client.send({"type": "leave"})
        try:
            await asyncio.wait_for(client.close(), 5)
        except Exception:  # noqa: BLE001 - a slow close handshake: drop the socket instead
            client.ws.transport.abort()
        await client.ws.wait_closed()

    await asyncio.gather(*(leave(c) for c in clients))


async def settled_rss(server: ServerProcess, limit: int, timeout_s: float) -> int:
    """The server's RSS once it is at or below ``limit`` (or the last reading at the timeout)."""
    deadline = time.monotonic() + timeout_s * TIME_SCALE
    rss = rss_bytes(server.pid)
    while rss > limit and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        rss = rss_bytes(server.pid)
    return rss


async def test_join_storm_200_joins_in_10_s_across_20_rooms(storm_server: ServerProcess) -> None:
    url = storm_server.ws_url
    # warm-up round: imports, caches and the allocator's first arenas are not a leak
    warm = await asyncio.gather(*(join(url, f"warm{i}", f"w{i}") for i in range(ROOMS)))
    await leave_all([c for c, _, _ in warm])
    await asyncio.sleep(1.0 * TIME_SCALE)  # the warm-up's exits settle
    gc.collect()
    rss_before = rss_bytes(storm_server.pid)

    t0 = time.monotonic()

    async def scheduled(i: int) -> tuple[RawClient, float, dict[str, Any]]:
        await asyncio.sleep(max(0.0, t0 + i * STORM_S / JOINS - time.monotonic()))
        return await join(url, f"storm{i % ROOMS}", f"p{i}")

    results = await asyncio.gather(*(scheduled(i) for i in range(JOINS)))
    storm_s = time.monotonic() - t0
    clients = [c for c, _, _ in results]
    refused = [a for _, _, a in results if a["type"] != "joined"]
    latencies = sorted(s for _, s, _ in results)
    p99 = latencies[int(0.99 * (len(latencies) - 1))]
    rss_loaded = rss_bytes(storm_server.pid)
    # the room lists agree: the last joiner of every room sees the nine before it
    last = {i % ROOMS: a for i, (_, _, a) in enumerate(results)}
    sizes = {room: len(a["participants"]) for room, a in last.items()}
    metrics = storm_server.metrics()
    await leave_all(clients)
    # the sockets are closed; the server removes their participants one by one (each exit
    # holds the membership lock): wait for the count asserted below, not for the first scrape
    deadline = time.monotonic() + 15 * TIME_SCALE
    after = storm_server.metrics()
    while after["parley_participants"] > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        after = storm_server.metrics()
    rss_after = await settled_rss(storm_server, int(rss_before * 1.10), timeout_s=15)
    print(
        f"join storm: {JOINS} joins in {storm_s:.1f} s, p50 {latencies[len(latencies) // 2]:.3f}"
        f" s, p99 {p99:.3f} s, max {latencies[-1]:.3f} s; RSS {rss_before / 2**20:.1f} →"
        f" {rss_loaded / 2**20:.1f} → {rss_after / 2**20:.1f} MiB"
    )
    report(
        "join_storm",
        {
            "joins": JOINS,
            "rooms": ROOMS,
            "storm_s": round(storm_s, 2),
            "join_p50_s": round(latencies[len(latencies) // 2], 3),
            "join_p99_s": round(p99, 3),
            "join_max_s": round(latencies[-1], 3),
            "rss_mib": [round(v / 2**20, 1) for v in (rss_before, rss_loaded, rss_after)],
        },
    )
    assert refused == []
    assert p99 < 1.0 * TIME_SCALE, latencies[-10:]
    assert set(sizes.values()) == {JOINS // ROOMS - 1}, sizes
    assert metrics["parley_participants"] == JOINS
    assert after["parley_participants"] == 0 and after["parley_rooms"] == 0
    assert rss_after <= rss_before * 1.10, (rss_before, rss_after)
    assert unhandled_in_log(storm_server.log_text()) == []


async def test_one_room_storm_each_admitted_within_15_s_or_rate_limited(
    tmp_path: Path,
) -> None:
    """60 joins in 2 s into one room (room size raised so that only the join rate limits):
    with the default token bucket (burst 10, then 2/s) each client is admitted within 15 s of its
    first try, retrying as ``retry_after_ms`` says, or is still told ``rate_limited``."""
    server = ServerProcess(
        tmp_path,
        served_config(
            "[captions]\nenabled = false\n\n[rooms]\nmax_participants_per_room = 64\n\n"
            "[limits]\nmax_media_sections = 128\n"
        ),
    )
    server.start()
    clients: list[RawClient] = []
    try:
        t0 = time.monotonic()
        outcomes: dict[int, dict[str, Any]] = {}

        async def one(i: int) -> None:
            await asyncio.sleep(max(0.0, t0 + i * 2.0 / 60 - time.monotonic()))
            first = time.monotonic()
            client = await RawClient.connect(server.ws_url)
            clients.append(client)
            tries = 0
            while True:
                tries += 1
                await client.send({"type": "join", "room": "crowd", "name": f"c{i}"})
                while True:
                    answer = await client.recv(timeout_s=20)
                    if answer["type"] in ("joined", "error"):
                        break
                waited = time.monotonic() - first
                outcomes[i] = {"answer": answer, "after_s": waited, "tries": tries}
                if answer["type"] == "joined" or answer.get("code") != "rate_limited":
                    return
                retry_s = answer["retry_after_ms"] / 1000
                if waited + retry_s > 15.0:
                    return
                await asyncio.sleep(retry_s)

        await asyncio.gather(*(one(i) for i in range(60)))
        admitted = [o for o in outcomes.values() if o["answer"]["type"] == "joined"]
        limited = [o for o in outcomes.values() if o["answer"].get("code") == "rate_limited"]
        others = [o for o in outcomes.values() if o not in admitted and o not in limited]
        elapsed = time.monotonic() - t0
        print(
            f"one-room storm: {len(admitted)} admitted (last after"
            f" {max(o['after_s'] for o in admitted):.1f} s), {len(limited)} still rate_limited at"
            f" 15 s, {sum(o['tries'] for o in outcomes.values())} join tries"
        )
        report(
            "one_room_storm",
            {
                "joins": 60,
                "admitted": len(admitted),
                "rate_limited_at_15_s": len(limited),
                "last_admitted_after_s": round(max(o["after_s"] for o in admitted), 2),
                "tries": sum(o["tries"] for o in outcomes.values()),
            },
        )
        assert len(outcomes) == 60 and others == []
        assert all(o["after_s"] <= 15.5 for o in admitted)
        assert all(o["answer"]["retry_after_ms"] > 0 for o in limited)
        # the bucket: a burst of 10, then 2 per second, never more
        assert 10 <= len(admitted) <= 10 + 2 * elapsed + 1
        # nobody refused became a member: the room holds exactly the admitted
        probe_client, _, probe = await join(server.ws_url, "crowd", "late")
        clients.append(probe_client)
        if probe["type"] == "joined":
            assert len(probe["participants"]) == len(admitted)
        else:
            assert probe["code"] == "rate_limited"
            assert server.metrics()["parley_participants"] == len(admitted)
        assert unhandled_in_log(server.log_text()) == []
    finally:
        await leave_all(clients)
        server.stop()
