"""Interpretation channels as a feature (PROTOCOL.md "Interpretation channels"): ``listen``,
``on_air``, ``off_air`` and handovers in; media holds and ``channels`` messages out. Each room's
pure state (:class:`server.channels.RoomChannels`) lives here while the room does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

import structlog

from .. import outbound, protocol
from ..channels import ON_AIR_ROLES, ChannelError, Listening, RoomChannels, audio_holds
from ..context import Peer, RoomContext, Sender
from ..protocol import ClientMessage, ProtocolError
from ..settings import InterpretingSettings
from . import BaseFeature

log = structlog.get_logger(__name__)


class Recognizer(Protocol):
    """What channels need of the captions (:class:`server.captions.CaptionService`)."""

    def speaker_lang_changed(self, participant_id: str, lang: str | None) -> None: ...


class ChannelsFeature(BaseFeature):
    """Every room's channels: on air, handovers, what each participant hears."""

    messages: ClassVar[tuple[type[ClientMessage], ...]] = (
        protocol.Listen,
        protocol.OnAir,
        protocol.OffAir,
        protocol.HandoverRequest,
        protocol.HandoverAnswer,
    )

    def __init__(
        self,
        *,
        settings: InterpretingSettings,
        recognizer: Recognizer | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._recognizer = recognizer
        self._clock = clock
        self._rooms: dict[str, RoomChannels] = {}

    def of(self, room_name: str) -> RoomChannels | None:
        """The room's channels (None: nobody used them yet)."""
        return self._rooms.get(room_name)

    def _of(self, room: RoomContext) -> RoomChannels:
        channels = self._rooms.get(room.name)
        if channels is None:
            channels = self._rooms[room.name] = RoomChannels()
        return channels

    def recognition_lang(
        self, room_name: str, participant_id: str, spoken: str | None
    ) -> str | None:
        """The language a participant's speech is recognised in: their channel's while they
        interpret on air, else the one they speak (``spoken``; None = detect)."""
        channels = self._rooms.get(room_name)
        channel = None if channels is None else channels.channel_of(participant_id)
        return spoken if channel is None else channel

    # -- messages -------------------------------------------------------------------------------
    def message(self, room: RoomContext, participant_id: str, event: dict[str, Any] | None) -> str:
        channels = self._of(room)
        return outbound.Channels(
            channels=channels.to_wire(self._clock()),
            listening=channels.listening_of(participant_id).to_wire(),
            duck_volume=self._settings.duck_volume,
            event=event,
        ).encode()

    def _broadcast(self, room: RoomContext, event: dict[str, Any] | None) -> None:
        for pid, client in list(room.clients.items()):
            client.send(self.message(room, pid, event))

    async def _apply(self, room: RoomContext) -> None:
        """Bring the media plane's audio holds in line with the room's channels (only changes
        are sent; a room that never used channels sends nothing)."""
        channels = self._of(room)
        async with channels.lock:
            if room.media is None:
                return
            holds = audio_holds(room.clients, channels.listening, channels.on_air)
            for hidden in room.hidden:  # the broadcast worker gets every voice
                holds[hidden] = frozenset()
            for pid, held in holds.items():
                if channels.applied_holds.get(pid, frozenset()) == held:
                    continue
                try:
                    await room.media.hold_audio(pid, held)
                except Exception as exc:  # the peer left meanwhile: its holds go with it
                    log.debug("hold_audio failed", participant=pid, error=type(exc).__name__)
                    continue
                channels.applied_holds[pid] = held

    def _recognition_changed(self, room: RoomContext, participant_id: str) -> None:
        """An interpreter's speech is recognised in their channel's language while on air."""
        other = room.clients.get(participant_id)
        if self._recognizer is not None and other is not None:
            lang = self.recognition_lang(room.name, participant_id, other.spoken_lang)
            self._recognizer.speaker_lang_changed(participant_id, lang)

    async def handle(self, sender: Sender, msg: ClientMessage) -> None:
        room, me = sender.room, sender.participant
        channels = self._of(room)
        pid = me.participant_id
        event: dict[str, Any]
        if not isinstance(msg, protocol.Listen) and me.role not in ON_AIR_ROLES:
            raise ProtocolError("forbidden", f"only interpreters may {msg.type}", msg.type)
        try:
            match msg:
                case protocol.Listen(channel=channel, duck=duck, interpreter_captions=captions):
                    channels.listening[pid] = Listening(channel, duck, captions)
                    await self._apply(room)
                    sender.peer.send(self.message(room, pid, None))
                    return
                case protocol.OnAir(channel=channel):
                    left = channels.go_on_air(pid, channel)
                    event = {"type": "on_air", "channel": channel, "participant_id": pid}
                    if left is not None:
                        event["left"] = left
                    self._recognition_changed(room, pid)
                case protocol.OffAir():
                    left = channels.go_off_air(pid)
                    if left is None:
                        raise ChannelError("bad_state", "you are not on air")
                    event = {"type": "off_air", "channel": left, "participant_id": pid}
                    self._recognition_changed(room, pid)
                case protocol.HandoverRequest(channel=channel):
                    timeout_s = self._settings.handover_timeout_s
                    holder = channels.request_handover(pid, channel, self._clock() + timeout_s)
                    loop = asyncio.get_running_loop()
                    channels.requests[channel].timer = loop.call_later(
                        timeout_s, self._expire, room, channel
                    )
                    event = {
                        "type": "handover_requested",
                        "channel": channel,
                        "by": pid,
                        "to": holder,
                    }
                case protocol.HandoverAnswer(channel=channel, accept=accept):
                    requester = channels.answer_handover(pid, channel, accept)
                    event = {
                        "type": "handover_accepted" if accept else "handover_declined",
                        "channel": channel,
                        "from": pid,
                        "to": requester,
                    }
                    if accept:
                        self._recognition_changed(room, pid)
                        self._recognition_changed(room, requester)
                case _:
                    return
        except ChannelError as exc:
            raise ProtocolError(exc.code, exc.message, msg.type, **exc.details) from None
        log.info("channel " + event["type"], room=room.name, channel=event["channel"], by=pid)
        await self._apply(room)
        self._broadcast(room, event)

    def _expire(self, room: RoomContext, channel: str) -> None:
        requester = self._of(room).expire(channel, self._clock())
        if requester is not None:
            log.info("channel handover_expired", room=room.name, channel=channel)
            event = {"type": "handover_expired", "channel": channel, "by": requester}
            self._broadcast(room, event)

    # -- hooks ----------------------------------------------------------------------------------
    async def on_peer_added(self, room: RoomContext, peer: Peer) -> None:
        """A participant joined (media peer added): their holds and everyone's (they are
        floor)."""
        channels = self._rooms.get(room.name)
        if channels is None or not channels.in_use:
            return
        assert peer.participant is not None
        peer.send(self.message(room, peer.participant.participant_id, None))
        await self._apply(room)

    async def on_left(self, room: RoomContext, participant_id: str) -> None:
        """A participant left: off air, their handover request withdrawn, holds recomputed."""
        channels = self._rooms.get(room.name)
        if channels is None or not channels.in_use:
            return
        asked = [c for c, pending in channels.requests.items() if pending.by == participant_id]
        was_on_air = channels.participant_left(participant_id)
        if was_on_air is not None:
            event = {"type": "off_air", "channel": was_on_air, "participant_id": participant_id}
        elif asked:
            event = {"type": "handover_withdrawn", "channel": asked[0], "by": participant_id}
        else:
            await self._apply(room)
            return
        await self._apply(room)
        self._broadcast(room, event)

    async def on_room_closed(self, room: RoomContext) -> None:
        channels = self._rooms.pop(room.name, None)
        if channels is not None:
            channels.close()
