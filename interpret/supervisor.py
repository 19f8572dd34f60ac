"""The parent side of a speech worker: :class:`SpeechWorker` runs ``python -m interpret.worker``
from an asyncio loop and keeps it running.

The loop only moves bytes: models, VAD and translation run in the child. If the child dies it
is started again (with backoff), told the speakers and targets again, and captions resume; what
it had not yet captioned is lost (an interim at most, usually). Queues and their policies:

- outgoing: commands in order, never dropped; audio bounded per speaker (``max_queued_s``),
  oldest dropped (:attr:`SpeechWorker.dropped_chunks`) while the child is slow or restarting;
- captions: bounded (``max_captions``); on overflow the oldest interim goes, never a final.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping

from .audio_queue import AudioCommandQueue
from .compose import PipelineConfig
from .frames import AudioChunk, CaptionFrame, Translation
from .framing import WireFormatError, receive_frame
from .glossary import Glossary
from .processes import kill_worker, spawn_worker
from .wire import (
    AddSpeaker,
    Close,
    Command,
    Configure,
    Outbound,
    Ping,
    Pong,
    Ready,
    RemoveSpeaker,
    SampleFormat,
    SetGlossary,
    SetSpeakerLang,
    SetSpeakerTargets,
    SetTargets,
    TextTranslation,
    TranslateText,
    WorkerError,
    decode_outbound,
    encode_audio,
    encode_command,
)

log = logging.getLogger(__name__)

WORKER_MODULE = "interpret.worker"


class SpeechWorkerError(Exception):
    """The worker cannot run (``retryable`` False: a missing model, a bad config; or it failed
    to start too many times in a row)."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class SpeechWorker:
    """One speech worker process, restarted when it dies. Methods other than :meth:`start`
    and :meth:`aclose` never block: they queue."""

    def __init__(
        self,
        config: PipelineConfig,
        *,
        start_timeout_s: float = 120.0,
        close_timeout_s: float = 30.0,
        max_queued_s: float = 5.0,
        max_captions: int = 256,
        max_start_failures: int = 3,
        max_backoff_s: float = 5.0,
        sample_format: SampleFormat = "f32",
        nice: int = 5,
    ) -> None:
        self._config = config
        #: the worker's CPU priority below ours: recognition is throughput, while the media
        #: event loop next to it must wake within milliseconds
        self._nice = nice
        self._start_timeout_s = start_timeout_s
        self._close_timeout_s = close_timeout_s
        self._max_captions = max_captions
        self._max_start_failures = max_start_failures
        self._max_backoff_s = max_backoff_s
        self._sample_format: SampleFormat = sample_format
        # what a new worker must be told
        self._speakers: dict[str, str | None] = {}
        self._glossaries: dict[str, Glossary] = {}
        self._targets: tuple[str, ...] = config.targets
        self._speaker_targets: dict[str, tuple[str, ...]] = {}
        # outgoing queue (see the module docstring)
        self._out = AudioCommandQueue[Command](max_queued_s=max_queued_s)
        self._out_wake = asyncio.Event()
        # captions
        self._captions: collections.deque[CaptionFrame] = collections.deque()
        self._captions_wake = asyncio.Event()
        # text translations waiting for the worker's answer, by request id
        self._texts: dict[int, asyncio.Future[TextTranslation]] = {}
        self._text_ids = itertools.count(1)
        self._process: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._first_ready: asyncio.Future[Ready] | None = None
        self._error: SpeechWorkerError | None = None
        self._closing = False
        self._closed = False
        #: times the worker was started again after dying
        self.restarts = 0
        #: captions dropped here (interims only) because nobody read them
        self.dropped_captions = 0
        #: the latest worker's Ready (load and warm-up times), and when it came (monotonic)
        self.ready: Ready | None = None
        self.ready_at: float | None = None
        self.last_pong: Pong | None = None
        #: when :attr:`last_pong` came (monotonic)
        self.last_pong_at: float | None = None
        self._ping_ids = itertools.count(1)
        #: called with True when a worker process is ready, False when it stops (a pool moves
        #: its speakers at once instead of waiting for the restart)
        self.on_state: Callable[[bool], None] | None = None
        #: called with every Pong (a remote worker's relay passes them on)
        self.on_pong: Callable[[Pong], None] | None = None
        # the guards' counters: those of workers that died, plus the running one's
        self._suppressed_before: collections.Counter[str] = collections.Counter()
        self._suppressed_now: dict[str, int] = {}
        self._up = False

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def up(self) -> bool:
        """A worker process is running and has loaded its models (False while restarting)."""
        return self._up

    @property
    def suppressed(self) -> dict[str, int]:
        """Captions the worker's text guards changed, dropped or decoded again, by reason,
        since this supervisor started (across worker restarts)."""
        total = collections.Counter(self._suppressed_before)
        total.update(self._suppressed_now)
        return dict(total)

    @property
    def queued_chunks(self) -> int:
        """Audio chunks waiting here for the worker's pipe."""
        return self._out.queued_chunks

    @property
    def dropped_chunks(self) -> int:
        """Audio chunks dropped here (oldest first) because the worker was slow or restarting."""
        return self._out.dropped_chunks

    # -- life ------------------------------------------------------------------------------
    async def start(self) -> Ready:
        """Spawn the worker and wait until its models are loaded and warm."""
        if self._supervisor is not None:
            raise RuntimeError("start() called twice")
        self._first_ready = asyncio.get_running_loop().create_future()
        self._supervisor = asyncio.create_task(self._supervise(), name="speech-worker")
        try:
            return await asyncio.shield(self._first_ready)
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Finish the last finals (up to ``close_timeout_s``), then stop; idempotent."""
        self._closing = True
        self._out_wake.set()
        if self._supervisor is not None:
            try:
                async with asyncio.timeout(self._close_timeout_s):
                    await asyncio.shield(self._supervisor)
            except TimeoutError:
                self._kill()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        self._closed = True
        self._captions_wake.set()

    # -- commands --------------------------------------------------------------------------
    def add_speaker(self, speaker_id: str, lang: str | None = None) -> None:
        self._speakers[speaker_id] = lang
        self._send(AddSpeaker(speaker_id, lang))

    def remove_speaker(self, speaker_id: str) -> None:
        """The speaker left: their last final still comes."""
        self._speakers.pop(speaker_id, None)
        self._glossaries.pop(speaker_id, None)
        self._speaker_targets.pop(speaker_id, None)
        self._send(RemoveSpeaker(speaker_id))

    def set_glossary(self, speaker_id: str, glossary: Glossary) -> None:
        """The glossary of the speaker's room (recognition hints, enforced translations)."""
        if glossary:
            self._glossaries[speaker_id] = glossary
        else:
            self._glossaries.pop(speaker_id, None)
        self._send(SetGlossary(speaker_id, glossary))

    def set_speaker_lang(self, speaker_id: str, lang: str | None) -> None:
        if speaker_id in self._speakers:
            self._speakers[speaker_id] = lang
        self._send(SetSpeakerLang(speaker_id, lang))

    def set_targets(self, langs: Iterable[str]) -> None:
        """The languages someone reads (only these are translated)."""
        self._targets = tuple(sorted(set(langs)))
        self._send(SetTargets(self._targets))

    def set_speaker_targets(self, speaker_id: str, langs: Iterable[str]) -> None:
        """The languages this speaker's captions are translated into (the readers of their
        room), instead of :meth:`set_targets`' (after :meth:`add_speaker`)."""
        targets = tuple(sorted(set(langs)))
        if speaker_id in self._speakers:
            self._speaker_targets[speaker_id] = targets
        self._send(SetSpeakerTargets(speaker_id, targets))

    def push(self, chunk: AudioChunk) -> None:
        """Queue audio; the oldest of this speaker's is dropped when over ``max_queued_s``."""
        if self._closing or chunk.speaker_id not in self._speakers:
            return
        self._out.append(chunk)
        self._out_wake.set()

    async def translate(
        self, text: str, source: str, targets: Iterable[str]
    ) -> Mapping[str, Translation]:
        """Translate ``text`` (e.g. a chat message) ``source`` → each target with the captions'
        engines, in the worker (never on this loop): per target, its translation or why there
        is none. Raises :class:`SpeechWorkerError` when no
        worker is up or it dies meanwhile; callers bound the wait (``asyncio.timeout``)."""
        if self._closing or not self._up:
            raise SpeechWorkerError("the speech worker is not running", retryable=True)
        request_id = next(self._text_ids)
        future: asyncio.Future[TextTranslation] = asyncio.get_running_loop().create_future()
        self._texts[request_id] = future
        self._send(TranslateText(request_id, text, source, tuple(targets)))
        try:
            return (await future).translations
        finally:
            self._texts.pop(request_id, None)

    def ping(self, nonce: int | None = None) -> int:
        """Ask for a :class:`Pong` (answered after everything queued before it is applied);
        returns its nonce (``nonce``, or a new one)."""
        nonce = next(self._ping_ids) if nonce is None else nonce
        self._send(Ping(nonce))
        return nonce

    def _send(self, command: Command) -> None:
        if not self._closing:
            self._out.append(command)
            self._out_wake.set()

    # -- captions --------------------------------------------------------------------------
    async def captions(self) -> AsyncIterator[CaptionFrame]:
        """Every caption, in order, until :meth:`aclose`; raises the worker's fatal error."""
        while True:
            while self._captions:
                yield self._captions.popleft()
            if self._error is not None:
                raise self._error
            if self._closed:
                return
            self._captions_wake.clear()
            await self._captions_wake.wait()

    def _on_caption(self, frame: CaptionFrame) -> None:
        self._captions.append(frame)
        if len(self._captions) > self._max_captions:
            for old in self._captions:
                if not old.is_final:
                    self._captions.remove(old)
                    self.dropped_captions += 1
                    break
        self._captions_wake.set()

    # -- processes -------------------------------------------------------------------------
    async def _supervise(self) -> None:
        """Run workers one after another until closed or hopeless."""
        failures = 0  # starts in a row that did not reach Ready
        while not self._closing:
            process = await spawn_worker(WORKER_MODULE, env={"PARLEY_WORKER_NICE": str(self._nice)})
            self._process = process
            became_ready = await self._run(process)
            if self._error is not None or self._closing:
                break
            failures = 0 if became_ready else failures + 1
            if failures >= self._max_start_failures:
                self._fail(SpeechWorkerError("the speech worker failed to start", retryable=True))
                break
            backoff_s = min(0.5 * 2**failures, self._max_backoff_s)
            log.error("speech worker exited (status %s); restarting", process.returncode)
            await asyncio.sleep(backoff_s)
            self.restarts += 1
        if self._first_ready is not None and not self._first_ready.done():
            self._first_ready.set_exception(
                self._error or SpeechWorkerError("closed before ready", retryable=True)
            )
        self._captions_wake.set()

    async def _run(self, process: asyncio.subprocess.Process) -> bool:
        """Own one worker until it exits; True if it became ready."""
        ready = asyncio.Event()
        try:
            async with asyncio.TaskGroup() as tg:
                writer = tg.create_task(self._write(process), name="speech-worker-write")
                reader = tg.create_task(self._read(process, ready), name="speech-worker-read")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._start_timeout_s):
                        await ready.wait()
                if not ready.is_set() and not reader.done():
                    log.error(
                        "speech worker not ready in %.0f s; killing it", self._start_timeout_s
                    )
                    self._kill()
                await reader
                writer.cancel()
        finally:
            was_up, self._up = self._up, False
            if was_up and self.on_state is not None:
                self.on_state(False)
            for future in self._texts.values():
                if not future.done():
                    future.set_exception(
                        SpeechWorkerError("the speech worker stopped", retryable=True)
                    )
            if process.returncode is None:
                self._kill()
            await process.wait()
        return ready.is_set()

    async def _write(self, process: asyncio.subprocess.Process) -> None:
        stdin = process.stdin
        assert stdin is not None
        state: list[Command] = [Configure(self._config), SetTargets(self._targets)]
        state += [AddSpeaker(s, lang) for s, lang in self._speakers.items()]
        state += [SetGlossary(s, g) for s, g in self._glossaries.items() if s in self._speakers]
        state += [
            SetSpeakerTargets(s, langs)
            for s, langs in self._speaker_targets.items()
            if s in self._speakers
        ]
        try:
            for command in state:
                stdin.write(encode_command(command))
            while True:
                while self._out:
                    item = self._out.popleft()
                    if isinstance(item, AudioChunk):
                        stdin.write(encode_audio(item, self._sample_format))
                    else:
                        stdin.write(encode_command(item))
                    await stdin.drain()  # the queue fills (and drops) while the pipe is full
                if self._closing:
                    stdin.write(encode_command(Close()))
                    await stdin.drain()
                    stdin.close()
                    return
                self._out_wake.clear()
                await self._out_wake.wait()
        except (ConnectionError, BrokenPipeError):
            return  # the worker is gone: the reader sees it end

    async def _read(self, process: asyncio.subprocess.Process, ready: asyncio.Event) -> None:
        stdout = process.stdout
        assert stdout is not None
        while True:
            try:
                raw = await receive_frame(stdout)
                if raw is None:
                    return
                message = decode_outbound(*raw)
            except WireFormatError as exc:
                log.error("speech worker broke the wire protocol: %s; killing it", exc)
                self._kill()
                return
            self._on_message(message, ready)

    def _on_message(self, message: Outbound, ready: asyncio.Event) -> None:
        match message:
            case CaptionFrame():
                self._on_caption(message)
            case Ready():
                self._suppressed_before.update(self._suppressed_now)
                self._suppressed_now = {}
                self.ready, self.ready_at = message, time.monotonic()
                self._up = True
                ready.set()
                if self.on_state is not None:
                    self.on_state(True)
                if self._first_ready is not None and not self._first_ready.done():
                    self._first_ready.set_result(message)
            case Pong():
                self.last_pong, self.last_pong_at = message, time.monotonic()
                self._suppressed_now = dict(message.suppressed)
                if self.on_pong is not None:
                    self.on_pong(message)
            case TextTranslation():
                future = self._texts.get(message.request_id)
                if future is not None and not future.done():
                    future.set_result(message)
            case WorkerError():
                log.error("speech worker: %s", message.message)
                if message.fatal and not message.retryable:
                    self._fail(SpeechWorkerError(message.message, retryable=False))

    def _fail(self, error: SpeechWorkerError) -> None:
        self._error = error
        if self._first_ready is not None and not self._first_ready.done():
            self._first_ready.set_exception(error)
        self._captions_wake.set()

    def _kill(self) -> None:
        if self._process is not None:
            kill_worker(self._process)
