"""Room membership state machine (pure)."""

from __future__ import annotations

import itertools

import pytest

from server.rooms import JoinRefusedError, RoomFullError, RoomRegistry


def registry(limit: int = 3) -> RoomRegistry:
    ids = (f"p{i}" for i in itertools.count(1))
    return RoomRegistry(max_participants=limit, new_id=lambda: next(ids))


def test_room_is_created_by_first_join_and_forgotten_when_empty() -> None:
    rooms = registry()
    room, alice, created = rooms.join("r", "Alice")
    assert created and alice.participant_id == "p1" and len(rooms) == 1
    _, bob, created = rooms.join("r", "Bob")
    assert not created
    assert [p.name for p in room.others("p1")] == ["Bob"]
    assert rooms.leave("r", alice.participant_id) is False
    assert rooms.leave("r", bob.participant_id) is True
    assert rooms.get("r") is None and len(rooms) == 0
    assert rooms.leave("r", bob.participant_id) is False


def test_full_room_refuses_and_frees_a_place_on_leave() -> None:
    rooms = registry(limit=2)
    rooms.join("r", "a")
    _, b, _ = rooms.join("r", "b")
    with pytest.raises(RoomFullError):
        rooms.join("r", "c")
    rooms.join("other", "c")  # other rooms are unaffected
    rooms.leave("r", b.participant_id)
    rooms.join("r", "c")


def test_colliding_ids_are_redrawn() -> None:
    ids = iter(["same", "same", "other"])
    rooms = RoomRegistry(max_participants=5, new_id=lambda: next(ids))
    _, a, _ = rooms.join("r", "a")
    _, b, _ = rooms.join("r", "b")
    assert (a.participant_id, b.participant_id) == ("same", "other")


def test_tracks_and_mute_state_show_in_the_wire_form() -> None:
    rooms = registry()
    _, a, _ = rooms.join("r", "a")
    assert rooms.add_track("r", a.participant_id, "t1", "audio", "microphone") is not None
    assert rooms.set_muted("r", a.participant_id, "t1", True)
    assert not rooms.set_muted("r", a.participant_id, "t2", True)
    assert not rooms.set_muted("r", "ghost", "t1", True)
    assert a.to_wire() == {
        "participant_id": "p1",
        "name": "a",
        "role": "participant",
        "tracks": [{"track_id": "t1", "kind": "audio", "source": "microphone", "muted": True}],
        "hand_raised": False,
        "transcription_opt_out": False,
    }
    assert rooms.remove_track("r", a.participant_id, "t1")
    assert not rooms.remove_track("r", a.participant_id, "t1")
    assert rooms.add_track("r", "ghost", "t", "video", "camera") is None


def test_locks_lobbies_and_capacity_decide_admission_without_changing_state() -> None:
    rooms = RoomRegistry(max_participants=2, new_id=iter(f"p{i}" for i in range(99)).__next__)
    assert rooms.admission("r", "participant") == "enter"
    assert rooms.get("r") is None  # asking creates nothing
    _, host, _ = rooms.join("r", "h", "host")
    rooms.configure("r", locked=True)
    with pytest.raises(JoinRefusedError) as info:
        rooms.admission("r", "participant")
    assert info.value.code == "room_locked"
    assert rooms.admission("r", "host") == "enter"
    rooms.configure("r", locked=False, lobby=True)
    assert rooms.admission("r", "viewer") == "lobby"
    waiter = rooms.wait("r", "w", "viewer")
    admitted = rooms.admit("r", waiter.participant_id)
    assert (admitted.participant_id, admitted.role) == (waiter.participant_id, "viewer")
    late = rooms.wait("r", "late", "participant")
    with pytest.raises(RoomFullError):
        rooms.admit("r", late.participant_id)  # full: keeps waiting
    state = rooms.get("r")
    assert state is not None and list(state.waiting) == [late.participant_id]
    assert rooms.stop_waiting("r", late.participant_id) == late
    assert rooms.stop_waiting("r", late.participant_id) is None


def test_open_mode_host_succession_skips_viewers() -> None:
    rooms = registry()
    _, ann, _ = rooms.join("r", "ann", "participant")
    assert rooms.succeed_host("r") is ann and ann.role == "host"
    _, vic, _ = rooms.join("r", "vic", "viewer")
    _, bea, _ = rooms.join("r", "bea", "participant")
    assert rooms.succeed_host("r") is None  # there is a host
    rooms.leave("r", ann.participant_id)
    assert rooms.succeed_host("r") is bea and vic.role == "viewer"
    rooms.leave("r", bea.participant_id)
    assert rooms.succeed_host("r") is None and vic.role == "viewer"


def test_password_is_set_and_cleared_by_configure() -> None:
    rooms = registry()
    rooms.join("r", "h", "host")
    assert rooms.configure("r", password="pw").password == "pw"
    assert rooms.configure("r", lobby=True).password == "pw"
    assert rooms.configure("r", clear_password=True).password is None
    assert rooms.close("r") is not None and rooms.get("r") is None
