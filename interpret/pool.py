"""A pool of speech workers behind the interface of one (:class:`SpeechPool` is used exactly as
:class:`~interpret.supervisor.SpeechWorker` is): each speaker is placed on one worker by load
(:mod:`interpret.placement`) and moved when that worker dies or falls behind.

No audio is lost across a move. The pool keeps each speaker's audio since their last final in a
bounded buffer (``replay_max_s``, oldest dropped); when a worker dies its speakers go to another
at once and that buffer is replayed there, so the utterance that was in progress is captioned
in full by the new worker. A worker that is only slow keeps what it has (it is told the speaker
left, so it finishes their utterance) and the new worker gets the audio from then on; such moves
happen between utterances only (no interim open, and quiet for ``quiet_s``: a speaker who has
just begun is not split before their first interim). With no worker up, speakers wait
(captions paused) and their buffer is replayed when one comes.

Loads come from the workers' :class:`~interpret.wire.Pong` (asked every ``monitor_interval_s``):
decode seconds per second (``busy``) and per audio second (real-time factor), and how long the
answer took plus the audio waiting here (``queue_s``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Literal, Protocol

import numpy as np

from .compose import PipelineConfig
from .frames import ASR_SAMPLE_RATE, AudioChunk, CaptionFrame, Translation
from .glossary import Glossary
from .placement import Move, Placement, PlacementSettings
from .remote import FrameLink, RemoteSpeechWorker
from .supervisor import SpeechWorker
from .wire import Announce, Pong, Ready
from .worker_link import CaptionQueue, SpeechWorkerError

log = logging.getLogger(__name__)

#: most local workers chosen automatically (each holds its own models: ~0.5 GB with base)
MAX_AUTO_WORKERS = 8


def auto_workers(cpu_threads: int, cores: int | None = None) -> int:
    """Local workers for this machine: one per ``cpu_threads`` cores, 1 to ``MAX_AUTO_WORKERS``."""
    cores = cores or os.cpu_count() or 1
    return max(1, min(MAX_AUTO_WORKERS, cores // max(1, cpu_threads)))


class WorkerHandle(Protocol):
    """What the pool drives: a local :class:`SpeechWorker`, or a remote worker's connection."""

    on_state: Callable[[bool], None] | None
    restarts: int
    ready: Ready | None
    last_pong: Pong | None

    @property
    def up(self) -> bool: ...
    @property
    def dropped_captions(self) -> int: ...
    @property
    def pid(self) -> int | None: ...
    @property
    def queued_chunks(self) -> int: ...
    @property
    def dropped_chunks(self) -> int: ...
    @property
    def suppressed(self) -> dict[str, int]: ...
    async def start(self) -> Ready: ...
    async def aclose(self) -> None: ...
    def add_speaker(self, speaker_id: str, lang: str | None = None) -> None: ...
    def remove_speaker(self, speaker_id: str) -> None: ...
    def set_glossary(self, speaker_id: str, glossary: Glossary) -> None: ...
    def set_speaker_lang(self, speaker_id: str, lang: str | None) -> None: ...
    def set_targets(self, langs: Iterable[str]) -> None: ...
    def set_speaker_targets(self, speaker_id: str, langs: Iterable[str]) -> None: ...
    def push(self, chunk: AudioChunk) -> None: ...
    def ping(self) -> int: ...
    async def translate(
        self, text: str, source: str, targets: Iterable[str]
    ) -> Mapping[str, Translation]: ...
    def captions(self) -> AsyncIterator[CaptionFrame]: ...


@dataclasses.dataclass(frozen=True, slots=True)
class PoolSettings:
    #: local worker processes (0: none, remote workers only)
    workers: int = 1
    #: speakers one local worker serves in real time (its weight in placement)
    speakers_per_worker: int = 2
    #: each speaker's audio since their last final kept for a move (seconds)
    replay_max_s: float = 30.0
    monitor_interval_s: float = 0.5
    #: window over which ``busy`` and the real-time factor are measured
    load_window_s: float = 2.0
    #: a speaker counts as quiet (movable by rebalancing) after this long below
    #: ``quiet_rms`` with no interim open: a move then splits no utterance
    quiet_s: float = 0.5
    quiet_rms: float = 0.01
    placement: PlacementSettings = dataclasses.field(default_factory=PlacementSettings)


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One worker as operators see it (``/metrics``, ``parley workers``); no speaker names."""

    worker_id: str
    kind: Literal["local", "remote"]
    up: bool
    pid: int | None
    speakers: int
    capacity: int
    queue_chunks: int
    queue_s: float
    busy: float
    real_time_factor: float
    restarts: int
    dropped_chunks: int
    moves_out: Mapping[str, int]
    model: str
    device: str


@dataclasses.dataclass(slots=True)
class _Member:
    worker_id: str
    kind: Literal["local", "remote"]
    handle: WorkerHandle
    capacity: int
    model: str
    device: str
    forwarder: asyncio.Task[None] | None = None
    #: audio seconds pushed to it (for the real-time factor)
    audio_s: float = 0.0
    #: (monotonic, decode_s, audio_s) at the start of the current load window
    window: tuple[float, float, float] | None = None
    busy: float = 0.0
    rtf: float = 0.0
    ping_nonce: int | None = None
    ping_sent: float = 0.0
    queue_s: float = 0.0
    moves_out: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)


class SpeechPool:
    """Speech workers behind one worker's interface (see the module docstring). Methods other
    than :meth:`start` and :meth:`aclose` never block."""

    def __init__(
        self,
        config: PipelineConfig,
        *,
        settings: PoolSettings | None = None,
        worker_factory: Callable[[], WorkerHandle] | None = None,
        close_timeout_s: float = 30.0,
        nice: int = 5,
        max_captions: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self.settings = settings or PoolSettings()
        self._factory = worker_factory or (
            lambda: SpeechWorker(config, close_timeout_s=close_timeout_s, nice=nice)
        )
        self._clock = clock
        self._placement = Placement(self.settings.placement)
        self._members: dict[str, _Member] = {}
        #: caption forwarders of workers that left (awaited by :meth:`aclose`)
        self._retired: list[asyncio.Task[None]] = []
        # what a worker taking a speaker must be told
        self._speakers: dict[str, str | None] = {}
        self._glossaries: dict[str, Glossary] = {}
        self._targets: tuple[str, ...] = config.targets
        self._speaker_targets: dict[str, tuple[str, ...]] = {}
        #: speaker -> their audio since their last final (replayed on a move)
        self._buffers: dict[str, collections.deque[AudioChunk]] = {}
        self._buffered: dict[str, int] = {}
        #: speakers with an interim and no final yet (not moved by rebalancing)
        self._open: set[str] = set()
        #: speaker -> stream time of the end of their latest loud chunk, and of their latest
        self._loud_until: dict[str, float] = {}
        self._heard_until: dict[str, float] = {}
        self._captions = CaptionQueue(max_captions)
        self._monitor: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        self._started = False
        self._first_error: BaseException | None = None
        #: audio chunks dropped from replay buffers (a speaker over ``replay_max_s`` since
        #: their last final: a long outage with no worker)
        self.dropped_replay_chunks = 0
        #: moves by reason (``placed`` counts only waiting speakers placed later)
        self.moves: collections.Counter[str] = collections.Counter()
        self.ready: Ready | None = None
        self.ready_at: float | None = None
        #: called with True when a first worker is up after none was, False when the last one
        #: goes (captions live / paused)
        self.on_availability: Callable[[bool], None] | None = None
        self._available = False

    # -- life ------------------------------------------------------------------------------
    async def start(self) -> Ready | None:
        """Start the local workers and wait until they are ready. Fails only when every one
        failed; with no local worker (remote only) returns None at once."""
        if self._started:
            raise RuntimeError("start() called twice")
        self._started = True
        members = [self._add_local(i) for i in range(self.settings.workers)]
        results = await asyncio.gather(*(m.handle.start() for m in members), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        ready = [r for r in results if isinstance(r, Ready)]
        if members and not ready:
            await self.aclose()
            raise failed[0]
        for member, result in zip(members, results, strict=True):
            if isinstance(result, BaseException):
                log.error("speech worker %s failed to start: %s", member.worker_id, result)
                self._placement.remove_worker(member.worker_id)
                del self._members[member.worker_id]
            else:
                member.forwarder = asyncio.create_task(
                    self._forward(member), name=f"speech-pool-{member.worker_id}"
                )
        self._monitor = asyncio.create_task(self._watch(), name="speech-pool-monitor")
        if ready:
            self.ready, self.ready_at = ready[0], self._clock()
        return self.ready

    async def aclose(self) -> None:
        """Every worker finishes its speakers' last finals (up to its close timeout), then
        the pool stops; idempotent."""
        self._closing = True
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
        members = list(self._members.values())
        await asyncio.gather(*(m.handle.aclose() for m in members), return_exceptions=True)
        forwarders = [m.forwarder for m in members if m.forwarder is not None]
        await asyncio.gather(*forwarders, *self._retired, return_exceptions=True)
        self._closed = True
        self._captions.wake.set()

    # -- workers ---------------------------------------------------------------------------
    def _add_local(self, index: int) -> _Member:
        rec = self._config.recognizer
        member = _Member(
            worker_id=f"local-{index}",
            kind="local",
            handle=self._factory(),
            capacity=self.settings.speakers_per_worker,
            model=rec.model,
            device=rec.device,
        )
        self._join(member)
        return member

    def add_worker(
        self,
        worker_id: str,
        handle: WorkerHandle,
        *,
        kind: Literal["local", "remote"],
        capacity: int,
        model: str,
        device: str,
    ) -> None:
        """A worker that is already up (a remote one that connected); it takes waiting
        speakers at once, and new ones by load."""
        member = _Member(worker_id, kind, handle, max(1, capacity), model, device)
        self._join(member)
        member.forwarder = asyncio.create_task(
            self._forward(member), name=f"speech-pool-{worker_id}"
        )
        handle.set_targets(self._targets)
        if handle.up:
            self._on_state(member, True)

    def remove_worker(self, worker_id: str) -> None:
        """A worker is gone for good (a remote one disconnected); its speakers move now."""
        member = self._members.pop(worker_id, None)
        if member is None:
            return
        if member.forwarder is not None and member.forwarder is not asyncio.current_task():
            self._retired.append(member.forwarder)
        self._apply_all(self._placement.remove_worker(worker_id), member)
        if not self._closing:
            self._check_availability()

    async def serve_remote(self, link: FrameLink, announce: Announce) -> str:
        """A remote worker connected and announced itself: configure it, place speakers on it
        by load once it is ready, and move them away when its link ends (this returns then).
        Returns the id it had (``remote-<name>``)."""
        base = f"remote-{announce.name or 'worker'}"
        worker_id = base
        for n in itertools.count(2):
            if worker_id not in self._members:
                break
            worker_id = f"{base}-{n}"
        handle = RemoteSpeechWorker(link, announce)
        self.add_worker(
            worker_id,
            handle,
            kind="remote",
            capacity=announce.capacity,
            model=self._config.recognizer.model,
            device=announce.device,
        )
        try:
            await handle.run(self._config)
        finally:
            self.remove_worker(worker_id)
        return worker_id

    def _join(self, member: _Member) -> None:
        self._members[member.worker_id] = member
        self._placement.add_worker(member.worker_id, capacity=member.capacity, up=False)
        member.handle.on_state = lambda up: self._on_state(member, up)

    def _check_availability(self) -> None:
        available = self.up
        if available != self._available:
            self._available = available
            if available:
                log.info("captions live: a speech worker is up")
            else:
                log.warning("captions paused: no speech worker is up")
            if self.on_availability is not None:
                self.on_availability(available)

    def _on_state(self, member: _Member, up: bool) -> None:
        if self._closing or member.worker_id not in self._members:
            return
        try:
            self._on_state_change(member, up)
        finally:
            self._check_availability()

    def _on_state_change(self, member: _Member, up: bool) -> None:
        if up:
            log.info("speech worker %s up", member.worker_id)
            member.window, member.ping_nonce, member.queue_s = None, None, 0.0
            if self.ready is None:
                self.ready, self.ready_at = member.handle.ready, self._clock()
            self._apply_all(self._placement.worker_up(member.worker_id))
        else:
            speakers = len(self._placement.speakers_of(member.worker_id))
            log.warning("speech worker %s down; moving %d speaker(s)", member.worker_id, speakers)
            self._apply_all(self._placement.worker_down(member.worker_id), member)

    async def _forward(self, member: _Member) -> None:
        """The worker's captions into the pool's; a worker that fails for good leaves."""
        try:
            async for frame in member.handle.captions():
                self._on_caption(frame)
        except SpeechWorkerError as exc:
            log.error("speech worker %s failed: %s", member.worker_id, exc)
            if self._first_error is None:
                self._first_error = exc
            if not self._closing:
                self.remove_worker(member.worker_id)
                if not self._members:
                    self._captions.wake.set()

    # -- placement -------------------------------------------------------------------------
    def _apply_all(self, moves: Iterable[Move], source: _Member | None = None) -> None:
        for move in moves:
            self._apply(move, source)

    def _apply(self, move: Move, source: _Member | None = None) -> None:
        speaker = move.speaker_id
        src = source or (None if move.from_worker is None else self._members.get(move.from_worker))
        dst = None if move.to_worker is None else self._members.get(move.to_worker)
        if move.from_worker == move.to_worker:
            return
        if move.from_worker is not None:
            self.moves[move.reason] += 1
            if src is not None:
                src.moves_out[move.reason] += 1
            log.info("speaker moved %s -> %s (%s)", move.from_worker, move.to_worker, move.reason)
        if src is not None:
            # alive: it finishes the utterance it has; dead: its restart does not take them back
            src.handle.remove_speaker(speaker)
        if dst is None:
            return
        self._introduce(dst, speaker)
        if move.reason in ("worker_down", "placed"):
            self._open.discard(speaker)
            for chunk in self._buffers.get(speaker, ()):
                self._send_audio(dst, chunk)

    def _introduce(self, member: _Member, speaker: str) -> None:
        handle = member.handle
        handle.add_speaker(speaker, self._speakers.get(speaker))
        if speaker in self._glossaries:
            handle.set_glossary(speaker, self._glossaries[speaker])
        if speaker in self._speaker_targets:
            handle.set_speaker_targets(speaker, self._speaker_targets[speaker])

    def _member_of(self, speaker: str) -> _Member | None:
        worker_id = self._placement.assignment.get(speaker)
        return None if worker_id is None else self._members.get(worker_id)

    async def _watch(self) -> None:
        """Ask every worker for its load, report it, rebalance."""
        interval = self.settings.monitor_interval_s
        while True:
            await asyncio.sleep(interval)
            self.monitor_once()

    def monitor_once(self) -> None:
        now = self._clock()
        for member in self._members.values():
            if member.handle.up:
                self._measure(member, now)
        quiet_s = self.settings.quiet_s
        movable = {
            s
            for s in self._speakers
            if s not in self._open
            and self._heard_until.get(s, 0.0) - self._loud_until.get(s, -1e18) >= quiet_s
        }
        self._apply_all(self._placement.rebalance(now, movable))

    def _measure(self, member: _Member, now: float) -> None:
        handle = member.handle
        pong = handle.last_pong
        nonce = member.ping_nonce
        answered = nonce is None or (pong is not None and pong.nonce == nonce)
        waiting_s = 0.0 if answered else now - member.ping_sent
        if answered:
            member.ping_nonce, member.ping_sent = handle.ping(), now
        decode_s = 0.0 if pong is None else pong.decode_s
        if member.window is None or decode_s < member.window[1]:
            member.window = (now, decode_s, member.audio_s)  # first, or a new process
        else:
            t0, d0, a0 = member.window
            if now - t0 >= self.settings.load_window_s:
                member.busy = (decode_s - d0) / (now - t0)
                member.rtf = (decode_s - d0) / (member.audio_s - a0) if member.audio_s > a0 else 0.0
                member.window = (now, decode_s, member.audio_s)
        member.queue_s = handle.queued_chunks * 0.1 + waiting_s
        self._placement.report(member.worker_id, queue_s=member.queue_s, busy=member.busy, now=now)

    # -- commands (the SpeechWorker interface) ---------------------------------------------
    def add_speaker(self, speaker_id: str, lang: str | None = None) -> None:
        self._speakers[speaker_id] = lang
        if speaker_id in self._placement.assignment:
            member = self._member_of(speaker_id)
            if member is not None:
                member.handle.add_speaker(speaker_id, lang)
            return
        self._buffers[speaker_id] = collections.deque()
        self._buffered[speaker_id] = 0
        move = self._placement.add_speaker(speaker_id)
        member = self._member_of(speaker_id)
        if member is not None:
            self._introduce(member, speaker_id)
        elif move.to_worker is None:
            log.warning("no speech worker up: captions paused for a new speaker")

    def remove_speaker(self, speaker_id: str) -> None:
        """The speaker left: their last final still comes."""
        member = self._member_of(speaker_id)
        self._placement.remove_speaker(speaker_id)
        for table in (self._speakers, self._glossaries, self._speaker_targets):
            table.pop(speaker_id, None)
        self._buffers.pop(speaker_id, None)
        self._buffered.pop(speaker_id, None)
        self._open.discard(speaker_id)
        self._loud_until.pop(speaker_id, None)
        self._heard_until.pop(speaker_id, None)
        if member is not None:
            member.handle.remove_speaker(speaker_id)

    def set_glossary(self, speaker_id: str, glossary: Glossary) -> None:
        if glossary:
            self._glossaries[speaker_id] = glossary
        else:
            self._glossaries.pop(speaker_id, None)
        member = self._member_of(speaker_id)
        if member is not None:
            member.handle.set_glossary(speaker_id, glossary)

    def set_speaker_lang(self, speaker_id: str, lang: str | None) -> None:
        if speaker_id in self._speakers:
            self._speakers[speaker_id] = lang
        member = self._member_of(speaker_id)
        if member is not None:
            member.handle.set_speaker_lang(speaker_id, lang)

    def set_targets(self, langs: Iterable[str]) -> None:
        self._targets = tuple(sorted(set(langs)))
        for member in self._members.values():
            member.handle.set_targets(self._targets)

    def set_speaker_targets(self, speaker_id: str, langs: Iterable[str]) -> None:
        targets = tuple(sorted(set(langs)))
        if speaker_id in self._speakers:
            self._speaker_targets[speaker_id] = targets
        member = self._member_of(speaker_id)
        if member is not None:
            member.handle.set_speaker_targets(speaker_id, targets)

    def push(self, chunk: AudioChunk) -> None:
        """Keep the chunk for a replay and send it to the speaker's worker (if one is up)."""
        speaker = chunk.speaker_id
        buffer = self._buffers.get(speaker)
        if self._closing or buffer is None:
            return
        buffer.append(chunk)
        n = self._buffered[speaker] + len(chunk.samples)
        limit = int(self.settings.replay_max_s * ASR_SAMPLE_RATE)
        while n > limit and len(buffer) > 1:
            n -= len(buffer.popleft().samples)
            self.dropped_replay_chunks += 1
        self._buffered[speaker] = n
        self._heard_until[speaker] = chunk.end_s
        if len(chunk.samples) and float(np.sqrt(np.mean(np.square(chunk.samples)))) >= (
            self.settings.quiet_rms
        ):
            self._loud_until[speaker] = chunk.end_s
        member = self._member_of(speaker)
        if member is not None:
            self._send_audio(member, chunk)

    def _send_audio(self, member: _Member, chunk: AudioChunk) -> None:
        member.audio_s += len(chunk.samples) / ASR_SAMPLE_RATE
        member.handle.push(chunk)

    async def translate(
        self, text: str, source: str, targets: Iterable[str]
    ) -> Mapping[str, Translation]:
        """Chat translation by the least loaded worker (see :meth:`SpeechWorker.translate`)."""
        up = [m for m in self._members.values() if m.handle.up]
        if self._closing or not up:
            raise SpeechWorkerError("no speech worker is running", retryable=True)
        member = min(up, key=lambda m: (self._placement.load(m.worker_id), m.busy))
        return await member.handle.translate(text, source, targets)

    # -- captions --------------------------------------------------------------------------
    async def captions(self) -> AsyncIterator[CaptionFrame]:
        """Every caption of every worker, until :meth:`aclose`; raises a worker's fatal error
        when no worker is left."""
        while True:
            for frame in self._captions.drain():
                yield frame
            if self._closed:
                return
            if self._started and not self._members and self._first_error is not None:
                raise self._first_error
            self._captions.wake.clear()
            await self._captions.wake.wait()

    def _on_caption(self, frame: CaptionFrame) -> None:
        speaker = frame.speaker_id
        if frame.is_final:
            self._open.discard(speaker)
            buffer = self._buffers.get(speaker)
            if buffer is not None:  # captioned: no longer needed for a replay
                while buffer and buffer[0].end_s <= frame.end_s:
                    self._buffered[speaker] -= len(buffer.popleft().samples)
        elif speaker in self._speakers:
            self._open.add(speaker)
        self._captions.put(frame)

    # -- state for operators ----------------------------------------------------------------
    @property
    def up(self) -> bool:
        """At least one worker is up."""
        return any(m.handle.up for m in self._members.values())

    @property
    def configured_workers(self) -> int:
        """Local workers this pool runs (0: remote workers only)."""
        return self.settings.workers

    @property
    def pid(self) -> int | None:
        """The first local worker's process id."""
        local = [m for m in self._members.values() if m.kind == "local"]
        return local[0].handle.pid if local else None

    @property
    def restarts(self) -> int:
        return sum(m.handle.restarts for m in self._members.values())

    @property
    def dropped_captions(self) -> int:
        return self._captions.dropped + sum(
            m.handle.dropped_captions for m in self._members.values()
        )

    @property
    def queued_chunks(self) -> int:
        return sum(m.handle.queued_chunks for m in self._members.values())

    @property
    def dropped_chunks(self) -> int:
        return sum(m.handle.dropped_chunks for m in self._members.values())

    @property
    def suppressed(self) -> dict[str, int]:
        total: collections.Counter[str] = collections.Counter()
        for member in self._members.values():
            total.update(member.handle.suppressed)
        return dict(total)

    @property
    def speaker_count(self) -> int:
        """Speakers captioned now (placed on a worker or waiting for one)."""
        return len(self._speakers)

    @property
    def waiting_count(self) -> int:
        """Speakers with no worker up to serve them (captions paused for them)."""
        return len(self._placement.waiting())

    def worker_of(self, speaker_id: str) -> str | None:
        """The worker serving a speaker (None: waiting or unknown)."""
        return self._placement.assignment.get(speaker_id)

    def workers(self) -> list[WorkerInfo]:
        return [
            WorkerInfo(
                worker_id=m.worker_id,
                kind=m.kind,
                up=m.handle.up,
                pid=m.handle.pid,
                speakers=len(self._placement.speakers_of(m.worker_id)),
                capacity=m.capacity,
                queue_chunks=m.handle.queued_chunks,
                queue_s=round(m.queue_s, 3),
                busy=round(m.busy, 3),
                real_time_factor=round(m.rtf, 3),
                restarts=m.handle.restarts,
                dropped_chunks=m.handle.dropped_chunks,
                moves_out=dict(m.moves_out),
                model=m.model,
                device=m.device,
            )
            for m in sorted(self._members.values(), key=lambda m: m.worker_id)
        ]
