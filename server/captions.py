"""Live captions in rooms: speakers' decoded audio (media tap) → the speech worker process →
caption messages to every participant, in the languages each one reads.

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
from typing import TYPE_CHECKING, Any

import structlog

from interpret.compose import PipelineConfig
from interpret.frames import (
    CaptionFrame,
    Translated,
    Translation,
    Untranslated,
    translation_fields,
)
from interpret.glossary import Glossary, protect, restore
from interpret.pool import PoolSettings, SpeechPool
from media.tap import SpeakerAudioQueue

from . import protocol
from .interpreting import transcript_of
from .transcript import TranscriptLine

if TYPE_CHECKING:
    from .signaling import SignalingServer

log = structlog.get_logger(__name__)


class CaptionService:
    """Owns the speech workers' pool and the two tasks that feed it and fan its captions out."""

    def __init__(
        self,
        *,
        config: PipelineConfig,
        audio: SpeakerAudioQueue,
        signaling: SignalingServer,
        close_timeout_s: float = 30.0,
        worker_nice: int = 5,
        workers: int = 1,
        speakers_per_worker: int = 2,
    ) -> None:
        pool = PoolSettings(workers=workers, speakers_per_worker=speakers_per_worker)
        self._worker = SpeechPool(
            config, settings=pool, close_timeout_s=close_timeout_s, nice=worker_nice
        )
        self._worker.on_availability = self._availability_changed
        self._audio = audio
        self._signaling = signaling
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
        return protocol.encode("captions_status", state="paused" if self.paused else "live")

    def _availability_changed(self, available: bool) -> None:
        message = self.status_message()
        for live in list(self._signaling.rooms.values()):
            for client in list(live.clients.values()):
                client.send(message)

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
        readers = {
            name: [client.languages for client in live.clients.values()]
            for name, live in self._signaling.rooms.items()
        }
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
            if item.peer_id in self._opted_out:
                continue
            if item.peer_id not in self._speakers:
                client = self._client(item.room_id, item.peer_id)
                if client is None:
                    continue  # already gone
                self._speakers[item.peer_id] = item.room_id
                self._worker.add_speaker(item.peer_id, client.recognition_lang)
                self.languages_changed()  # their room's readers' languages
                if client.live is not None and client.live.glossary:
                    self._worker.set_glossary(item.peer_id, client.live.glossary)
            self._worker.push(item.chunk)
            self._clock_offsets[item.peer_id] = time.monotonic() - item.chunk.end_s

    async def _fan_out(self) -> None:
        async for frame in self._worker.captions():
            room = self._speakers.get(frame.speaker_id)
            live = None if room is None else self._signaling.rooms.get(room)
            if live is None:
                continue
            offset = self._clock_offsets.get(frame.speaker_id)
            latency_s = None
            if frame.is_final and offset is not None:
                latency_s = max(0.0, time.monotonic() - offset - frame.end_s)
                if self.on_final_latency is not None:
                    self.on_final_latency(latency_s)
            channel = live.channels.channel_of(frame.speaker_id)
            if channel is not None:
                # an interpreter on air: their channel's captions, not part of the meeting's
                # transcript (that is the floor's), for those who take them and for the console
                for client in list(live.clients.values()):
                    if _reads_channel(live, client, channel):
                        message = caption_message(
                            frame, frozenset(), latency_s=latency_s, channel=channel
                        )
                        client.send_caption(message, final=frame.is_final)
                continue
            if frame.is_final and self.on_final is not None and room is not None:
                self.on_final(room, frame)
            if frame.is_final:
                self._record(live, frame, offset, latency_s)
            for pid, client in list(live.clients.items()):
                languages = client.languages
                taken = live.channels.taken_languages(pid, languages) - {frame.lang}
                message = caption_message(frame, languages - taken, latency_s=latency_s)
                client.send_caption(message, final=frame.is_final)

    def _record(
        self, live: Any, frame: CaptionFrame, offset: float | None, latency_s: float | None
    ) -> None:
        """Keep the final in the room's transcript (times on the room's clock)."""
        if not frame.text.strip():
            return
        base = (offset if offset is not None else time.monotonic() - frame.end_s) - (
            live.started_monotonic
        )
        speaker = live.clients.get(frame.speaker_id)
        name = speaker.participant.name if speaker is not None and speaker.participant else ""
        max_lines = self._signaling.settings.interpreting.transcript_max_lines
        transcript_of(live, max_lines).add(
            TranscriptLine(
                caption_id=frame.caption_id,
                speaker_id=frame.speaker_id,
                speaker_name=name,
                lang=frame.lang,
                text=frame.text,
                start_s=max(0.0, base + frame.start_s),
                end_s=max(0.0, base + frame.end_s),
                **translation_fields(frame.translations),
                latency_s=latency_s,
            )
        )

    def _client(self, room: str, participant_id: str) -> Any:
        live = self._signaling.rooms.get(room)
        return None if live is None else live.clients.get(participant_id)


def speaker_targets(
    speakers: Mapping[str, str], readers: Mapping[str, Iterable[frozenset[str]]]
) -> dict[str, frozenset[str]]:
    """The translation targets of each speaker (participant id -> room): the union of what
    the readers of their room read (``readers``: room -> each client's languages)."""
    rooms = {room: frozenset().union(*languages) for room, languages in readers.items()}
    return {speaker: rooms.get(room, frozenset()) for speaker, room in speakers.items()}


def _reads_channel(live: Any, client: Any, channel: str) -> bool:
    """Whether ``client`` gets the captions of ``channel``'s interpreter: interpreters and hosts
    (the console shows every stream), and readers of the channel's language who take them."""
    participant = client.participant
    if participant is None:
        return False
    if participant.role in ("interpreter", "host"):
        return True
    listening = live.channels.listening_of(participant.participant_id)
    return bool(listening.interpreter_captions and channel in client.languages)


def caption_message(
    frame: CaptionFrame,
    languages: frozenset[str],
    *,
    latency_s: float | None = None,
    channel: str | None = None,
) -> str:
    """The ``caption`` message for a client reading ``languages`` (PROTOCOL.md); ``channel``:
    the speaker is an interpreter on air in it (their speech, recognised; no machine
    translation)."""
    extra: dict[str, Any] = {}
    if channel is not None:
        extra["channel"] = channel
    if frame.is_final:
        logprob = frame.avg_logprob
        if logprob is not None:
            extra["avg_logprob"] = round(logprob, 3)
            extra["words"] = [[w.text.strip(), round(w.probability, 3)] for w in frame.words]
        if latency_s is not None:
            extra["latency_ms"] = round(latency_s * 1000)
    return protocol.encode(
        "caption",
        caption_id=frame.caption_id,
        participant_id=frame.speaker_id,
        lang=frame.lang,
        text=frame.text,
        final=frame.is_final,
        stable_chars=frame.stable_chars,
        start_s=round(frame.start_s, 3),
        end_s=round(frame.end_s, 3),
        **translation_fields(frame.translations, languages),
        machine_generated=True,
        **extra,
    )
