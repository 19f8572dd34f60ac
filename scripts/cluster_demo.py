"""A local Parley cluster in network namespaces, for demos and by-hand tests (issue 18):
``make cluster-demo`` (root). A private LAN (tests/support/lan.py) with a real redis-server and
N ``parley serve --cluster`` nodes on their own addresses; this machine is wired to the LAN too,
so a browser here opens any node's URL. Ctrl-C stops everything (nodes SIGTERMed: their rooms
are freed in Redis at once). Kill a node by hand (``kill -9 PID``, printed) to watch its rooms
move to another node.

    python scripts/cluster_demo.py [--nodes 2] [--captions]
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.cluster import start_cluster  # noqa: E402
from tests.support.lan import Lan  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402

PORT = 8750


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--captions", action="store_true", help="live captions on every node")
    parser.add_argument("--subnet", default="10.18.0")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="parley-cluster-"))
    lan = Lan(args.subnet)
    parts: list[RedisServer | ServerProcess] = []
    try:
        lan.join_from_here(1)
        redis, nodes = start_cluster(
            lan,
            work,
            args.nodes,
            port=PORT,
            sections=f"[captions]\nenabled = {'true' if args.captions else 'false'}\n",
            ready_s=180,
            parts=parts,
        )
        print(f"redis {redis.url}; logs under {work}")
        for node in nodes:
            print(f"node {node.http_url}/?room=demo   (pid {node.pid}, log {node.log_path})")
        origins = ",".join(node.http_url for node in nodes)
        print(
            "plain http on LAN addresses is no secure context (no camera): open them in\n"
            f"  chromium --unsafely-treat-insecure-origin-as-secure={origins} "
            "--user-data-dir=$(mktemp -d)"
        )
        print("Ctrl-C stops the cluster")
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        for part in reversed(parts):
            part.stop()
        lan.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
