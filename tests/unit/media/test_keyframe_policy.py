"""The SFU's keyframe request policy (coalescing, rate limit, repeats), on plain numbers: no
event loop, no timers, no sleeps."""

from __future__ import annotations

from media.forward import KeyframeRequestPolicy


def poll(policy: KeyframeRequestPolicy, now_s: float, *, waiting: bool = False) -> bool:
    return policy.poll(now_s, can_send=True, waiting=waiting)


def test_requests_are_coalesced_into_one_pli() -> None:
    policy = KeyframeRequestPolicy(min_interval_s=0.2)
    for _ in range(5):
        policy.request(10.0)
    assert policy.wake_at_s == 10.0  # the first PLI goes at once
    assert poll(policy, 10.0)
    assert not poll(policy, 10.0)
    assert (policy.requests, policy.sent) == (5, 1)


def test_a_request_within_the_interval_waits_for_it() -> None:
    policy = KeyframeRequestPolicy(min_interval_s=0.2)
    policy.request(10.0)
    assert poll(policy, 10.0)
    policy.request(10.05)
    assert policy.wake_at_s == 10.2  # 0.2 s after the last PLI, not 0.2 s after the request
    assert not poll(policy, 10.15)
    assert poll(policy, 10.2)
    assert policy.sent == 2


def test_a_keyframe_voids_the_pending_request() -> None:
    policy = KeyframeRequestPolicy(min_interval_s=0.2, retry_s=1.0)
    policy.request(10.0)
    assert poll(policy, 10.0)
    policy.request(10.1)
    assert policy.pending
    policy.keyframe_arrived()
    assert not policy.pending
    assert policy.wake_at_s == 11.0  # only the retry check is left
    assert not poll(policy, 11.0, waiting=False)
    assert policy.wake_at_s is None
    assert (policy.requests, policy.sent, policy.retries) == (2, 1, 0)


def test_an_unanswered_pli_is_repeated_while_someone_waits() -> None:
    """Chrome ignores a PLI within 300 ms of the previous one: a live subscriber still waiting
    for a keyframe must not wait forever."""
    policy = KeyframeRequestPolicy(min_interval_s=0.05, retry_s=0.2)
    policy.request(10.0)
    assert poll(policy, 10.0)
    assert policy.wake_at_s == 10.2
    assert poll(policy, 10.2, waiting=True)  # asked again
    assert (policy.requests, policy.sent, policy.retries) == (2, 2, 1)
    policy.keyframe_arrived()
    assert not poll(policy, 10.4, waiting=False)  # satisfied: no more requests
    assert policy.wake_at_s is None and policy.sent == 2


def test_the_retry_is_never_sooner_than_the_interval() -> None:
    policy = KeyframeRequestPolicy(min_interval_s=0.5, retry_s=0.1)
    policy.request(0.0)
    assert poll(policy, 0.0)
    assert policy.wake_at_s == 0.5


def test_without_the_publishers_ssrc_nothing_is_sent_but_the_retry_checks() -> None:
    policy = KeyframeRequestPolicy(min_interval_s=0.2, retry_s=1.0)
    policy.request(5.0)
    assert not policy.poll(5.0, can_send=False, waiting=True)
    assert policy.sent == 0 and policy.wake_at_s == 6.0
    assert policy.poll(6.0, can_send=True, waiting=True)  # the retry asks, now it can
    assert (policy.sent, policy.retries) == (1, 1)


def test_a_late_poll_still_sends_once() -> None:
    policy = KeyframeRequestPolicy(min_interval_s=0.2, retry_s=1.0)
    policy.request(1.0)
    policy.request(1.1)
    assert poll(policy, 3.0)  # the owner woke up late: one PLI, not one per request
    assert not poll(policy, 3.0)
    assert policy.wake_at_s == 4.0
