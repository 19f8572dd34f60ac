"""The queue in front of the speech pipeline (both ends of the worker pipe use it)."""

from __future__ import annotations

import numpy as np

from interpret.audio_queue import AudioCommandQueue
from interpret.frames import ASR_SAMPLE_RATE, AudioChunk


def chunk(speaker_id: str, start_s: float, seconds: float = 1.0) -> AudioChunk:
    return AudioChunk(speaker_id, np.zeros(int(seconds * ASR_SAMPLE_RATE), np.float32), start_s)


def test_order_is_kept_and_commands_are_never_dropped() -> None:
    queue = AudioCommandQueue[str](max_queued_s=2.0)
    a0, a1, a2 = chunk("a", 0), chunk("a", 1), chunk("a", 2)
    for item in ("add a", a0, "targets", a1, a2, "ping"):
        queue.append(item)
    # a's third second is over the bound: a's oldest chunk goes, the commands stay
    assert queue.dropped_chunks == 1 and queue.queued_chunks == 2
    assert [queue.popleft() for _ in range(len(queue))] == ["add a", "targets", a1, a2, "ping"]
    assert queue.queued_chunks == 0


def test_the_bound_is_per_speaker_and_never_drops_the_newest() -> None:
    queue = AudioCommandQueue[str](max_queued_s=1.0)
    b = chunk("b", 0, seconds=0.5)
    queue.append(b)
    long = chunk("a", 0, seconds=3.0)  # longer than the bound alone: kept (it is the newest)
    queue.append(long)
    assert queue.dropped_chunks == 0
    queue.append(newest := chunk("a", 3))
    assert queue.dropped_chunks == 1
    assert [queue.popleft() for _ in range(len(queue))] == [b, newest]
