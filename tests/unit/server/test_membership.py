"""Joining and leaving (server.membership) on fakes: a media backend that answers at once, a
feature that records its hooks, members that record what they were sent. The coroutines never
wait, so no event loop runs them."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest

from server import protocol
from server.admission import Admission
from server.context import Peer, RoomContext
from server.features import BaseFeature
from server.membership import (
    CLOSE_MEETING_ENDED,
    CLOSE_MOVED,
    LiveRoom,
    Membership,
    RedirectedError,
)
from server.outbound import Notice
from server.protocol import ClientMessage, ProtocolError
from server.rooms import Participant, RoomRegistry
from server.settings import load_settings

from .fakes import run


class Media:
    """A media room and backend that do nothing, at once."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    async def start(self) -> None:
        return None

    async def open_room(self, room_id: str, emit: Any) -> Media:
        self.calls.append(("open", room_id))
        return self

    async def add_peer(self, peer_id: str, publish: Any = ()) -> None:
        self.calls.append(("add_peer", peer_id))

    async def remove_peer(self, peer_id: str) -> None:
        self.calls.append(("remove_peer", peer_id))

    async def hold_audio(self, subscriber_id: str, publisher_ids: Any) -> None:
        return None

    async def aclose(self) -> None:
        self.calls.append(("close",))


class Member:
    def __init__(self, name: str) -> None:
        self.name = name
        self.connection_id = f"c-{name}"
        self.address = "10.0.0.1"
        self.participant: Participant | None = None
        self.live: LiveRoom | None = None
        self.waiting_in: str | None = None
        self.languages: frozenset[str] = frozenset()
        self.spoken_lang: str | None = None
        self.sent: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None

    def send(self, message: str) -> None:
        self.sent.append(json.loads(message))

    def send_caption(self, message: str, *, final: bool) -> None:
        self.send(message)

    def abort(self, code: str, message: str, close_code: int) -> None:
        self.closed = (close_code, code)

    def close_soon(self, close_code: int, reason: str) -> None:
        self.closed = (close_code, reason)

    def attach(self, live: LiveRoom, participant: Participant) -> None:
        self.live, self.participant, self.waiting_in = live, participant, None

    def wait_in(self, live: LiveRoom, waiter_id: str) -> None:
        self.live, self.waiting_in = live, waiter_id

    def detach(self) -> None:
        self.live, self.participant, self.waiting_in = None, None, None

    def types(self) -> list[str]:
        return [m["type"] for m in self.sent]

    @property
    def pid(self) -> str:
        assert self.participant is not None
        return self.participant.participant_id


class Recorder(BaseFeature):
    """Records the hooks, in order, and greets joiners (as the notice does)."""

    messages: ClassVar[tuple[type[ClientMessage], ...]] = ()

    def __init__(self, log: list[tuple[str, ...]]) -> None:
        self.log = log

    def on_joined(self, room: RoomContext, peer: Peer) -> None:
        assert peer.participant is not None
        self.log.append(("joined", peer.participant.participant_id))
        peer.send(Notice(kind="test", text="").encode())

    async def on_peer_added(self, room: RoomContext, peer: Peer) -> None:
        assert peer.participant is not None
        self.log.append(("peer_added", peer.participant.participant_id))

    async def on_left(self, room: RoomContext, participant_id: str) -> None:
        self.log.append(("left", participant_id))

    async def on_room_closed(self, room: RoomContext) -> None:
        self.log.append(("closed", room.name))


def membership(**auth: Any) -> tuple[Membership, Media, list[tuple[str, ...]]]:
    settings = load_settings(None, auth={"mode": "open", **auth})
    registry = RoomRegistry(max_participants=4)
    media = Media()
    doors = Membership(
        settings=settings,
        media=media,  # type: ignore[arg-type]
        registry=registry,
        admission=Admission(settings=settings, registry=registry),
    )
    log: list[tuple[str, ...]] = []
    doors.features = [Recorder(log), Recorder(log)]  # two features: each hook runs for both
    return doors, media, log


def join(doors: Membership, member: Member, **fields: Any) -> None:
    msg = protocol.parse_client_message(
        json.dumps({"type": "join", "room": "r", "name": member.name, **fields})
    )
    assert isinstance(msg, protocol.Join)
    run(doors.join(member, msg))  # type: ignore[arg-type]


def test_a_joiner_gets_joined_then_the_features_greetings_then_media() -> None:
    doors, media, log = membership()
    ann, bob = Member("Ann"), Member("Bob")
    join(doors, ann)
    assert ann.types()[:3] == ["joined", "notice", "notice"]
    assert ann.sent[0]["role"] == "host"  # open mode: the first joiner hosts
    join(doors, bob)
    assert bob.types()[:3] == ["joined", "notice", "notice"]
    assert ann.types()[-1] == "participant_joined"
    assert log == [
        ("joined", ann.pid),
        ("joined", ann.pid),
        ("peer_added", ann.pid),
        ("peer_added", ann.pid),
        ("joined", bob.pid),
        ("joined", bob.pid),
        ("peer_added", bob.pid),
        ("peer_added", bob.pid),
    ]
    assert media.calls == [("open", "r"), ("add_peer", ann.pid), ("add_peer", bob.pid)]


def test_leaving_runs_the_same_hooks_and_the_last_one_closes_the_room() -> None:
    doors, media, log = membership()
    ann, bob = Member("Ann"), Member("Bob")
    join(doors, ann)
    join(doors, bob)
    live = doors.rooms["r"]
    ann_id, bob_id = ann.pid, bob.pid
    log.clear()
    run(doors.disconnected(ann, live))  # type: ignore[arg-type]
    assert bob.types()[-2:] == ["participant_left", "role_changed"]  # Bob hosts now
    run(doors.disconnected(bob, live))  # type: ignore[arg-type]
    assert log == [("left", ann_id), ("left", ann_id), ("left", bob_id), ("left", bob_id)] + [
        ("closed", "r"),
        ("closed", "r"),
    ]
    assert "r" not in doors.rooms and doors.registry.get("r") is None
    assert media.calls[-3:] == [("remove_peer", ann_id), ("remove_peer", bob_id), ("close",)]


def test_ending_the_meeting_runs_the_same_hooks_in_the_same_order() -> None:
    doors, media, log = membership()
    ann, bob, cy = Member("Ann"), Member("Bob"), Member("Cy")
    join(doors, ann)
    join(doors, bob)
    state = doors.registry.get("r")
    assert state is not None
    state.lobby = True
    join(doors, cy)
    assert cy.types() == ["lobby"] and cy.waiting_in is not None
    ann_id, bob_id = ann.pid, bob.pid
    log.clear()
    run(doors.end_meeting("r", by=ann_id))
    for member in (ann, bob, cy):
        assert member.sent[-1] == {"type": "meeting_ended", "by": ann_id}
        assert member.closed == (CLOSE_MEETING_ENDED, "meeting_ended") and member.live is None
    assert log == [("left", ann_id), ("left", ann_id), ("left", bob_id), ("left", bob_id)] + [
        ("closed", "r"),
        ("closed", "r"),
    ]
    assert media.calls[-1] == ("close",) and "r" not in doors.rooms


def test_the_lobby_admit_deny_and_the_hosts_are_told() -> None:
    doors, _, log = membership()
    ann, bob, cy = Member("Ann"), Member("Bob"), Member("Cy")
    join(doors, ann)
    state = doors.registry.get("r")
    assert state is not None
    state.lobby = True
    join(doors, bob, publish=["audio"])
    join(doors, cy)
    assert bob.types() == ["lobby"] and bob.participant is None
    bob_id, cy_id = bob.sent[0]["participant_id"], cy.sent[0]["participant_id"]
    assert [m["type"] for m in ann.sent[-2:]] == ["lobby_request", "lobby_request"]
    run(doors.admit("r", bob_id))
    assert bob.pid == bob_id and bob.types()[1:4] == ["joined", "notice", "notice"]
    assert ann.sent[-2] == {"type": "lobby_left", "participant_id": bob_id, "reason": "admitted"}
    doors.deny("r", cy_id)
    assert cy.sent[-1]["code"] == "lobby_denied" and cy.live is None
    assert ann.sent[-1] == {"type": "lobby_left", "participant_id": cy_id, "reason": "denied"}
    for waiter in (bob_id, cy_id, "nobody"):
        with pytest.raises(ProtocolError) as refused:
            doors.deny("r", waiter)
        assert refused.value.code == "bad_state"
    assert ("joined", bob_id) in log


def test_the_room_emptying_closes_its_lobby() -> None:
    doors, _, _ = membership()
    ann, bob = Member("Ann"), Member("Bob")
    join(doors, ann)
    state = doors.registry.get("r")
    assert state is not None
    state.lobby = True
    join(doors, bob)
    run(doors.disconnected(ann, doors.rooms["r"]))  # type: ignore[arg-type]
    assert bob.sent[-1]["code"] == "lobby_closed" and bob.live is None


def test_removal_refuses_the_seat_afterwards() -> None:
    doors, _, _ = membership()
    ann, bob = Member("Ann"), Member("Bob")
    join(doors, ann)
    join(doors, bob, client_id="bobs-browser")
    run(doors.expel("r", bob.pid, close_code=4001, reason="removed"))
    assert bob.closed == (4001, "removed") and bob.live is None
    with pytest.raises(ProtocolError) as refused:
        join(doors, Member("Bob"), client_id="bobs-browser")
    assert refused.value.code == "removed"


class Fields(BaseFeature):
    """Adds a field to hosts' ``joined`` (as the audience's moderation link does)."""

    def joined_fields(self, room: RoomContext, participant: Participant) -> dict[str, object]:
        return {"extra": participant.role} if participant.role == "host" else {}


def test_features_add_fields_to_joined() -> None:
    doors, _, _ = membership()
    doors.features = [Fields(), BaseFeature()]
    ann, bob = Member("Ann"), Member("Bob")
    join(doors, ann)
    join(doors, bob)
    assert ann.sent[0]["extra"] == "host"
    assert "extra" not in bob.sent[0]


def test_a_publish_answer_goes_to_its_peer_only() -> None:
    from media.api import PublishAnswer

    doors, _, _ = membership()
    ann, bob = Member("Ann"), Member("Bob")
    join(doors, ann)
    join(doors, bob)
    live = doors.rooms["r"]
    live.on_media_event(PublishAnswer(peer_id=bob.pid, sdp="v=0", revision=2))
    assert bob.sent[-1] == {"type": "publish_answer", "sdp": "v=0", "revision": 2}
    assert "publish_answer" not in ann.types()


class Placement:
    """Where rooms live (issue 18), as a cluster node would answer: here, or another node."""

    def __init__(self, elsewhere: dict[str, tuple[str, str]]) -> None:
        self.elsewhere = elsewhere
        self.asked: list[str] = []
        self.closed_rooms: list[str] = []

    async def place(self, room: str) -> tuple[str, str] | None:
        self.asked.append(room)
        return self.elsewhere.get(room)

    def closed(self, room: str) -> None:
        self.closed_rooms.append(room)


def test_a_room_placed_on_another_node_redirects_the_join_and_changes_nothing() -> None:
    doors, media, log = membership()
    placement = Placement({"r": ("b", "ws://10.0.0.12:8750/ws")})
    doors.placement = placement
    ann = Member("Ann")
    with pytest.raises(RedirectedError) as caught:
        join(doors, ann)
    assert (caught.value.room, caught.value.node_id) == ("r", "b")
    assert caught.value.address == "ws://10.0.0.12:8750/ws"
    assert ann.sent == [] and media.calls == [] and log == [] and doors.rooms == {}


def test_a_room_placed_here_is_asked_once_and_its_closing_frees_it() -> None:
    doors, media, _ = membership()
    placement = Placement({})
    doors.placement = placement
    ann, bob = Member("Ann"), Member("Bob")
    join(doors, ann)
    join(doors, bob)  # live here: the cluster is not asked again
    assert placement.asked == ["r"]
    assert ann.live is not None
    live = ann.live
    run(doors.disconnected(ann, live))  # type: ignore[arg-type]
    assert placement.closed_rooms == []
    run(doors.disconnected(bob, live))  # type: ignore[arg-type]
    assert placement.closed_rooms == ["r"]


def test_a_room_another_node_took_sends_everyone_there() -> None:
    doors, _, _ = membership()
    doors.placement = Placement({})
    ann = Member("Ann")
    join(doors, ann)
    doors.moved("r", "b", "ws://10.0.0.12:8750/ws")
    assert ann.sent[-1] == {
        "type": "redirect",
        "room": "r",
        "node": "b",
        "url": "ws://10.0.0.12:8750/ws",
    }
    assert ann.closed == (CLOSE_MOVED, "moved")
