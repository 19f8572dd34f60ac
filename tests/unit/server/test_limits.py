"""Token buckets (pure: the time is passed in)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from server.limits import (
    ConnectionCounter,
    ExpiringSet,
    FailureBackoff,
    KeyedLimiter,
    TokenBucket,
    retry_after_ms,
)


def test_burst_then_rate() -> None:
    bucket = TokenBucket(rate_per_s=2.0, burst=3, now_s=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == 0.5  # one token comes back every 0.5 s
    assert bucket.take(0.25) == 0.25  # a refused attempt takes nothing
    assert bucket.take(0.5) == 0.0
    assert bucket.take(0.5) > 0


@given(
    rate=st.floats(0.1, 100),
    burst=st.integers(1, 50),
    gaps=st.lists(st.floats(0, 2), min_size=1, max_size=200),
)
def test_never_more_than_burst_plus_rate_times_window(
    rate: float, burst: int, gaps: list[float]
) -> None:
    bucket = TokenBucket(rate_per_s=rate, burst=burst, now_s=0.0)
    now, allowed = 0.0, []
    for gap in gaps:
        now += gap
        if bucket.take(now) == 0.0:
            allowed.append(now)
    for i, start in enumerate(allowed):
        for j in range(i, len(allowed)):
            assert j - i + 1 <= burst + rate * (allowed[j] - start) + 1e-6


@given(rate=st.floats(0.1, 100), burst=st.integers(1, 20), start=st.floats(0, 1e6))
def test_waiting_as_told_is_enough(rate: float, burst: int, start: float) -> None:
    bucket = TokenBucket(rate_per_s=rate, burst=burst, now_s=start)
    for _ in range(burst):
        assert bucket.take(start) == 0.0
    wait_s = bucket.take(start)
    assert wait_s > 0
    assert bucket.take(start + retry_after_ms(wait_s) / 1000) == 0.0


def test_keys_are_independent_and_idle_ones_are_forgotten() -> None:
    limiter = KeyedLimiter(rate_per_s=1.0, burst=1, max_keys=2)
    assert limiter.take("a", 0.0) == 0.0
    assert limiter.take("a", 0.0) > 0
    assert limiter.take("b", 0.0) == 0.0
    # "a" and "b" are full again by t=10: a third key makes room by forgetting them
    assert limiter.take("c", 10.0) == 0.0
    assert len(limiter) == 1
    # forgetting a full bucket changed nothing: "a" still gets its burst
    assert limiter.take("a", 10.0) == 0.0


def test_failure_backoff_is_free_then_doubles_then_forgets() -> None:
    backoff = FailureBackoff(free_failures=3, base_s=1.0, max_s=8.0)
    assert [backoff.failed("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert backoff.wait_s("a", 0.0) == 0.0
    assert backoff.failed("a", 0.0) == 1.0
    assert backoff.wait_s("a", 0.5) == 0.5
    assert [backoff.failed("a", 1.0), backoff.failed("a", 3.0), backoff.failed("a", 7.0)] == [
        2.0,
        4.0,
        8.0,
    ]
    assert backoff.failed("a", 15.0) == 8.0  # capped at max_s
    assert backoff.wait_s("b", 15.0) == 0.0  # keys are independent
    # quiet for max_s after the last wait ended: a fresh start
    assert backoff.wait_s("a", 23.0 + 8.0) == 0.0
    assert len(backoff) == 0
    assert backoff.failed("a", 40.0) == 0.0
    backoff.succeeded("a")
    assert len(backoff) == 0


def test_failure_backoff_memory_is_bounded() -> None:
    backoff = FailureBackoff(free_failures=0, base_s=1.0, max_s=2.0, max_keys=100)
    for i in range(10_000):
        backoff.failed(f"addr:{i}", float(i) / 1000)
    assert len(backoff) <= 100
    assert backoff.wait_s("addr:9999", 9.999) > 0  # the newest are kept


def test_expiring_set_remembers_until_expiry_and_is_bounded() -> None:
    removed = ExpiringSet(max_keys=10)
    removed.add("room\njti:1", expires_s=100.0, now_s=0.0)
    removed.add("room\njti:old", expires_s=5.0, now_s=10.0)  # already expired: not kept
    assert removed.contains("room\njti:1", 99.0)
    assert not removed.contains("room\njti:old", 10.0)
    assert not removed.contains("room\njti:1", 100.0) and len(removed) == 0
    for i in range(1000):
        removed.add(f"k{i}", expires_s=1000.0 + i, now_s=0.0)
    assert len(removed) == 10 and removed.contains("k999", 1.0)


def test_connection_counter_caps_total_and_per_address() -> None:
    counter = ConnectionCounter(max_total=3, max_per_address=2)
    assert [counter.open("a"), counter.open("a"), counter.open("a")] == [
        None,
        None,
        "too_many_connections",
    ]
    assert counter.open("b") is None
    assert counter.open("c") == "server_full" and counter.total == 3
    counter.close("a")
    assert counter.open("c") is None
    counter.close("zzz")  # never opened: ignored
    for address in ("a", "b", "c"):
        counter.close(address)
    assert counter.total == 0
