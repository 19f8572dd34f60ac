"""The wire protocol of PROTOCOL.md as typed messages: parse what clients send (what the server
sends: :mod:`server.outbound`). Pure: no I/O, no event loop."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

from interpret.languages import KNOWN_LANGUAGES

from .outbound import Error

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS = frozenset({PROTOCOL_VERSION})
#: absolute cap of the parser; ``[limits] max_sdp_chars`` (default 65,536) is checked after
MAX_SDP_CHARS = 1_048_576
MAX_TOKEN_CHARS = 4096

RoomName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
DisplayName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]


def _known_language(code: str) -> str:
    if code not in KNOWN_LANGUAGES:
        raise ValueError(f"unknown language {code!r} (not one of Whisper's languages)")
    return code


#: a language the server knows (:data:`interpret.languages.KNOWN_LANGUAGES`): anything else a
#: client sends is ``bad_message``, so that no list a client fills (channels, caption and
#: translation targets) can grow past the ~100 known codes
LangCode = Annotated[
    str, StringConstraints(pattern=r"^[a-z]{2,3}$"), AfterValidator(_known_language)
]
TrackId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Sdp = Annotated[str, StringConstraints(min_length=1, max_length=MAX_SDP_CHARS)]
MediaKind = Literal["audio", "video"]
TrackSource = Literal["camera", "microphone", "screen"]
#: longest chat message, in characters
CHAT_MAX_CHARS = 2000
ChatText = Annotated[str, StringConstraints(min_length=1, max_length=CHAT_MAX_CHARS)]
Password = Annotated[str, StringConstraints(min_length=1, max_length=128)]
ParticipantId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
#: a browser's own random id for itself (kept per tab); in open mode a host's removal refuses it
ClientId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{8,64}$")]


class _ClientMessage(BaseModel):
    # Unknown fields are ignored so that newer clients can add optional ones.
    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)


class Hello(_ClientMessage):
    type: Literal["hello"]
    protocol: int
    client: Annotated[str, StringConstraints(max_length=128)] | None = None


class Join(_ClientMessage):
    type: Literal["join"]
    room: RoomName
    name: DisplayName
    #: kinds to publish right away (saves the round trip of a separate ``publish``)
    publish: Annotated[list[MediaKind], Field(max_length=2)] = []
    #: the language this participant speaks (ISO 639-1); None = detect
    lang: LangCode | None = None
    #: a room token (JWT); its role, room and name are what count
    token: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TOKEN_CHARS)] | None = None
    #: the room's password, for rooms that have one
    password: Password | None = None
    #: open mode only: join as something other than a participant (``host`` is never granted)
    role: Literal["participant", "interpreter", "viewer"] | None = None
    #: the client's own random id (open mode: what a host's removal refuses)
    client_id: ClientId | None = None
    #: a viewer invited on stage: the pass its ``stage_accept`` got (PROTOCOL.md "Audience")
    stage_pass: Annotated[str, StringConstraints(min_length=16, max_length=64)] | None = None


class Publish(_ClientMessage):
    type: Literal["publish"]
    kinds: Annotated[list[MediaKind], Field(min_length=1, max_length=2)]
    #: None: microphone for audio, camera for video; "screen" is a second video track
    source: TrackSource | None = None


class Unpublish(_ClientMessage):
    type: Literal["unpublish"]
    track_id: TrackId


class Answer(_ClientMessage):
    type: Literal["answer"]
    sdp: Sdp
    revision: int


class PublishOffer(_ClientMessage):
    """Janus engine only: the client's offer for its send-only publish peer connection."""

    type: Literal["publish_offer"]
    sdp: Sdp
    revision: int
    #: mid -> what the m-line sends
    sources: Annotated[
        dict[Annotated[str, StringConstraints(min_length=1, max_length=32)], TrackSource],
        Field(max_length=8),
    ]


class Mute(_ClientMessage):
    type: Literal["mute"]
    track_id: TrackId
    muted: bool


class Leave(_ClientMessage):
    type: Literal["leave"]


class Captions(_ClientMessage):
    type: Literal["captions"]
    #: languages this client reads captions in (besides each speaker's own); [] = originals only
    languages: Annotated[list[LangCode], Field(max_length=8)]


# -- room features (PROTOCOL.md "Room features"): chat, hands, transcription opt-out -------
class RoomFeature(_ClientMessage):
    """Base of the room-feature messages (joined participants only)."""

    type: str


class Chat(RoomFeature):
    type: Literal["chat"]
    text: ChatText
    #: the language ``text`` is written in; None = the sender's join.lang, else English
    lang: LangCode | None = None
    #: a private message to this participant only
    to: ParticipantId | None = None


class Hand(RoomFeature):
    type: Literal["hand"]
    raised: bool


class Transcription(RoomFeature):
    type: Literal["transcription"]
    opt_out: bool


# -- host actions (PROTOCOL.md "Host powers"): a participant sending one gets ``forbidden`` ---
class HostAction(_ClientMessage):
    """Base of the messages only a host may send."""

    type: str


class MuteParticipant(HostAction):
    type: Literal["mute_participant"]
    participant_id: ParticipantId
    kinds: Annotated[list[MediaKind], Field(min_length=1, max_length=2)] = ["audio"]


class RemoveParticipant(HostAction):
    type: Literal["remove_participant"]
    participant_id: ParticipantId


class RoomSettings(HostAction):
    type: Literal["room_settings"]
    locked: bool | None = None
    lobby: bool | None = None
    #: a new password; ``""`` clears it; absent leaves it as it is
    password: Annotated[str, StringConstraints(max_length=128)] | None = None


class Admit(HostAction):
    type: Literal["admit"]
    participant_id: ParticipantId


class Deny(HostAction):
    type: Literal["deny"]
    participant_id: ParticipantId


class EndMeeting(HostAction):
    type: Literal["end_meeting"]


# -- interpreting (PROTOCOL.md "Interpreting"): hosts and interpreters, else ``forbidden`` --
CaptionText = Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=r"\S")]
GlossaryTerm = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"\S")]
MAX_GLOSSARY_ENTRIES = 1000


class InterpreterAction(_ClientMessage):
    """Base of the messages only a host or an interpreter may send."""

    type: str


class Correct(InterpreterAction):
    type: Literal["correct"]
    caption_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    #: the caption's spoken language (corrects the source) or one of its translations
    lang: LangCode
    text: CaptionText


class GlossaryEntry(_ClientMessage):
    term: GlossaryTerm
    #: the language the term is said in; absent = any
    lang: LangCode | None = None
    renderings: Annotated[dict[LangCode, GlossaryTerm], Field(max_length=16)] = {}
    #: do not translate: the term stays as it is in languages without a rendering
    keep: bool = False


class GlossarySet(InterpreterAction):
    type: Literal["glossary_set"]
    entries: Annotated[list[GlossaryEntry], Field(max_length=MAX_GLOSSARY_ENTRIES)]


class Export(InterpreterAction):
    type: Literal["export"]
    format: Literal["json", "vtt", "srt"]
    #: the language of a vtt/srt export (required for those); json carries every language
    lang: LangCode | None = None


# -- interpretation channels (PROTOCOL.md "Interpretation channels") --------------------------
class ChannelAction(_ClientMessage):
    """Base of the channel messages (``listen``: anyone joined; the others: interpreters)."""

    type: str


def _known_channel(channel: str) -> str:
    return channel if channel == "floor" else _known_language(channel)


Channel = Annotated[
    str, StringConstraints(pattern=r"^(floor|[a-z]{2,3})$"), AfterValidator(_known_channel)
]


class Listen(ChannelAction):
    type: Literal["listen"]
    #: "floor", or the language channel to hear instead of the floor (relay, for interpreters)
    channel: Channel
    #: keep the floor, quietly, under the channel's interpreter (the client lowers its volume)
    duck: bool = False
    #: take captions of the channel's interpreter instead of machine translation
    interpreter_captions: bool = False


class OnAir(ChannelAction):
    type: Literal["on_air"]
    channel: LangCode


class OffAir(ChannelAction):
    type: Literal["off_air"]


class HandoverRequest(ChannelAction):
    type: Literal["handover_request"]
    channel: LangCode


class HandoverAnswer(ChannelAction):
    type: Literal["handover_answer"]
    channel: LangCode
    accept: bool


# -- broadcast (PROTOCOL.md "Broadcast") -------------------------------------------------------
class BroadcastAction(_ClientMessage):
    """Base of the host's broadcast controls (``forbidden`` for anyone else)."""

    type: str


class BroadcastStart(BroadcastAction):
    type: Literal["broadcast_start"]


class BroadcastStop(BroadcastAction):
    type: Literal["broadcast_stop"]


class BroadcastPin(BroadcastAction):
    type: Literal["broadcast_pin"]
    #: whom the program shows; None: the active speaker again
    participant_id: ParticipantId | None = None


class BroadcastRecordings(BroadcastAction):
    """A host asks for the room's kept broadcasts (``[retention]`` keeps ``broadcasts``)."""

    type: Literal["recordings"]


class BroadcasterJoin(_ClientMessage):
    """The broadcast worker's join (hidden, uncounted), with the secret the server gave it."""

    type: Literal["broadcaster_join"]
    room: RoomName
    secret: Annotated[str, StringConstraints(min_length=16, max_length=128)]


ClientMessage = (
    Hello
    | Join
    | Publish
    | Unpublish
    | Answer
    | PublishOffer
    | Mute
    | Leave
    | Captions
    | Chat
    | Hand
    | Transcription
    | MuteParticipant
    | RemoveParticipant
    | RoomSettings
    | Admit
    | Deny
    | EndMeeting
    | Correct
    | GlossarySet
    | Export
    | Listen
    | OnAir
    | OffAir
    | HandoverRequest
    | HandoverAnswer
    | BroadcastStart
    | BroadcastStop
    | BroadcastPin
    | BroadcastRecordings
    | BroadcasterJoin
)
CLIENT_TYPES = frozenset(
    {"hello", "join", "publish", "unpublish", "answer", "mute", "leave", "captions"}
    | {"publish_offer"}
    | {"chat", "hand", "transcription"}
    | {"mute_participant", "remove_participant", "room_settings", "admit", "deny", "end_meeting"}
    | {"correct", "glossary_set", "export"}
    | {"listen", "on_air", "off_air", "handover_request", "handover_answer"}
    | {"broadcast_start", "broadcast_stop", "broadcast_pin", "broadcaster_join", "recordings"}
)
_ADAPTER: TypeAdapter[ClientMessage] = TypeAdapter(
    Annotated[ClientMessage, Field(discriminator="type")]
)


class ProtocolError(Exception):
    """A client message broke the protocol; ``code`` is one of PROTOCOL.md's error codes."""

    def __init__(self, code: str, message: str, ref: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref
        #: extra fields of the ``error`` message (e.g. ``retry_after_ms``)
        self.details = details


def parse_client_message(raw: str | bytes) -> ClientMessage:
    """Parse one frame; raises :class:`ProtocolError` with a documented code."""
    if isinstance(raw, bytes):
        raise ProtocolError("bad_json", "binary frames are not part of the protocol")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ProtocolError("bad_json", f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError("bad_json", "a message must be a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in CLIENT_TYPES:
        raise ProtocolError("unknown_type", f"unknown message type {kind!r}")
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'message'}: {e['msg']}"
            for e in exc.errors()
        )
        raise ProtocolError("bad_message", problems, ref=kind) from None


# -- server -> client: server.outbound ---------------------------------------------------------
def error(code: str, message: str, ref: str | None = None, **details: Any) -> str:
    """An ``error`` message, serialized (:class:`server.outbound.Error`)."""
    return Error(code, message, ref, details).encode()
