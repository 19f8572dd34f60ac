"""A real ``redis-server`` (Debian) for the cluster tests: its own port, nothing on disk, in a
network namespace when given; stopped with the test."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.netns import Namespace
from tests.support.waits import TIME_SCALE

REDIS_SERVER = "/usr/bin/redis-server"


class RedisServer:
    """``redis-server`` on ``host:port`` (no persistence, no protected mode: the tests' own),
    its log in ``workdir/redis.log``."""

    def __init__(
        self, workdir: Path, *, host: str, port: int, netns: Namespace | None = None
    ) -> None:
        self.workdir = workdir
        self.host = host
        self.port = port
        self.netns = netns
        self.log_path = workdir / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self, timeout_s: float = 15) -> None:
        if shutil.which(REDIS_SERVER) is None and not Path(REDIS_SERVER).exists():
            pytest.fail(f"{REDIS_SERVER} not installed (make system-deps)")
        argv = [*(self.netns.prefix if self.netns else []), REDIS_SERVER]
        argv += ["--bind", self.host, "--port", str(self.port), "--save", "", "--appendonly", "no"]
        argv += ["--protected-mode", "no", "--dir", str(self.workdir), "--logfile", ""]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s * TIME_SCALE
        while not self.pings():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"redis-server did not start:\n{self.log_path.read_text()}")
            time.sleep(0.05)  # another process: no event to wait on

    def pings(self) -> bool:
        """One ``PING`` over a plain socket (from the namespace when there is one)."""
        try:
            with (
                self.netns.entered() if self.netns else contextlib.nullcontext(),
                socket.create_connection((self.host, self.port), timeout=1) as s,
            ):
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
