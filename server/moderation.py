"""Host powers and the lobby: mute others (never unmute), remove, lock, lobby (admit/deny),
room password, end the meeting. Every action checks the sender's role first, so a participant
trying one gets ``forbidden`` and nothing changes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import structlog

from media.api import Kind

from . import protocol
from .protocol import ProtocolError
from .rooms import Participant, Room, Waiter

if TYPE_CHECKING:
    from .signaling import ClientConnection, LiveRoom, SignalingServer

log = structlog.get_logger(__name__)

LobbyExit = Literal["admitted", "denied", "left"]
#: application close codes (PROTOCOL.md "Close codes")
CLOSE_REMOVED = 4001
CLOSE_MEETING_ENDED = 4002


def room_settings_wire(server: SignalingServer, room: Room) -> dict[str, Any]:
    has_password = bool(room.password or server.settings.auth.room_passwords.get(room.name))
    return room.settings_to_wire(password=has_password)


def _send_to_hosts(live: LiveRoom, message: str) -> None:
    state = live.registry.get(live.name)
    if state is None:
        return
    for host in state.hosts():
        client = live.clients.get(host.participant_id)
        if client is not None:
            client.send(message)


def enter_lobby(
    live: LiveRoom, client: ClientConnection, waiter: Waiter, publish: list[Kind]
) -> None:
    """Park a join in the lobby: the waiter gets ``lobby``, every host ``lobby_request``."""
    live.waiting[waiter.participant_id] = client
    client.live = live
    client.lobby_id = waiter.participant_id
    client.lobby_publish = publish
    client.send(protocol.encode("lobby", room=live.name, participant_id=waiter.participant_id))
    _send_to_hosts(live, protocol.encode("lobby_request", participant=waiter.to_wire()))
    log.info("waiting in lobby", room=live.name, participant=waiter.participant_id)


def lobby_left(live: LiveRoom, waiter_id: str, reason: LobbyExit) -> None:
    _send_to_hosts(live, protocol.encode("lobby_left", participant_id=waiter_id, reason=reason))


def close_lobby(live: LiveRoom) -> None:
    """The room emptied: whoever still waits is told (``lobby_closed``) and may join again."""
    for client in live.waiting.values():
        client.detach()
        client.send(protocol.error("lobby_closed", "everybody left the room", "join"))
    live.waiting.clear()


def announce_host(live: LiveRoom, participant: Participant) -> None:
    """Open mode: ``participant`` became host; everyone hears it, the new host learns the lobby."""
    live.broadcast(
        protocol.encode("role_changed", participant_id=participant.participant_id, role="host")
    )
    client = live.clients.get(participant.participant_id)
    state = live.registry.get(live.name)
    if client is not None and state is not None:
        for waiter in state.waiting.values():
            client.send(protocol.encode("lobby_request", participant=waiter.to_wire()))


async def handle_host_action(client: ClientConnection, msg: protocol.HostAction) -> None:
    live, me = client.live, client.participant
    if live is None or me is None:
        raise ProtocolError("not_joined", f"{msg.type} needs a joined participant", msg.type)
    if me.role != "host":
        raise ProtocolError("forbidden", f"only a host may send {msg.type}", msg.type)
    server = client.server
    state = server.registry.get(live.name)
    assert state is not None
    by = me.participant_id
    match msg:
        case protocol.MuteParticipant(participant_id=target_id, kinds=kinds):
            _mute(live, state, by, target_id, kinds)
        case protocol.RemoveParticipant(participant_id=target_id):
            # the broadcast worker's hidden seat is nobody's to remove (it is in no list)
            target = None if target_id in live.hidden else live.clients.get(target_id)
            if target is None:
                raise ProtocolError("bad_state", f"no participant {target_id} here", msg.type)
            if target_id == by:
                raise ProtocolError("bad_state", "use leave to leave", msg.type)
            target.send(protocol.encode("removed", by=by))
            server.remove_seat(live.name, target)
            target.detach()
            target.close_soon(CLOSE_REMOVED, "removed")
            await server.exit(live, target_id)
            log.info("removed", room=live.name, participant=target_id, by=by)
        case protocol.RoomSettings(locked=locked, lobby=lobby, password=password):
            server.registry.configure(
                live.name,
                locked=locked,
                lobby=lobby,
                password=password or None,
                clear_password=password == "",
            )
            live.broadcast(
                protocol.encode("room_settings", by=by, **room_settings_wire(server, state))
            )
        case protocol.Admit(participant_id=waiter_id):
            await server.admit(live, waiter_id)
        case protocol.Deny(participant_id=waiter_id):
            waiter = live.waiting.pop(waiter_id, None)
            if waiter is None or server.registry.stop_waiting(live.name, waiter_id) is None:
                raise ProtocolError("bad_state", f"{waiter_id} is not in the lobby", msg.type)
            waiter.detach()
            waiter.send(protocol.error("lobby_denied", "a host did not let you in", "join"))
            lobby_left(live, waiter_id, "denied")
        case protocol.EndMeeting():
            await server.end_meeting(live, by)


def _mute(live: LiveRoom, state: Room, by: str, target_id: str, kinds: list[Kind]) -> None:
    """Mark the target's tracks of ``kinds`` muted (relayed as ``muted`` to everyone) and tell
    the target client to stop sending them (``mute_request``). Never unmutes."""
    target = state.participants.get(target_id)
    client = live.clients.get(target_id)
    if target is None or client is None:
        raise ProtocolError("bad_state", f"no participant {target_id} here", "mute_participant")
    client.send(protocol.encode("mute_request", kinds=kinds, by=by))
    for track in list(target.tracks.values()):
        if track.kind in kinds and not track.muted:
            live.registry.set_muted(live.name, target_id, track.track_id, True)
            live.broadcast(
                protocol.encode(
                    "muted", participant_id=target_id, track_id=track.track_id, muted=True, by=by
                )
            )
