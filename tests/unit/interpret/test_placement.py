"""The pool's placement policy (pure: no processes, no clock)."""

from __future__ import annotations

from interpret.placement import Move, Placement, PlacementSettings


def _two(capacity: int = 2) -> Placement:
    p = Placement(PlacementSettings(lag_after_s=5, move_cooldown_s=15))
    p.add_worker("a", capacity=capacity)
    p.add_worker("b", capacity=capacity)
    return p


def test_speakers_of_two_rooms_spread_over_two_workers() -> None:
    p = _two()
    for speaker in ("room1-x", "room1-y", "room2-x", "room2-y"):
        p.add_speaker(speaker)
    assert len(p.speakers_of("a")) == 2 and len(p.speakers_of("b")) == 2


def test_capacity_weighs_placement() -> None:
    p = Placement()
    p.add_worker("cpu", capacity=1)
    p.add_worker("gpu", capacity=8)
    for i in range(6):
        p.add_speaker(f"s{i}")
    assert len(p.speakers_of("gpu")) == 6  # (n+1)/8 stays below 1/1


def test_queue_and_busy_break_ties() -> None:
    p = _two()
    p.report("a", queue_s=0.5, busy=0.2, now=0)
    assert p.add_speaker("s").to_worker == "b"
    p2 = _two()
    p2.report("b", queue_s=0.0, busy=0.7, now=0)
    assert p2.add_speaker("s").to_worker == "a"


def test_a_lagging_worker_gets_no_new_speaker_while_another_keeps_up() -> None:
    p = _two()
    p.add_speaker("s1")  # on a
    p.report("b", queue_s=3.0, busy=1.0, now=0)  # b lags though idle
    assert p.add_speaker("s2").to_worker == "a"


def test_death_moves_every_speaker_to_the_other_worker() -> None:
    p = _two()
    for s in ("s1", "s2", "s3"):
        p.add_speaker(s)
    on_a = p.speakers_of("a")
    moves = p.worker_down("a")
    assert {m.speaker_id for m in moves} == set(on_a)
    assert all(m == Move(m.speaker_id, "a", "b", "worker_down") for m in moves)
    assert p.speakers_of("b") == ["s1", "s2", "s3"]


def test_no_worker_left_speakers_wait_then_are_placed() -> None:
    p = Placement()
    p.add_worker("a", capacity=2)
    p.add_speaker("s1")
    assert p.worker_down("a") == [Move("s1", "a", None, "worker_down")]
    assert p.add_speaker("s2").to_worker is None
    assert p.waiting() == ["s1", "s2"]
    moves = p.worker_up("a")
    assert [(m.speaker_id, m.to_worker, m.reason) for m in moves] == [
        ("s1", "a", "placed"),
        ("s2", "a", "placed"),
    ]
    assert p.waiting() == []


def test_a_new_worker_takes_waiting_speakers() -> None:
    p = Placement()
    p.add_speaker("s1")
    assert p.assignment == {"s1": None}
    assert p.add_worker("remote", capacity=4) == [Move("s1", None, "remote", "placed")]


def test_lag_moves_one_speaker_after_lag_after_s_then_waits() -> None:
    p = _two()
    p.add_worker("c", capacity=2)
    for s in ("s1", "s2", "s3"):
        p.add_speaker(s)  # one each
    p.worker_down("b")  # s2 -> a or c
    p.worker_up("b")
    crowded = max(("a", "c"), key=lambda w: len(p.speakers_of(w)))
    assert len(p.speakers_of(crowded)) == 2
    p.report(crowded, queue_s=2.5, busy=1.0, now=10)
    everyone = {"s1", "s2", "s3"}
    assert p.rebalance(12, everyone) == []  # not lagging for 5 s yet
    p.report(crowded, queue_s=2.5, busy=1.0, now=15)
    moves = p.rebalance(15, everyone)
    assert len(moves) == 1 and moves[0].reason == "lagging"
    assert moves[0].from_worker == crowded and moves[0].to_worker == "b"
    # the worker gets lag_after_s again before a second move
    p.report(crowded, queue_s=2.5, busy=1.0, now=16)
    assert p.rebalance(16, everyone) == []


def test_only_speakers_between_utterances_move_and_not_twice_within_cooldown() -> None:
    p = Placement(PlacementSettings(lag_after_s=0, move_cooldown_s=15))
    p.add_worker("a", capacity=2)
    for s in ("s1", "s2"):
        p.add_speaker(s)
    p.add_worker("b", capacity=2)
    p.report("a", queue_s=3, busy=1.0, now=0)
    assert p.rebalance(0, movable=set()) == []  # both mid-utterance
    moves = p.rebalance(0, movable={"s2"})
    assert [m.speaker_id for m in moves] == ["s2"]
    p.report("b", queue_s=3, busy=1.0, now=1)
    p.report("a", queue_s=0, busy=0.1, now=1)
    assert p.rebalance(1, movable={"s1", "s2"}) == []  # s2 moved 1 s ago; s1 has no better home


def test_balance_only_off_a_worker_over_its_capacity() -> None:
    p = Placement(PlacementSettings(move_cooldown_s=0))
    p.add_worker("a", capacity=2)
    for s in ("s1", "s2", "s3"):
        p.add_speaker(s)
    p.add_worker("b", capacity=2)  # came later: a holds 3 of 2
    moves = p.rebalance(0, movable={"s1", "s2", "s3"})
    assert len(moves) == 1 and moves[0].reason == "balance"
    assert p.rebalance(1, movable={"s1", "s2", "s3"}) == []  # 2 + 1: within capacity


def test_remove_speaker_and_worker() -> None:
    p = _two()
    p.add_speaker("s1")
    assert p.remove_speaker("s1") == "a"
    assert p.remove_speaker("s1") is None
    p.add_speaker("s2")
    p.remove_worker("a")
    assert "a" not in p.workers and p.assignment == {"s2": "b"}
