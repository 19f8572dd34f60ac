"""Acceptance (issue 18, "Janus nodes register like Parley nodes"): a real Janus (in its network
namespace, tests/support/janus.py: libnice skips loopback), a real ``redis-server`` and two
``parley serve --cluster`` nodes there: A drives the Janus (``[media] backend = "janus"``), B
forwards media itself. A writes Janus's heartbeat key (address without secrets, load, capacity,
Janus's version from ``info``, A as its driver) while Janus answers; both nodes show it in
/metrics. When Janus is SIGKILLed, its key is gone within ``node_ttl_s``, A says ``ready:
false`` in its own heartbeat, and a new room asked at A goes to B although A is less loaded;
when Janus is back, so are its key and A's readiness."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from tests.support.janus import restart_janus, running_janus
from tests.support.raw import RawClient
from tests.support.redis_server import RedisServer
from tests.support.server import ServerProcess
from tests.support.waits import TIME_SCALE, wait_until

INTERVAL_S, TTL_S = 0.5, 1.5
LOCAL = "127.0.0.1"
MEDIA_ID = "janus-127.0.0.1-8188"


def node_config(tmp: Path, redis_url: str, *, capacity: int, media: str) -> str:
    return (
        f'[server]\ndata_dir = "{tmp}"\n[auth]\nmode = "open"\n[captions]\nenabled = false\n'
        f'{media}[cluster]\nredis_url = "{redis_url}"\nheartbeat_interval_s = {INTERVAL_S}\n'
        f"node_ttl_s = {TTL_S}\ncapacity = {capacity}\n"
    )


def node_id(node: ServerProcess) -> str:
    return f"{LOCAL}-{node.port}"


async def join(node: ServerProcess, room: str, name: str) -> tuple[RawClient, dict[str, Any]]:
    client = await RawClient.connect(node.ws_url)
    await client.send({"type": "join", "room": room, "name": name, "publish": []})
    while True:
        reply = await client.recv()
        if reply["type"] in {"joined", "redirect", "error"}:
            return client, reply


def metrics_text(node: ServerProcess) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{node.http_url}/metrics", timeout=5) as reply:
        return str(reply.read().decode())


async def heartbeat(store: Redis, key: str) -> dict[str, Any] | None:
    value = await store.get(key)
    return None if value is None else dict(json.loads(value))


async def test_a_janus_registers_while_it_answers_and_its_node_takes_no_room_without_it(
    tmp_path: Path,
) -> None:
    with running_janus(tmp_path / "janus") as janus:
        ns = janus.namespace
        redis = RedisServer(tmp_path, host=LOCAL, port=6379, netns=ns)
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        janus_media = (
            f'[media]\nbackend = "janus"\njanus_url = "{janus.url}"\n'
            f'janus_api_secret = "{janus.api_secret}"\njanus_admin_key = "{janus.admin_key}"\n'
        )
        # A may take many more participants than B: while its Janus answers, A is preferred
        a = ServerProcess(
            tmp_path / "a",
            node_config(tmp_path / "a", redis.url, capacity=1000, media=janus_media),
            host=LOCAL,
            port=8751,
            netns=ns,
        )
        b = ServerProcess(
            tmp_path / "b",
            node_config(tmp_path / "b", redis.url, capacity=10, media=""),
            host=LOCAL,
            port=8752,
            netns=ns,
        )
        clients: list[RawClient] = []
        store: Redis | None = None
        restarted: list[subprocess.Popen[bytes]] = []
        try:
            redis.start()
            a.start()
            b.start()
            with ns.entered():  # this thread's sockets are in Janus's namespace
                store = Redis.from_url(redis.url, decode_responses=True)
                # A registered its Janus: a heartbeat key like a node's, expiring
                assert await wait_until(
                    lambda: "parley_cluster_media_nodes 1.0" in metrics_text(b), 10
                )
                assert await store.smembers("parley:media_nodes") == {MEDIA_ID}
                media = await heartbeat(store, f"parley:media:{MEDIA_ID}")
                assert media is not None
                assert media["address"] == janus.url and media["driver"] == node_id(a)
                assert media["kind"] == "janus" and media["capacity"] == 1000
                assert re.fullmatch(r"\d+\.\d+\.\d+", media["version"]), media  # Janus's info
                assert janus.api_secret not in json.dumps(media)
                assert 0 < await store.pttl(f"parley:media:{MEDIA_ID}") <= TTL_S * 1000
                mine = await heartbeat(store, f"parley:node:{node_id(a)}")
                assert mine is not None and mine["ready"] and mine["media"] == MEDIA_ID
                text = metrics_text(a)
                assert "parley_cluster_media_up 1.0" in text
                assert (
                    f'parley_cluster_media_node_load{{driver="{node_id(a)}",media="{MEDIA_ID}",'
                    f'version="{media["version"]}"}} 0.0'
                ) in text

                # a room on A: its Janus's load follows; a room on B
                alice, joined = await join(a, "alpha", "Alice")
                clients.append(alice)
                assert joined["type"] == "joined" and joined["media_engine"] == "janus", joined
                carol, joined = await join(b, "gamma", "Carol")
                clients.append(carol)
                assert joined["type"] == "joined", joined
                for _ in range(int(4 * INTERVAL_S / 0.1)):
                    media = await heartbeat(store, f"parley:media:{MEDIA_ID}")
                    if media is not None and media["load"] == 1:
                        break
                    await asyncio.sleep(0.1)
                assert media is not None and (media["load"], media["rooms"]) == (1, 1), media
                # A, 1 of 1000, is preferred to B, 1 of 10: a new room asked at B goes to A
                await asyncio.sleep(INTERVAL_S * 2)  # B's load reached Redis, and A read it
                dave, moved = await join(b, "beta0", "Dave")
                await dave.close()
                assert moved["type"] == "redirect" and moved["node"] == node_id(a), moved

                # Janus dies: its key is gone within node_ttl_s, A is not ready
                os.kill(janus.pid, signal.SIGKILL)
                killed = time.monotonic()
                while await store.exists(f"parley:media:{MEDIA_ID}"):
                    assert time.monotonic() - killed <= TTL_S * TIME_SCALE, "Janus key outlived it"
                    await asyncio.sleep(0.05)
                gone_s = time.monotonic() - killed
                assert await wait_until(lambda: "media server not answering" in a.log_text(), 5)
                mine = await heartbeat(store, f"parley:node:{node_id(a)}")
                assert mine is not None and mine["ready"] is False, mine
                assert "parley_cluster_media_up 0.0" in metrics_text(a)
                # a new room goes to B, wherever it is asked; A's heartbeat goes on
                erin, moved = await join(a, "beta", "Erin")
                clients.append(erin)
                assert moved["type"] == "redirect" and moved["node"] == node_id(b), moved
                frank, joined = await join(b, "beta", "Frank")
                clients.append(frank)
                assert joined["type"] == "joined", joined
                await asyncio.sleep(INTERVAL_S * 2)  # B's next heartbeat forgets the Janus
                text = metrics_text(b)
                assert "parley_cluster_media_nodes 0.0" in text
                assert f'parley_cluster_node_ready{{node="{node_id(a)}"}} 0.0' in text
                assert await store.smembers("parley:nodes") == {node_id(a), node_id(b)}
                print(f"\nJanus key gone {gone_s:.2f} s after the kill (node_ttl_s {TTL_S})")

                # Janus is back: A's next probe reconnects, its key and A's readiness return,
                # and A (0 of 1000) gets the next new room again
                restarted.append(restart_janus(janus))
                back = time.monotonic()
                while not await store.exists(f"parley:media:{MEDIA_ID}"):
                    assert time.monotonic() - back <= 5 * TIME_SCALE, "Janus never came back"
                    await asyncio.sleep(0.05)
                assert await wait_until(lambda: "media server answering again" in a.log_text(), 5)
                mine = await heartbeat(store, f"parley:node:{node_id(a)}")
                assert mine is not None and mine["ready"] is True, mine
                await asyncio.sleep(INTERVAL_S * 2)  # B read A's readiness
                gina, moved = await join(b, "delta", "Gina")
                clients.append(gina)
                assert moved["type"] == "redirect" and moved["node"] == node_id(a), moved
                gina, joined = await join(a, "delta", "Gina")
                clients.append(gina)
                assert joined["type"] == "joined" and joined["media_engine"] == "janus", joined
        finally:
            for client in clients:
                await client.close()
            if store is not None:
                await store.aclose()
            a.stop()
            b.stop()
            redis.stop()
            for process in restarted:
                process.terminate()
                process.wait(10)
