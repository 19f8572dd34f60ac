"""A virtual clock for async units that take their time from the event loop (``loop.time()``,
``call_later``): the test's ``asyncio.sleep(0.25)`` then takes no wall time, nothing else on the
machine can stretch it, and the order of timers is kept."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec

P = ParamSpec("P")


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``time()`` jumps to the next timer whenever nothing is ready to run.

    It reads the base loop's ready queue and timer heap (``_ready``, ``_scheduled``): asyncio has
    no public hook for the clock. The jump never passes a live timer (the heap's head is the
    earliest), so callbacks run in the order and at the loop times a real clock would give them.
    """

    def __init__(self) -> None:
        super().__init__()
        self._virtual_now_s = 0.0

    def time(self) -> float:
        return self._virtual_now_s

    def _run_once(self) -> None:
        ready: Any = getattr(self, "_ready")  # noqa: B009 (private: see the class docstring)
        scheduled: Any = getattr(self, "_scheduled")  # noqa: B009
        if not ready and scheduled:
            self._virtual_now_s = max(self._virtual_now_s, scheduled[0].when())
        super()._run_once()  # type: ignore[misc]


def on_virtual_clock(
    test: Callable[P, Coroutine[Any, Any, None]],
) -> Callable[P, None]:
    """Run an async test on a fresh :class:`VirtualClockLoop` (a plain test for pytest)."""

    @functools.wraps(test)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
            runner.run(test(*args, **kwargs))

    return run
