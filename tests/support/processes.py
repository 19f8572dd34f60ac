"""Test helpers run as their own processes (``python -m tests.support...``), JSON out."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from tests.support.paths import REPO
from tests.support.waits import TIME_SCALE


async def run_client_process(*args: str, timeout_s: float = 60) -> dict[str, Any]:
    """Run ``tests/support/run_client.py`` with ``args``; returns its JSON summary."""
    return await run_module("tests.support.run_client", *args, timeout_s=timeout_s)


async def run_module(
    module: str, *args: str, timeout_s: float = 60, prefix: Sequence[str] = ()
) -> dict[str, Any]:
    """Run ``python -m module args`` from the repository (after ``prefix``, e.g. ``nsenter``);
    returns the JSON it prints."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await asyncio.create_subprocess_exec(
        *prefix,
        sys.executable,
        "-m",
        module,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=REPO,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s * TIME_SCALE)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode()[-3000:]
    result: dict[str, Any] = json.loads(out)
    return result
