"""Rate limits as token buckets: joins per room, messages per connection. Pure: the caller
passes the time (monotonic seconds), so tests need no clock and no event loop."""

from __future__ import annotations

import math


class TokenBucket:
    """``burst`` events at once, then ``rate_per_s`` on average.

    Invariant: over any interval of length T, at most ``burst + rate_per_s * T`` events are
    allowed.
    """

    __slots__ = ("_burst", "_last_s", "_rate_per_s", "_tokens")

    def __init__(self, *, rate_per_s: float, burst: int, now_s: float) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        self._rate_per_s = rate_per_s
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last_s = now_s

    def _refill(self, now_s: float) -> None:
        if now_s > self._last_s:
            self._tokens = min(
                self._burst, self._tokens + (now_s - self._last_s) * self._rate_per_s
            )
            self._last_s = now_s

    def take(self, now_s: float) -> float:
        """Take one token: returns 0.0 if the event is allowed, else the seconds to wait before
        one would be (nothing is taken then)."""
        self._refill(now_s)
        if self._tokens >= 1.0 - 1e-9:  # float rounding of "now": a wait as told is enough
            self._tokens = max(0.0, self._tokens - 1.0)
            return 0.0
        return (1.0 - self._tokens) / self._rate_per_s

    def is_full(self, now_s: float) -> bool:
        self._refill(now_s)
        return self._tokens >= self._burst


class KeyedLimiter:
    """One :class:`TokenBucket` per key (e.g. per room name), created on first use. A full
    bucket is the same as a new one, so full buckets are forgotten once more than
    ``max_keys`` exist: memory stays bounded by the keys that are actually busy."""

    def __init__(self, *, rate_per_s: float, burst: int, max_keys: int = 1024) -> None:
        self._rate_per_s = rate_per_s
        self._burst = burst
        self._max_keys = max_keys
        self._buckets: dict[str, TokenBucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, now_s: float) -> float:
        """Like :meth:`TokenBucket.take` for ``key``'s bucket."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._buckets = {k: b for k, b in self._buckets.items() if not b.is_full(now_s)}
            bucket = self._buckets[key] = TokenBucket(
                rate_per_s=self._rate_per_s, burst=self._burst, now_s=now_s
            )
        return bucket.take(now_s)


def retry_after_ms(wait_s: float) -> int:
    """A wait in whole milliseconds, rounded up (a retry after it finds a token unless another
    event took it first)."""
    return max(1, math.ceil(wait_s * 1000))
