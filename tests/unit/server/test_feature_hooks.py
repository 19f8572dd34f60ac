"""The features' small hooks, on fakes: the Janus engine's publish offers and ``media_engine``
(server.features.media), a host's ``recordings`` (server.features.broadcast), the audience's
``joined`` fields and room closing (server.features.audience), ``captions_status`` for a joiner
while captions are paused (server.features.presence) and for everyone when that changes
(server.features.captions)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from server import protocol
from server.features import Dispatch
from server.features.audience import AudienceFeature
from server.features.broadcast import BroadcastFeature
from server.features.captions import CaptionsFeature
from server.features.media import MediaFeature
from server.features.presence import PresenceFeature
from server.protocol import ProtocolError
from server.settings import load_settings

from .fakes import FakeRoom, run

SETTINGS = load_settings(None)


def parse(**fields: Any) -> protocol.ClientMessage:
    return protocol.parse_client_message(json.dumps(fields))


class JanusRoom:
    """A media room whose publishers offer (media.api.PublisherOffers)."""

    def __init__(self) -> None:
        self.offers: list[tuple[Any, ...]] = []

    async def publish_offer(
        self, peer_id: str, sdp: str, revision: int, sources: Mapping[str, str]
    ) -> None:
        self.offers.append((peer_id, sdp, revision, dict(sources)))

    # the rest of media.api.MediaRoom (never called here)
    async def add_peer(self, peer_id: str, publish: Any = ()) -> None: ...
    async def remove_peer(self, peer_id: str) -> None: ...
    async def publish(self, peer_id: str, kinds: Any, source: Any = None) -> None: ...
    async def unpublish(self, peer_id: str, track_id: str) -> None: ...
    async def answer(self, peer_id: str, sdp: str, revision: int) -> None: ...
    async def hold_audio(self, subscriber_id: str, publisher_ids: Any) -> None: ...
    async def stats(self) -> dict[str, Any]:
        return {}

    async def aclose(self) -> None: ...


OFFER = {"type": "publish_offer", "sdp": "v=0\r\n", "revision": 1, "sources": {"0": "microphone"}}


def test_publish_offers_on_the_janus_engine_only() -> None:
    room = FakeRoom()
    alice = room.join("Alice")
    viewer = room.join("Vic", role="viewer")
    dispatch = Dispatch([MediaFeature(limits=SETTINGS.limits, engine="janus")])
    janus = JanusRoom()
    room.media = janus  # type: ignore[assignment]
    with pytest.raises(ProtocolError) as refused:
        run(dispatch.dispatch(viewer, room, parse(**OFFER)))
    assert refused.value.code == "forbidden"
    run(dispatch.dispatch(alice, room, parse(**OFFER)))
    assert janus.offers == [("p1", "v=0\r\n", 1, {"0": "microphone"})]
    too_long = {**OFFER, "sdp": "m=audio\r\n" * (SETTINGS.limits.max_media_sections + 1)}
    with pytest.raises(ProtocolError) as refused:
        run(dispatch.dispatch(alice, room, parse(**too_long)))
    assert refused.value.code == "bad_message"


def test_the_media_engine_is_in_joined_on_janus_only() -> None:
    room = FakeRoom()
    alice = room.join("Alice")
    assert alice.participant is not None
    janus = MediaFeature(limits=SETTINGS.limits, engine="janus")
    assert janus.joined_fields(room, alice.participant) == {"media_engine": "janus"}
    assert MediaFeature(limits=SETTINGS.limits).joined_fields(room, alice.participant) == {}


class Manager:
    def __init__(self, kept: bool) -> None:
        self.kept = kept

    async def recordings_of(self, room: str) -> tuple[bool, list[dict[str, Any]]]:
        return self.kept, [{"id": "b1"}] if self.kept else []


def test_a_host_asks_for_the_rooms_recordings() -> None:
    room = FakeRoom()
    host = room.join("Hana", role="host")
    alice = room.join("Alice")
    feature = BroadcastFeature(broadcasts=Manager(kept=True), rooms_on_air=[])  # type: ignore[arg-type]
    dispatch = Dispatch([feature])
    run(dispatch.dispatch(host, room, parse(type="recordings")))
    assert host.sent == [{"type": "recordings", "kept": True, "recordings": [{"id": "b1"}]}]
    with pytest.raises(ProtocolError) as refused:
        run(dispatch.dispatch(alice, room, parse(type="recordings")))
    assert refused.value.code == "forbidden"
    off = Dispatch([BroadcastFeature(broadcasts=None, rooms_on_air=[])])
    with pytest.raises(ProtocolError) as refused:
        run(off.dispatch(host, room, parse(type="recordings")))
    assert refused.value.code == "bad_state"


class Audience:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def on_joined(self, name: str, role: str) -> dict[str, str]:
        self.calls.append(("joined", name, role))
        return {"moderate_url": f"/moderate.html?room={name}"} if role == "host" else {}

    def room_closed(self, name: str) -> None:
        self.calls.append(("closed", name))


def test_the_audience_opens_with_the_room_and_closes_with_it() -> None:
    room = FakeRoom()
    host, alice = room.join("Hana", role="host"), room.join("Alice")
    assert host.participant is not None and alice.participant is not None
    audience = Audience()
    feature = AudienceFeature(audience=audience)
    assert feature.joined_fields(room, host.participant) == {
        "moderate_url": "/moderate.html?room=r"
    }
    assert feature.joined_fields(room, alice.participant) == {}
    run(feature.on_room_closed(room))
    assert audience.calls == [
        ("joined", "r", "host"),
        ("joined", "r", "participant"),
        ("closed", "r"),
    ]
    off = AudienceFeature(audience=None)
    assert off.joined_fields(room, host.participant) == {}


class Captions:
    paused = True

    def set_opt_out(self, participant_id: str, opt_out: bool) -> None: ...

    def status_message(self) -> str:
        return json.dumps({"type": "captions_status", "state": "paused" if self.paused else "live"})


def test_a_joiner_hears_that_captions_are_paused_after_the_notice() -> None:
    room = FakeRoom()
    captions = Captions()
    feature = PresenceFeature(retention=SETTINGS.retention, transcriber=captions)
    alice = room.join("Alice")
    feature.on_joined(room, alice)
    assert [m["type"] for m in alice.sent] == ["notice", "captions_status"]
    captions.paused = False
    bob = room.join("Bob")
    feature.on_joined(room, bob)
    assert [m["type"] for m in bob.sent] == ["notice"]


def test_captions_status_goes_to_everyone_in_every_room() -> None:
    one, two = FakeRoom("one"), FakeRoom("two")
    alice, bob = one.join("Alice"), two.join("Bob")
    routing = CaptionsFeature(
        rooms={"one": one, "two": two},
        channels=None,  # type: ignore[arg-type]
        notes=None,  # type: ignore[arg-type]
        service=None,
    )
    routing.tell_everyone('{"type":"captions_status","state":"live"}')
    assert alice.sent == bob.sent == [{"type": "captions_status", "state": "live"}]
