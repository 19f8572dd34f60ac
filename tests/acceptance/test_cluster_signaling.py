"""Acceptance (issue 18, points 1, 2 and 4, signaling): two ``parley serve --cluster`` nodes and
a real ``redis-server`` on loopback. The nodes register (address, load, capacity, version) with
a heartbeat that expires; a room lives on one node, placed by load; a join that reaches the other
node gets ``redirect``; when the node holding a room is SIGKILLed, the next join takes the room
over once its heartbeat expired; a node stopped on purpose frees its rooms at once; without
Redis, live rooms go on and new ones are refused with ``cluster_unavailable``."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from tests.support.raw import RawClient
from tests.support.redis_server import RedisServer
from tests.support.server import HOST, ServerProcess, free_port
from tests.support.waits import TIME_SCALE, wait_until

INTERVAL_S, TTL_S = 0.5, 1.5


def node_config(tmp: Path, redis_url: str | None) -> str:
    cluster = f'redis_url = "{redis_url}"\n' if redis_url else ""
    return (
        f'[server]\ndata_dir = "{tmp}"\n[auth]\nmode = "open"\n[captions]\nenabled = false\n'
        f"[cluster]\n{cluster}heartbeat_interval_s = {INTERVAL_S}\nnode_ttl_s = {TTL_S}\n"
        "capacity = 50\n"
    )


def node_id(server: ServerProcess) -> str:
    return f"{HOST}-{server.port}"


async def join(
    url: str, room: str, name: str, *, origin: str | None = None
) -> tuple[RawClient, dict[str, Any]]:
    """A client that says hello and joins ``room`` at ``url``; the answer (joined, redirect or
    error)."""
    client = await RawClient.connect(url, origin=origin)
    await client.send({"type": "join", "room": room, "name": name, "publish": []})
    while True:
        reply = await client.recv()
        if reply["type"] in {"joined", "redirect", "error"}:
            return client, reply


def metrics_text(server: ServerProcess) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{server.http_url}/metrics", timeout=5) as reply:
        return str(reply.read().decode())


def page_csp(server: ServerProcess) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{server.http_url}/", timeout=5) as reply:
        return str(reply.headers["Content-Security-Policy"])


async def test_nodes_place_rooms_redirect_and_take_over_a_dead_nodes_rooms(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path, host=HOST, port=free_port())
    redis.start()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    # node A joins with the command-line flag, node B with the configuration's redis_url
    a = ServerProcess(
        tmp_path / "a", node_config(tmp_path / "a", None), args=["--cluster", redis.url]
    )
    b = ServerProcess(tmp_path / "b", node_config(tmp_path / "b", redis.url))
    store = Redis.from_url(redis.url, decode_responses=True)
    clients: list[RawClient] = []
    try:
        a.start()
        b.start()
        # registered: a heartbeat key each, with address, load, capacity and version, expiring
        assert await store.smembers("parley:nodes") == {node_id(a), node_id(b)}
        info = json.loads(await store.get(f"parley:node:{node_id(a)}") or "{}")
        assert info["address"] == a.ws_url and info["capacity"] == 50 and info["load"] == 0
        assert info["version"] and info["id"] == node_id(a)
        assert 0 < await store.pttl(f"parley:node:{node_id(a)}") <= TTL_S * 1000
        # each node reads the other's heartbeat (the directory placement chooses from)
        for node in (a, b):
            assert await wait_until(lambda n=node: n.metrics().get("parley_cluster_nodes") == 2, 5)

        # a room lives on one node: the first join places it (a tie: the asked node keeps it)
        alice, joined = await join(a.ws_url, "alpha", "Alice")
        clients.append(alice)
        assert joined["type"] == "joined", joined
        assert joined["cluster"]["node"] == node_id(a)
        assert set(joined["cluster"]["nodes"]) == {a.ws_url, b.ws_url}
        assert await store.get("parley:room:alpha") == node_id(a)
        # a join that reaches the other node is sent to the room's node
        bob, redirect = await join(b.ws_url, "alpha", "Bob")
        clients.append(bob)
        assert redirect == {
            "type": "redirect",
            "room": "alpha",
            "node": node_id(a),
            "url": a.ws_url,
        }
        # ...whose socket a page of node B may open (the cluster's pages), another site's not
        bob2, joined = await join(redirect["url"], "alpha", "Bob", origin=f"http://{HOST}:{b.port}")
        clients.append(bob2)
        assert joined["type"] == "joined" and [p["name"] for p in joined["participants"]] == [
            "Alice"
        ]
        refused = await asyncio.to_thread(_refused_origin, a.ws_url, "http://evil.example")
        assert refused
        assert f"ws://{HOST}:{a.port}" in page_csp(b)  # B's pages may connect to A's socket
        # the room's broadcast and audience documents are its node's: B sends a reader there
        status, location = await asyncio.to_thread(_get, b, "/live/alpha/master.m3u8?x=1")
        assert (status, location) == (307, f"http://{HOST}:{a.port}/live/alpha/master.m3u8?x=1")
        status, location = await asyncio.to_thread(_get, a, "/live/alpha/master.m3u8")
        assert status == 404 and location is None  # A holds the room: no broadcast, no loop

        # by load: A holds 2 participants, B none: a new room asked at A goes to B
        await asyncio.sleep(INTERVAL_S * 2)  # A's load reaches Redis with its next heartbeat
        carol, moved = await join(a.ws_url, "beta", "Carol")
        clients.append(carol)
        assert moved["type"] == "redirect" and moved["node"] == node_id(b), moved
        text = metrics_text(a)
        assert "parley_cluster_nodes 2.0" in text
        assert f'parley_cluster_node_load{{node="{node_id(a)}"}} 2.0' in text
        assert f'parley_cluster_node_rooms{{node="{node_id(a)}"}} 1.0' in text
        assert "parley_cluster_redirects_total 1.0" in text
        assert "parley_cluster_redis_up 1.0" in text

        # the host's glossary is kept in Redis for the node that may take the room over
        entries = [{"term": "Parley", "keep": True}]
        await alice.send({"type": "glossary_set", "entries": entries})
        assert (await alice.recv("glossary"))["entries"][0]["term"] == "Parley"
        for _ in range(int(4 * INTERVAL_S / 0.1)):
            if await store.get("parley:snapshot:glossary:alpha"):
                break
            await asyncio.sleep(0.1)
        assert await store.get("parley:snapshot:glossary:alpha")

        # node failure: A is killed (Alice still in the room); its room is placed anew on B once
        # A's heartbeat expired, with the glossary
        for client in clients[1:]:
            await client.close()
        clients[1:] = []
        a.stop(sig=signal.SIGKILL)
        killed = time.monotonic()
        redirects = 0
        while True:
            dave, reply = await join(b.ws_url, "alpha", "Dave")
            if reply["type"] == "joined":
                clients.append(dave)
                break
            assert reply["type"] == "redirect" and reply["node"] == node_id(a), reply
            redirects += 1
            await dave.close()
            assert time.monotonic() - killed < (TTL_S + 3) * TIME_SCALE, "never taken over"
            await asyncio.sleep(0.1)
        took_s = time.monotonic() - killed
        restored = await dave.recv("glossary")
        assert restored["entries"] == [
            {"term": "Parley", "lang": None, "renderings": {}, "keep": True}
        ], restored
        print(
            f"\nroom taken over {took_s:.2f} s after the kill "
            f"({redirects} redirects to the dead node)"
        )
        assert took_s <= (TTL_S + 1) * TIME_SCALE
        assert await store.get("parley:room:alpha") == node_id(b)
        # B's next heartbeat forgets the dead node
        for _ in range(int(4 * INTERVAL_S / 0.1)):
            if await store.smembers("parley:nodes") == {node_id(b)}:
                break
            await asyncio.sleep(0.1)
        assert await store.smembers("parley:nodes") == {node_id(b)}
        assert "parley_cluster_takeovers_total 1.0" in metrics_text(b)
        # the dead node's pages are still open in browsers: they may open B's socket
        assert not await asyncio.to_thread(_refused_origin, b.ws_url, f"http://{HOST}:{a.port}")

        # a node stopped on purpose frees its rooms at once (no wait for the heartbeat to expire)
        a.start()
        # (in a thread: this loop answers B's close frames, as a client does)
        assert await asyncio.to_thread(b.stop) == 0, b.log_tail()
        stopped = time.monotonic()
        erin, reply = await join(a.ws_url, "alpha", "Erin")
        clients.append(erin)
        assert reply["type"] == "joined", reply
        assert time.monotonic() - stopped < TTL_S

        # without Redis: the live room goes on, a new room cannot be placed (and says so)
        redis.stop()
        frank, reply = await join(a.ws_url, "alpha", "Frank")
        clients.append(frank)
        assert reply["type"] == "joined", reply
        gina, reply = await join(a.ws_url, "gamma", "Gina")
        clients.append(gina)
        assert reply["type"] == "error" and reply["code"] == "cluster_unavailable", reply
        assert reply["retry_after_ms"] > 0
        assert await wait_until(lambda: "redis unreachable" in a.log_text(), 5)
    finally:
        for client in clients:
            await client.close()
        await store.aclose()
        a.stop()
        b.stop()
        redis.stop()


def _get(server: ServerProcess, path: str) -> tuple[int, str | None]:
    """A GET that does not follow redirects: (status, Location)."""
    import http.client

    connection = http.client.HTTPConnection(HOST, server.port, timeout=5)
    try:
        connection.request("GET", path)
        reply = connection.getresponse()
        reply.read()
        return reply.status, reply.getheader("Location")
    finally:
        connection.close()


def _refused_origin(url: str, origin: str) -> bool:
    """The upgrade from a page of ``origin`` is refused with 403."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    try:
        with connect(url, origin=origin):  # type: ignore[arg-type]
            return False
    except InvalidStatus as exc:
        return exc.response.status_code == 403


async def test_a_node_that_missed_its_heartbeats_hands_its_lost_room_over(tmp_path: Path) -> None:
    """Node A is frozen (SIGSTOP) past its heartbeat's life: B takes its room over. When A
    wakes up, its next heartbeat finds the room held by B: A's participant gets ``redirect`` to
    B and its socket closes with 4005 (one room, one node, even after a partition)."""
    redis = RedisServer(tmp_path, host=HOST, port=free_port())
    redis.start()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = ServerProcess(tmp_path / "a", node_config(tmp_path / "a", redis.url))
    b = ServerProcess(tmp_path / "b", node_config(tmp_path / "b", redis.url))
    clients: list[RawClient] = []
    try:
        a.start()
        b.start()
        for node in (a, b):
            assert await wait_until(lambda n=node: n.metrics().get("parley_cluster_nodes") == 2, 5)
        alice, joined = await join(a.ws_url, "alpha", "Alice")
        clients.append(alice)
        assert joined["type"] == "joined" and joined["cluster"]["node"] == node_id(a)
        assert a.proc is not None
        a.proc.send_signal(signal.SIGSTOP)
        frozen = time.monotonic()
        try:
            while True:
                bob, reply = await join(b.ws_url, "alpha", "Bob")
                clients.append(bob)
                if reply["type"] == "joined":
                    break
                assert time.monotonic() - frozen < (TTL_S + 3) * TIME_SCALE, reply
                await asyncio.sleep(0.1)
        finally:
            a.proc.send_signal(signal.SIGCONT)
        moved = await alice.recv("redirect", timeout_s=5 * TIME_SCALE)
        assert moved == {"type": "redirect", "room": "alpha", "node": node_id(b), "url": b.ws_url}
        assert await alice.closed() == 4005
        assert "parley_cluster_lost_rooms_total 1.0" in metrics_text(a)
        assert "room moved to another node" in a.log_text()
    finally:
        for client in clients:
            await client.close()
        a.stop()
        b.stop()
        redis.stop()
