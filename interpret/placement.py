"""Which speech worker serves which speaker: the pool's placement policy, pure (no I/O, no
clock of its own: callers pass ``now``, monotonic seconds).

A speaker goes to the up worker with the lowest load after taking them: active speakers per
unit of capacity first, then the audio waiting for it (``queue_s``), then how busy its decoder
is (``busy``: decode seconds per second, 1.0 = saturated). A speaker is moved

- at once when their worker goes down (``worker_down``), to the best other worker, or to no
  worker (``None``: waiting; placed as soon as one is up);
- by :meth:`Placement.rebalance`, one speaker at a time, when their worker has lagged for
  ``lag_after_s`` (audio waiting ≥ ``lag_queue_s`` or ``busy`` ≥ ``lag_busy``) or holds more
  than its share while another has room. Only speakers the caller says are between utterances
  are moved this way (a move mid-utterance splits a caption), and a speaker is not moved again
  within ``move_cooldown_s`` (no ping-pong).

Invariant: every speaker is in :attr:`Placement.assignment`, mapped to an up worker or to None.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

MoveReason = Literal["placed", "worker_down", "lagging", "balance"]


@dataclass(frozen=True, slots=True)
class PlacementSettings:
    #: audio waiting for a worker (seconds) from which it counts as lagging
    lag_queue_s: float = 2.0
    #: decoder busy ratio from which a worker counts as lagging
    lag_busy: float = 0.95
    #: how long a worker must lag before one of its speakers is moved
    lag_after_s: float = 5.0
    #: a speaker is not moved by rebalancing again within this time
    move_cooldown_s: float = 15.0


@dataclass(slots=True)
class WorkerLoad:
    """One worker as placement sees it."""

    worker_id: str
    #: speakers it serves in real time (local: its share of the cores; remote: announced)
    capacity: int
    up: bool = True
    #: audio waiting for it, seconds
    queue_s: float = 0.0
    #: decode seconds per second of wall time (1.0: the decoder never rests)
    busy: float = 0.0
    #: since when it has lagged (None: it keeps up)
    lag_since: float | None = None


@dataclass(frozen=True, slots=True)
class Move:
    """``speaker_id`` goes from ``from_worker`` to ``to_worker`` (None: no worker)."""

    speaker_id: str
    from_worker: str | None
    to_worker: str | None
    reason: MoveReason


class Placement:
    """Workers with capacity and load → speaker assignment (see the module docstring)."""

    def __init__(self, settings: PlacementSettings | None = None) -> None:
        self.settings = settings or PlacementSettings()
        self.workers: dict[str, WorkerLoad] = {}
        #: speaker -> worker (None: waiting for one)
        self.assignment: dict[str, str | None] = {}
        self._moved_at: dict[str, float] = {}

    # -- queries -----------------------------------------------------------------------------
    def speakers_of(self, worker_id: str) -> list[str]:
        return sorted(s for s, w in self.assignment.items() if w == worker_id)

    def waiting(self) -> list[str]:
        return sorted(s for s, w in self.assignment.items() if w is None)

    def load(self, worker_id: str, extra: int = 0) -> float:
        """Speakers per unit of capacity (with ``extra`` more)."""
        worker = self.workers[worker_id]
        return (len(self.speakers_of(worker_id)) + extra) / max(1, worker.capacity)

    def best_worker(self, exclude: Iterable[str] = ()) -> str | None:
        """The up worker that takes one more speaker at the lowest load (lagging ones only
        when nothing else is up)."""
        skip = set(exclude)
        candidates = [w for w in self.workers.values() if w.up and w.worker_id not in skip]
        if not candidates:
            return None
        keeping_up = [w for w in candidates if w.lag_since is None] or candidates
        best = min(
            keeping_up,
            key=lambda w: (self.load(w.worker_id, 1), w.queue_s, w.busy, w.worker_id),
        )
        return best.worker_id

    # -- workers -----------------------------------------------------------------------------
    def add_worker(self, worker_id: str, *, capacity: int, up: bool = True) -> list[Move]:
        """A new worker (local started, or remote connected); waiting speakers go to it."""
        self.workers[worker_id] = WorkerLoad(worker_id, max(1, capacity), up=up)
        return self._place_waiting() if up else []

    def worker_up(self, worker_id: str) -> list[Move]:
        worker = self.workers[worker_id]
        worker.up, worker.lag_since, worker.queue_s, worker.busy = True, None, 0.0, 0.0
        return self._place_waiting()

    def worker_down(self, worker_id: str) -> list[Move]:
        """The worker died (or disconnected): its speakers move now."""
        if worker_id not in self.workers:
            return []
        self.workers[worker_id].up = False
        return self._evacuate(worker_id)

    def remove_worker(self, worker_id: str) -> list[Move]:
        moves = self.worker_down(worker_id)
        self.workers.pop(worker_id, None)
        return moves

    def report(self, worker_id: str, *, queue_s: float, busy: float, now: float) -> None:
        """The worker's latest load."""
        worker = self.workers.get(worker_id)
        if worker is None:
            return
        worker.queue_s, worker.busy = queue_s, busy
        s = self.settings
        if queue_s >= s.lag_queue_s or busy >= s.lag_busy:
            if worker.lag_since is None:
                worker.lag_since = now
        else:
            worker.lag_since = None

    # -- speakers ----------------------------------------------------------------------------
    def add_speaker(self, speaker_id: str) -> Move:
        if speaker_id in self.assignment:
            current = self.assignment[speaker_id]
            return Move(speaker_id, current, current, "placed")
        target = self.best_worker()
        self.assignment[speaker_id] = target
        return Move(speaker_id, None, target, "placed")

    def remove_speaker(self, speaker_id: str) -> str | None:
        """Forget the speaker; the worker that served them, if any."""
        self._moved_at.pop(speaker_id, None)
        return self.assignment.pop(speaker_id, None)

    def rebalance(self, now: float, movable: Iterable[str]) -> list[Move]:
        """At most one move per worker: off a worker that has lagged for ``lag_after_s``, or
        that holds more than its share while another has room. ``movable``: speakers between
        utterances."""
        s = self.settings
        can_move = {
            sp
            for sp in movable
            if sp in self.assignment and now - self._moved_at.get(sp, -1e18) >= s.move_cooldown_s
        }
        moves: list[Move] = []
        for worker in sorted(self.workers.values(), key=lambda w: w.worker_id):
            if not worker.up:
                continue
            mine = [sp for sp in self.speakers_of(worker.worker_id) if sp in can_move]
            if not mine:
                continue
            target = self.best_worker(exclude=[worker.worker_id])
            if target is None:
                continue
            lagging = worker.lag_since is not None and now - worker.lag_since >= s.lag_after_s
            target_lags = self.workers[target].lag_since is not None
            better = self.load(target, 1) < self.load(worker.worker_id)
            if target_lags or not better:
                continue
            if not lagging and self.load(worker.worker_id) <= 1.0:
                continue  # within its capacity and keeping up: leave its speakers alone
            speaker = min(mine, key=lambda sp: (self._moved_at.get(sp, -1e18), sp))
            self.assignment[speaker] = target
            self._moved_at[speaker] = now
            if lagging:
                worker.lag_since = now  # give it time to catch up before another move
            reason: MoveReason = "lagging" if lagging else "balance"
            moves.append(Move(speaker, worker.worker_id, target, reason))
        return moves

    # -- internals ---------------------------------------------------------------------------
    def _evacuate(self, worker_id: str) -> list[Move]:
        moves: list[Move] = []
        for speaker in self.speakers_of(worker_id):
            target = self.best_worker(exclude=[worker_id])
            self.assignment[speaker] = target
            moves.append(Move(speaker, worker_id, target, "worker_down"))
        return moves

    def _place_waiting(self) -> list[Move]:
        moves: list[Move] = []
        for speaker in self.waiting():
            target = self.best_worker()
            if target is None:
                break
            self.assignment[speaker] = target
            moves.append(Move(speaker, None, target, "placed"))
        return moves


def snapshot(placement: Placement) -> list[WorkerLoad]:
    """Copies of the workers' loads (for metrics and listings)."""
    return [dataclasses.replace(w) for w in placement.workers.values()]
