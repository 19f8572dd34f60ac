"""Caption routing (PROTOCOL.md "Captions"): which reader gets which caption, in which
languages. :func:`route` is pure (a frame and a room in, deliveries out); the speech worker's
shell (:class:`server.captions.CaptionService`) feeds it frames and does the sending through
:class:`CaptionsFeature`.

- A speaker on the floor: every participant gets the caption with the translations they read,
  less the languages whose captions they take from an interpreter on air; the final goes into
  the room's transcript.
- An interpreter on air in a channel: their captions (in the channel's language, no machine
  translation) go to interpreters and hosts (the console shows every stream) and to readers of
  that language who take interpreter captions; never into the transcript (that is the floor's).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from interpret.frames import CaptionFrame, translation_fields
from interpret.glossary import Glossary

from ..channels import RoomChannels
from ..context import Peer, RoomContext
from ..outbound import Caption
from ..transcript import RoomTranscript, TranscriptLine
from . import BaseFeature


@dataclass(frozen=True, slots=True)
class Delivery:
    """One caption for one reader."""

    peer: Peer
    caption: Caption


@dataclass(frozen=True, slots=True)
class Routed:
    deliveries: list[Delivery]
    #: a final of the floor: it belongs in the room's transcript
    transcribed: bool


def caption_of(
    frame: CaptionFrame,
    languages: frozenset[str],
    *,
    latency_s: float | None = None,
    channel: str | None = None,
) -> Caption:
    """The caption a reader of ``languages`` gets of ``frame``; ``channel``: the speaker is an
    interpreter on air in it."""
    logprob = frame.avg_logprob if frame.is_final else None
    return Caption(
        caption_id=frame.caption_id,
        participant_id=frame.speaker_id,
        lang=frame.lang,
        text=frame.text,
        final=frame.is_final,
        stable_chars=frame.stable_chars,
        start_s=frame.start_s,
        end_s=frame.end_s,
        **translation_fields(frame.translations, languages),
        channel=channel,
        avg_logprob=None if logprob is None else round(logprob, 3),
        words=()
        if logprob is None
        else tuple((w.text.strip(), round(w.probability, 3)) for w in frame.words),
        latency_ms=None if latency_s is None else round(latency_s * 1000),
    )


def reads_channel(
    participant_id: str, role: str, languages: frozenset[str], channels: RoomChannels, channel: str
) -> bool:
    """Whether a participant gets the captions of ``channel``'s interpreter: interpreters and
    hosts (the console shows every stream), and readers of the channel's language who take
    them."""
    if role in ("interpreter", "host"):
        return True
    listening = channels.listening_of(participant_id)
    return bool(listening.interpreter_captions and channel in languages)


def route(
    frame: CaptionFrame,
    room: RoomContext,
    channels: RoomChannels | None,
    *,
    latency_s: float | None = None,
) -> Routed:
    """Who gets ``frame``, as what (see the module docstring). Pure."""
    channels = channels or RoomChannels()
    channel = channels.channel_of(frame.speaker_id)
    deliveries: list[Delivery] = []
    if channel is not None:
        for pid, peer in room.clients.items():
            participant = peer.participant
            if participant is not None and reads_channel(
                pid, participant.role, peer.languages, channels, channel
            ):
                caption = caption_of(frame, frozenset(), latency_s=latency_s, channel=channel)
                deliveries.append(Delivery(peer, caption))
        return Routed(deliveries, transcribed=False)
    for pid, peer in room.clients.items():
        languages = peer.languages
        taken = channels.taken_languages(pid, languages) - {frame.lang}
        deliveries.append(Delivery(peer, caption_of(frame, languages - taken, latency_s=latency_s)))
    return Routed(deliveries, transcribed=frame.is_final)


def transcript_line(
    frame: CaptionFrame,
    room: RoomContext,
    *,
    audio_offset_s: float,
    latency_s: float | None,
) -> TranscriptLine:
    """A final as a line of the room's transcript: times on the room's clock
    (``audio_offset_s``: the speaker's stream time 0 on the monotonic clock)."""
    base = audio_offset_s - room.started_monotonic
    speaker = room.clients.get(frame.speaker_id)
    participant = None if speaker is None else speaker.participant
    return TranscriptLine(
        caption_id=frame.caption_id,
        speaker_id=frame.speaker_id,
        speaker_name="" if participant is None else participant.name,
        lang=frame.lang,
        text=frame.text,
        start_s=max(0.0, base + frame.start_s),
        end_s=max(0.0, base + frame.end_s),
        **translation_fields(frame.translations),
        latency_s=latency_s,
    )


class ChannelsView(Protocol):
    """What routing needs of :class:`server.features.channels.ChannelsFeature`."""

    def of(self, room_name: str) -> RoomChannels | None: ...

    def recognition_lang(
        self, room_name: str, participant_id: str, spoken: str | None
    ) -> str | None: ...


class Notes(Protocol):
    """What routing needs of :class:`server.features.corrections.CorrectionsFeature`."""

    def transcript(self, room: RoomContext) -> RoomTranscript: ...

    def glossary(self, room_name: str) -> Glossary: ...


class Listener(Protocol):
    """What leaving needs of the captions (:class:`server.captions.CaptionService`)."""

    def participant_left(self, participant_id: str) -> None: ...

    def languages_changed(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Speaker:
    """A participant whose audio the worker starts recognising."""

    lang: str | None
    glossary: Glossary


class CaptionsFeature(BaseFeature):
    """The rooms' side of captions: what the speech worker's shell asks about speakers and
    readers, and the delivery of what it recognised."""

    def __init__(
        self,
        *,
        rooms: Mapping[str, RoomContext],
        channels: ChannelsView,
        notes: Notes,
        service: Listener | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rooms = rooms
        self._channels = channels
        self._notes = notes
        self._service = service
        self._clock = clock

    # -- asked by the speech worker's shell ---------------------------------------------------
    def readers(self) -> dict[str, list[frozenset[str]]]:
        """Room -> the languages each of its participants reads."""
        return {
            name: [peer.languages for peer in room.clients.values()]
            for name, room in self._rooms.items()
        }

    def speaker(self, room_name: str, participant_id: str) -> Speaker | None:
        """A new speaker's language and glossary; None when they are gone."""
        room = self._rooms.get(room_name)
        peer = None if room is None else room.clients.get(participant_id)
        if peer is None:
            return None
        lang = self._channels.recognition_lang(room_name, participant_id, peer.spoken_lang)
        return Speaker(lang, self._notes.glossary(room_name))

    def deliver(
        self,
        room_name: str,
        frame: CaptionFrame,
        *,
        latency_s: float | None,
        audio_offset_s: float | None,
    ) -> Routed | None:
        """Send ``frame`` to its readers (an interim is dropped for a reader that lags) and
        keep a floor final in the room's transcript; None when the room is gone."""
        room = self._rooms.get(room_name)
        if room is None:
            return None
        routed = route(frame, room, self._channels.of(room_name), latency_s=latency_s)
        if routed.transcribed and frame.text.strip():
            offset = audio_offset_s if audio_offset_s is not None else self._clock() - frame.end_s
            line = transcript_line(frame, room, audio_offset_s=offset, latency_s=latency_s)
            self._notes.transcript(room).add(line)
        for delivery in routed.deliveries:
            delivery.peer.send_caption(delivery.caption.encode(), final=frame.is_final)
        return routed

    def tell_everyone(self, message: str) -> None:
        """Send ``message`` to every client of every room (hidden seats included)."""
        for room in list(self._rooms.values()):
            for peer in list(room.clients.values()):
                peer.send(message)

    # -- hooks ----------------------------------------------------------------------------------
    async def on_left(self, room: RoomContext, participant_id: str) -> None:
        if self._service is not None:
            self._service.participant_left(participant_id)
            self._service.languages_changed()
