"""The server's end of a remote speech worker (``parley speech-worker --connect …``): the same
frames as a local worker's pipe (:mod:`interpret.wire`), one per WebSocket message, with the
speakers' audio as Opus (:mod:`interpret.opus`, ≈ 300 bytes per 100 ms instead of 6,400).

:class:`RemoteSpeechWorker` has the interface the pool drives
(:class:`interpret.pool.WorkerHandle`); it does not restart anything: when the link drops it
is down for good (the pool moves its speakers, with their audio since their last final), and
the worker connects again as a new one.

Order on the link: worker → :class:`~interpret.wire.Announce`; server → ``Configure`` and
commands; worker → ``Ready`` once its models are loaded, then captions, pongs, translations.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Protocol

from .compose import PipelineConfig
from .frames import AudioChunk
from .framing import WireFormatError, split_frame
from .glossary import Glossary
from .opus import OpusEncoder
from .wire import (
    AddSpeaker,
    Announce,
    Close,
    Command,
    Configure,
    OpusAudio,
    Outbound,
    Pong,
    Ready,
    RemoveSpeaker,
    SetGlossary,
    SetSpeakerLang,
    SetSpeakerTargets,
    SetTargets,
    WorkerError,
    decode_outbound,
    encode_command,
    encode_opus_audio,
)
from .worker_link import WorkerLink

log = logging.getLogger(__name__)


class FrameLink(Protocol):
    """A message link (a WebSocket connection): one frame per binary message."""

    async def send(self, message: bytes) -> None: ...
    async def recv(self) -> str | bytes: ...
    async def close(self, code: int = 1000, reason: str = "") -> None: ...


def decode_message(message: str | bytes) -> Outbound:
    """One message from a remote worker."""
    if isinstance(message, str):
        raise WireFormatError("a text message on a speech worker link")
    return decode_outbound(*split_frame(message))


class RemoteSpeechWorker(WorkerLink):
    """A connected remote worker (see the module docstring). :meth:`run` owns the link."""

    _who = "the remote worker"

    def __init__(
        self,
        link: FrameLink,
        announce: Announce,
        *,
        max_queued_s: float = 5.0,
        max_captions: int = 256,
        close_timeout_s: float = 30.0,
    ) -> None:
        super().__init__(max_queued_s=max_queued_s, max_captions=max_captions)
        self.announce = announce
        self._link = link
        self._close_timeout_s = close_timeout_s
        self._encoders: dict[str, OpusEncoder] = {}
        self._ended = asyncio.Event()
        self._ready_event = asyncio.Event()
        self._suppressed: dict[str, int] = {}
        self.restarts = 0  # a remote worker is never restarted from here
        self.ready: Ready | None = None
        self.last_pong: Pong | None = None
        #: audio bytes sent (Opus), for the record
        self.sent_audio_bytes = 0

    # -- state -----------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return None  # its process is on another machine

    @property
    def dropped_chunks(self) -> int:
        pong = self.last_pong
        return self._out.dropped_chunks + (0 if pong is None else pong.dropped_chunks)

    @property
    def suppressed(self) -> dict[str, int]:
        return dict(self._suppressed)

    # -- life ------------------------------------------------------------------------------
    async def start(self) -> Ready:
        raise RuntimeError("a remote worker is started by its connection (run)")

    async def run(self, config: PipelineConfig, *, start_timeout_s: float = 120.0) -> None:
        """Configure the worker and serve it until the link ends (or :meth:`aclose`)."""
        try:
            await self._link.send(encode_command(Configure(config)))
            async with asyncio.TaskGroup() as tg:
                writer = tg.create_task(self._write(), name="remote-worker-write")
                reader = tg.create_task(self._read(), name="remote-worker-read")
                ready = tg.create_task(self._ready_event.wait(), name="remote-worker-ready")
                done, _ = await asyncio.wait(
                    [reader, ready], timeout=start_timeout_s, return_when=asyncio.FIRST_COMPLETED
                )
                ready.cancel()
                if not done:
                    log.error("remote speech worker not ready in %.0f s", start_timeout_s)
                    await self._link.close(1011, "not ready in time")
                await reader
                writer.cancel()
        finally:
            self._end()

    async def aclose(self) -> None:
        """Finish the last finals (up to ``close_timeout_s``), then close the link."""
        self._closing = True
        self._out_wake.set()
        if self._up:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._close_timeout_s):
                    await self._ended.wait()
        with contextlib.suppress(Exception):
            await self._link.close(1001, "server closing")
        self._end()

    def _end(self) -> None:
        self._set_up(False)
        self._closed = True
        self._ended.set()
        self._captions.wake.set()

    # -- commands --------------------------------------------------------------------------
    def add_speaker(self, speaker_id: str, lang: str | None = None) -> None:
        self._send(AddSpeaker(speaker_id, lang))

    def remove_speaker(self, speaker_id: str) -> None:
        self._send(RemoveSpeaker(speaker_id))

    def set_glossary(self, speaker_id: str, glossary: Glossary) -> None:
        self._send(SetGlossary(speaker_id, glossary))

    def set_speaker_lang(self, speaker_id: str, lang: str | None) -> None:
        self._send(SetSpeakerLang(speaker_id, lang))

    def set_targets(self, langs: Iterable[str]) -> None:
        self._send(SetTargets(tuple(sorted(set(langs)))))

    def set_speaker_targets(self, speaker_id: str, langs: Iterable[str]) -> None:
        self._send(SetSpeakerTargets(speaker_id, tuple(sorted(set(langs)))))

    def push(self, chunk: AudioChunk) -> None:
        if not self._closing and not self._closed:
            self._out.append(chunk)
            self._out_wake.set()

    # -- link ------------------------------------------------------------------------------
    def _encode(self, item: Command | AudioChunk) -> bytes:
        if isinstance(item, AudioChunk):
            encoder = self._encoders.get(item.speaker_id)
            if encoder is None:
                encoder = self._encoders[item.speaker_id] = OpusEncoder()
            payload = encoder.encode(item.samples)
            self.sent_audio_bytes += len(payload)
            return encode_opus_audio(OpusAudio(item.speaker_id, item.start_s, payload))
        if isinstance(item, RemoveSpeaker):
            self._encoders.pop(item.speaker_id, None)  # a speaker who comes back starts afresh
        return encode_command(item)

    async def _write(self) -> None:
        try:
            while True:
                while self._out:
                    await self._link.send(self._encode(self._out.popleft()))
                if self._closing:
                    await self._link.send(encode_command(Close()))
                    return
                self._out_wake.clear()
                await self._out_wake.wait()
        except Exception as exc:  # noqa: BLE001 - the link ended under us: the reader sees it
            log.info("remote speech worker link failed while sending: %s", type(exc).__name__)
            with contextlib.suppress(Exception):
                await self._link.close(1011, "send failed")  # the reader ends: speakers move

    async def _read(self) -> None:
        while True:
            try:
                message = decode_message(await self._link.recv())
            except WireFormatError as exc:
                log.error("remote speech worker broke the wire protocol: %s", exc)
                await self._link.close(1002, "wire protocol")
                return
            except Exception as exc:  # noqa: BLE001 - the link ended (closed, reset): it is gone
                log.info("remote speech worker link ended: %s", type(exc).__name__)
                return
            self._on_message(message)

    def _on_message(self, message: Outbound) -> None:
        if self._on_common(message):
            return
        match message:
            case Ready():
                self.ready = message
                self._ready_event.set()
                self._set_up(True)
            case Pong():
                self.last_pong = message
                self._suppressed = dict(message.suppressed)
            case WorkerError():
                log.error("remote speech worker: %s", message.message)
            case Announce():
                log.error("remote speech worker announced itself twice")
