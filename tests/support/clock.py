"""A clock that moves only when a test says so: ``time()`` and ``call_at()`` like the event
loop's (:class:`media.forward.Clock`), timers run synchronously by :meth:`FakeClock.advance`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(eq=False)
class FakeTimer:
    when: float
    callback: Callable[[], object]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    def __init__(self, start_s: float = 1000.0) -> None:
        self.now_s = start_s
        self._timers: list[FakeTimer] = []

    def time(self) -> float:
        return self.now_s

    def call_at(self, when: float, callback: Callable[[], object], /) -> FakeTimer:
        timer = FakeTimer(when, callback)
        self._timers.append(timer)
        return timer

    @property
    def timers(self) -> list[float]:
        """When the timers still set will run."""
        return sorted(t.when for t in self._timers if not t.cancelled)

    def advance(self, seconds: float = 0.0) -> None:
        """Move time on by ``seconds``, running each timer due on the way at its own time."""
        end_s = self.now_s + seconds
        while True:
            self._timers = [t for t in self._timers if not t.cancelled]
            due = [t for t in self._timers if t.when <= end_s]
            if not due:
                break
            timer = min(due, key=lambda t: t.when)
            self._timers.remove(timer)
            self.now_s = max(self.now_s, timer.when)
            timer.callback()
        self.now_s = end_s
