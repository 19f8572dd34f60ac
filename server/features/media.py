"""Publishing and receiving (PROTOCOL.md "Media"): ``publish``, ``unpublish``, ``answer`` and
``mute`` of one's own tracks. The rules are here (viewers do not publish; a source has one kind;
an answer's size is capped); the media plane (:mod:`media.api`) does the rest."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from media.errors import MediaStateError, SdpError, StaleAnswerError, UnknownPeerError

from .. import outbound, protocol
from ..context import Sender
from ..protocol import ClientMessage, ProtocolError
from ..settings import LimitSettings
from . import BaseFeature

#: the kind each source's track has
SOURCE_KINDS = {"screen": "video", "camera": "video", "microphone": "audio"}


class MediaFeature(BaseFeature):
    """Participants' own tracks."""

    messages: ClassVar[tuple[type[ClientMessage], ...]] = (
        protocol.Publish,
        protocol.Unpublish,
        protocol.Answer,
        protocol.Mute,
    )

    def __init__(self, *, limits: LimitSettings) -> None:
        self._limits = limits

    async def handle(self, sender: Sender, msg: ClientMessage) -> None:
        room, participant = sender.room, sender.participant
        media = room.media
        assert media is not None  # a room has its media before anyone is in it
        pid = participant.participant_id
        try:
            match msg:
                case protocol.Publish(kinds=kinds, source=source):
                    check_publish(participant.role, kinds, source)
                    await media.publish(pid, kinds, source)
                case protocol.Unpublish(track_id=track_id):
                    await media.unpublish(pid, track_id)
                case protocol.Answer(sdp=sdp, revision=revision):
                    check_sdp_limits(sdp, self._limits)
                    await media.answer(pid, sdp, revision)
                case protocol.Mute(track_id=track_id, muted=muted):
                    track = participant.tracks.get(track_id)
                    if track is None:
                        raise ProtocolError("bad_state", f"{track_id} is not your track", "mute")
                    track.muted = muted
                    room.broadcast(outbound.Muted(pid, track_id, muted).encode())
        except (MediaStateError, UnknownPeerError) as exc:
            raise ProtocolError("bad_state", str(exc), msg.type) from None
        except StaleAnswerError as exc:
            raise ProtocolError("stale_answer", str(exc), msg.type) from None
        except SdpError as exc:
            raise ProtocolError("bad_sdp", f"cannot apply SDP: {exc}", msg.type) from None


def check_publish(role: str, kinds: Sequence[str], source: str | None) -> None:
    """Viewers do not publish; a source names one track of its kind."""
    if role == "viewer":
        raise ProtocolError("forbidden", "viewers cannot publish", "publish")
    if source is not None and list(kinds) != [SOURCE_KINDS[source]]:
        raise ProtocolError(
            "bad_message", f'source: {source} needs kinds ["{SOURCE_KINDS[source]}"]', "publish"
        )


def check_sdp_limits(sdp: str, limits: LimitSettings) -> None:
    """An answer's size and media sections are capped (``[limits]``)."""
    if len(sdp) > limits.max_sdp_chars:
        raise ProtocolError(
            "bad_message", f"sdp: longer than {limits.max_sdp_chars} characters", "answer"
        )
    # count lines as aiortc's parser splits them (str.splitlines: any line break, a bare
    # "\r" or U+2028 included), else an answer evades the cap with odd separators
    sections = sum(line.startswith("m=") for line in sdp.splitlines())
    if sections > limits.max_media_sections:
        raise ProtocolError(
            "bad_message",
            f"sdp: {sections} media sections, at most {limits.max_media_sections}",
            "answer",
        )
