"""Publishing and receiving (PROTOCOL.md "Media"): ``publish``, ``unpublish``, ``answer``,
``publish_offer`` (the Janus engine) and ``mute`` of one's own tracks. The rules are here
(viewers do not publish; a source has one kind; an SDP's size is capped); the media plane
(:mod:`media.api`) does the rest."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from media.api import PublisherOffers
from media.errors import MediaStateError, SdpError, StaleAnswerError, UnknownPeerError

from .. import outbound, protocol
from ..context import RoomContext, Sender
from ..protocol import ClientMessage, ProtocolError
from ..rooms import Participant
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
        protocol.PublishOffer,
        protocol.Mute,
    )

    def __init__(self, *, limits: LimitSettings, engine: str = "aiortc") -> None:
        """``engine``: ``[media] backend`` (``"janus"``: publishers offer, PROTOCOL.md "Janus
        engine")."""
        self._limits = limits
        self._engine = engine

    def joined_fields(self, room: RoomContext, participant: Participant) -> Mapping[str, object]:
        if self._engine == "janus":
            return {"media_engine": "janus"}  # PROTOCOL.md "Janus engine": publish offers
        return {}

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
                case protocol.PublishOffer(sdp=sdp, revision=revision, sources=sources):
                    if participant.role == "viewer":
                        raise ProtocolError("forbidden", "viewers cannot publish", msg.type)
                    if not isinstance(media, PublisherOffers):
                        raise ProtocolError(
                            "bad_state", "this server's media engine makes the offers", msg.type
                        )
                    check_sdp_limits(sdp, self._limits)
                    await media.publish_offer(pid, sdp, revision, sources)
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
    """An SDP's (an answer's, a publish offer's) size and media sections are capped
    (``[limits]``)."""
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
