"""What every handle on a speech worker shares, whatever carries its frames: a local process's
pipe (:class:`interpret.supervisor.SpeechWorker`) or a remote worker's WebSocket
(:class:`interpret.remote.RemoteSpeechWorker`).

:class:`WorkerLink` holds the outgoing queue (commands in order, never dropped; audio bounded
per speaker, oldest dropped), the captions queue (bounded; on overflow the oldest interim goes,
never a final), text translations waiting for their answer, pings, and the up/down state. The
subclasses own the transport: they drain ``_out`` and feed what arrives to
:meth:`WorkerLink._on_common`.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping

from .audio_queue import AudioCommandQueue
from .frames import CaptionFrame, Translation
from .wire import Command, Outbound, Ping, TextTranslation, TranslateText


class SpeechWorkerError(Exception):
    """The worker cannot run (``retryable`` False: a missing model, a bad config; or it failed
    to start too many times in a row)."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class CaptionQueue:
    """Captions waiting for their reader, bounded: on overflow the oldest *interim* is dropped
    (:attr:`dropped`), never a final. :attr:`wake` is set on every put."""

    def __init__(self, max_captions: int) -> None:
        self._max = max_captions
        self._items: collections.deque[CaptionFrame] = collections.deque()
        self.wake = asyncio.Event()
        #: interims dropped because nobody read them
        self.dropped = 0

    def put(self, frame: CaptionFrame) -> None:
        self._items.append(frame)
        if len(self._items) > self._max:
            for old in self._items:
                if not old.is_final:
                    self._items.remove(old)
                    self.dropped += 1
                    break
        self.wake.set()

    def drain(self) -> Iterator[CaptionFrame]:
        """What waits now, oldest first (emptying the queue)."""
        while self._items:
            yield self._items.popleft()


class WorkerLink:
    """The transport-independent half of a speech worker handle (see the module docstring).
    Methods other than the subclasses' life cycle never block: they queue."""

    #: how errors name the worker ("the speech worker", "the remote worker")
    _who = "the speech worker"

    def __init__(self, *, max_queued_s: float, max_captions: int) -> None:
        self._out = AudioCommandQueue[Command](max_queued_s=max_queued_s)
        self._out_wake = asyncio.Event()
        self._captions = CaptionQueue(max_captions)
        # text translations waiting for the worker's answer, by request id
        self._texts: dict[int, asyncio.Future[TextTranslation]] = {}
        self._text_ids = itertools.count(1)
        self._ping_ids = itertools.count(1)
        self._up = False
        self._closing = False
        self._closed = False
        #: why the worker cannot run (raised by :meth:`captions`), or None
        self._error: SpeechWorkerError | None = None
        #: called with True when the worker is ready, False when it stops (a pool moves its
        #: speakers at once)
        self.on_state: Callable[[bool], None] | None = None

    @property
    def up(self) -> bool:
        """The worker is running and has loaded its models."""
        return self._up

    @property
    def dropped_captions(self) -> int:
        """Captions dropped here (interims only) because nobody read them."""
        return self._captions.dropped

    @property
    def queued_chunks(self) -> int:
        """Audio chunks waiting here for the worker."""
        return self._out.queued_chunks

    def ping(self, nonce: int | None = None) -> int:
        """Ask for a :class:`~interpret.wire.Pong` (answered after everything queued before it
        is applied); returns its nonce (``nonce``, or a new one)."""
        nonce = next(self._ping_ids) if nonce is None else nonce
        self._send(Ping(nonce))
        return nonce

    async def translate(
        self, text: str, source: str, targets: Iterable[str]
    ) -> Mapping[str, Translation]:
        """Translate ``text`` (e.g. a chat message) ``source`` → each target with the captions'
        engines, in the worker (never on this loop): per target, its translation or why there
        is none. Raises :class:`SpeechWorkerError` when the worker is not up or stops
        meanwhile; callers bound the wait (``asyncio.timeout``)."""
        if self._closing or not self._up:
            raise SpeechWorkerError(f"{self._who} is not running", retryable=True)
        request_id = next(self._text_ids)
        future: asyncio.Future[TextTranslation] = asyncio.get_running_loop().create_future()
        self._texts[request_id] = future
        self._send(TranslateText(request_id, text, source, tuple(targets)))
        try:
            return (await future).translations
        finally:
            self._texts.pop(request_id, None)

    def _send(self, command: Command) -> None:
        if not (self._closing or self._closed):
            self._out.append(command)
            self._out_wake.set()

    async def captions(self) -> AsyncIterator[CaptionFrame]:
        """Every caption, in order, until closed; raises the worker's fatal error."""
        while True:
            for frame in self._captions.drain():
                yield frame
            if self._error is not None:
                raise self._error
            if self._closed:
                return
            self._captions.wake.clear()
            await self._captions.wake.wait()

    def _on_common(self, message: Outbound) -> bool:
        """A caption or a translation from the worker: queued or answered (True); anything
        else is the subclass's (False)."""
        if isinstance(message, CaptionFrame):
            self._captions.put(message)
            return True
        if isinstance(message, TextTranslation):
            future = self._texts.get(message.request_id)
            if future is not None and not future.done():
                future.set_result(message)
            return True
        return False

    def _set_up(self, up: bool) -> None:
        """The worker became ready (True) or stopped (False): tell :attr:`on_state` on a
        change; on stopping, fail the translations waiting for it."""
        was_up, self._up = self._up, up
        if was_up != up and self.on_state is not None:
            self.on_state(up)
        if not up:
            for future in self._texts.values():
                if not future.done():
                    future.set_exception(SpeechWorkerError(f"{self._who} stopped", retryable=True))
