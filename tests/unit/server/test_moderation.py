"""Host powers (server.features.moderation) and the dispatch's role and join checks, on fakes:
no event loop, no socket. The doors (membership) are a recorder."""

from __future__ import annotations

from typing import Any

import pytest

from server import protocol
from server.features import Dispatch
from server.features.moderation import CLOSE_REMOVED, ModerationFeature
from server.protocol import ProtocolError
from server.rooms import Participant, Room

from .fakes import FakePeer, FakeRoom, run


class Doors:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def expel(self, room: str, participant_id: str, *, close_code: int, reason: str) -> None:
        self.calls.append(("expel", room, participant_id, close_code, reason))

    async def admit(self, room: str, waiter_id: str) -> None:
        self.calls.append(("admit", room, waiter_id))

    def deny(self, room: str, waiter_id: str) -> None:
        self.calls.append(("deny", room, waiter_id))

    async def end_meeting(self, room: str, by: str) -> None:
        self.calls.append(("end_meeting", room, by))

    def room_settings(self, room: Room) -> dict[str, Any]:
        return room.settings_to_wire(password=room.password is not None)


def parse(**fields: Any) -> protocol.ClientMessage:
    import json

    return protocol.parse_client_message(json.dumps(fields))


@pytest.fixture
def doors() -> Doors:
    return Doors()


@pytest.fixture
def dispatch(doors: Doors) -> Dispatch:
    return Dispatch([ModerationFeature(doors=doors)])


def send(dispatch: Dispatch, peer: FakePeer, room: FakeRoom | None, **fields: Any) -> None:
    run(dispatch.dispatch(peer, room, parse(**fields)))


def pid(peer: FakePeer) -> str:
    assert peer.participant is not None
    return peer.participant.participant_id


def test_only_a_host_may_and_nothing_changes_otherwise(dispatch: Dispatch, doors: Doors) -> None:
    room = FakeRoom()
    room.join("Hana", role="host")
    alice = room.join("Alice")
    bob = room.join("Bob")
    room.registry.add_track("r", pid(bob), "t1", "audio", "microphone")
    for fields in (
        {"type": "mute_participant", "participant_id": pid(bob)},
        {"type": "remove_participant", "participant_id": pid(bob)},
        {"type": "room_settings", "locked": True},
        {"type": "end_meeting"},
    ):
        with pytest.raises(ProtocolError) as refused:
            send(dispatch, alice, room, **fields)
        assert refused.value.code == "forbidden"
        assert refused.value.message == f"only a host may send {fields['type']}"
    state = room.state
    assert state is not None and not state.locked
    assert not state.participants[pid(bob)].tracks["t1"].muted
    assert doors.calls == [] and bob.sent == []


def test_a_client_in_no_room_or_a_lobby_is_not_joined(dispatch: Dispatch) -> None:
    room = FakeRoom()
    for peer, where in ((FakePeer(), None), (FakePeer(), room)):  # no room; waiting in a lobby
        with pytest.raises(ProtocolError) as refused:
            send(dispatch, peer, where, type="end_meeting")
        assert refused.value.code == "not_joined"


def test_mute_asks_the_target_and_marks_its_tracks_never_unmuting(dispatch: Dispatch) -> None:
    room = FakeRoom()
    host = room.join("Hana", role="host")
    bob = room.join("Bob")
    room.registry.add_track("r", pid(bob), "mic", "audio", "microphone")
    room.registry.add_track("r", pid(bob), "cam", "video", "camera")
    send(dispatch, host, room, type="mute_participant", participant_id=pid(bob))
    assert bob.of_type("mute_request") == [
        {"type": "mute_request", "kinds": ["audio"], "by": pid(host)}
    ]
    muted = host.of_type("muted")
    assert muted == [
        {
            "type": "muted",
            "participant_id": pid(bob),
            "track_id": "mic",
            "muted": True,
            "by": pid(host),
        }
    ]
    state = room.state
    assert state is not None
    tracks = state.participants[pid(bob)].tracks
    assert tracks["mic"].muted and not tracks["cam"].muted
    # again: asked again, but an already muted track is not announced twice
    send(dispatch, host, room, type="mute_participant", participant_id=pid(bob))
    assert len(bob.of_type("mute_request")) == 2 and len(host.of_type("muted")) == 1
    with pytest.raises(ProtocolError) as refused:
        send(dispatch, host, room, type="mute_participant", participant_id="nobody")
    assert refused.value.code == "bad_state"


def test_remove_tells_the_target_then_expels_with_4001(dispatch: Dispatch, doors: Doors) -> None:
    room = FakeRoom()
    host = room.join("Hana", role="host")
    bob = room.join("Bob")
    send(dispatch, host, room, type="remove_participant", participant_id=pid(bob))
    assert bob.sent == [{"type": "removed", "by": pid(host)}]
    assert doors.calls == [("expel", "r", pid(bob), CLOSE_REMOVED, "removed")]
    for target in (pid(host), "nobody"):
        with pytest.raises(ProtocolError) as refused:
            send(dispatch, host, room, type="remove_participant", participant_id=target)
        assert refused.value.code == "bad_state"
    assert len(doors.calls) == 1


def test_room_settings_change_only_what_is_given_and_everybody_hears(dispatch: Dispatch) -> None:
    room = FakeRoom()
    host = room.join("Hana", role="host")
    bob = room.join("Bob")
    send(dispatch, host, room, type="room_settings", locked=True, password="s3cret")
    state = room.state
    assert state is not None
    assert (state.locked, state.lobby, state.password) == (True, False, "s3cret")
    send(dispatch, host, room, type="room_settings", lobby=True, password="")
    assert (state.locked, state.lobby, state.password) == (True, True, None)
    assert bob.of_type("room_settings")[-1] == {
        "type": "room_settings",
        "by": pid(host),
        "locked": True,
        "lobby": True,
        "password": False,
    }


def test_the_lobby_and_the_end_are_the_doors(dispatch: Dispatch, doors: Doors) -> None:
    room = FakeRoom()
    host = room.join("Hana", role="host")
    send(dispatch, host, room, type="admit", participant_id="w1")
    send(dispatch, host, room, type="deny", participant_id="w2")
    send(dispatch, host, room, type="end_meeting")
    assert doors.calls == [
        ("admit", "r", "w1"),
        ("deny", "r", "w2"),
        ("end_meeting", "r", pid(host)),
    ]


def test_the_hidden_seat_is_nobodys_to_remove_or_mute(dispatch: Dispatch, doors: Doors) -> None:
    room = FakeRoom()
    host = room.join("Hana", role="host")
    worker = FakePeer(Participant("broadcast-1", "broadcast", "viewer"))
    room.clients["broadcast-1"] = worker
    room.hidden.add("broadcast-1")
    for fields in (
        {"type": "remove_participant"},
        {"type": "mute_participant", "kinds": ["audio"]},
    ):
        with pytest.raises(ProtocolError) as refused:
            send(dispatch, host, room, participant_id="broadcast-1", **fields)
        assert refused.value.code == "bad_state"
        assert refused.value.message == "no participant broadcast-1 here"
    assert doors.calls == [] and worker.sent == []
