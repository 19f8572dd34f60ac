"""Helpers for the reliability suite: a real ``parley serve`` process, its memory and file
descriptors read from /proc, and least-squares slopes for the soak figures."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.netns import Namespace
from tests.support.paths import REPO
from tests.support.processes import run_module
from tests.support.server import HOST, free_port

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


class ServerProcess:
    """``parley serve`` with a generated config on a free loopback port, in its own process."""

    def __init__(
        self,
        workdir: Path,
        config: str,
        *,
        port: int | None = None,
        server_section: str = "",
        netns: Namespace | None = None,
        host: str = HOST,
    ) -> None:
        """``server_section``: more ``[server]`` keys; ``netns``: run it in that namespace (its
        HTTP probes are made from there too); ``host``: the address it listens and gathers ICE
        candidates on (not loopback: auth is set to open)."""
        self.workdir = workdir
        self.netns = netns
        self.host = host
        self.port = port or free_port()
        self.config_path = workdir / "parley.toml"
        self.config_path.write_text(
            f'[server]\nhost = "{host}"\nport = {self.port}\n{server_section}\n'
            f'[media]\nice_host_addresses = ["{host}"]\n\n'
            + ("" if host == HOST else '[auth]\nmode = "open"\n\n')
            + config,
            encoding="utf-8",
        )
        self.log_path = workdir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout_s: float = 60) -> None:
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env["PYTHONPATH"] = str(REPO)
        self.starts += 1
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                *(self.netns.prefix if self.netns else []),
                sys.executable,
                "-m",
                "server",
                "serve",
                "--config",
                str(self.config_path),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=env,
        )
        log.close()
        self.wait_ready(timeout_s)

    def wait_ready(self, timeout_s: float) -> None:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_tail()}")
            try:
                with (
                    self._here(),
                    opener.open(f"http://{self.host}:{self.port}/readyz", timeout=1) as reply,
                ):
                    if reply.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"server not ready within {timeout_s} s: {self.log_tail()}")

    def _here(self) -> contextlib.AbstractContextManager[None]:
        return self.netns.entered() if self.netns else contextlib.nullcontext()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 15) -> int | None:
        """SIGTERM (the documented shutdown); SIGKILL this PID if it does not exit in time."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def metrics(self) -> dict[str, float]:
        """The unlabelled samples of /metrics, by name."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with (
            self._here(),
            opener.open(f"http://{self.host}:{self.port}/metrics", timeout=5) as reply,
        ):
            text = reply.read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#") and "{" not in line:
                name, _, value = line.partition(" ")
                out[name] = float(value)
        return out


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
