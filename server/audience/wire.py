"""The audience socket's messages (PROTOCOL.md "Audience"), parsed (pure)."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from ..protocol import MAX_TOKEN_CHARS, LangCode
from .text import AudienceError

#: the parser's cap; ``[audience] max_chars`` is checked after (so that the answer is
#: ``too_long``, not ``bad_message``)
MAX_WIRE_TEXT_CHARS = 20_000
ViewerId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
ItemId = Annotated[str, StringConstraints(pattern=r"^[qp][0-9]{1,9}$")]
WireText = Annotated[str, StringConstraints(max_length=MAX_WIRE_TEXT_CHARS)]
InviteId = Annotated[str, StringConstraints(pattern=r"^s[0-9a-f]{12}$")]


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)


class Hello(_Message):
    type: Literal["hello"]
    viewer_id: ViewerId
    #: the page's language: what the viewer writes in unless an ``ask`` says otherwise
    lang: LangCode
    token: Annotated[str, StringConstraints(max_length=MAX_TOKEN_CHARS)] | None = None
    moderator_key: Annotated[str, StringConstraints(max_length=128)] | None = None


class Ask(_Message):
    type: Literal["ask"]
    kind: Literal["question", "comment"] = "question"
    text: WireText
    lang: LangCode | None = None


class Vote(_Message):
    type: Literal["vote"]
    id: ItemId


class PollVote(_Message):
    type: Literal["poll_vote"]
    poll_id: ItemId
    option: int = Field(ge=0, le=100)


class Moderate(_Message):
    type: Literal["moderate"]
    id: ItemId
    action: Literal["approve", "dismiss", "live", "answered"]


class Ban(_Message):
    type: Literal["ban"]
    id: ItemId


class PollCreate(_Message):
    type: Literal["poll_create"]
    question: WireText
    options: Annotated[list[WireText], Field(max_length=20)]
    lang: LangCode


class PollClose(_Message):
    type: Literal["poll_close"]
    poll_id: ItemId


class Export(_Message):
    type: Literal["export"]


class StageInvite(_Message):
    """A moderator invites the author of question or comment ``id`` on stage."""

    type: Literal["stage_invite"]
    id: ItemId


class StageDismiss(_Message):
    """A moderator ends an invitation or a viewer's time on stage."""

    type: Literal["stage_dismiss"]
    invite_id: InviteId


class StageAccept(_Message):
    type: Literal["stage_accept"]
    invite_id: InviteId


class StageLeave(_Message):
    """The viewer declines the invitation, or leaves the stage."""

    type: Literal["stage_leave"]
    invite_id: InviteId


ViewerMessage = Ask | Vote | PollVote
ModeratorMessage = Moderate | Ban | PollCreate | PollClose | Export
StageMessage = StageInvite | StageDismiss | StageAccept | StageLeave
AudienceMessage = Annotated[
    Hello
    | Ask
    | Vote
    | PollVote
    | Moderate
    | Ban
    | PollCreate
    | PollClose
    | Export
    | StageInvite
    | StageDismiss
    | StageAccept
    | StageLeave,
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[AudienceMessage] = TypeAdapter(AudienceMessage)


def parse(raw: str | bytes) -> AudienceMessage:
    """One message, or :class:`AudienceError` ``bad_message``."""
    try:
        data = json.loads(raw)
    except ValueError:
        raise AudienceError("bad_message", "not JSON") from None
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise AudienceError("bad_message", f"{where}: {first['msg']}") from None


def encode(message_type: str, **fields: object) -> str:
    return json.dumps({"type": message_type, **fields}, ensure_ascii=False)
