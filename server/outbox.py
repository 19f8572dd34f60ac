"""Per-client bounded send queue with one writer task.

Overflow policy: a client that lets ``max_messages`` pile up is not reading; it is
disconnected (close 1008) rather than allowed to grow the server's memory.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable


class OutboxFullError(Exception):
    pass


class Outbox:
    def __init__(self, send: Callable[[str], Awaitable[None]], *, max_messages: int) -> None:
        self._send = send
        self._max_messages = max_messages
        self._queue: deque[str] = deque()
        self._wakeup = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._closed = False

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, message: str) -> None:
        """Queue ``message``; raises :class:`OutboxFullError` when the client stopped reading."""
        if self._closed:
            return
        if len(self._queue) >= self._max_messages:
            raise OutboxFullError(f"{len(self._queue)} messages waiting")
        self._queue.append(message)
        self._drained.clear()
        self._wakeup.set()

    def close(self) -> None:
        """Stop accepting; ``run()`` returns once what is queued has been sent."""
        self._closed = True
        self._wakeup.set()

    async def drained(self) -> None:
        """Wait until everything queued so far has been handed to the socket."""
        await self._drained.wait()

    async def run(self) -> None:
        """The writer: sends queued messages in order until closed and drained."""
        while True:
            while self._queue:
                await self._send(self._queue.popleft())
            self._drained.set()
            if self._closed:
                return
            self._wakeup.clear()
            await self._wakeup.wait()
