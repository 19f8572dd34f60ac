"""A Parley cluster on a namespace LAN (tests/support/lan.py): a real redis-server at .10 and
N ``parley serve --cluster`` nodes at .11, .12, … (bench/cluster.py, scripts/cluster_demo.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.lan import Lan
from tests.support.redis_server import RedisServer
from tests.support.server import ServerProcess


def start_cluster(
    lan: Lan,
    work: Path,
    count: int,
    *,
    port: int,
    sections: str = "",
    cluster: str = "",
    ready_s: float = 120,
    parts: list[Any],
) -> tuple[RedisServer, list[ServerProcess]]:
    """Redis and ``count`` nodes, each ready; every process started is appended to ``parts``
    (the caller stops them in reverse, even when this raises). ``sections``: more TOML
    sections of every node's configuration; ``cluster``: more ``[cluster]`` keys."""
    redis_ns, redis_ip = lan.host(10)
    redis = RedisServer(work, host=redis_ip, port=6379, netns=redis_ns)
    redis.start()
    parts.append(redis)
    nodes = []
    for i in range(count):
        ns, ip = lan.host(11 + i)
        workdir = work / f"node-{i}"
        workdir.mkdir()
        config = (
            f'[server]\ndata_dir = "{workdir}"\n[auth]\nmode = "open"\n'
            f'[media]\nice_host_addresses = ["{ip}"]\n{sections}'
            f'[cluster]\nredis_url = "{redis.url}"\n{cluster}'
        )
        node = ServerProcess(workdir, config, host=ip, port=port, netns=ns)
        node.start(wait=False)
        nodes.append(node)
        parts.append(node)
    for node in nodes:
        node.wait_ready(ready_s)
    return redis, nodes
