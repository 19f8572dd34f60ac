"""``python -m interpret.worker``: one process's caption pipeline behind :mod:`interpret.wire`.

Reads frames on stdin, writes frames on stdout (the real fd 1; anything a library prints goes
to stderr instead). The first frame is :class:`~interpret.wire.Configure`: the models load and
warm up once, then :class:`~interpret.wire.Ready`. Threads:

- main: reads stdin and queues every command in order; audio is bounded per speaker
  (``max_queued_s``), dropping the oldest chunk when the pipeline falls behind (counted);
- ingest: applies the queue to the pipeline in order (VAD runs here);
- the pipeline's own decode and output threads; output writes caption frames;
- text: translates chat texts (:class:`~interpret.wire.TranslateText`) with the captions'
  engines, so that a chat never waits behind audio nor audio behind a chat.

A failed decoder is fatal: the worker reports it and exits, and the parent starts a new one.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import json
import logging
import os
import sys
import threading
from typing import BinaryIO

from . import wire
from .audio_queue import AudioCommandQueue
from .compose import build_pipeline, load_models, router_translate_fn
from .frames import AudioChunk, CaptionFrame, Translation, Untranslated
from .framing import WireFormatError, read_frame
from .models import ModelError
from .opus import OpusSpeakers
from .pipeline import CaptionPipeline, TranslateFn
from .processes import claim_stdout

log = logging.getLogger("interpret.worker")

#: audio queued per speaker before the oldest is dropped
MAX_QUEUED_S = 5.0
#: how long a close waits for the last finals
DRAIN_TIMEOUT_S = 30.0
#: text translations waiting for the text thread; more are answered "busy" at once
MAX_QUEUED_TEXTS = 64


class Output:
    """Frames to the parent, whole and in order, from any thread."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, message: wire.Outbound) -> None:
        data = wire.encode_outbound(message)
        with self._lock:
            try:
                self._stream.write(data)
                self._stream.flush()
            except (BrokenPipeError, ValueError):
                pass  # the parent is gone; end of input follows and ends the worker


class Ingest:
    """The ordered command queue between stdin and the pipeline (see the module docstring)."""

    def __init__(
        self, pipeline: CaptionPipeline, output: Output, *, max_queued_s: float = MAX_QUEUED_S
    ) -> None:
        self._pipeline = pipeline
        self._output = output
        self._items = AudioCommandQueue[wire.Command](max_queued_s=max_queued_s)
        self._cond = threading.Condition()
        self._ended = False
        #: stream time of each speaker's first sample: the pipeline counts from 0, the parent's
        #: clock does not (a restarted worker joins a stream in the middle)
        self._offsets: dict[str, float] = {}
        self._sent_suppressed: dict[str, int] = {}

    @property
    def dropped_chunks(self) -> int:
        return self._items.dropped_chunks

    def put(self, item: wire.Command | AudioChunk) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify()

    def end(self) -> None:
        with self._cond:
            self._ended = True
            self._cond.notify()

    def emit(self, frame: CaptionFrame) -> None:
        offset = self._offsets.get(frame.speaker_id, 0.0)
        if offset:
            frame = dataclasses.replace(
                frame, start_s=frame.start_s + offset, end_s=frame.end_s + offset
            )
        self._output.send(frame)
        if frame.is_final:
            # the guards' counters ride on an unasked Pong, only when they changed
            counts = self._pipeline.suppressed_counts()
            if counts != self._sent_suppressed:
                self._sent_suppressed = counts
                p = self._pipeline
                self._output.send(wire.Pong(0, self.dropped_chunks, p.decodes, counts, p.decode_s))

    def run(self) -> None:
        """Apply queued items until the end of input; a decoder failure ends the process."""
        p = self._pipeline
        while True:
            with self._cond:
                while not self._items and not self._ended and p.error is None:
                    self._cond.wait(0.1)
                if p.error is not None:
                    self._fail(f"decoder failed: {p.error!r}")
                if not self._items:
                    return
                item = self._items.popleft()
            match item:
                case AudioChunk():
                    self._offsets.setdefault(item.speaker_id, item.start_s)
                    p.push(item)
                case wire.AddSpeaker():
                    p.add_speaker(item.speaker_id, item.lang)
                case wire.RemoveSpeaker():
                    p.remove_speaker(item.speaker_id)
                    self._offsets.pop(item.speaker_id, None)
                case wire.SetSpeakerLang():
                    p.set_speaker_lang(item.speaker_id, item.lang)
                case wire.SetTargets():
                    p.set_targets(item.langs)
                case wire.SetSpeakerTargets():
                    p.set_speaker_targets(item.speaker_id, item.langs)
                case wire.SetGlossary():
                    p.set_glossary(item.speaker_id, item.glossary)
                case wire.Ping():
                    counts = p.suppressed_counts()
                    pong = wire.Pong(item.nonce, self.dropped_chunks, p.decodes, counts, p.decode_s)
                    self._output.send(pong)
                case wire.Configure() | wire.Close() | wire.TranslateText():
                    pass  # handled by the reader

    def _fail(self, message: str) -> None:
        log.error("%s; exiting", message)
        self._output.send(wire.WorkerError(message, fatal=True))
        os._exit(3)  # the reader thread is blocked on stdin: nothing else would end it


class TextTranslations:
    """Chat texts translated on their own thread, in order; the queue is bounded and a text
    that finds it full is answered at once with a reason (never dropped silently)."""

    def __init__(
        self, translate: TranslateFn, output: Output, *, max_queued: int = MAX_QUEUED_TEXTS
    ) -> None:
        self._translate = translate
        self._output = output
        self._max_queued = max_queued
        self._items: collections.deque[wire.TranslateText] = collections.deque()
        self._cond = threading.Condition()
        self._ended = False

    def put(self, request: wire.TranslateText) -> None:
        with self._cond:
            if len(self._items) < self._max_queued:
                self._items.append(request)
                self._cond.notify()
                return
        busy = dict.fromkeys(request.targets, Untranslated("translation is busy"))
        self._output.send(wire.TextTranslation(request.request_id, busy))

    def end(self) -> None:
        with self._cond:
            self._ended = True
            self._cond.notify()

    def run(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._ended:
                    self._cond.wait()
                if not self._items:
                    return
                request = self._items.popleft()
            self._output.send(self.translate(request))

    def translate(self, request: wire.TranslateText) -> wire.TextTranslation:
        translations: dict[str, Translation] = {}
        for target in request.targets:
            try:
                translations[target] = self._translate(request.text, request.source, target)
            except Exception as exc:  # an engine failing costs this translation only
                # the exception's type only: its message might quote the (private) text
                kind = type(exc).__name__
                log.warning("text translation %s→%s failed: %s", request.source, target, kind)
                reason = f"translation {request.source}→{target} failed"
                translations[target] = Untranslated(reason)
        return wire.TextTranslation(request.request_id, translations)


def serve(stdin: BinaryIO, output: Output) -> int:
    """The worker's life: configure, ready, commands until Close or end of input."""
    first = read_frame(stdin)
    if first is None:
        return 0
    command = wire.decode_inbound(*first)
    if not isinstance(command, wire.Configure):
        raise WireFormatError(f"the first frame must configure, not {type(command).__name__}")
    holder: list[Ingest] = []
    try:
        # loaded here (not by build_pipeline) so that chat translation shares the router
        models = load_models(command.config)
        built = build_pipeline(command.config, lambda f: holder[0].emit(f), loaded=models)
    except ModelError as exc:
        output.send(wire.WorkerError(str(exc), fatal=True, retryable=False))
        return 2
    ingest = Ingest(built.pipeline, output)
    holder.append(ingest)
    texts = TextTranslations(router_translate_fn(models.router), output)
    built.pipeline.start()
    thread = threading.Thread(target=ingest.run, name="ingest", daemon=True)
    thread.start()
    text_thread = threading.Thread(target=texts.run, name="text", daemon=True)
    text_thread.start()
    output.send(wire.Ready(os.getpid(), round(built.load_s, 3), round(built.warm_up_s, 3)))
    opus = OpusSpeakers()  # a speaker's Opus decoder (audio that came over a network link)
    try:
        while (raw := read_frame(stdin)) is not None:
            item = wire.decode_inbound(*raw)
            if isinstance(item, wire.Close):
                break
            if isinstance(item, wire.Configure):
                raise WireFormatError("configured twice")
            if isinstance(item, wire.TranslateText):
                texts.put(item)
                continue
            if isinstance(item, wire.OpusAudio):
                item = opus.decode(item.speaker_id, item.start_s, item.payload)
            elif isinstance(item, wire.RemoveSpeaker):
                opus.forget(item.speaker_id)
            # a Ping is answered in order with what came before it: the Pong says those are applied
            ingest.put(item)
    finally:
        texts.end()
        ingest.end()
        thread.join(DRAIN_TIMEOUT_S)
        built.pipeline.stop(drain=True, timeout_s=DRAIN_TIMEOUT_S)
        text_thread.join(DRAIN_TIMEOUT_S)
        built.close()
        models.router.close()
    return 0


class JsonLogFormatter(logging.Formatter):
    """One JSON object per record, with the fields the server's own JSON lines have."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "event": record.getMessage(),
            "level": record.levelname.lower(),
            "timestamp": datetime.datetime.fromtimestamp(record.created, datetime.UTC)
            .isoformat()
            .replace("+00:00", "Z"),
            "logger": record.name,
            "process": "speech-worker",
            "pid": record.process,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def main() -> int:
    nice = int(os.environ.get("PARLEY_WORKER_NICE", "0") or 0)
    if nice > 0:
        os.nice(nice)  # below the server that started us (see SpeechWorker)
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("PARLEY_WORKER_LOG_FORMAT") == "json":  # the server logs JSON lines
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("speech-worker %(process)d %(levelname)s %(name)s: %(message)s")
        )
    logging.basicConfig(
        level=os.environ.get("PARLEY_WORKER_LOG_LEVEL", "WARNING"), handlers=[handler]
    )
    # Frames own fd 1; anything else that prints (C libraries too) goes to stderr.
    protocol_fd = claim_stdout()
    sys.stdout = sys.stderr
    output = Output(os.fdopen(protocol_fd, "wb"))
    try:
        return serve(sys.stdin.buffer, output)
    except WireFormatError as exc:
        output.send(wire.WorkerError(f"wire protocol: {exc}", fatal=True, retryable=False))
        return 2
    except Exception as exc:  # boundary: report, exit, be restarted
        log.exception("speech worker failed")
        output.send(wire.WorkerError(f"{type(exc).__name__}: {exc}", fatal=True))
        return 1


if __name__ == "__main__":
    sys.exit(main())
