"""The messages between :mod:`media.process` and a media worker (:mod:`media.worker`), one
:mod:`interpret.framing` frame each (the speech worker's codec).

The parent writes :class:`Request`s to the worker's stdin; the worker writes :class:`Reply`s and
:data:`media.api.MediaEvent`s to its stdout, in the order they happen. Only speaker audio has a
payload (raw float32 samples). Every dataclass is encoded field by field, never pickled: a bad
frame fails here as a :class:`~interpret.framing.WireFormatError`, it cannot run code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from interpret.frames import AudioChunk
from interpret.framing import Fields, WireFormatError, encode_frame

from .api import (
    KINDS,
    TRACK_SOURCES,
    IceServer,
    Kind,
    MediaSettings,
    OfferReady,
    PeerFailed,
    Slot,
    SpeakerAudio,
    TrackPublished,
    TrackSource,
    TrackUnpublished,
)
from .errors import (
    MediaError,
    MediaStateError,
    SdpError,
    StaleAnswerError,
    UnknownPeerError,
)

#: Longest JSON part either side accepts (an offer to a full room is well under 1 MiB).
MAX_FRAME_BYTES = 8 * 1024 * 1024


# -- parent -> worker ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Init:
    """The first request: which room this worker serves, and how (once per process)."""

    room_id: str
    settings: MediaSettings
    log_level: int


@dataclass(frozen=True, slots=True)
class AddPeer:
    peer_id: str
    publish: tuple[Kind, ...] = ()


@dataclass(frozen=True, slots=True)
class RemovePeer:
    peer_id: str


@dataclass(frozen=True, slots=True)
class Publish:
    peer_id: str
    kinds: tuple[Kind, ...]
    source: TrackSource | None = None


@dataclass(frozen=True, slots=True)
class Unpublish:
    peer_id: str
    track_id: str


@dataclass(frozen=True, slots=True)
class Answer:
    peer_id: str
    sdp: str
    revision: int


@dataclass(frozen=True, slots=True)
class HoldAudio:
    subscriber_id: str
    publisher_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GetStats:
    """Ask for :meth:`media.sfu.SfuRoom.stats` (benchmarks, metrics)."""


@dataclass(frozen=True, slots=True)
class Close:
    """Close the room, reply, and exit."""


Command = Init | AddPeer | RemovePeer | Publish | Unpublish | Answer | HoldAudio | GetStats | Close


@dataclass(frozen=True, slots=True)
class Request:
    request_id: int
    command: Command


# -- worker -> parent ------------------------------------------------------------------------
#: The errors a room method may raise, by name; anything else travels as a plain MediaError.
ERROR_TYPES: Mapping[str, type[MediaError]] = MappingProxyType(
    {
        cls.__name__: cls
        for cls in (MediaError, SdpError, StaleAnswerError, MediaStateError, UnknownPeerError)
    }
)


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """A :class:`MediaError` raised in the worker, re-raised in the parent as the same type."""

    error_type: str
    message: str

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorInfo:
        for base in type(exc).__mro__:  # a subclass travels as the nearest type listed
            if ERROR_TYPES.get(base.__name__) is base:
                return cls(base.__name__, str(exc))
        return cls("MediaError", f"{type(exc).__name__}: {exc}")

    def to_exception(self) -> MediaError:
        return ERROR_TYPES.get(self.error_type, MediaError)(self.message)


@dataclass(frozen=True, slots=True)
class Reply:
    """The outcome of request ``request_id``: ``error`` is None on success."""

    request_id: int
    error: ErrorInfo | None = None
    #: only for :class:`GetStats`
    stats: Mapping[str, Any] | None = None


#: what a worker writes: replies and the :data:`media.api.MediaEvent`s of its room, and its
#: decoded speaker audio (``[media] audio_tap``) as a raw float32 payload, 6.4 kB per 100 ms
#: chunk; its ``room_id`` is the worker's room, not sent
WorkerMessage = Reply | OfferReady | TrackPublished | TrackUnpublished | PeerFailed | SpeakerAudio


# -- encoding --------------------------------------------------------------------------------
def _settings_to_json(s: MediaSettings) -> dict[str, Any]:
    return {
        "ice_servers": [
            {"urls": list(i.urls), "username": i.username, "credential": i.credential}
            for i in s.ice_servers
        ],
        "ice_host_addresses": list(s.ice_host_addresses),
        "pli_min_interval_s": s.pli_min_interval_s,
        "subscriber_max_frames": s.subscriber_max_frames,
        "isolation": s.isolation,
        "audio_tap": s.audio_tap,
    }


def encode_request(request: Request) -> bytes:
    c = request.command
    fields: dict[str, Any]
    match c:
        case Init():
            op = "init"
            fields = {
                "room_id": c.room_id,
                "settings": _settings_to_json(c.settings),
                "log_level": c.log_level,
            }
        case AddPeer():
            op, fields = "add_peer", {"peer_id": c.peer_id, "publish": list(c.publish)}
        case RemovePeer():
            op, fields = "remove_peer", {"peer_id": c.peer_id}
        case Publish():
            op = "publish"
            fields = {"peer_id": c.peer_id, "kinds": list(c.kinds), "source": c.source}
        case Unpublish():
            op, fields = "unpublish", {"peer_id": c.peer_id, "track_id": c.track_id}
        case Answer():
            op = "answer"
            fields = {"peer_id": c.peer_id, "sdp": c.sdp, "revision": c.revision}
        case HoldAudio():
            op = "hold_audio"
            fields = {"subscriber_id": c.subscriber_id, "publisher_ids": list(c.publisher_ids)}
        case GetStats() | Close():
            op, fields = ("get_stats" if isinstance(c, GetStats) else "close"), {}
    return encode_frame({"op": op, "id": request.request_id, **fields})


def encode_worker_message(message: WorkerMessage) -> bytes:
    m = message
    match m:
        case Reply():
            error = None if m.error is None else [m.error.error_type, m.error.message]
            return encode_frame(
                {"t": "reply", "id": m.request_id, "error": error, "stats": m.stats}
            )
        case OfferReady():
            slots = {
                mid: {
                    "direction": s.direction,
                    "kind": s.kind,
                    "participant_id": s.participant_id,
                    "track_id": s.track_id,
                    "source": s.source,
                }
                for mid, s in m.slots.items()
            }
            fields = {"peer_id": m.peer_id, "sdp": m.sdp, "revision": m.revision, "slots": slots}
            return encode_frame({"t": "offer", **fields})
        case TrackPublished():
            fields = {"peer_id": m.peer_id, "track_id": m.track_id, "kind": m.kind}
            return encode_frame({"t": "published", **fields, "source": m.source})
        case TrackUnpublished():
            return encode_frame({"t": "unpublished", "peer_id": m.peer_id, "track_id": m.track_id})
        case PeerFailed():
            return encode_frame({"t": "failed", "peer_id": m.peer_id, "reason": m.reason})
        case SpeakerAudio():
            pcm = np.ascontiguousarray(m.chunk.samples, dtype="<f4").tobytes()
            fields = {"peer_id": m.peer_id, "track_id": m.track_id, "start_s": m.chunk.start_s}
            return encode_frame({"t": "audio", **fields}, pcm)


# -- decoding --------------------------------------------------------------------------------
def _kind(f: Fields, key: str) -> Kind:
    return _as_kind(f.text(key), f.bad(key, "audio or video"))


def _source(f: Fields, key: str) -> TrackSource:
    return _as_source(f.text(key), f.bad(key, "camera, microphone or screen"))


def _optional_source(f: Fields, key: str) -> TrackSource | None:
    return None if f.raw(key) is None else _source(f, key)


def _kinds(f: Fields, key: str) -> tuple[Kind, ...]:
    bad = f.bad(key, "a list of audio/video")
    return tuple(_as_kind(k, bad) for k in f.texts(key))


def _as_kind(value: str, error: WireFormatError) -> Kind:
    for kind in KINDS:
        if value == kind:
            return kind
    raise error


def _as_source(value: str, error: WireFormatError) -> TrackSource:
    for source in TRACK_SOURCES:
        if value == source:
            return source
    raise error


def _load(header: bytes, payload: bytes, what: str, *, with_payload: bool = False) -> Fields:
    if len(header) > MAX_FRAME_BYTES:
        raise WireFormatError(f"{what}: frame of {len(header)} bytes is too long")
    f = Fields.load(header, what)
    if payload and not with_payload:
        raise f.error("unexpected payload")
    return f


def _settings_from_json(f: Fields) -> MediaSettings:
    isolation = f.text("isolation")
    if isolation not in ("inline", "process"):
        raise WireFormatError(f"settings: unknown isolation {isolation!r}")
    return MediaSettings(
        ice_servers=tuple(
            IceServer(i.texts("urls"), i.optional_text("username"), i.optional_text("credential"))
            for i in f.elements("ice_servers")
        ),
        ice_host_addresses=f.texts("ice_host_addresses"),
        pli_min_interval_s=f.number("pli_min_interval_s"),
        subscriber_max_frames=f.integer("subscriber_max_frames"),
        isolation="process" if isolation == "process" else "inline",
        audio_tap=f.boolean("audio_tap"),
    )


def decode_request(header: bytes, payload: bytes = b"") -> Request:
    f = _load(header, payload, "request")
    op = f.text("op")
    command: Command
    match op:
        case "init":
            settings = _settings_from_json(f.fields("settings"))
            command = Init(f.text("room_id"), settings, f.integer("log_level"))
        case "add_peer":
            command = AddPeer(f.text("peer_id"), _kinds(f, "publish"))
        case "remove_peer":
            command = RemovePeer(f.text("peer_id"))
        case "publish":
            command = Publish(f.text("peer_id"), _kinds(f, "kinds"), _optional_source(f, "source"))
        case "unpublish":
            command = Unpublish(f.text("peer_id"), f.text("track_id"))
        case "answer":
            command = Answer(f.text("peer_id"), f.text("sdp"), f.integer("revision"))
        case "hold_audio":
            command = HoldAudio(f.text("subscriber_id"), f.texts("publisher_ids"))
        case "get_stats":
            command = GetStats()
        case "close":
            command = Close()
        case _:
            raise WireFormatError(f"request: unknown op {op!r}")
    return Request(f.integer("id"), command)


def decode_worker_message(header: bytes, payload: bytes = b"") -> WorkerMessage:
    f = _load(header, payload, "worker message", with_payload=True)
    tag = f.text("t")
    if payload and tag != "audio":
        raise f.error(f"{tag!r} carries no payload")
    match tag:
        case "reply":
            return _decode_reply(f)
        case "offer":
            slots = {mid: _decode_slot(s) for mid, s in f.items("slots")}
            return OfferReady(f.text("peer_id"), f.text("sdp"), f.integer("revision"), slots)
        case "published":
            return TrackPublished(
                f.text("peer_id"), f.text("track_id"), _kind(f, "kind"), _source(f, "source")
            )
        case "unpublished":
            return TrackUnpublished(f.text("peer_id"), f.text("track_id"))
        case "failed":
            return PeerFailed(f.text("peer_id"), f.text("reason"))
        case "audio":
            peer_id = f.text("peer_id")
            if len(payload) % 4:
                raise f.error(f"{len(payload)} bytes is not whole float32 samples")
            samples = np.frombuffer(payload, dtype="<f4").astype(np.float32)
            chunk = AudioChunk(peer_id, samples, f.number("start_s"))
            return SpeakerAudio("", peer_id, f.text("track_id"), chunk)
        case _:
            raise WireFormatError(f"worker message: unknown type {tag!r}")


def _decode_reply(f: Fields) -> Reply:
    raw_error, raw_stats = f.raw("error"), f.raw("stats")
    error = None
    if raw_error is not None:
        if not (
            isinstance(raw_error, list)
            and len(raw_error) == 2
            and all(isinstance(e, str) for e in raw_error)
        ):
            raise WireFormatError("reply: 'error' must be [type, message]")
        error = ErrorInfo(raw_error[0], raw_error[1])
    if raw_stats is not None and not isinstance(raw_stats, dict):
        raise WireFormatError("reply: 'stats' must be an object")
    return Reply(f.integer("id"), error, raw_stats)


def _decode_slot(f: Fields) -> Slot:
    direction = f.text("direction")
    if direction not in ("publish", "subscribe"):
        raise WireFormatError(f"slot: unknown direction {direction!r}")
    return Slot(
        "publish" if direction == "publish" else "subscribe",
        _kind(f, "kind"),
        f.text("participant_id"),
        f.optional_text("track_id"),
        _source(f, "source"),
    )
