"""Rate limits and caps: token buckets (joins per room, messages per connection, rooms created
per address), backoff after failed credentials, removed seats, connection counts. Pure: the caller
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


class FailureBackoff:
    """Exponential backoff after failed credentials, per key (a connection, a client address).

    The first ``free_failures`` failures cost nothing; after that each failure doubles the wait
    before the key may try again (``base_s``, ``2 * base_s``, … up to ``max_s``). A key that has
    not failed for ``max_s`` after its last wait ended is forgotten (a fresh start). Memory is
    bounded: past ``max_keys`` the forgettable keys are dropped, then the oldest.
    """

    __slots__ = ("_base_s", "_free", "_keys", "_max_keys", "_max_s")

    def __init__(
        self, *, free_failures: int, base_s: float, max_s: float, max_keys: int = 4096
    ) -> None:
        if free_failures < 0 or base_s <= 0 or max_s < base_s or max_keys < 1:
            raise ValueError("free_failures >= 0, 0 < base_s <= max_s, max_keys >= 1")
        self._free = free_failures
        self._base_s = base_s
        self._max_s = max_s
        self._max_keys = max_keys
        #: key -> (failures, monotonic time before which the key is refused)
        self._keys: dict[str, tuple[int, float]] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def wait_s(self, key: str, now_s: float) -> float:
        """Seconds ``key`` must still wait before its next try (0.0: it may try now)."""
        entry = self._keys.get(key)
        if entry is None:
            return 0.0
        failures, until_s = entry
        if now_s >= until_s + self._max_s:
            del self._keys[key]
            return 0.0
        return max(0.0, until_s - now_s)

    def failed(self, key: str, now_s: float) -> float:
        """Record a failure; returns the wait it starts (0.0 while failures are free)."""
        self.wait_s(key, now_s)  # forgets an expired entry
        failures = self._keys.get(key, (0, now_s))[0] + 1
        over = failures - self._free
        wait = 0.0 if over <= 0 else min(self._max_s, self._base_s * 2 ** (over - 1))
        if key not in self._keys and len(self._keys) >= self._max_keys:
            self._prune(now_s)
        self._keys[key] = (failures, now_s + wait)
        return wait

    def succeeded(self, key: str) -> None:
        self._keys.pop(key, None)

    def _prune(self, now_s: float) -> None:
        self._keys = {k: v for k, v in self._keys.items() if now_s < v[1] + self._max_s}
        while len(self._keys) >= self._max_keys:  # all still active: drop the earliest ending
            del self._keys[min(self._keys, key=lambda k: self._keys[k][1])]


class ExpiringSet:
    """Keys remembered until their own expiry (removed participants' seats). Bounded: past
    ``max_keys`` the expired ones go, then those that expire first."""

    __slots__ = ("_keys", "_max_keys")

    def __init__(self, *, max_keys: int = 10_000) -> None:
        if max_keys < 1:
            raise ValueError("max_keys >= 1")
        self._max_keys = max_keys
        self._keys: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: str, *, expires_s: float, now_s: float) -> None:
        if expires_s <= now_s:
            return
        if key not in self._keys and len(self._keys) >= self._max_keys:
            self._keys = {k: e for k, e in self._keys.items() if e > now_s}
            while len(self._keys) >= self._max_keys:
                del self._keys[min(self._keys, key=self._keys.__getitem__)]
        self._keys[key] = max(expires_s, self._keys.get(key, 0.0))

    def contains(self, key: str, now_s: float) -> bool:
        expires_s = self._keys.get(key)
        if expires_s is None:
            return False
        if expires_s <= now_s:
            del self._keys[key]
            return False
        return True


class ConnectionCounter:
    """Open connections in total and per client address, against two caps. Pure: the handler
    calls ``open`` when a socket arrives and ``close`` when it ends."""

    __slots__ = ("_by_address", "_max_per_address", "_max_total", "_total")

    def __init__(self, *, max_total: int, max_per_address: int) -> None:
        if max_total < 1 or max_per_address < 1:
            raise ValueError("caps must be >= 1")
        self._max_total = max_total
        self._max_per_address = max_per_address
        self._total = 0
        self._by_address: dict[str, int] = {}

    @property
    def total(self) -> int:
        return self._total

    def open(self, address: str) -> str | None:
        """Count a new connection from ``address``; returns None, or why it is refused
        (``"server_full"``, ``"too_many_connections"``; nothing is counted then)."""
        if self._total >= self._max_total:
            return "server_full"
        if self._by_address.get(address, 0) >= self._max_per_address:
            return "too_many_connections"
        self._total += 1
        self._by_address[address] = self._by_address.get(address, 0) + 1
        return None

    def close(self, address: str) -> None:
        count = self._by_address.get(address, 0)
        if count <= 0:
            return
        self._total -= 1
        if count == 1:
            del self._by_address[address]
        else:
            self._by_address[address] = count - 1
