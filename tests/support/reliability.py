"""Helpers for the reliability suite: the configuration of its ``parley serve`` processes
(tests.support.server.ServerProcess), memory and file descriptors read from /proc, least-squares
slopes for the soak figures, and the figures' report."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.support.netns import Namespace
from tests.support.processes import run_module
from tests.support.server import HOST

#: Reliability long forms (bench/prove.py) scale these suites up through the environment.
FUZZ_EXAMPLES = int(os.environ.get("PARLEY_FUZZ_EXAMPLES", "1000"))
SOAK_S = float(os.environ.get("PARLEY_SOAK_S", "90"))


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def slope_per_min(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of ``(t_s, value)`` samples, per minute."""
    n = len(samples)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    cov = sum((t - mean_t) * (v - mean_v) for t, v in samples)
    return 60 * cov / var


def served_config(config: str, *, host: str = HOST, server_section: str = "") -> str:
    """A reliability server's configuration: ``server_section`` (more ``[server]`` keys), ICE
    candidates on ``host`` only, open auth when ``host`` is not loopback, then ``config``."""
    return (
        f"[server]\n{server_section}\n"
        f'[media]\nice_host_addresses = ["{host}"]\n\n'
        + ("" if host == HOST else '[auth]\nmode = "open"\n\n')
        + config
    )


def unhandled_in_log(text: str) -> list[str]:
    """Lines of a server log that show an exception escaping a handler."""
    markers = ("Traceback", "Unhandled", "unhandled", "Task exception was never retrieved")
    return [line for line in text.splitlines() if any(m in line for m in markers)]


Json = dict[str, Any]


async def run_peer(*args: str, timeout_s: float = 90, netns: Namespace | None = None) -> Json:
    """Run ``tests/support/peer.py`` in its own process (in ``netns``); returns its JSON
    summary."""

    prefix = netns.prefix if netns else []
    return await run_module("tests.support.peer", *args, timeout_s=timeout_s, prefix=prefix)


def report(name: str, figures: Json) -> None:
    """Append ``figures`` as one JSON line to ``PARLEY_RELIABILITY_REPORT`` (set by
    bench/prove.py, which puts them in docs/benchmarks.md); nothing otherwise."""
    import json

    path = os.environ.get("PARLEY_RELIABILITY_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"test": name, **figures}) + "\n")
