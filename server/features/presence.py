"""Being in a room besides media (PROTOCOL.md "Room features"): raised hands, the
transcription notice, and opting out of transcription."""

from __future__ import annotations

from typing import ClassVar, Protocol

from .. import outbound, protocol
from ..context import Peer, RoomContext, Sender
from ..protocol import ClientMessage
from ..settings import RetentionSettings
from . import BaseFeature

TRANSCRIPTION_NOTICE = (
    "This meeting is transcribed and translated by machine while it runs: what you say is "
    "shown to the others as captions, which may contain errors. Captions are not stored. "
    "You can ask not to be transcribed."
)


def transcription_notice(retention: RetentionSettings) -> str:
    """The notice, true to what this server keeps (``[retention]``)."""
    kept = [k for k in ("captions", "chat") if retention.mode != "none" and k in retention.kinds]
    if not kept:
        return TRANSCRIPTION_NOTICE
    what = " and ".join(["final captions" if k == "captions" else "room chat" for k in kept])
    return TRANSCRIPTION_NOTICE.replace(
        "Captions are not stored.",
        f"This server stores {what} for up to {retention.max_age_h:g} hours.",
    )


class Transcriber(Protocol):
    """What opting out and joining need of the captions
    (:class:`server.captions.CaptionService`)."""

    def set_opt_out(self, participant_id: str, opt_out: bool) -> None: ...

    @property
    def paused(self) -> bool:
        """No speech worker is up (captions wait)."""
        ...

    def status_message(self) -> str:
        """``captions_status``."""
        ...


class PresenceFeature(BaseFeature):
    """Hands, the transcription notice (when the server transcribes) and whether captions are
    paused, opting out."""

    messages: ClassVar[tuple[type[ClientMessage], ...]] = (protocol.Hand, protocol.Transcription)

    def __init__(self, *, retention: RetentionSettings, transcriber: Transcriber | None) -> None:
        """``transcriber``: None when this server does not transcribe (no notice then)."""
        self._transcriber = transcriber
        #: what every joiner gets first
        self._notice = None if transcriber is None else transcription_notice(retention)

    def on_joined(self, room: RoomContext, peer: Peer) -> None:
        # before any caption or chat history (PROTOCOL.md "Transcription consent")
        if self._notice is not None:
            peer.send(outbound.Notice(kind="transcription", text=self._notice).encode())
        if self._transcriber is not None and self._transcriber.paused:
            # no speech worker now: say so (live again is told too: the captions' shell)
            peer.send(self._transcriber.status_message())

    async def handle(self, sender: Sender, msg: ClientMessage) -> None:
        me, pid = sender.participant, sender.participant.participant_id
        match msg:
            case protocol.Hand(raised=raised):
                me.hand_raised = raised
                sender.room.broadcast(outbound.Hand(pid, raised).encode())
            case protocol.Transcription(opt_out=opt_out):
                me.transcription_opt_out = opt_out
                if self._transcriber is not None:
                    self._transcriber.set_opt_out(pid, opt_out)
                sender.room.broadcast(outbound.TranscriptionChanged(pid, opt_out).encode())
