"""Media nodes in the cluster directory and the audience's address (issue 18; pure, no
sockets): a Janus a node drives is shown without secrets, its heartbeat value round-trips and
bad ones are dropped, a node whose Janus does not answer takes no new room, and a room's
audience socket on a node is found from the node's address."""

from __future__ import annotations

import dataclasses
import json

import pytest

from server.cluster.media import (
    MediaNodeInfo,
    MediaStatus,
    live_media_nodes,
    media_address,
    media_node_id,
)
from server.cluster.placement import (
    ClusterConfigError,
    Keys,
    NodeInfo,
    audience_socket_url,
    choose_node,
)


def node(node_id: str, load: int, *, ready: bool = True) -> NodeInfo:
    return NodeInfo(
        node_id=node_id,
        address=f"ws://{node_id}.example:8750/ws",
        load=load,
        capacity=100,
        rooms=1,
        version="0.1.0",
        ready=ready,
        media="janus-10.0.0.20-8188" if not ready else "",
    )


def test_a_node_whose_media_server_does_not_answer_takes_no_new_room() -> None:
    idle_but_down, busy = node("a", 0, ready=False), node("b", 90)
    chosen = choose_node([idle_but_down, busy], prefer="a")
    assert chosen is not None and chosen.node_id == "b"  # busier, but its media answers
    assert choose_node([idle_but_down], prefer="a") is None
    assert not idle_but_down.takes_rooms and busy.takes_rooms
    assert not dataclasses.replace(busy, load=100).takes_rooms  # full


def test_ready_round_trips_and_an_older_nodes_heartbeat_reads_ready() -> None:
    down = node("a", 3, ready=False)
    assert NodeInfo.from_json(down.to_json()) == down
    older = json.loads(node("b", 1).to_json())
    del older["ready"], older["media"]
    read = NodeInfo.from_json(json.dumps(older))
    assert read is not None and read.ready and read.media == ""
    assert NodeInfo.from_json(json.dumps({**older, "ready": "no"})) is None  # never half-read
    assert NodeInfo.from_json("[1, 2]") is None


def test_the_media_address_never_shows_secrets() -> None:
    assert media_address("ws://10.0.0.20:8188") == "ws://10.0.0.20:8188"
    shown = media_address("wss://janus:s3cret@Media.Example.org:8989/janus?apisecret=s3cret#x")
    assert shown == "wss://media.example.org:8989/janus" and "s3cret" not in shown
    assert media_address("ws://[::1]:8188") == "ws://[::1]:8188"
    for bad in ("http://10.0.0.20:8188", "ws://", "ws://h:99999", "10.0.0.20:8188"):
        with pytest.raises(ClusterConfigError):
            media_address(bad)


def test_a_media_node_id_comes_from_its_address() -> None:
    assert media_node_id("ws://10.0.0.20:8188") == "janus-10.0.0.20-8188"
    assert media_node_id("ws://user:pw@10.0.0.20:8188/?x=1") == "janus-10.0.0.20-8188"
    assert media_node_id("wss://m.example.org/janus") == "janus-m.example.org-janus"


def test_a_media_heartbeat_round_trips_and_bad_ones_are_dropped() -> None:
    status = MediaStatus(version="1.1.2", rooms=2, participants=7, streams=9)
    info = MediaNodeInfo.of(
        status, address="ws://u:secret@10.0.0.20:8188", driver="b", capacity=600
    )
    assert info.media_id == "janus-10.0.0.20-8188" and info.address == "ws://10.0.0.20:8188"
    assert (info.load, info.streams, info.rooms, info.version) == (7, 9, 2, "1.1.2")
    value = info.to_json()
    assert "secret" not in value and json.loads(value)["kind"] == "janus"
    assert MediaNodeInfo.from_json(value) == info
    tampered = json.dumps({**json.loads(value), "address": "ws://u:p@10.0.0.20:8188"})
    assert MediaNodeInfo.from_json(tampered) is None
    assert MediaNodeInfo.from_json(json.dumps({**json.loads(value), "driver": "a b"})) is None
    assert MediaNodeInfo.from_json("{}") is None
    live, gone = live_media_nodes(
        [(info.media_id, value), ("janus-x", None), ("janus-y", value), ("janus-z", "nope")]
    )
    assert live == [info] and gone == ["janus-x", "janus-y", "janus-z"]


def test_media_keys_sit_beside_the_nodes() -> None:
    keys = Keys("parley")
    assert keys.media_nodes == "parley:media_nodes"
    assert keys.media_node("janus-1") == "parley:media:janus-1"
    assert keys.media_node("janus-1").startswith(keys.media_node_prefix)


def test_a_rooms_audience_socket_on_a_node() -> None:
    assert audience_socket_url("ws://10.0.0.11:8750/ws", "town") == (
        "ws://10.0.0.11:8750/live/town/audience"
    )
    assert audience_socket_url("wss://meet.example.org/node/a/ws", "town") == (
        "wss://meet.example.org/node/a/live/town/audience"
    )
