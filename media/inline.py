"""Rooms in the signaling process: the simplest placement, right for one machine and a few rooms."""

from __future__ import annotations

from .api import EmitEvent, MediaSettings, OnAudio
from .hooks import restrict_host_addresses, use_fast_sender_clock
from .sfu import SfuRoom


class InlineMediaBackend:
    """Implements :class:`media.api.MediaBackend` with :class:`SfuRoom`s on this event loop.

    With ``settings.audio_tap``, every room hands its speakers' decoded audio to ``on_audio``.
    """

    def __init__(self, settings: MediaSettings, *, on_audio: OnAudio | None = None) -> None:
        self._settings = settings
        self._on_audio = on_audio
        self._rooms: set[SfuRoom] = set()
        restrict_host_addresses(settings.ice_host_addresses)
        use_fast_sender_clock()

    async def start(self) -> None:
        """Nothing to prepare: rooms live on this event loop."""

    async def open_room(self, room_id: str, emit: EmitEvent) -> SfuRoom:
        room = _OwnedRoom(
            room_id, settings=self._settings, emit=emit, on_audio=self._on_audio, owner=self._rooms
        )
        self._rooms.add(room)
        return room

    async def aclose(self) -> None:
        for room in list(self._rooms):
            await room.aclose()


class _OwnedRoom(SfuRoom):
    def __init__(
        self,
        room_id: str,
        *,
        settings: MediaSettings,
        emit: EmitEvent,
        on_audio: OnAudio | None,
        owner: set[SfuRoom],
    ) -> None:
        super().__init__(room_id, settings=settings, emit=emit, on_audio=on_audio)
        self._owner = owner

    async def aclose(self) -> None:
        await super().aclose()
        self._owner.discard(self)
