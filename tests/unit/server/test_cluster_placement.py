"""The cluster's pure core (issue 18, server/cluster/placement.py): which node a new room goes
to, what a claim's answer means, which heartbeats count, and the addresses pages may use."""

from __future__ import annotations

import pytest

from server.cluster.placement import (
    ClusterConfigError,
    Keys,
    NodeInfo,
    check_node_address,
    check_node_id,
    choose_node,
    default_node_id,
    expect_one_more,
    http_base,
    live_nodes,
    page_origin,
    placement_of,
    socket_origin,
)


def node(node_id: str, load: int, capacity: int = 100) -> NodeInfo:
    return NodeInfo(
        node_id=node_id,
        address=f"ws://{node_id}.example:8750/ws",
        load=load,
        capacity=capacity,
        rooms=1,
        version="0.1.0",
    )


def test_a_new_room_goes_to_the_least_loaded_node() -> None:
    nodes = [node("a", 40), node("b", 10), node("c", 30)]
    chosen = choose_node(nodes, prefer="a")
    assert chosen is not None and chosen.node_id == "b"


def test_load_is_relative_to_capacity() -> None:
    nodes = [node("small", 10, capacity=20), node("big", 50, capacity=200)]
    chosen = choose_node(nodes, prefer="small")
    assert chosen is not None and chosen.node_id == "big"  # 25 % beats 50 %


def test_a_tie_goes_to_the_asking_node_then_the_lowest_id() -> None:
    nodes = [node("a", 5), node("b", 5), node("c", 5)]
    assert choose_node(nodes, prefer="c") == nodes[2]  # no redirect when it is as good
    assert choose_node(nodes, prefer="z") == nodes[0]  # every node picks the same one


def test_joins_sent_to_a_node_count_before_its_next_heartbeat() -> None:
    a, b = node("a", 10), node("b", 9)
    b = expect_one_more(b, new_room=True)
    assert (b.load, b.rooms) == (10, 2)
    b = expect_one_more(b, new_room=False)
    chosen = choose_node([a, b], prefer="z")
    assert chosen is not None and chosen.node_id == "a"  # b's expected load is higher now


def test_full_nodes_get_no_new_room() -> None:
    assert choose_node([node("a", 100), node("b", 100)], prefer="a") is None
    chosen = choose_node([node("a", 100), node("b", 99)], prefer="a")
    assert chosen is not None and chosen.node_id == "b"


def test_heartbeat_values_round_trip_and_bad_ones_are_dropped() -> None:
    a = node("a", 3)
    assert NodeInfo.from_json(a.to_json()) == a
    live, gone = live_nodes(
        [
            ("a", a.to_json()),
            ("b", None),  # expired
            ("c", "not json"),
            ("d", node("e", 1).to_json()),  # a value under another node's key
            (
                "f",
                '{"id": "f", "address": "http://f/ws", "load": 0, "capacity": 1, "rooms": 0,'
                ' "version": "x"}',
            ),  # not a socket address
        ]
    )
    assert live == [a]
    assert gone == ["b", "c", "d", "f"]


def test_what_a_claim_means_for_this_node() -> None:
    me, other = node("a", 1), node("b", 1)
    here = placement_of("a", me, me=me, previous=None)
    assert here is not None and here.here and not here.took_over
    there = placement_of("b", other, me=me, previous="b")
    assert there is not None and not there.here and there.address == other.address
    assert not there.took_over
    taken = placement_of("a", me, me=me, previous="dead")
    assert taken is not None and taken.here and taken.took_over
    assert placement_of("b", None, me=me, previous=None) is None  # ask again


@pytest.mark.parametrize(
    "address",
    ["http://a/ws", "ws://", "ws://a:99999/ws", "ws://u:p@a/ws", "ws://a/ws?x=1", "ws://a"],
)
def test_bad_node_addresses_are_refused_with_the_reason(address: str) -> None:
    with pytest.raises(ClusterConfigError):
        check_node_address(address)


def test_node_ids() -> None:
    assert check_node_id("node-a_1.x") == "node-a_1.x"
    for bad in ("", "a:b", "a b", "x" * 65):
        with pytest.raises(ClusterConfigError):
            check_node_id(bad)
    assert default_node_id("ws://10.0.0.2:8750/ws") == "10.0.0.2-8750"
    assert default_node_id("wss://meet.example.org/node/a/ws") == "meet.example.org-node-a-ws"


def test_origins_of_node_addresses() -> None:
    assert page_origin("ws://10.0.0.2:8750/ws") == "http://10.0.0.2:8750"
    assert page_origin("wss://Meet.Example.org:443/n/a/ws") == "https://meet.example.org"
    assert page_origin("ws://[::1]:80/ws") == "http://[::1]"
    assert socket_origin("wss://meet.example.org/n/a/ws") == "wss://meet.example.org"
    assert http_base("wss://meet.example.org/node/a/ws") == "https://meet.example.org/node/a"
    assert http_base("ws://10.0.0.2:8750/ws") == "http://10.0.0.2:8750"


def test_keys() -> None:
    keys = Keys("parley")
    assert keys.node("a") == "parley:node:a"
    assert keys.room_of(keys.room("my room")) == "my room"
    assert keys.nodes == "parley:nodes"


def test_cluster_settings_refuse_what_cannot_work() -> None:
    from server.settings import ConfigError, load_settings

    assert not load_settings().cluster.enabled  # a single node unless configured
    on = load_settings(cluster={"redis_url": "redis://10.0.0.9:6379/0"})
    assert on.cluster.enabled and on.cluster.node_ttl_s >= 2 * on.cluster.heartbeat_interval_s
    cases = {
        "must be a redis://": {"cluster": {"redis_url": "http://redis:6379"}},
        "at least 2 x cluster.heartbeat_interval_s": {
            "cluster": {"heartbeat_interval_s": 2.0, "node_ttl_s": 3.0}
        },
        "the node address must be a ws://": {"cluster": {"node_address": "http://a:8750/ws"}},
        "set cluster.node_address": {
            "server": {"host": "0.0.0.0"},
            "auth": {"mode": "open"},
            "cluster": {"redis_url": "redis://r:6379"},
        },
        "node id": {"cluster": {"node_id": "a:b"}},
    }
    for expected, overrides in cases.items():
        with pytest.raises(ConfigError, match=expected):
            load_settings(**overrides)


def test_the_cluster_examples_are_valid_configurations() -> None:
    from pathlib import Path

    from server.settings import load_settings

    examples = Path(__file__).resolve().parents[3] / "config" / "cluster"
    seen = {}
    for name in ("parley-node-a.toml", "parley-node-b.toml"):
        settings = load_settings(examples / name)
        assert settings.cluster.enabled
        seen[settings.cluster.node_id] = settings
    assert set(seen) == {"a", "b"}
    assert {s.media.backend for s in seen.values()} == {"aiortc", "janus"}
    # one public origin: every node's address is under it, so pages may open any node's socket
    assert {page_origin(s.cluster.node_address) for s in seen.values()} == {
        s.server.public_url for s in seen.values()
    }
    nginx = (examples / "nginx-cluster.conf").read_text()
    for s in seen.values():
        path = s.cluster.node_address.removeprefix("wss://meet.example.org").removesuffix("ws")
        assert f"location {path} {{\n            proxy_pass http://{s.server.host}:8750/;" in nginx
