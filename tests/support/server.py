"""`parley serve` in its own process, on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.support.netns import Namespace
from tests.support.paths import REPO
from tests.support.waits import TIME_SCALE

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on now (the kernel's pick; free until someone binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def parley_bin() -> str:
    """The server entry point: $PARLEY_BIN, else the `parley` script beside this interpreter."""
    env = os.environ.get("PARLEY_BIN")
    if env:
        return env
    beside = Path(sys.executable).parent / "parley"
    return str(beside) if beside.exists() else (shutil.which("parley") or str(beside))


class ServerProcess:
    """``parley serve`` in its own process (in ``netns`` when given), its output in
    ``workdir/server.log``: the one way the tests run the server as its own process.

    ``start()`` waits for ``/readyz`` (200 once the speech worker is up: /ws is refused before);
    ``stop()`` sends SIGTERM (the documented shutdown) and kills this PID if it does not exit in
    time. As a context manager: started, then stopped with its log's tail on stderr.
    """

    def __init__(
        self,
        workdir: Path,
        config: str | None = "",
        *,
        port: int | None = None,
        host: str | None = HOST,
        netns: Namespace | None = None,
        command: Sequence[str] | None = None,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        """``config``: the text of ``workdir/parley.toml`` (None: no ``--config``); ``port``: a free
        one unless given (a restart passes the port of the server it replaces; 0 lets the server
        pick, then nothing here can reach it); ``host``: ``--host`` (None: the configuration's);
        ``netns``: run it there (the readiness and /metrics probes are made from there too);
        ``command``: the CLI (default ``parley serve``; ``--host``, ``--port``, ``--config`` and
        ``args`` follow); ``env``: its environment (default ours), always without proxies and
        with this repository first on PYTHONPATH."""
        self.workdir = workdir
        self.netns = netns
        self.host = host
        self.port = free_port() if port is None else port
        self.config_path: Path | None = None
        if config is not None:
            self.config_path = workdir / "parley.toml"
            self.config_path.write_text(config, encoding="utf-8")
        self.command = list(command) if command is not None else [parley_bin(), "serve"]
        self.args = list(args)
        self.env = dict(os.environ if env is None else env)
        self.log_path = workdir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def http_url(self) -> str:
        return f"http://{self.host or HOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host or HOST}:{self.port}/ws"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def argv(self) -> list[str]:
        argv = [*(self.netns.prefix if self.netns else []), *self.command]
        if self.host is not None:
            argv += ["--host", self.host]
        argv += ["--port", str(self.port)]
        if self.config_path is not None:
            argv += ["--config", str(self.config_path)]
        return argv + self.args

    def start(self, *, wait: bool = True, timeout_s: float = 60) -> None:
        """Start it; with ``wait``, return once it is ready (``timeout_s``, scaled)."""
        env = {k: v for k, v in self.env.items() if "proxy" not in k.lower()}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        self.starts += 1
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv(), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, env=env
            )
        if wait:
            self.wait_ready(timeout_s)

    def ready(self) -> bool:
        """One probe of /readyz: 200."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with self._here(), opener.open(f"{self.http_url}/readyz", timeout=1) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s * TIME_SCALE
        while not self.ready():
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"server not ready on {self.http_url}:\n{self.log_tail()}")
            time.sleep(0.1)  # polling another process: there is no event to wait on

    def _here(self) -> contextlib.AbstractContextManager[None]:
        return self.netns.entered() if self.netns else contextlib.nullcontext()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 15, sig: int = signal.SIGTERM) -> int | None:
        """``sig`` (SIGTERM: the documented shutdown); SIGKILL this PID if it does not exit in
        ``timeout_s``. Returns the exit status (None: never started). Idempotent."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def metrics(self) -> dict[str, float]:
        """The unlabelled samples of /metrics, by name."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with self._here(), opener.open(f"{self.http_url}/metrics", timeout=5) as reply:
            text = reply.read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#") and "{" not in line:
                name, _, value = line.partition(" ")
                out[name] = float(value)
        return out

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        sys.stderr.write(f"--- server log ({self.log_path}) ---\n{self.log_tail()}\n")
