"""The wire format between :class:`interpret.client.SpeechWorker` and ``python -m
interpret.worker``.

Every message is one binary frame: an 8-byte header (big-endian ``u32`` JSON length, ``u32``
payload length), a UTF-8 JSON object, then the payload. Only audio has a payload: its samples as
little-endian ``float32`` or ``int16`` bytes (never a JSON array: 16 kHz audio as JSON costs
~50x the bytes and the CPU to match). Every dataclass is encoded field by field, never pickled:
a bad frame fails here as a :class:`WireFormatError`.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np

from .compose import PipelineConfig
from .frames import AudioChunk, CaptionFrame, Word
from .glossary import Glossary, entries_json, parse_entries

HEADER = struct.Struct(">II")
#: longest JSON part either side accepts (a config or a caption is a few KiB)
MAX_JSON_BYTES = 1 << 20
#: longest payload: 30 s of float32 audio is 1.9 MiB
MAX_PAYLOAD_BYTES = 4 << 20

SampleFormat = Literal["f32", "s16"]
_DTYPES: Mapping[str, np.dtype[Any]] = {"f32": np.dtype("<f4"), "s16": np.dtype("<i2")}


class WireFormatError(Exception):
    """A frame that is not a known message; the other side is broken."""


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
Inbound = Command | AudioChunk


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


@dataclass(frozen=True, slots=True)
class WorkerError:
    """Something failed in the worker. ``retryable`` is False for errors a restart cannot fix
    (a missing model, a bad config); the worker exits after a fatal one."""

    message: str
    fatal: bool
    retryable: bool = True


@dataclass(frozen=True, slots=True)
class TextTranslation:
    """The answer to :class:`TranslateText`: per target, a translation (and its engine) or
    why there is none."""

    request_id: int
    translations: Mapping[str, str]
    engines: Mapping[str, str]
    untranslated: Mapping[str, str]


#: :class:`CaptionFrame` travels as itself
Outbound = Ready | Pong | WorkerError | TextTranslation | CaptionFrame


# -- frames ----------------------------------------------------------------------------------
def frame(header: Mapping[str, Any], payload: bytes = b"") -> bytes:
    text = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode()
    return HEADER.pack(len(text), len(payload)) + text + payload


def frame_sizes(head: bytes) -> tuple[int, int]:
    """The JSON and payload lengths announced by an 8-byte header (validated)."""
    json_len, payload_len = HEADER.unpack(head)
    if json_len > MAX_JSON_BYTES or payload_len > MAX_PAYLOAD_BYTES:
        raise WireFormatError(f"frame of {json_len} + {payload_len} bytes is too long")
    return json_len, payload_len


def _load(data: bytes, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireFormatError(f"{what}: not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise WireFormatError(f"{what}: expected an object")
    return obj


def _get(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    try:
        value = obj[key]
    except KeyError:
        raise WireFormatError(f"{what}: missing {key!r}") from None
    if isinstance(value, bool) and kind is not bool:
        raise WireFormatError(f"{what}: {key!r} has the wrong type")
    if not isinstance(value, kind):
        raise WireFormatError(f"{what}: {key!r} has the wrong type")
    return value


def _text(obj: Mapping[str, Any], key: str, what: str) -> str:
    value: str = _get(obj, key, str, what)
    return value


def _optional_text(obj: Mapping[str, Any], key: str, what: str) -> str | None:
    value: str | None = _get(obj, key, (str, type(None)), what)
    return value


def _number(obj: Mapping[str, Any], key: str, what: str) -> float:
    return float(_get(obj, key, (int, float), what))


def _str_map(obj: Mapping[str, Any], key: str, what: str) -> dict[str, str]:
    value = _get(obj, key, dict, what)
    if not all(isinstance(v, str) for v in value.values()):
        raise WireFormatError(f"{what}: {key!r} must map strings to strings")
    return dict(value)


def _words(obj: Mapping[str, Any], what: str) -> tuple[Word, ...]:
    raw = obj.get("words", [])
    try:
        return tuple(Word(float(a), float(b), str(t), float(p)) for a, b, t, p in raw)
    except (TypeError, ValueError):
        raise WireFormatError(f"{what}: 'words' must be [start, end, text, probability]s") from None


# -- parent -> worker ------------------------------------------------------------------------
def encode_audio(chunk: AudioChunk, sample_format: SampleFormat = "f32") -> bytes:
    samples = np.asarray(chunk.samples, dtype=np.float32)
    if sample_format == "s16":
        data = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    else:
        data = samples.astype("<f4", copy=False).tobytes()
    header = {"op": "audio", "speaker_id": chunk.speaker_id, "start_s": chunk.start_s}
    return frame({**header, "format": sample_format}, data)


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
    what = "command"
    obj = _load(header, what)
    op = _text(obj, "op", what)
    if op != "audio" and payload:
        raise WireFormatError(f"{what}: {op!r} carries no payload")
    match op:
        case "audio":
            fmt = _text(obj, "format", what)
            dtype = _DTYPES.get(fmt)
            if dtype is None:
                raise WireFormatError(f"{what}: unknown sample format {fmt!r}")
            if len(payload) % dtype.itemsize:
                raise WireFormatError(f"{what}: {len(payload)} bytes is not whole {fmt} samples")
            raw = np.frombuffer(payload, dtype=dtype)
            samples = raw.astype(np.float32) / 32768.0 if fmt == "s16" else raw.astype(np.float32)
            return AudioChunk(
                _text(obj, "speaker_id", what), samples, _number(obj, "start_s", what)
            )
        case "configure":
            return Configure(from_json(PipelineConfig, _get(obj, "config", dict, what)))
        case "add_speaker":
            return AddSpeaker(_text(obj, "speaker_id", what), _optional_text(obj, "lang", what))
        case "remove_speaker":
            return RemoveSpeaker(_text(obj, "speaker_id", what))
        case "set_speaker_lang":
            speaker_id = _text(obj, "speaker_id", what)
            return SetSpeakerLang(speaker_id, _optional_text(obj, "lang", what))
        case "set_targets":
            langs = _get(obj, "langs", list, what)
            if not all(isinstance(lang, str) for lang in langs):
                raise WireFormatError(f"{what}: 'langs' must be a list of strings")
            return SetTargets(tuple(langs))
        case "set_speaker_targets":
            speaker_id = _text(obj, "speaker_id", what)
            langs = _get(obj, "langs", list, what)
            if not all(isinstance(lang, str) for lang in langs):
                raise WireFormatError(f"{what}: 'langs' must be a list of strings")
            return SetSpeakerTargets(speaker_id, tuple(langs))
        case "set_glossary":
            speaker_id = _text(obj, "speaker_id", what)
            entries = _get(obj, "entries", list, what)
            if not all(isinstance(e, dict) for e in entries):
                raise WireFormatError(f"{what}: 'entries' must be a list of objects")
            try:
                return SetGlossary(speaker_id, parse_entries(entries))
            except ValueError as exc:
                raise WireFormatError(f"{what}: {exc}") from None
        case "ping":
            return Ping(int(_get(obj, "nonce", int, what)))
        case "translate":
            targets = _get(obj, "targets", list, what)
            if not all(isinstance(lang, str) for lang in targets):
                raise WireFormatError(f"{what}: 'targets' must be a list of strings")
            return TranslateText(
                _get(obj, "request_id", int, what),
                _text(obj, "text", what),
                _text(obj, "source", what),
                tuple(targets),
            )
        case "close":
            return Close()
        case _:
            raise WireFormatError(f"{what}: unknown op {op!r}")


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
                    "translations": dict(m.translations),
                    "engines": dict(m.engines),
                    "untranslated": dict(m.untranslated),
                    "stable_chars": m.stable_chars,
                    "words": [[w.start_s, w.end_s, w.text, w.probability] for w in m.words],
                }
            )
        case Ready():
            return frame({"t": "ready", "pid": m.pid, "load_s": m.load_s, "warm_up_s": m.warm_up_s})
        case Pong():
            fields = {"nonce": m.nonce, "dropped_chunks": m.dropped_chunks, "decodes": m.decodes}
            return frame({"t": "pong", **fields, "suppressed": dict(m.suppressed)})
        case WorkerError():
            error = {"message": m.message, "fatal": m.fatal, "retryable": m.retryable}
            return frame({"t": "error", **error})
        case TextTranslation():
            return frame(
                {
                    "t": "translated",
                    "request_id": m.request_id,
                    "translations": dict(m.translations),
                    "engines": dict(m.engines),
                    "untranslated": dict(m.untranslated),
                }
            )


def decode_outbound(header: bytes, payload: bytes) -> Outbound:
    what = "worker message"
    obj = _load(header, what)
    if payload:
        raise WireFormatError(f"{what}: unexpected payload")
    tag = _text(obj, "t", what)
    match tag:
        case "caption":
            return CaptionFrame(
                caption_id=_text(obj, "caption_id", what),
                speaker_id=_text(obj, "speaker_id", what),
                lang=_text(obj, "lang", what),
                text=_text(obj, "text", what),
                start_s=_number(obj, "start_s", what),
                end_s=_number(obj, "end_s", what),
                is_final=_get(obj, "is_final", bool, what),
                translations=_str_map(obj, "translations", what),
                engines=_str_map(obj, "engines", what),
                untranslated=_str_map(obj, "untranslated", what),
                stable_chars=_get(obj, "stable_chars", int, what),
                words=_words(obj, what),
            )
        case "ready":
            return Ready(
                _get(obj, "pid", int, what),
                _number(obj, "load_s", what),
                _number(obj, "warm_up_s", what),
            )
        case "pong":
            suppressed = obj.get("suppressed", {})
            if not isinstance(suppressed, dict) or not all(
                isinstance(k, str) and type(v) is int for k, v in suppressed.items()
            ):
                raise WireFormatError(f"{what}: 'suppressed' must map reasons to counts")
            return Pong(
                _get(obj, "nonce", int, what),
                _get(obj, "dropped_chunks", int, what),
                _get(obj, "decodes", int, what),
                suppressed,
            )
        case "translated":
            return TextTranslation(
                _get(obj, "request_id", int, what),
                _str_map(obj, "translations", what),
                _str_map(obj, "engines", what),
                _str_map(obj, "untranslated", what),
            )
        case "error":
            return WorkerError(
                _text(obj, "message", what),
                _get(obj, "fatal", bool, what),
                _get(obj, "retryable", bool, what),
            )
        case _:
            raise WireFormatError(f"{what}: unknown type {tag!r}")


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
