"""The messages between :class:`interpret.supervisor.SpeechWorker` and ``python -m
interpret.worker``, one :mod:`interpret.framing` frame each.

Only audio has a payload: its samples as little-endian ``float32`` or ``int16`` bytes, or (to
a remote worker, :mod:`interpret.opus`) Opus packets, decoded by the worker. Every
dataclass is encoded field by field, never pickled: a bad frame fails here as a
:class:`~interpret.framing.WireFormatError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np

from .compose import PipelineConfig
from .frames import AudioChunk, CaptionFrame, Translated, Translation, Untranslated, Word
from .framing import Fields, WireFormatError
from .framing import encode_frame as frame
from .glossary import Glossary, entries_json, parse_entries

SampleFormat = Literal["f32", "s16"]
#: bumped when a remote worker and a server of different versions cannot understand each other
PROTOCOL_VERSION = 1
_DTYPES: Mapping[str, np.dtype[Any]] = {"f32": np.dtype("<f4"), "s16": np.dtype("<i2")}


# -- parent -> worker ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Configure:
    """The first frame: what to load (once per process)."""

    config: PipelineConfig


@dataclass(frozen=True, slots=True)
class AddSpeaker:
    speaker_id: str
    lang: str | None = None


@dataclass(frozen=True, slots=True)
class RemoveSpeaker:
    """The speaker left: their last final is still decoded and sent."""

    speaker_id: str


@dataclass(frozen=True, slots=True)
class SetSpeakerLang:
    speaker_id: str
    lang: str | None


@dataclass(frozen=True, slots=True)
class SetTargets:
    langs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SetSpeakerTargets:
    """The languages this speaker's captions are translated into (the readers of their room);
    overrides :class:`SetTargets` for them."""

    speaker_id: str
    langs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Ping:
    nonce: int


@dataclass(frozen=True, slots=True)
class TranslateText:
    """Translate a text (chat) ``source`` → each of ``targets`` with the captions' engines;
    answered by a :class:`TextTranslation` with the same ``request_id``."""

    request_id: int
    text: str
    source: str
    targets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SetGlossary:
    """The glossary of a speaker's room (recognition hints, enforced translations)."""

    speaker_id: str
    glossary: Glossary


@dataclass(frozen=True, slots=True)
class Close:
    """Finish every speaker's last final, then exit (end of input does the same)."""


@dataclass(frozen=True, slots=True)
class OpusAudio:
    """A speaker's audio as Opus packets (to a remote worker): the worker decodes it with the
    speaker's decoder (:class:`interpret.opus.OpusSpeakers`)."""

    speaker_id: str
    start_s: float
    payload: bytes


#: :class:`AudioChunk` travels as itself (with a payload)
Command = (
    Configure
    | AddSpeaker
    | RemoveSpeaker
    | SetSpeakerLang
    | SetTargets
    | SetSpeakerTargets
    | SetGlossary
    | Ping
    | TranslateText
    | Close
)
Inbound = Command | AudioChunk | OpusAudio


# -- worker -> parent ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Ready:
    """Models loaded and warmed up; commands are served from now on."""

    pid: int
    #: model + VAD load, and the warm-up decode (seconds)
    load_s: float
    warm_up_s: float


@dataclass(frozen=True, slots=True)
class Pong:
    nonce: int
    #: audio chunks dropped (oldest first) because the worker fell behind, since it started
    dropped_chunks: int
    decodes: int
    #: captions the text guards changed, dropped or decoded again since the worker started,
    #: by reason (``parley_asr_suppressed_total``). Also sent unasked (nonce 0) after a final
    #: when it changed: a handful of small counters.
    suppressed: Mapping[str, int] = dataclasses.field(default_factory=dict)
    #: seconds its decoder has spent decoding since the worker started (the pool's load signal)
    decode_s: float = 0.0


@dataclass(frozen=True, slots=True)
class WorkerError:
    """Something failed in the worker. ``retryable`` is False for errors a restart cannot fix
    (a missing model, a bad config); the worker exits after a fatal one."""

    message: str
    fatal: bool
    retryable: bool = True


@dataclass(frozen=True, slots=True)
class TextTranslation:
    """The answer to :class:`TranslateText`: per target, a translation or why there is none."""

    request_id: int
    translations: Mapping[str, Translation]


@dataclass(frozen=True, slots=True)
class Announce:
    """A remote worker's first frame: its name, where it decodes, how many speakers it serves
    in real time, and the protocol it speaks. The server answers with :class:`Configure`."""

    name: str
    device: str
    capacity: int
    version: int = PROTOCOL_VERSION


#: :class:`CaptionFrame` travels as itself
Outbound = Ready | Pong | WorkerError | TextTranslation | Announce | CaptionFrame


# -- shared parts ----------------------------------------------------------------------------
def _words(f: Fields) -> tuple[Word, ...]:
    raw: Any = f.raw("words") if f.has("words") else []
    try:
        return tuple(Word(float(a), float(b), str(t), float(p)) for a, b, t, p in raw)
    except (TypeError, ValueError):
        raise f.bad("words", "[start, end, text, probability]s") from None


def _translations_json(translations: Mapping[str, Translation]) -> dict[str, dict[str, str]]:
    return {
        lang: {"text": t.text, "engine": t.engine}
        if isinstance(t, Translated)
        else {"reason": t.reason}
        for lang, t in translations.items()
    }


def _translations(f: Fields) -> dict[str, Translation]:
    """Per language ``{"text", "engine"}`` or ``{"reason"}``: a result is one or the other."""
    result: dict[str, Translation] = {}
    for lang, t in f.items("translations"):
        result[lang] = (
            Untranslated(t.text("reason"))
            if t.has("reason")
            else Translated(t.text("text"), t.text("engine"))
        )
    return result


# -- parent -> worker ------------------------------------------------------------------------
def encode_audio(chunk: AudioChunk, sample_format: SampleFormat = "f32") -> bytes:
    samples = np.asarray(chunk.samples, dtype=np.float32)
    if sample_format == "s16":
        data = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    else:
        data = samples.astype("<f4", copy=False).tobytes()
    header = {"op": "audio", "speaker_id": chunk.speaker_id, "start_s": chunk.start_s}
    return frame({**header, "format": sample_format}, data)


def encode_opus_audio(audio: OpusAudio) -> bytes:
    header = {"op": "audio", "speaker_id": audio.speaker_id, "start_s": audio.start_s}
    return frame({**header, "format": "opus"}, audio.payload)


def encode_command(command: Command) -> bytes:
    c = command
    match c:
        case Configure():
            return frame({"op": "configure", "config": to_json(c.config)})
        case AddSpeaker():
            return frame({"op": "add_speaker", "speaker_id": c.speaker_id, "lang": c.lang})
        case RemoveSpeaker():
            return frame({"op": "remove_speaker", "speaker_id": c.speaker_id})
        case SetSpeakerLang():
            return frame({"op": "set_speaker_lang", "speaker_id": c.speaker_id, "lang": c.lang})
        case SetTargets():
            return frame({"op": "set_targets", "langs": list(c.langs)})
        case SetSpeakerTargets():
            fields = {"speaker_id": c.speaker_id, "langs": list(c.langs)}
            return frame({"op": "set_speaker_targets", **fields})
        case SetGlossary():
            entries = entries_json(c.glossary)
            return frame({"op": "set_glossary", "speaker_id": c.speaker_id, "entries": entries})
        case Ping():
            return frame({"op": "ping", "nonce": c.nonce})
        case TranslateText():
            fields = {"text": c.text, "source": c.source, "targets": list(c.targets)}
            return frame({"op": "translate", "request_id": c.request_id, **fields})
        case Close():
            return frame({"op": "close"})


def decode_inbound(header: bytes, payload: bytes) -> Inbound:
    f = Fields.load(header, "command")
    op = f.text("op")
    if op != "audio" and payload:
        raise f.error(f"{op!r} carries no payload")
    match op:
        case "audio":
            fmt = f.text("format")
            if fmt == "opus":
                return OpusAudio(f.text("speaker_id"), f.number("start_s"), payload)
            dtype = _DTYPES.get(fmt)
            if dtype is None:
                raise f.error(f"unknown sample format {fmt!r}")
            if len(payload) % dtype.itemsize:
                raise f.error(f"{len(payload)} bytes is not whole {fmt} samples")
            raw = np.frombuffer(payload, dtype=dtype)
            samples = raw.astype(np.float32) / 32768.0 if fmt == "s16" else raw.astype(np.float32)
            return AudioChunk(f.text("speaker_id"), samples, f.number("start_s"))
        case "configure":
            return Configure(from_json(PipelineConfig, f.object("config")))
        case "add_speaker":
            return AddSpeaker(f.text("speaker_id"), f.optional_text("lang"))
        case "remove_speaker":
            return RemoveSpeaker(f.text("speaker_id"))
        case "set_speaker_lang":
            speaker_id = f.text("speaker_id")
            return SetSpeakerLang(speaker_id, f.optional_text("lang"))
        case "set_targets":
            return SetTargets(f.texts("langs"))
        case "set_speaker_targets":
            speaker_id = f.text("speaker_id")
            return SetSpeakerTargets(speaker_id, f.texts("langs"))
        case "set_glossary":
            speaker_id = f.text("speaker_id")
            entries = f.raw("entries")
            if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
                raise f.bad("entries", "a list of objects")
            try:
                return SetGlossary(speaker_id, parse_entries(entries))
            except ValueError as exc:
                raise f.error(str(exc)) from None
        case "ping":
            return Ping(f.integer("nonce"))
        case "translate":
            return TranslateText(
                f.integer("request_id"), f.text("text"), f.text("source"), f.texts("targets")
            )
        case "close":
            return Close()
        case _:
            raise f.error(f"unknown op {op!r}")


# -- worker -> parent ------------------------------------------------------------------------
def encode_outbound(message: Outbound) -> bytes:
    m = message
    match m:
        case CaptionFrame():
            return frame(
                {
                    "t": "caption",
                    "caption_id": m.caption_id,
                    "speaker_id": m.speaker_id,
                    "lang": m.lang,
                    "text": m.text,
                    "start_s": m.start_s,
                    "end_s": m.end_s,
                    "is_final": m.is_final,
                    "translations": _translations_json(m.translations),
                    "stable_chars": m.stable_chars,
                    "words": [[w.start_s, w.end_s, w.text, w.probability] for w in m.words],
                }
            )
        case Ready():
            return frame({"t": "ready", "pid": m.pid, "load_s": m.load_s, "warm_up_s": m.warm_up_s})
        case Pong():
            fields = {"nonce": m.nonce, "dropped_chunks": m.dropped_chunks, "decodes": m.decodes}
            extra = {"suppressed": dict(m.suppressed), "decode_s": round(m.decode_s, 3)}
            return frame({"t": "pong", **fields, **extra})
        case WorkerError():
            error = {"message": m.message, "fatal": m.fatal, "retryable": m.retryable}
            return frame({"t": "error", **error})
        case TextTranslation():
            translations = _translations_json(m.translations)
            return frame(
                {"t": "translated", "request_id": m.request_id, "translations": translations}
            )
        case Announce():
            who = {"name": m.name, "device": m.device}
            return frame({"t": "announce", **who, "capacity": m.capacity, "version": m.version})


def decode_outbound(header: bytes, payload: bytes) -> Outbound:
    f = Fields.load(header, "worker message")
    if payload:
        raise f.error("unexpected payload")
    tag = f.text("t")
    match tag:
        case "caption":
            return CaptionFrame(
                caption_id=f.text("caption_id"),
                speaker_id=f.text("speaker_id"),
                lang=f.text("lang"),
                text=f.text("text"),
                start_s=f.number("start_s"),
                end_s=f.number("end_s"),
                is_final=f.boolean("is_final"),
                translations=_translations(f),
                stable_chars=f.integer("stable_chars"),
                words=_words(f),
            )
        case "ready":
            return Ready(
                f.integer("pid"),
                f.number("load_s"),
                f.number("warm_up_s"),
            )
        case "pong":
            suppressed = f.raw("suppressed") if f.has("suppressed") else {}
            if not isinstance(suppressed, dict) or not all(
                isinstance(k, str) and type(v) is int for k, v in suppressed.items()
            ):
                raise f.bad("suppressed", "an object of counts")
            return Pong(
                f.integer("nonce"),
                f.integer("dropped_chunks"),
                f.integer("decodes"),
                suppressed,
                f.number("decode_s") if f.has("decode_s") else 0.0,
            )
        case "translated":
            return TextTranslation(f.integer("request_id"), _translations(f))
        case "announce":
            announce = Announce(
                f.text("name"), f.text("device"), f.integer("capacity"), f.integer("version")
            )
            if announce.capacity < 1:
                raise f.bad("capacity", "at least 1")
            return announce
        case "error":
            return WorkerError(
                f.text("message"),
                f.boolean("fatal"),
                f.boolean("retryable"),
            )
        case _:
            raise f.error(f"unknown type {tag!r}")


# -- settings dataclasses --------------------------------------------------------------------
T = TypeVar("T")


def to_json(obj: Any) -> Any:
    """A settings dataclass (nested ones, tuples, mappings, scalars) as JSON values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [to_json(v) for v in obj]
    if isinstance(obj, Mapping):
        return {str(k): to_json(v) for k, v in obj.items()}
    return obj


def from_json(cls: type[T], obj: Mapping[str, Any]) -> T:
    """The inverse of :func:`to_json` for a settings dataclass whose every field has a
    default: each value must have its default's type (an int passes for a float; a field
    defaulting to None takes a string or None). Unknown keys are errors, missing ones default."""
    what = cls.__name__
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(obj) - set(known)
    if unknown:
        raise WireFormatError(f"{what}: unknown settings {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for name, value in obj.items():
        f = known[name]
        if f.default is not dataclasses.MISSING:
            sample = f.default
        elif f.default_factory is not dataclasses.MISSING:
            sample = f.default_factory()
        else:
            raise WireFormatError(f"{what}: {name!r} has no default")
        values[name] = _coerce(sample, value, f"{what}.{name}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise WireFormatError(f"{what}: {exc}") from None


def _coerce(sample: Any, value: Any, what: str) -> Any:
    if dataclasses.is_dataclass(sample) and not isinstance(sample, type):
        if not isinstance(value, dict):
            raise WireFormatError(f"{what}: expected an object")
        return from_json(type(sample), value)
    if isinstance(sample, tuple):
        if not isinstance(value, list):
            raise WireFormatError(f"{what}: expected a list")
        return tuple(value)
    if isinstance(sample, Mapping):
        if not isinstance(value, dict):
            raise WireFormatError(f"{what}: expected an object")
        return {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}
    if sample is None:
        if value is not None and not isinstance(value, str):
            raise WireFormatError(f"{what}: expected a string or null")
        return value
    if isinstance(sample, bool) or isinstance(value, bool):
        if not (isinstance(sample, bool) and isinstance(value, bool)):
            raise WireFormatError(f"{what}: expected {type(sample).__name__}")
        return value
    if isinstance(sample, float) and isinstance(value, int):
        return float(value)
    if not isinstance(value, type(sample)):
        raise WireFormatError(f"{what}: expected {type(sample).__name__}")
    return value
