"""The speech workers' shell: speakers' decoded audio (:mod:`media.tap`) → the speech workers'
pool (:mod:`interpret.pool`) → their caption frames → the rooms' side
(:class:`CaptionRouter`, implemented by :class:`server.features.captions.CaptionsFeature`,
which routes each caption to its readers).

A pool of speech workers (:class:`interpret.pool.SpeechPool`) serves every room of this
server, each speaker on one worker. Speakers are participants (their id is the speaker id);
their worker translates each speaker's captions into the languages the readers of their room
read (never another room's: one room's readers cannot make the worker translate every room),
and each client gets only its own languages.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

import structlog

from interpret.compose import PipelineConfig
from interpret.frames import CaptionFrame, Translated, Translation, Untranslated
from interpret.glossary import Glossary, protect, restore
from interpret.pool import PoolSettings, SpeechPool
from media.tap import SpeakerAudioQueue

from .features.captions import Routed, Speaker
from .outbound import CaptionsStatus

log = structlog.get_logger(__name__)


class CaptionRouter(Protocol):
    """What the service needs of the rooms (:class:`server.features.captions.CaptionsFeature`)."""

    def readers(self) -> Mapping[str, Iterable[frozenset[str]]]:
        """Room -> the languages each of its participants reads."""
        ...

    def speaker(self, room: str, participant_id: str) -> Speaker | None:
        """A new speaker's language and glossary; None when they are gone."""
        ...

    def deliver(
        self,
        room: str,
        frame: CaptionFrame,
        *,
        latency_s: float | None,
        audio_offset_s: float | None,
    ) -> Routed | None:
        """Send a caption to its readers; None when the room is gone."""
        ...

    def tell_everyone(self, message: str) -> None:
        """Send ``message`` to every client of every room (``captions_status``)."""
        ...


class CaptionService:
    """Owns the speech workers' pool and the two tasks that feed it and fan its captions out."""

    def __init__(
        self,
        *,
        config: PipelineConfig,
        audio: SpeakerAudioQueue,
        close_timeout_s: float = 30.0,
        worker_nice: int = 5,
        workers: int = 1,
        speakers_per_worker: int = 2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        pool = PoolSettings(workers=workers, speakers_per_worker=speakers_per_worker)
        self._worker = SpeechPool(
            config, settings=pool, close_timeout_s=close_timeout_s, nice=worker_nice
        )
        self._worker.on_availability = self._availability_changed
        self._audio = audio
        self._clock = clock
        #: the rooms' side: who speaks where, who reads what, delivery (set by the App:
        #: :class:`server.features.captions.CaptionsFeature`)
        self.router: CaptionRouter | None = None
        self._speakers: dict[str, str] = {}  # participant id -> room
        #: participants who asked not to be transcribed: their audio is not fed to the worker
        self._opted_out: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        #: speaker -> the translation targets last given to the worker for them
        self._targets: dict[str, frozenset[str]] = {}
        # speaker -> monotonic time minus stream time of their latest audio (for latency)
        self._clock_offsets: dict[str, float] = {}
        #: called with each final's latency: seconds from its audio's end reaching the server
        #: to its fan-out (set by the App for /metrics)
        self.on_final_latency: Callable[[float], None] | None = None
        #: called with (room, frame) for every final fanned out (retention, when configured)
        self.on_final: Callable[[str, CaptionFrame], None] | None = None

    @property
    def worker(self) -> SpeechPool:
        return self._worker

    @property
    def paused(self) -> bool:
        """No speech worker is up: captions wait (clients are told with ``captions_status``)."""
        return not self._worker.up

    def status_message(self) -> str:
        """``captions_status`` (PROTOCOL.md): live, or paused while no speech worker is up."""
        return CaptionsStatus(state="paused" if self.paused else "live").encode()

    def _availability_changed(self, available: bool) -> None:
        """A speech worker came up while none was, or the last one went down: every client of
        every room is told."""
        if self.router is not None:
            self.router.tell_everyone(self.status_message())

    async def start(self) -> None:
        ready = await self._worker.start()
        if ready is None:
            log.warning("no local speech worker: captions wait for a remote one")
        else:
            workers = self._worker.workers()
            up = sum(w.up for w in workers)
            log.info("speech workers ready", up=up, of=len(workers), load_s=round(ready.load_s, 2))
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._feed(), name="captions-feed"),
            loop.create_task(self._fan_out(), name="captions-fan-out"),
        ]

    async def drain(self) -> None:
        """Shutdown: the worker finishes the utterances in progress (what was already queued
        for it included, up to ``close_timeout_s``) and their finals are fanned out to the
        clients still connected; then the service is closed."""
        await self._worker.aclose()  # new audio is ignored from here on
        fan_out = [t for t in self._tasks if t.get_name() == "captions-fan-out"]
        if fan_out:  # its iterator ends once the worker's last caption was read
            await asyncio.wait(fan_out, timeout=1.0)
        await self.aclose()

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._worker.aclose()

    # -- called by signaling ---------------------------------------------------------------
    def languages_changed(self) -> None:
        """A client changed what it reads (or left): each speaker's captions are translated
        into what the readers of their room read."""
        if self.router is None:
            return
        readers = self.router.readers()
        for speaker_id, targets in speaker_targets(self._speakers, readers).items():
            self._set_targets(speaker_id, targets)

    def _set_targets(self, speaker_id: str, targets: frozenset[str]) -> None:
        if self._targets.get(speaker_id) != targets:
            self._targets[speaker_id] = targets
            self._worker.set_speaker_targets(speaker_id, sorted(targets))

    def participant_left(self, participant_id: str) -> None:
        self._opted_out.discard(participant_id)
        self._forget_speaker(participant_id)

    def set_opt_out(self, participant_id: str, opt_out: bool) -> None:
        """Stop (or resume) transcribing a participant: from now on none of their audio
        reaches the worker (what it already has finishes as usual)."""
        if opt_out:
            self._opted_out.add(participant_id)
            self._forget_speaker(participant_id)
        else:
            self._opted_out.discard(participant_id)

    async def translate_text(
        self, text: str, source: str, targets: tuple[str, ...]
    ) -> Mapping[str, Translation]:
        """Chat translation by the captions' engines, in the speech worker."""
        return await self._worker.translate(text, source, targets)

    def _forget_speaker(self, participant_id: str) -> None:
        self._clock_offsets.pop(participant_id, None)
        self._targets.pop(participant_id, None)
        if self._speakers.pop(participant_id, None) is not None:
            self._worker.remove_speaker(participant_id)

    def glossary_changed(self, room: str, glossary: Glossary) -> None:
        """A room's glossary changed: its speakers' next decodes and translations use it."""
        for speaker_id, speaker_room in self._speakers.items():
            if speaker_room == room:
                self._worker.set_glossary(speaker_id, glossary)

    async def translate_glossed(
        self, text: str, source: str, targets: Iterable[str], glossary: Glossary = ()
    ) -> dict[str, Translation]:
        """``text`` into each target by the speech worker (never on this loop), with the
        glossary's terms protected and rendered as for captions."""
        result: dict[str, Translation] = {}

        async def one(target: str) -> None:
            protected = protect(text, source, target, glossary)
            answer = (await self._worker.translate(protected.text, source, [target])).get(
                target, Untranslated(f"no translation {source}→{target}")
            )
            if isinstance(answer, Translated):
                answer = Translated(restore(answer.text, protected), answer.engine)
            result[target] = answer

        async with asyncio.TaskGroup() as tg:
            for target in targets:
                tg.create_task(one(target))
        return result

    def speaker_lang_changed(self, participant_id: str, lang: str | None) -> None:
        if participant_id in self._speakers:
            self._worker.set_speaker_lang(participant_id, lang)

    # -- tasks -------------------------------------------------------------------------------
    async def _feed(self) -> None:
        async for item in self._audio:
            if item.peer_id in self._opted_out or self.router is None:
                continue
            if item.peer_id not in self._speakers:
                speaker = self.router.speaker(item.room_id, item.peer_id)
                if speaker is None:
                    continue  # already gone
                self._speakers[item.peer_id] = item.room_id
                self._worker.add_speaker(item.peer_id, speaker.lang)
                self.languages_changed()  # their room's readers' languages
                if speaker.glossary:
                    self._worker.set_glossary(item.peer_id, speaker.glossary)
            self._worker.push(item.chunk)
            self._clock_offsets[item.peer_id] = self._clock() - item.chunk.end_s

    async def _fan_out(self) -> None:
        async for frame in self._worker.captions():
            room = self._speakers.get(frame.speaker_id)
            if room is None or self.router is None:
                continue
            offset = self._clock_offsets.get(frame.speaker_id)
            latency_s = None
            if offset is not None:
                latency_s = max(0.0, self._clock() - offset - frame.end_s)
            routed = self.router.deliver(room, frame, latency_s=latency_s, audio_offset_s=offset)
            if routed is None:
                continue  # the room is gone
            if frame.is_final and latency_s is not None and self.on_final_latency is not None:
                self.on_final_latency(latency_s)
            if routed.transcribed and self.on_final is not None:
                self.on_final(room, frame)


def speaker_targets(
    speakers: Mapping[str, str], readers: Mapping[str, Iterable[frozenset[str]]]
) -> dict[str, frozenset[str]]:
    """The translation targets of each speaker (participant id -> room): the union of what
    the readers of their room read (``readers``: room -> each client's languages)."""
    rooms = {room: frozenset().union(*languages) for room, languages in readers.items()}
    return {speaker: rooms.get(room, frozenset()) for speaker, room in speakers.items()}
