"""Acceptance (issue 18, point 4): the shipped config/cluster/nginx-cluster.conf in front of two
``parley serve --cluster`` nodes and a real ``redis-server`` (loopback; only the addresses, the
listen line and the file paths are changed, TLS left out). Clients only know nginx: ``/ws``
reaches any node, a join for a room on the other node is redirected to ``/node/<id>/ws`` through
nginx and admitted there (an audience socket to ``/node/<id>/live/<room>/audience``); when the
room's node is SIGKILLed, joining through ``/ws`` again reaches the live node, which takes the
room over."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.typing import Origin

from tests.support.paths import REPO
from tests.support.raw import RawClient
from tests.support.redis_server import RedisServer
from tests.support.server import HOST, ServerProcess, free_port
from tests.support.waits import TIME_SCALE, wait_until

NGINX_CONF = REPO / "config" / "cluster" / "nginx-cluster.conf"
ADDRESSES = {"a": "10.0.0.11:8750", "b": "10.0.0.12:8750"}


def nginx_conf(tmp: Path, port: int, nodes: dict[str, int]) -> Path:
    conf = NGINX_CONF.read_text()
    conf = re.sub(r"listen\s+[^;]+;", f"listen {HOST}:{port};", conf)
    conf = re.sub(r"\s*ssl_certificate[^;]*;", "", conf)
    for name, address in ADDRESSES.items():
        conf = conf.replace(address, f"{HOST}:{nodes[name]}")
    conf = conf.replace("/var/log/nginx/", f"{tmp}/")
    conf = conf.replace("/run/nginx-parley-cluster.pid", f"{tmp}/nginx.pid")
    conf = conf.replace("user www-data;", f"user {getpass.getuser()};" if os.geteuid() == 0 else "")
    assert "10.0.0." not in conf and "ssl" not in conf
    (tmp / "nginx-temp").mkdir(exist_ok=True)
    path = tmp / "nginx.conf"
    path.write_text(conf)
    return path


def start_nginx(tmp: Path, port: int, nodes: dict[str, int]) -> subprocess.Popen[bytes]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.fail("nginx not installed (make system-deps)")
    path = nginx_conf(tmp, port, nodes)
    with (tmp / "nginx.stderr").open("wb") as stderr:
        return subprocess.Popen(
            [nginx, "-c", str(path), "-p", str(tmp), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def node_config(tmp: Path, name: str, redis_url: str, front: str) -> str:
    return (
        f'[server]\ndata_dir = "{tmp}"\npublic_url = "http://{front}"\n'
        f'trusted_proxies = ["{HOST}"]\n[auth]\nmode = "open"\n[captions]\nenabled = false\n'
        f'[cluster]\nredis_url = "{redis_url}"\nnode_address = "ws://{front}/node/{name}/ws"\n'
        f'node_id = "{name}"\nheartbeat_interval_s = 0.5\nnode_ttl_s = 1.5\n'
    )


async def join(url: str, origin: str, room: str, name: str) -> tuple[RawClient, dict[str, Any]]:
    client = await RawClient.connect(url, origin=origin)
    await client.send({"type": "join", "room": room, "name": name, "publish": []})
    while True:
        reply = await client.recv()
        if reply["type"] in {"joined", "redirect", "error"}:
            return client, reply


async def audience_hello(url: str, origin: str) -> dict[str, Any]:
    """An audience socket's first answer to ``hello`` (``welcome`` or ``redirect``)."""
    async with connect(url, origin=Origin(origin)) as ws:
        await ws.send(json.dumps({"type": "hello", "viewer_id": "viewer-0001", "lang": "en"}))
        answer: dict[str, Any] = json.loads(await ws.recv())
        return answer


async def test_the_shipped_nginx_front_routes_joins_to_the_rooms_node(tmp_path: Path) -> None:
    front_port = free_port()
    front = f"{HOST}:{front_port}"
    origin = f"http://{front}"
    redis = RedisServer(tmp_path, host=HOST, port=free_port())
    nodes: dict[str, ServerProcess] = {}
    proxy: subprocess.Popen[bytes] | None = None
    clients: list[RawClient] = []
    try:
        redis.start()
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            nodes[name] = ServerProcess(
                tmp_path / name, node_config(tmp_path / name, name, redis.url, front)
            )
            nodes[name].start()
        proxy = start_nginx(tmp_path, front_port, {n: s.port for n, s in nodes.items()})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

        def page_served() -> bool:
            try:
                with opener.open(f"http://{front}/", timeout=2) as reply:
                    return bool(reply.status == 200)
            except OSError:
                return False

        assert await wait_until(page_served, 10), (tmp_path / "nginx.stderr").read_text()
        for node in nodes.values():
            assert await wait_until(lambda n=node: n.metrics().get("parley_cluster_nodes") == 2, 5)

        alice, joined = await join(f"ws://{front}/ws", origin, "alpha", "Alice")
        clients.append(alice)
        assert joined["type"] == "joined", joined
        holder = joined["cluster"]["node"]
        assert set(joined["cluster"]["nodes"]) == {f"ws://{front}/node/{n}/ws" for n in nodes}
        # nginx round-robins /ws: some join reaches the other node and is sent on through nginx
        for _ in range(4):
            bob, reply = await join(f"ws://{front}/ws", origin, "alpha", "Bob")
            clients.append(bob)
            if reply["type"] == "redirect":
                break
        assert reply == {
            "type": "redirect",
            "room": "alpha",
            "node": holder,
            "url": f"ws://{front}/node/{holder}/ws",
        }
        bob, joined = await join(reply["url"], origin, "alpha", "Bob")
        clients.append(bob)
        assert joined["type"] == "joined" and joined["cluster"]["node"] == holder
        assert [p["name"] for p in joined["participants"]] == ["Alice"]
        # the audience socket too: one that reaches the other node is sent on through nginx
        audience = f"ws://{front}/live/alpha/audience"
        for _ in range(4):
            first = await audience_hello(audience, origin)
            if first["type"] == "redirect":
                break
        assert first == {
            "type": "redirect",
            "room": "alpha",
            "node": holder,
            "url": f"ws://{front}/node/{holder}/live/alpha/audience",
        }
        welcome = await audience_hello(first["url"], origin)
        assert welcome["type"] == "welcome" and welcome["cluster"]["node"] == holder, welcome

        # the room's node dies: joining through nginx again reaches the live node (nginx skips
        # the dead one), which takes the room over once the heartbeat expired
        for client in clients:
            await client.close()
        clients.clear()
        nodes[holder].stop(sig=signal.SIGKILL)
        survivor = next(n for n in nodes if n != holder)
        killed = time.monotonic()
        while True:
            carol, reply = await join(f"ws://{front}/ws", origin, "alpha", "Carol")
            clients.append(carol)
            if reply["type"] == "joined":
                break
            assert reply["type"] == "redirect", reply
            assert time.monotonic() - killed < 5 * TIME_SCALE, reply
            await carol.close()
            await asyncio.sleep(0.1)
        assert reply["cluster"]["node"] == survivor
        print(f"\nback through nginx {time.monotonic() - killed:.2f} s after the kill")
    finally:
        for client in clients:
            await client.close()
        if proxy is not None:
            proxy.terminate()
            proxy.wait(timeout=10)
        for node in nodes.values():
            node.stop()
        redis.stop()
