"""Worker processes, both ends of the pipe: the parent spawns ``python -m <module>`` running
this very checkout and stops it (end of input, then SIGTERM, then SIGKILL); the child claims
its stdout for frames (:mod:`interpret.framing`). The speech worker (:mod:`interpret.supervisor`)
and the media workers (:mod:`media.process`) are both run this way.

A leaf: it imports nothing of Parley, so that :mod:`media` may use it (see the README's
dependency rule).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import site
import sys
from collections.abc import Callable, Mapping
from pathlib import Path


async def spawn_worker(
    module: str, *, env: Mapping[str, str] | None = None
) -> asyncio.subprocess.Process:
    """Start ``python -m module`` with pipes on stdin and stdout; its logs (stderr) go straight
    to ours. ``env`` is added to our environment."""
    environment = worker_environment(os.environ)
    environment.update(env or {})
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=None,
        env=environment,
    )


def worker_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ``, plus the directory holding the project's packages when they are not
    installed (a source checkout), so that a worker runs exactly this code."""
    env = dict(environ)
    root = str(Path(__file__).resolve().parent.parent)
    if root not in site.getsitepackages():
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def kill_worker(process: asyncio.subprocess.Process) -> None:
    """SIGKILL, unless it has exited already."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()


async def stop_worker(process: asyncio.subprocess.Process, timeout_s: float) -> int:
    """End of input, then SIGTERM, then SIGKILL, ``timeout_s`` apart; returns the exit status."""
    if process.stdin is not None and not process.stdin.is_closing():
        process.stdin.close()  # a worker that is not serving a request exits on end of input
    escalation: tuple[Callable[[], None] | None, ...] = (None, process.terminate, process.kill)
    for send_signal in escalation:
        if process.returncode is not None:
            break
        if send_signal is not None:
            with contextlib.suppress(ProcessLookupError):
                send_signal()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await process.wait()
    return await process.wait()


def claim_stdout() -> int:
    """In a worker: a new descriptor for the pipe on fd 1, which carries frames from now on,
    and fd 1 pointed at stderr, so that a stray ``print`` (a C library's too) lands in the logs
    instead of corrupting the wire."""
    wire_fd = os.dup(1)
    os.dup2(2, 1)
    return wire_fd
