"""How the orchestrator (``bench/sfu.py``) and its child processes talk: files and signals.

Child side (:class:`ControlChannel`): writes ``NAME.ready.json`` once it is ready; on SIGUSR1
writes ``NAME.snap-K.json`` (K = 1, 2, ...); stops on SIGTERM/SIGINT or, at the latest, at its
deadline, then writes ``NAME.final.json``. Parent side (:class:`Child`): starts the process,
waits for those files, and stops it, killing it if it does not stop in time. Every wait is
bounded. Times are ``time.monotonic()``, which on Linux is one clock for all processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from .procstat import ProcessCpu, process_cpu

Json = dict[str, Any]
SnapshotFn = Callable[[], Awaitable[Json]]


def write_json(path: Path, data: Json) -> None:
    """Atomically (write, then rename), so a reader never sees half a file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, path)


class ControlChannel:
    """The child's end. Use inside a running event loop."""

    def __init__(self, directory: Path, name: str, *, deadline_s: float) -> None:
        self._dir, self._name, self._deadline_s = directory, name, deadline_s
        self._stop = asyncio.Event()
        self._snapshots = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._snapshot: SnapshotFn | None = None
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        loop.add_signal_handler(signal.SIGINT, self._stop.set)
        loop.add_signal_handler(signal.SIGUSR1, self._on_snapshot)

    def set_snapshot(self, snapshot: SnapshotFn) -> None:
        self._snapshot = snapshot

    def ready(self, info: Json) -> None:
        write_json(self._dir / f"{self._name}.ready.json", {"t_s": time.monotonic(), **info})

    def final(self, info: Json) -> None:
        write_json(self._dir / f"{self._name}.final.json", {"t_s": time.monotonic(), **info})

    async def wait_stop(self) -> None:
        """Until asked to stop, or the deadline (so a lost orchestrator leaves no orphan)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), max(0.0, self._deadline_s - time.monotonic()))
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _on_snapshot(self) -> None:
        self._snapshots += 1
        task = asyncio.get_running_loop().create_task(self._write_snapshot(self._snapshots))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_snapshot(self, seq: int) -> None:
        data: Json = {"t_s": time.monotonic()}
        if self._snapshot is not None:
            try:
                data.update(await self._snapshot())
            except Exception as exc:  # noqa: BLE001 - report it; the parent decides
                data["error"] = repr(exc)
        write_json(self._dir / f"{self._name}.snap-{seq}.json", data)


class ChildFailedError(RuntimeError):
    pass


class Child:
    """The parent's end: one process under test or one load generator."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        control_dir: Path,
        cwd: Path,
        env: dict[str, str],
        stop_signal: signal.Signals = signal.SIGTERM,
        has_channel: bool = True,
    ) -> None:
        self.name = name
        self._dir = control_dir
        self._stop_signal = stop_signal
        self.has_channel = has_channel
        self.log_path = control_dir / f"{name}.log"
        self._log = self.log_path.open("w", encoding="utf-8")
        self.proc = subprocess.Popen(
            list(argv), stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=cwd
        )
        self._snapshots = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> ProcessCpu | None:
        return process_cpu(self.pid)

    def _wait_file(self, path: Path, timeout_s: float) -> Json:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if path.exists():
                data: Json = json.loads(path.read_text(encoding="utf-8"))
                return data
            if self.proc.poll() is not None:
                code = self.proc.returncode
                raise ChildFailedError(f"{self.name} exited ({code}): {self.tail()}")
            time.sleep(0.02)
        raise ChildFailedError(
            f"{self.name}: no {path.name} within {timeout_s:.0f} s: {self.tail()}"
        )

    def wait_ready(self, timeout_s: float) -> Json:
        return self._wait_file(self._dir / f"{self.name}.ready.json", timeout_s)

    def request_snapshot(self) -> int:
        """Ask for a snapshot (SIGUSR1); returns its number for :meth:`wait_snapshot`."""
        self._snapshots += 1
        self.proc.send_signal(signal.SIGUSR1)
        return self._snapshots

    def wait_snapshot(self, seq: int, timeout_s: float = 15.0) -> Json:
        data = self._wait_file(self._dir / f"{self.name}.snap-{seq}.json", timeout_s)
        if "error" in data:
            raise ChildFailedError(f"{self.name}: snapshot failed: {data['error']}")
        return data

    def stop(self, timeout_s: float = 10.0) -> Json | None:
        """Ask it to stop; kill it (this PID only) if it has not exited within ``timeout_s``."""
        if self.proc.poll() is None:
            self.proc.send_signal(self._stop_signal)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        final = self._dir / f"{self.name}.final.json"
        if self.has_channel and final.exists():
            data: Json = json.loads(final.read_text(encoding="utf-8"))
            return data
        return None

    def tail(self, lines: int = 15) -> str:
        self._log.flush()
        text = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])
