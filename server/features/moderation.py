"""Host powers (PROTOCOL.md "Host powers"): mute others (never unmute), remove, room settings
(lock, lobby, password), answering the lobby (admit, deny), ending the meeting. Only a host may
send these; anyone else gets ``forbidden`` and nothing changes.

Who is in a room and its lobby is the membership's (:mod:`server.membership`): this feature
decides, and asks it through :class:`Doors` to let people in or out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

import structlog

from .. import outbound, protocol
from ..context import RoomContext, Sender
from ..protocol import ClientMessage, ProtocolError
from ..rooms import Role, Room
from . import BaseFeature

log = structlog.get_logger(__name__)

#: application close codes (PROTOCOL.md "Close codes")
CLOSE_REMOVED = 4001


class Doors(Protocol):
    """What host powers need of the membership (rooms by name)."""

    async def expel(self, room: str, participant_id: str, *, close_code: int, reason: str) -> None:
        """Take a participant out (closed with ``close_code``); their seat stays refused."""
        ...

    async def admit(self, room: str, waiter_id: str) -> None:
        """Let a lobby waiter in; raises ``bad_state`` when they are not waiting."""
        ...

    def deny(self, room: str, waiter_id: str) -> None:
        """Turn a lobby waiter away; raises ``bad_state`` when they are not waiting."""
        ...

    async def end_meeting(self, room: str, by: str) -> None: ...

    def room_settings(self, room: Room) -> dict[str, Any]:
        """The room's settings as the wire has them (a configured password counts)."""
        ...


class ModerationFeature(BaseFeature):
    """Host actions."""

    messages: ClassVar[tuple[type[ClientMessage], ...]] = (
        protocol.MuteParticipant,
        protocol.RemoveParticipant,
        protocol.RoomSettings,
        protocol.Admit,
        protocol.Deny,
        protocol.EndMeeting,
    )
    roles: ClassVar[frozenset[Role] | None] = frozenset({"host"})
    forbidden = "only a host may send {type}"

    def __init__(self, *, doors: Doors) -> None:
        self._doors = doors

    async def handle(self, sender: Sender, msg: ClientMessage) -> None:
        room, by = sender.room, sender.participant.participant_id
        state = room.state
        assert state is not None
        doors = self._doors
        match msg:
            case protocol.MuteParticipant(participant_id=target_id, kinds=kinds):
                mute(room, state, by, target_id, kinds)
            case protocol.RemoveParticipant(participant_id=target_id):
                # the broadcast worker's hidden seat is nobody's to remove (it is in no list)
                target = None if target_id in room.hidden else room.clients.get(target_id)
                if target is None:
                    raise ProtocolError("bad_state", f"no participant {target_id} here", msg.type)
                if target_id == by:
                    raise ProtocolError("bad_state", "use leave to leave", msg.type)
                target.send(outbound.Removed(by).encode())
                await doors.expel(room.name, target_id, close_code=CLOSE_REMOVED, reason="removed")
                log.info("removed", room=room.name, participant=target_id, by=by)
            case protocol.RoomSettings(locked=locked, lobby=lobby, password=password):
                state.configure(
                    locked=locked,
                    lobby=lobby,
                    password=password or None,
                    clear_password=password == "",
                )
                wire = doors.room_settings(state)
                room.broadcast(outbound.RoomSettingsChanged(by=by, **wire).encode())
            case protocol.Admit(participant_id=waiter_id):
                await doors.admit(room.name, waiter_id)
            case protocol.Deny(participant_id=waiter_id):
                doors.deny(room.name, waiter_id)
            case protocol.EndMeeting():
                await doors.end_meeting(room.name, by)


def mute(room: RoomContext, state: Room, by: str, target_id: str, kinds: Sequence[str]) -> None:
    """Mark the target's tracks of ``kinds`` muted (relayed as ``muted`` to everyone) and tell
    the target client to stop sending them (``mute_request``). Never unmutes."""
    target = state.participants.get(target_id)
    client = room.clients.get(target_id)
    if target is None or client is None:
        raise ProtocolError("bad_state", f"no participant {target_id} here", "mute_participant")
    client.send(outbound.MuteRequest(list(kinds), by).encode())
    for track in list(target.tracks.values()):
        if track.kind in kinds and not track.muted:
            track.muted = True
            muted = outbound.Muted(target_id, track.track_id, muted=True, by=by)
            room.broadcast(muted.encode())
