"""Who may join (server.admission.Admission): the checks in PROTOCOL.md's order, on a real
RoomRegistry with injected clocks. No event loop, no socket."""

from __future__ import annotations

import json
from typing import Any

import pytest

from server.admission import Admission, Ticket
from server.auth import Grant
from server.protocol import Join, ProtocolError, parse_client_message
from server.rooms import RoomRegistry
from server.settings import load_settings


class Clock:
    def __init__(self, now_s: float) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


def admission(**limits: Any) -> tuple[Admission, RoomRegistry, Clock, Clock]:
    settings = load_settings(
        None, auth={"mode": "open", "room_passwords": {"vault": "opensesame"}}, limits=limits
    )
    registry = RoomRegistry(max_participants=2)
    clock, wall = Clock(0.0), Clock(1_700_000_000.0)
    doors = Admission(settings=settings, registry=registry, clock=clock, wall_clock=wall)
    return doors, registry, clock, wall


def join(**fields: Any) -> Join:
    msg = parse_client_message(json.dumps({"type": "join", "name": "Ann", "room": "r", **fields}))
    assert isinstance(msg, Join)
    return msg


def refusal(doors: Admission, msg: Join, *, conn: str = "c1", address: str = "10.0.0.1") -> str:
    with pytest.raises(ProtocolError) as refused:
        doors.check(msg, connection_id=conn, address=address)
    return refused.value.code


def test_an_open_join_passes_as_a_participant() -> None:
    doors, *_ = admission()
    ticket = doors.check(join(client_id="browser-1"), connection_id="c1", address="a")
    assert ticket == Ticket("r", "Ann", "participant", ticket.seat)
    assert ticket.seat.removal_key == "client:browser-1" and ticket.seat.token_seat is None


def test_password_guessing_backs_the_guesser_off_and_never_the_room() -> None:
    doors, *_ = admission(join_burst=1, credential_failures_free=2)
    for _ in range(3):  # two free, the third starts the backoff
        assert refusal(doors, join(room="vault", password="guess")) == "wrong_password"
    # the guesser (this connection, and this address) waits now, even with the right password
    assert refusal(doors, join(room="vault", password="opensesame")) == "rate_limited"
    assert refusal(doors, join(room="vault"), conn="c2") == "rate_limited"
    # the room's join bucket (one join) was not charged by the guesses: someone else gets in
    doors.check(join(room="vault", password="opensesame"), connection_id="c3", address="b")
    assert refusal(doors, join(room="vault", password="opensesame"), address="c") == "rate_limited"


def test_checks_run_in_the_documented_order() -> None:
    doors, *_ = admission()
    # a token on a server without a key is a credential failure, before anything else
    assert refusal(doors, join(token="x.y.z", role="viewer", publish=["audio"])) == "token_invalid"
    assert (
        refusal(doors, join(room="vault", role="viewer", publish=["audio"])) == "password_required"
    )
    assert refusal(doors, join(role="viewer", publish=["audio"])) == "forbidden"
    assert refusal(doors, join(publish=["audio", "audio"])) == "bad_message"


def test_a_removed_seat_is_refused_until_the_ban_ends() -> None:
    doors, _, _, wall = admission()
    ticket = doors.check(join(client_id="browser-1"), connection_id="c1", address="a")
    doors.refuse("r", ticket.seat)
    assert refusal(doors, join(client_id="browser-1")) == "removed"
    doors.check(join(client_id="browser-2"), connection_id="c1", address="a")  # not recognised
    doors.check(join(client_id="browser-1", room="other"), connection_id="c1", address="a")
    wall.now_s += 3600.0
    doors.check(join(client_id="browser-1"), connection_id="c1", address="a")


def test_under_the_lock_lock_capacity_lobby_and_new_rooms() -> None:
    doors, registry, clock, _ = admission(max_rooms=1, rooms_created_per_address_per_minute=2)
    ticket = doors.check(join(), connection_id="c1", address="a")
    assert doors.decide(ticket, None, address="a", live_rooms=0) == "enter"
    registry.join("r", "Ann", "host")
    registry.configure("r", lobby=True)
    assert doors.decide(ticket, None, address="a", live_rooms=1) == "lobby"
    host = Ticket("r", "Hana", "host", ticket.seat)
    assert doors.decide(host, None, address="a", live_rooms=1) == "enter"  # hosts pass
    registry.configure("r", locked=True)
    with pytest.raises(ProtocolError) as refused:
        doors.decide(ticket, None, address="a", live_rooms=1)
    assert refused.value.code == "room_locked"
    registry.configure("r", locked=False, lobby=False, password="late")  # set meanwhile
    with pytest.raises(ProtocolError) as refused:
        doors.decide(ticket, None, address="a", live_rooms=1)
    assert refused.value.code == "password_required"
    registry.join("r", "Bob")
    with pytest.raises(ProtocolError) as refused:
        doors.decide(host, None, address="a", live_rooms=1)
    assert refused.value.code == "room_full"  # the limit holds for hosts too
    other = Ticket("new", "Ann", "participant", ticket.seat)
    with pytest.raises(ProtocolError) as refused:
        doors.decide(other, None, address="a", live_rooms=1)
    assert refused.value.code == "too_many_rooms"
    assert doors.decide(other, None, address="a", live_rooms=0) == "enter"
    with pytest.raises(ProtocolError) as refused:
        doors.decide(other, None, address="a", live_rooms=0)
    assert refused.value.code == "rate_limited" and refused.value.details["retry_after_ms"] > 0
    clock.now_s += 60.0
    assert doors.decide(other, None, address="a", live_rooms=0) == "enter"


class Passes:
    """Stands in for the audience's stage passes (the real ones: server/audience/stage.py)."""

    def __init__(self, valid: dict[str, str | None]) -> None:
        self.valid = valid

    def redeem_stage_pass(self, room: str, stage_pass: str) -> Grant | None:
        if stage_pass not in self.valid:
            return None
        name = self.valid[stage_pass]
        return Grant(room, "participant", name, 1_700_003_600.0, f"stage:{stage_pass[:4]}")


def test_a_stage_pass_admits_its_viewer_past_lock_and_lobby_but_not_a_full_room() -> None:
    doors, registry, *_ = admission(credential_failures_free=1)
    doors.stage_passes = Passes({"good-pass-000000": "Vera", "anon-pass-000000": None})
    registry.join("vault", "Host", "host")
    state = registry.get("vault")
    assert state is not None
    state.configure(locked=True, lobby=True)
    ticket = doors.check(
        join(room="vault", stage_pass="good-pass-000000", role="viewer"),
        connection_id="c1",
        address="a",
    )
    # no password asked, the token's-name rule applies, a participant whatever `role` said
    assert (ticket.name, ticket.role, ticket.invited) == ("Vera", "participant", True)
    assert ticket.seat.token_seat == "stage:good"
    assert doors.decide(ticket, None, address="a", live_rooms=1) == "enter"
    anon = doors.check(
        join(room="vault", stage_pass="anon-pass-000000"), connection_id="c2", address="b"
    )
    assert anon.name == "Ann"  # an anonymous viewer's own name
    registry.join("vault", "Other", "participant")  # the room is full now (2)
    assert refusal_of_decide(doors, ticket) == "room_full"
    # a dead or forged pass is a failed credential: it starts the backoff
    assert refusal(doors, join(stage_pass="dead-pass-000000")) == "stage_pass_invalid"
    assert refusal(doors, join(stage_pass="dead-pass-000000")) == "stage_pass_invalid"
    assert refusal(doors, join(stage_pass="good-pass-000000")) == "rate_limited"


def test_without_an_audience_no_pass_is_valid() -> None:
    doors, *_ = admission()
    assert refusal(doors, join(stage_pass="good-pass-000000")) == "stage_pass_invalid"


def refusal_of_decide(doors: Admission, ticket: Ticket) -> str:
    with pytest.raises(ProtocolError) as refused:
        doors.decide(ticket, None, address="a", live_rooms=1)
    return refused.value.code
