"""What the server sends (PROTOCOL.md), as frozen dataclasses: one class per message type, its
fields in wire order. :meth:`ServerMessage.encode` is the one serializer: ``type`` first, then
the fields; a field marked :data:`OMIT_NONE` is left out while it is None; a nested message
(a ``chat_history`` line) is written without its ``type``. Pure: no I/O."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

#: field metadata: the field is left out of the wire while it is None
OMIT_NONE: Mapping[str, Any] = {"omit_none": True}


def _wire_name(name: str) -> Mapping[str, Any]:
    """Field metadata: the field's name on the wire (``from`` is a Python keyword)."""
    return {"wire": name}


def _plain(value: Any) -> Any:
    if isinstance(value, ServerMessage):
        return value.fields()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class ServerMessage:
    """Base of the messages (subclasses are frozen, slotted dataclasses)."""

    type: ClassVar[str]

    def fields(self) -> dict[str, Any]:
        """The message's fields as the wire has them (without ``type``)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None and f.metadata.get("omit_none"):
                continue
            out[f.metadata.get("wire", f.name)] = _plain(value)
        return out

    def encode(self) -> str:
        return json.dumps(
            {"type": self.type, **self.fields()}, separators=(",", ":"), ensure_ascii=False
        )


# -- connection and membership -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Welcome(ServerMessage):
    type: ClassVar[str] = "welcome"
    protocol: int
    server: str
    max_message_bytes: int
    auth: str


@dataclass(frozen=True, slots=True)
class Error(ServerMessage):
    type: ClassVar[str] = "error"
    code: str
    message: str
    ref: str | None = field(default=None, metadata=OMIT_NONE)
    #: extra fields of the error (``retry_after_ms``...), after the others
    details: Mapping[str, Any] = field(default_factory=dict)

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.ref is not None:
            out["ref"] = self.ref
        return {**out, **self.details}


@dataclass(frozen=True, slots=True)
class Redirect(ServerMessage):
    """The room lives on another node of the cluster: join it at ``url``."""

    type: ClassVar[str] = "redirect"
    room: str
    node: str
    url: str


@dataclass(frozen=True, slots=True)
class Joined(ServerMessage):
    type: ClassVar[str] = "joined"
    participant_id: str
    room: str
    role: str
    participants: Sequence[Mapping[str, Any]]
    #: None for a hidden seat
    room_settings: Mapping[str, Any] | None = field(default=None, metadata=OMIT_NONE)
    #: hosts only: who waits in the lobby
    lobby: Sequence[Mapping[str, Any]] | None = field(default=None, metadata=OMIT_NONE)
    ice_servers: Sequence[Mapping[str, Any]] = ()
    #: what the room's features add (a host's ``moderate_url``, ``media_engine``...): after the
    #: others, before ``ice_servers``
    extra: Mapping[str, Any] = field(default_factory=dict)

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "participant_id": self.participant_id,
            "room": self.room,
            "role": self.role,
            "participants": _plain(self.participants),
        }
        if self.room_settings is not None:
            out["room_settings"] = _plain(self.room_settings)
        if self.lobby is not None:
            out["lobby"] = _plain(self.lobby)
        out.update(_plain(self.extra))
        out["ice_servers"] = _plain(self.ice_servers)
        return out


@dataclass(frozen=True, slots=True)
class ParticipantJoined(ServerMessage):
    type: ClassVar[str] = "participant_joined"
    participant: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ParticipantLeft(ServerMessage):
    type: ClassVar[str] = "participant_left"
    participant_id: str


@dataclass(frozen=True, slots=True)
class RoleChanged(ServerMessage):
    type: ClassVar[str] = "role_changed"
    participant_id: str
    role: str


@dataclass(frozen=True, slots=True)
class Lobby(ServerMessage):
    type: ClassVar[str] = "lobby"
    room: str
    participant_id: str


@dataclass(frozen=True, slots=True)
class LobbyRequest(ServerMessage):
    type: ClassVar[str] = "lobby_request"
    participant: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class LobbyLeft(ServerMessage):
    type: ClassVar[str] = "lobby_left"
    participant_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class MeetingEnded(ServerMessage):
    type: ClassVar[str] = "meeting_ended"
    by: str


@dataclass(frozen=True, slots=True)
class ServerClosing(ServerMessage):
    type: ClassVar[str] = "server_closing"
    reason: str
    flush_timeout_ms: int


# -- media -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Offer(ServerMessage):
    type: ClassVar[str] = "offer"
    sdp: str
    revision: int
    slots: Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class PublishAnswer(ServerMessage):
    """Janus engine: the answer to a client's ``publish_offer``."""

    type: ClassVar[str] = "publish_answer"
    sdp: str
    revision: int


@dataclass(frozen=True, slots=True)
class TrackPublished(ServerMessage):
    type: ClassVar[str] = "track_published"
    participant_id: str
    track: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class TrackUnpublished(ServerMessage):
    type: ClassVar[str] = "track_unpublished"
    participant_id: str
    track_id: str


@dataclass(frozen=True, slots=True)
class Muted(ServerMessage):
    type: ClassVar[str] = "muted"
    participant_id: str
    track_id: str
    muted: bool
    #: a host muted it
    by: str | None = field(default=None, metadata=OMIT_NONE)


# -- host powers -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MuteRequest(ServerMessage):
    type: ClassVar[str] = "mute_request"
    kinds: Sequence[str]
    by: str


@dataclass(frozen=True, slots=True)
class Removed(ServerMessage):
    type: ClassVar[str] = "removed"
    by: str


@dataclass(frozen=True, slots=True)
class RoomSettingsChanged(ServerMessage):
    type: ClassVar[str] = "room_settings"
    by: str
    locked: bool
    lobby: bool
    password: bool


# -- room features -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Notice(ServerMessage):
    type: ClassVar[str] = "notice"
    kind: str
    text: str
    machine_generated: bool = True


@dataclass(frozen=True, slots=True)
class Hand(ServerMessage):
    type: ClassVar[str] = "hand"
    participant_id: str
    raised: bool


@dataclass(frozen=True, slots=True)
class TranscriptionChanged(ServerMessage):
    type: ClassVar[str] = "transcription"
    participant_id: str
    opt_out: bool


@dataclass(frozen=True, slots=True)
class Chat(ServerMessage):
    """A chat message for one reader (also a line of ``chat_history``)."""

    type: ClassVar[str] = "chat"
    message_id: str
    sender_id: str = field(metadata=_wire_name("from"))
    sender_name: str = field(metadata=_wire_name("from_name"))
    private: bool
    lang: str
    text: str
    translations: Mapping[str, str]
    engines: Mapping[str, str]
    untranslated: Mapping[str, str]
    sent_at: float
    #: a private message's recipient
    to: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True, slots=True)
class ChatHistory(ServerMessage):
    type: ClassVar[str] = "chat_history"
    messages: Sequence[Chat]


@dataclass(frozen=True, slots=True)
class Glossary(ServerMessage):
    type: ClassVar[str] = "glossary"
    entries: Sequence[Mapping[str, Any]]
    #: who set it (None: the glossary a joiner is given)
    by: str | None


@dataclass(frozen=True, slots=True)
class Export(ServerMessage):
    type: ClassVar[str] = "export"
    format: str
    lang: str | None
    filename: str
    content: str


@dataclass(frozen=True, slots=True)
class Channels(ServerMessage):
    type: ClassVar[str] = "channels"
    channels: Sequence[Mapping[str, Any]]
    listening: Mapping[str, Any]
    duck_volume: float
    event: Mapping[str, Any] | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True, slots=True)
class Broadcast(ServerMessage):
    """The room's broadcast state; ``by``, ``watch_url`` and ``pinned`` only while on air."""

    type: ClassVar[str] = "broadcast"
    on_air: bool
    by: str | None = None
    watch_url: str | None = None
    pinned: str | None = None

    def fields(self) -> dict[str, Any]:
        if not self.on_air:
            return {"on_air": False}
        return {
            "on_air": True,
            "by": self.by,
            "watch_url": self.watch_url,
            "pinned": self.pinned,
        }


@dataclass(frozen=True, slots=True)
class Recordings(ServerMessage):
    """A host's ``recordings``: whether this server keeps broadcasts, and the room's."""

    type: ClassVar[str] = "recordings"
    kept: bool
    recordings: Sequence[Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class CaptionsStatus(ServerMessage):
    """Captions are ``live``, or ``paused`` while no speech worker is up."""

    type: ClassVar[str] = "captions_status"
    state: str


@dataclass(frozen=True, slots=True)
class Caption(ServerMessage):
    """One ``caption`` as one reader gets it (PROTOCOL.md "Captions"): the translations are
    already those the reader reads. Live captions and corrected lines are both this."""

    type: ClassVar[str] = "caption"
    caption_id: str
    participant_id: str
    lang: str
    text: str
    final: bool
    stable_chars: int
    start_s: float
    end_s: float
    translations: Mapping[str, str] = field(default_factory=dict)
    engines: Mapping[str, str] = field(default_factory=dict)
    untranslated: Mapping[str, str] = field(default_factory=dict)
    #: the speaker is an interpreter on air in this channel (their speech, recognised)
    channel: str | None = None
    #: finals: the recogniser's confidence, and each word's
    avg_logprob: float | None = None
    words: tuple[tuple[str, float], ...] = ()
    latency_ms: int | None = None
    #: a corrected line: who corrected it, and which of its languages were corrected
    corrected_by: str | None = None
    corrected_langs: tuple[str, ...] = ()

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "caption_id": self.caption_id,
            "participant_id": self.participant_id,
            "lang": self.lang,
            "text": self.text,
            "final": self.final,
            "stable_chars": self.stable_chars,
            "start_s": round(self.start_s, 3),
            "end_s": round(self.end_s, 3),
            "translations": dict(self.translations),
            "engines": dict(self.engines),
            "untranslated": dict(self.untranslated),
            "machine_generated": True,
        }
        if self.channel is not None:
            out["channel"] = self.channel
        if self.avg_logprob is not None:
            out["avg_logprob"] = self.avg_logprob
            out["words"] = [list(word) for word in self.words]
        if self.latency_ms is not None:
            out["latency_ms"] = self.latency_ms
        if self.corrected_by is not None:
            out["corrected"] = True
            out["corrected_langs"] = list(self.corrected_langs)
            out["corrected_by"] = self.corrected_by
        return out
