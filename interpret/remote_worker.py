"""``parley speech-worker --connect wss://server/speech-worker``: a speech worker on another
machine that dials the server, announces itself (:class:`~interpret.wire.Announce`: name,
device, capacity), and serves the speakers the server places on it.

This end relays: the frames of the link go to a local :class:`~interpret.supervisor.SpeechWorker`
(its own ``python -m interpret.worker`` child, models loaded once) and its captions, pongs and
translations go back. Audio arrives as Opus and is decoded here, per speaker. If the child dies,
this worker leaves the link at once (the server moves its speakers, with their audio since their
last final, to another worker) and connects again as a new worker once a new child is ready.
A server that refuses the secret is not asked again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl
from dataclasses import dataclass, field

from .compose import PipelineConfig
from .frames import AudioChunk, Untranslated
from .framing import WireFormatError, split_frame
from .opus import OpusSpeakers
from .remote import FrameLink
from .supervisor import SpeechWorker, SpeechWorkerError
from .wire import (
    AddSpeaker,
    Announce,
    Close,
    Configure,
    Inbound,
    OpusAudio,
    Ping,
    RemoveSpeaker,
    SetGlossary,
    SetSpeakerLang,
    SetSpeakerTargets,
    SetTargets,
    TextTranslation,
    TranslateText,
    WorkerError,
    decode_inbound,
    encode_outbound,
)

log = logging.getLogger("interpret.remote_worker")

PATH = "/speech-worker"
#: frames a link carries: a Configure, captions with words (a few KiB), Opus audio
MAX_MESSAGE_BYTES = 4 << 20


class RefusedError(Exception):
    """The server refused this worker (a wrong secret, remote workers not enabled)."""


@dataclass(frozen=True, slots=True)
class RemoteWorkerSettings:
    url: str
    secret: str
    name: str
    device: str = "cpu"
    #: CPU threads of the recognizer (None: the server's setting)
    cpu_threads: int | None = None
    #: speakers this worker serves in real time (its weight in the server's placement)
    capacity: int = 2
    #: speakers' decodes batched into one Whisper call (None: the server's setting)
    batch_size: int | None = None
    nice: int = 0
    max_backoff_s: float = 10.0


def for_device(config: PipelineConfig, settings: RemoteWorkerSettings) -> PipelineConfig:
    """The server's pipeline configuration, on this worker's device."""
    rec = config.recognizer
    compute_type = "float16" if settings.device == "cuda" else rec.compute_type
    recognizer = dataclasses.replace(
        rec,
        device=settings.device,
        compute_type=compute_type,
        cpu_threads=settings.cpu_threads or rec.cpu_threads,
        # on a GPU every window is Whisper's 30 s (cheap there): all speakers' windows have
        # one length, so they all batch together (a shorter "fit" window batches only with
        # windows of its own length)
        encoder_window="full" if settings.device == "cuda" else rec.encoder_window,
    )
    return dataclasses.replace(
        config, recognizer=recognizer, batch_size=settings.batch_size or config.batch_size
    )


@dataclass(slots=True)
class LinkState:
    """What one link serves now, for a caller that decides where the worker goes
    (``parley speech-worker --cluster``): the speakers placed on it."""

    speakers: set[str] = field(default_factory=set)
    #: the server accepted the link (the connection's backoff starts afresh)
    connected: bool = False
    #: the models are loaded and the server was told (it places speakers from then on)
    serving: bool = False


def decode_link_message(message: str | bytes) -> Inbound:
    if isinstance(message, str):
        raise WireFormatError("a text message on a speech worker link")
    return decode_inbound(*split_frame(message))


async def serve_link(
    link: FrameLink, settings: RemoteWorkerSettings, state: LinkState | None = None
) -> None:
    """One connection's life: announce, configure, serve until the server closes it (or our
    worker process dies). ``state``: kept up to date with the speakers it serves."""
    announce = Announce(settings.name, settings.device, settings.capacity)
    await link.send(encode_outbound(announce))
    first = decode_link_message(await link.recv())
    if not isinstance(first, Configure):
        raise WireFormatError(f"the server's first frame must configure, not {first!r}")
    worker = SpeechWorker(for_device(first.config, settings), nice=settings.nice)
    try:
        ready = await worker.start()
    except SpeechWorkerError as exc:
        error = WorkerError(str(exc), fatal=True, retryable=exc.retryable)
        await link.send(encode_outbound(error))
        raise
    out: asyncio.Queue[bytes] = asyncio.Queue()
    lost = asyncio.Event()
    worker.on_state = lambda up: None if up else lost.set()
    worker.on_pong = lambda pong: out.put_nowait(encode_outbound(pong))
    await link.send(encode_outbound(ready))
    log.info("serving (model load %.2f s)", ready.load_s)
    state = state or LinkState()
    state.serving = True
    relay = Relay(worker, out, state)
    died_first = False
    try:
        async with asyncio.TaskGroup() as tg:
            writer = tg.create_task(relay.send_all(link), name="link-write")
            captions = tg.create_task(relay.captions(), name="link-captions")
            reader = tg.create_task(relay.read(link, tg), name="link-read")
            died = tg.create_task(lost.wait(), name="worker-lost")
            await asyncio.wait([reader, died], return_when=asyncio.FIRST_COMPLETED)
            if died.done():
                died_first = True
                for task in (writer, captions, reader):
                    task.cancel()
            else:
                died.cancel()
                await worker.aclose()  # the last finals are decoded and relayed
                await captions
                await out.join()
                writer.cancel()
    finally:
        await worker.aclose()
    if died_first:
        log.error("the worker process died: leaving, so that the server moves its speakers")
        await link.close(1011, "worker process died")
        raise ConnectionResetError("the worker process died")
    await link.close(1000, "done")


class Relay:
    """Frames from the link to the worker; the worker's captions and answers to ``out``."""

    def __init__(
        self, worker: SpeechWorker, out: asyncio.Queue[bytes], state: LinkState | None = None
    ) -> None:
        self._worker = worker
        self._out = out
        self._state = state or LinkState()
        self._opus = OpusSpeakers()

    async def send_all(self, link: FrameLink) -> None:
        while True:
            data = await self._out.get()
            try:
                await link.send(data)
            finally:
                self._out.task_done()

    async def captions(self) -> None:
        async for frame in self._worker.captions():
            self._out.put_nowait(encode_outbound(frame))

    async def read(self, link: FrameLink, tg: asyncio.TaskGroup) -> None:
        """Until the server's Close (or the link ends)."""
        while True:
            try:
                message = await link.recv()
            except Exception:  # noqa: BLE001 - the link ended: stop as after a Close
                return
            item = decode_link_message(message)
            if isinstance(item, Close):
                return
            if isinstance(item, TranslateText):
                tg.create_task(self._translate(item), name="link-translate")
                continue
            self.apply(item)

    def apply(self, item: Inbound) -> None:
        w = self._worker
        match item:
            case OpusAudio():
                w.push(self._opus.decode(item.speaker_id, item.start_s, item.payload))
            case AudioChunk():
                w.push(item)
            case AddSpeaker():
                w.add_speaker(item.speaker_id, item.lang)
                self._state.speakers.add(item.speaker_id)
            case RemoveSpeaker():
                w.remove_speaker(item.speaker_id)
                self._opus.forget(item.speaker_id)
                self._state.speakers.discard(item.speaker_id)
            case SetSpeakerLang():
                w.set_speaker_lang(item.speaker_id, item.lang)
            case SetTargets():
                w.set_targets(item.langs)
            case SetSpeakerTargets():
                w.set_speaker_targets(item.speaker_id, item.langs)
            case SetGlossary():
                w.set_glossary(item.speaker_id, item.glossary)
            case Ping():
                w.ping(item.nonce)
            case Configure():
                raise WireFormatError("configured twice")
            case Close() | TranslateText():
                pass  # handled by read()

    async def _translate(self, request: TranslateText) -> None:
        try:
            translations = await self._worker.translate(
                request.text, request.source, request.targets
            )
        except SpeechWorkerError:
            translations = dict.fromkeys(request.targets, Untranslated("the worker restarts"))
        self._out.put_nowait(encode_outbound(TextTranslation(request.request_id, translations)))


async def serve_url(
    url: str,
    settings: RemoteWorkerSettings,
    *,
    ssl_context: ssl.SSLContext | None,
    state: LinkState | None = None,
) -> None:
    """Connect to ``url`` and serve that link until it ends. Raises :class:`RefusedError` when
    the server refuses this worker (401/403); the link's other failures as they come."""
    state = state or LinkState()
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    try:
        async with connect(
            url,
            additional_headers={"Authorization": f"Bearer {settings.secret}"},
            ssl=ssl_context if url.startswith("wss:") else None,
            max_size=MAX_MESSAGE_BYTES,
            compression=None,
            open_timeout=15,
        ) as link:
            log.info("connected to %s", url)
            state.connected = True
            await serve_link(link, settings, state)
    except InvalidStatus as exc:
        status = exc.response.status_code
        reason = exc.response.body.decode(errors="replace").strip() if exc.response.body else ""
        if status in (401, 403):
            raise RefusedError(f"the server refused this worker ({status}): {reason}") from None
        raise ConnectionError(f"the server answered {status} ({reason})") from None


def describe(exc: BaseException) -> str:
    """What ended a link, for the log: the first error inside a task group's group (a closed
    link seen by the reader and the writer at once), by type (never a frame's content)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return type(exc).__name__


def backoff_s(failures: int, max_backoff_s: float) -> float:
    """How long to wait after ``failures`` failed links in a row."""
    return min(max_backoff_s, 0.5 * 2.0 ** min(failures, 5))


async def run(settings: RemoteWorkerSettings, *, ssl_context: ssl.SSLContext | None) -> None:
    """Connect, serve, and connect again (with backoff) until refused or cancelled."""
    url = settings.url
    failures = 0
    while True:
        state = LinkState()
        try:
            await serve_url(url, settings, ssl_context=ssl_context, state=state)
        except SpeechWorkerError as exc:
            if not exc.retryable:
                raise
            log.error("the worker could not start: %s", exc)
        except (OSError, TimeoutError, WireFormatError, ConnectionError) as exc:
            log.warning("link to %s failed: %s", url, exc)
        except RefusedError:
            raise
        except Exception as exc:  # noqa: BLE001 - a closed link (websockets' ConnectionClosed)
            log.warning("link to %s ended: %s", url, describe(exc))
        failures = 1 if state.connected else failures + 1
        await asyncio.sleep(backoff_s(failures, settings.max_backoff_s))
