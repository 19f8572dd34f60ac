"""Token buckets (pure: the time is passed in)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from server.limits import KeyedLimiter, TokenBucket, retry_after_ms


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
