"""What does the cluster layer cost, and how fast does a room move? (issue 18, acceptance 4)

A private LAN of network namespaces (tests/support/lan.py): a real ``redis-server``, ``--nodes``
``parley serve --cluster`` nodes (captions off: this measures placement, not media), and this
process's clients in a namespace of their own. Three phases:

1. **Fill**: ``--rooms`` rooms of ``--participants`` signaling participants (``join`` with no
   media), each participant entering through the nodes in turn, as a round-robin proxy would
   send them; a join that reaches another node than its room's follows the ``redirect``. Join
   latency (socket open to ``joined``) direct and redirected, p50/p95; then each node's
   ``parley_rooms`` / ``parley_participants`` (placement by load should spread them evenly).
2. **Redis**: commands per second the idle cluster costs (``INFO commandstats`` over 5 s).
3. **Failover** ``--failovers`` times: the node holding a room is SIGKILLed; a client joins the
   room at another node every 100 ms until it is admitted there (the time against
   ``node_ttl_s``); the node is started again.

    PYTHONPATH=. .venv/bin/python bench/cluster.py --nodes 2 --rooms 20 --participants 5 \\
        --failovers 3 --json bench/results/cluster.json      (root: namespaces)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from tests.support.cluster import start_cluster
from tests.support.lan import Lan
from tests.support.raw import RawClient
from tests.support.redis_server import RedisServer
from tests.support.server import ServerProcess

PORT = 8750


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1) if ordered else 0.0


async def join_at(url: str, room: str, name: str) -> tuple[RawClient, float, bool]:
    """Join ``room`` entering at ``url``; (client, ms to ``joined``, redirected)."""
    began = time.perf_counter()
    redirected = False
    for _ in range(4):
        client = await RawClient.connect(url)
        await client.send({"type": "join", "room": room, "name": name, "publish": []})
        while True:
            reply = await client.recv()
            if reply["type"] in {"joined", "redirect", "error"}:
                break
        if reply["type"] == "joined":
            return client, (time.perf_counter() - began) * 1000, redirected
        await client.close()
        if reply["type"] == "error":
            raise RuntimeError(f"join refused: {reply}")
        url, redirected = reply["url"], True
    raise RuntimeError("redirect loop")


async def commands_per_s(store: Redis, seconds: float) -> float:
    async def total() -> int:
        stats = await store.info("commandstats")
        return sum(int(v["calls"]) for v in stats.values())

    before = await total()
    await asyncio.sleep(seconds)
    return round((await total() - before - 1) / seconds, 1)  # less our own INFO


async def run(
    args: argparse.Namespace, redis: RedisServer, nodes: list[ServerProcess]
) -> dict[str, Any]:
    store = Redis.from_url(redis.url, decode_responses=True)
    out: dict[str, Any] = {
        "nodes": len(nodes),
        "rooms": args.rooms,
        "participants": args.participants,
    }
    clients: list[RawClient] = []
    direct: list[float] = []
    redirected: list[float] = []
    for r in range(args.rooms):
        for p in range(args.participants):
            entry = nodes[(r * args.participants + p) % len(nodes)]
            client, ms, moved = await join_at(entry.ws_url, f"room-{r}", f"p{p}")
            clients.append(client)
            (redirected if moved else direct).append(ms)
    await asyncio.sleep(2.5)  # a heartbeat or two: /metrics and Redis agree
    per_node = []
    for node in nodes:
        m = node.metrics()
        per_node.append(
            {
                "node": node.host,
                "rooms": m["parley_rooms"],
                "participants": m["parley_participants"],
            }
        )
    out["fill"] = {
        "joins": len(direct) + len(redirected),
        "redirected": len(redirected),
        "direct_ms_p50": pct(direct, 0.5),
        "direct_ms_p95": pct(direct, 0.95),
        "redirected_ms_p50": pct(redirected, 0.5),
        "redirected_ms_p95": pct(redirected, 0.95),
        "per_node": per_node,
    }
    out["redis_commands_per_s_loaded"] = await commands_per_s(store, 5)
    for client in clients:
        await client.close()
    await asyncio.sleep(2.5)
    out["redis_commands_per_s_idle"] = await commands_per_s(store, 5)

    takeovers: list[float] = []
    for i in range(args.failovers):
        room = f"failover-{i}"
        holder_client, _, _ = await join_at(nodes[i % len(nodes)].ws_url, room, "host")
        owner = await store.get(f"parley:room:{room}")
        holder = next(n for n in nodes if owner == f"{n.host}-{PORT}")
        other = next(n for n in nodes if n is not holder)
        holder.stop(sig=signal.SIGKILL)
        killed = time.perf_counter()
        await holder_client.close()
        while True:
            client = await RawClient.connect(other.ws_url)
            await client.send({"type": "join", "room": room, "name": "again", "publish": []})
            reply = await client.recv()
            while reply["type"] not in {"joined", "redirect", "error"}:
                reply = await client.recv()
            await client.close()
            if reply["type"] == "joined":
                break
            await asyncio.sleep(0.1)
        takeovers.append(round(time.perf_counter() - killed, 2))
        holder.start(wait=False)
        holder.wait_ready(60)
        await asyncio.sleep(2.5)  # known to the others again
    out["failover_s"] = takeovers
    out["failover_s_max"] = max(takeovers) if takeovers else None
    await store.aclose()
    return out


def markdown(r: dict[str, Any], ttl_s: float) -> str:
    f = r["fill"]
    head = "| nodes | rooms × participants | joins redirected | join ms direct p50 / p95 |"
    lines = [
        head + " join ms redirected p50 / p95 |",
        "|---|---|---|---|---|",
        f"| {r['nodes']} | {r['rooms']} × {r['participants']} | "
        f"{f['redirected']} of {f['joins']} | {f['direct_ms_p50']} / {f['direct_ms_p95']} | "
        f"{f['redirected_ms_p50']} / {f['redirected_ms_p95']} |",
        "",
        "| node | rooms | participants |",
        "|---|---|---|",
        *[f"| {n['node']} | {n['rooms']:.0f} | {n['participants']:.0f} |" for n in f["per_node"]],
        "",
        f"Redis: {r['redis_commands_per_s_idle']} commands/s idle, "
        f"{r['redis_commands_per_s_loaded']} with the rooms live. Failover (SIGKILL → a join "
        f"admitted on another node), node_ttl_s = {ttl_s}: {r['failover_s']} s.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument("--participants", type=int, default=5)
    parser.add_argument("--failovers", type=int, default=3)
    parser.add_argument("--ttl-s", type=float, default=3.0)
    parser.add_argument("--json", type=Path, default=Path("bench/results/cluster.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="parley-bench-cluster-"))
    lan = Lan("10.19.0")
    parts: list[Any] = []
    try:
        redis, nodes = start_cluster(
            lan,
            work,
            args.nodes,
            port=PORT,
            sections="[captions]\nenabled = false\n"
            "[limits]\njoins_per_room_per_s = 100\njoin_burst = 100\n"
            "rooms_created_per_address_per_minute = 10000\n",
            cluster=f"heartbeat_interval_s = {args.ttl_s / 3}\nnode_ttl_s = {args.ttl_s}\n",
            parts=parts,
        )
        client_ns, _ = lan.host(30)
        time.sleep(args.ttl_s)  # every node read the others' heartbeats
        with client_ns.entered():  # this thread's sockets are the client machine's
            result = asyncio.run(run(args, redis, nodes))
    finally:
        for part in reversed(parts):
            part.stop()
        lan.close()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    table = markdown(result, args.ttl_s)
    args.json.with_suffix(".md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
