"""Waiting for what a test asserts, never for a fixed time."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

#: Scale for waits in tests (a slow CI machine can set PARLEY_TEST_TIME_SCALE=2).
TIME_SCALE = float(os.environ.get("PARLEY_TEST_TIME_SCALE", "1"))


async def wait_until(predicate: Callable[[], bool], timeout_s: float) -> bool:
    """Poll ``predicate`` until it holds (True) or ``timeout_s`` (scaled) passed (its last
    value): the state checked is spread over the clients' and the server's callbacks."""
    deadline = time.monotonic() + timeout_s * TIME_SCALE
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()
