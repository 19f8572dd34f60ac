"""The queue in front of a speech pipeline: commands and audio in the order they came."""

from __future__ import annotations

import collections
from typing import Generic, TypeVar

from .frames import ASR_SAMPLE_RATE, AudioChunk

C = TypeVar("C")


class AudioCommandQueue(Generic[C]):
    """Commands (``C``) and audio, never reordered. Commands are never dropped; audio is
    bounded per speaker (``max_queued_s``), and a speaker over it loses their oldest chunk
    (counted in :attr:`dropped_chunks`, never their newest): live audio that waited is worth
    less than live audio now. Not thread-safe: its owner locks, or stays on one event loop."""

    def __init__(self, *, max_queued_s: float) -> None:
        self._max_samples = int(max_queued_s * ASR_SAMPLE_RATE)
        self._items: collections.deque[C | AudioChunk] = collections.deque()
        self._audio: dict[str, collections.deque[AudioChunk]] = {}
        self._samples: dict[str, int] = {}
        #: audio chunks dropped, oldest first
        self.dropped_chunks = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def queued_chunks(self) -> int:
        """Audio chunks waiting."""
        return sum(len(queue) for queue in self._audio.values())

    def append(self, item: C | AudioChunk) -> None:
        self._items.append(item)
        if not isinstance(item, AudioChunk):
            return
        queue = self._audio.setdefault(item.speaker_id, collections.deque())
        queue.append(item)
        n = self._samples.get(item.speaker_id, 0) + len(item.samples)
        while n > self._max_samples and len(queue) > 1:
            oldest = queue.popleft()
            self._items.remove(oldest)  # AudioChunk compares by identity
            n -= len(oldest.samples)
            self.dropped_chunks += 1
        self._samples[item.speaker_id] = n

    def popleft(self) -> C | AudioChunk:
        item = self._items.popleft()
        if isinstance(item, AudioChunk):
            self._audio[item.speaker_id].popleft()
            self._samples[item.speaker_id] -= len(item.samples)
        return item
