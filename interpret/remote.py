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
import collections
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Protocol

from .audio_queue import AudioCommandQueue
from .compose import PipelineConfig
from .frames import AudioChunk, CaptionFrame, Translation
from .framing import WireFormatError, split_frame
from .glossary import Glossary
from .opus import OpusEncoder
from .supervisor import SpeechWorkerError
from .wire import (
    AddSpeaker,
    Announce,
    Close,
    Command,
    Configure,
    OpusAudio,
    Outbound,
    Ping,
    Pong,
    Ready,
    RemoveSpeaker,
    SetGlossary,
    SetSpeakerLang,
    SetSpeakerTargets,
    SetTargets,
    TextTranslation,
    TranslateText,
    WorkerError,
    decode_outbound,
    encode_command,
    encode_opus_audio,
)

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


class RemoteSpeechWorker:
    """A connected remote worker (see the module docstring). :meth:`run` owns the link."""

    def __init__(
        self,
        link: FrameLink,
        announce: Announce,
        *,
        max_queued_s: float = 5.0,
        max_captions: int = 256,
        close_timeout_s: float = 30.0,
    ) -> None:
        self.announce = announce
        self._link = link
        self._max_captions = max_captions
        self._close_timeout_s = close_timeout_s
        self._out = AudioCommandQueue[Command](max_queued_s=max_queued_s)
        self._out_wake = asyncio.Event()
        self._encoders: dict[str, OpusEncoder] = {}
        self._captions: collections.deque[CaptionFrame] = collections.deque()
        self._captions_wake = asyncio.Event()
        self._texts: dict[int, asyncio.Future[TextTranslation]] = {}
        self._text_ids = itertools.count(1)
        self._ping_ids = itertools.count(1)
        self._up = False
        self._closing = False
        self._closed = False
        self._ended = asyncio.Event()
        self._ready_event = asyncio.Event()
        self._suppressed: dict[str, int] = {}
        self.on_state: Callable[[bool], None] | None = None
        self.restarts = 0  # a remote worker is never restarted from here
        self.dropped_captions = 0
        self.ready: Ready | None = None
        self.last_pong: Pong | None = None
        #: audio bytes sent (Opus), for the record
        self.sent_audio_bytes = 0

    # -- state -----------------------------------------------------------------------------
    @property
    def up(self) -> bool:
        return self._up

    @property
    def pid(self) -> int | None:
        return None  # its process is on another machine

    @property
    def queued_chunks(self) -> int:
        return self._out.queued_chunks

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
        was_up, self._up = self._up, False
        if was_up and self.on_state is not None:
            self.on_state(False)
        for future in self._texts.values():
            if not future.done():
                future.set_exception(SpeechWorkerError("the remote worker left", retryable=True))
        self._closed = True
        self._ended.set()
        self._captions_wake.set()

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

    def ping(self, nonce: int | None = None) -> int:
        nonce = next(self._ping_ids) if nonce is None else nonce
        self._send(Ping(nonce))
        return nonce

    async def translate(
        self, text: str, source: str, targets: Iterable[str]
    ) -> Mapping[str, Translation]:
        if self._closing or not self._up:
            raise SpeechWorkerError("the remote worker is not running", retryable=True)
        request_id = next(self._text_ids)
        future: asyncio.Future[TextTranslation] = asyncio.get_running_loop().create_future()
        self._texts[request_id] = future
        self._send(TranslateText(request_id, text, source, tuple(targets)))
        try:
            return (await future).translations
        finally:
            self._texts.pop(request_id, None)

    def _send(self, command: Command) -> None:
        if not self._closing and not self._closed:
            self._out.append(command)
            self._out_wake.set()

    # -- captions --------------------------------------------------------------------------
    async def captions(self) -> AsyncIterator[CaptionFrame]:
        """Its captions until the link ends."""
        while True:
            while self._captions:
                yield self._captions.popleft()
            if self._closed:
                return
            self._captions_wake.clear()
            await self._captions_wake.wait()

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
        match message:
            case CaptionFrame():
                self._captions.append(message)
                if len(self._captions) > self._max_captions:
                    for old in self._captions:
                        if not old.is_final:
                            self._captions.remove(old)
                            self.dropped_captions += 1
                            break
                self._captions_wake.set()
            case Ready():
                self.ready = message
                self._ready_event.set()
                if not self._up:
                    self._up = True
                    if self.on_state is not None:
                        self.on_state(True)
            case Pong():
                self.last_pong = message
                self._suppressed = dict(message.suppressed)
            case TextTranslation():
                future = self._texts.get(message.request_id)
                if future is not None and not future.done():
                    future.set_result(message)
            case WorkerError():
                log.error("remote speech worker: %s", message.message)
            case Announce():
                log.error("remote speech worker announced itself twice")
