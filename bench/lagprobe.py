"""Event-loop lag: how late a short timer fires. A busy loop (long callbacks, CPU starvation)
delays every timer, every RTP packet and every RTCP report by the same amount."""

from __future__ import annotations

import asyncio
import time

PROBE_INTERVAL_S = 0.010


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summarize_ms(samples_ms: list[float]) -> dict[str, float | int | None]:
    if not samples_ms:
        return {"samples": 0, "p50_ms": None, "p99_ms": None, "max_ms": None, "over_20ms": 0}
    return {
        "samples": len(samples_ms),
        "p50_ms": round(percentile(samples_ms, 50), 2),
        "p99_ms": round(percentile(samples_ms, 99), 2),
        "max_ms": round(max(samples_ms), 2),
        "over_20ms": sum(1 for s in samples_ms if s > 20.0),
    }


class LagProbe:
    """Sleeps ``interval_s`` in a loop and records how late each wake-up was (ms).

    ``take()`` returns the summary of the samples since the previous ``take()`` and starts over,
    so two calls bracket a measurement window.
    """

    def __init__(self, *, interval_s: float = PROBE_INTERVAL_S) -> None:
        self._interval_s = interval_s
        self._samples_ms: list[float] = []

    async def run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(self._interval_s)
            self._samples_ms.append((time.perf_counter() - start - self._interval_s) * 1000)

    def take(self) -> dict[str, float | int | None]:
        samples, self._samples_ms = self._samples_ms, []
        return summarize_ms(samples)
