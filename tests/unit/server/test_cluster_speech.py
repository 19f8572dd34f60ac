"""The cluster-wide speech-worker pool's pure core (server/cluster/speech.py): what a node's
heartbeat says about its caption demand (read by older and newer versions alike), which node a
``parley speech-worker --cluster`` attaches to, and when an idle one moves."""

from __future__ import annotations

import json

from hypothesis import assume, given
from hypothesis import strategies as st

from server.cluster.placement import NodeInfo
from server.cluster.speech import (
    SpeechDemand,
    WorkerKeys,
    WorkerRecord,
    choose_speech_node,
    should_move,
    speech_worker_url,
    worker_id_for,
)


def node(
    node_id: str, speakers: int = 0, *, waiting: int = 0, workers: int = 0, capacity: int = 0
) -> NodeInfo:
    return NodeInfo(
        node_id=node_id,
        address=f"ws://{node_id}.example:8750/ws",
        load=speakers,
        capacity=100,
        rooms=1,
        version="0.1.0",
        speech=SpeechDemand(
            url=f"ws://{node_id}.example:8750/speech-worker",
            speakers=speakers,
            waiting=waiting,
            workers=workers,
            capacity=capacity,
        ),
    )


def bare(node_id: str) -> NodeInfo:
    """A node that takes no remote worker (or an older version)."""
    return NodeInfo(node_id, f"ws://{node_id}.example/ws", 0, 100, 0, "0.1.0")


def test_the_heartbeat_carries_the_demand_and_older_readers_and_writers_still_agree() -> None:
    a = node("a", 3, waiting=1, workers=1, capacity=2)
    assert NodeInfo.from_json(a.to_json()) == a
    # a node of an older version writes no "speech": it takes no cluster worker, still a node
    old = json.loads(a.to_json())
    del old["speech"]
    read = NodeInfo.from_json(json.dumps(old))
    assert read is not None and read.speech is None and read.node_id == "a"
    assert "speech" not in bare("b").to_json()  # and a node without it writes what they wrote
    # an unreadable demand: the node still places rooms, but takes no cluster worker
    for bad in ({"url": "http://x/speech-worker"}, {**a.speech.to_dict(), "speakers": -1}, 7):  # type: ignore[union-attr]
        broken = {**json.loads(a.to_json()), "speech": bad}
        info = NodeInfo.from_json(json.dumps(broken))
        assert info is not None and info.speech is None


def test_the_worker_endpoint_sits_beside_the_signaling_path() -> None:
    assert speech_worker_url("ws://10.0.0.2:8750/ws") == "ws://10.0.0.2:8750/speech-worker"
    assert (
        speech_worker_url("wss://meet.example.org/node/a/ws")
        == "wss://meet.example.org/node/a/speech-worker"
    )


def test_speakers_waiting_for_a_worker_come_first() -> None:
    nodes = [node("busy", 10, workers=1, capacity=2), node("paused", 1, waiting=1)]
    chosen = choose_speech_node(nodes, worker_id="w.1", capacity=2)
    assert chosen is not None and chosen.node_id == "paused"


def test_then_the_most_speakers_per_worker_capacity() -> None:
    nodes = [node("a", 4, workers=2, capacity=8), node("b", 4, workers=1, capacity=2)]
    chosen = choose_speech_node(nodes, worker_id="w.1", capacity=2)
    assert chosen is not None and chosen.node_id == "b"  # 4/4 against 4/10


def test_among_idle_nodes_the_one_with_fewest_workers_then_each_workers_favourite() -> None:
    nodes = [node("a", workers=1, capacity=2), node("b")]
    chosen = choose_speech_node(nodes, worker_id="w.1", capacity=2)
    assert chosen is not None and chosen.node_id == "b"
    # equal nodes: workers spread (rendezvous hashing), and each keeps its choice
    equal = [node(f"n{i}") for i in range(4)]
    picks = {
        choose_speech_node(equal, worker_id=f"w.{i}", capacity=2).node_id  # type: ignore[union-attr]
        for i in range(40)
    }
    assert len(picks) > 1


def test_no_node_takes_workers() -> None:
    assert choose_speech_node([], worker_id="w.1", capacity=2) is None
    assert choose_speech_node([bare("a"), bare("b")], worker_id="w.1", capacity=2) is None


def test_a_node_whose_link_just_failed_is_tried_last() -> None:
    nodes = [node("a", 5, waiting=5), node("b")]
    chosen = choose_speech_node(nodes, worker_id="w.1", capacity=2, avoid={"a"})
    assert chosen is not None and chosen.node_id == "b"
    alone = choose_speech_node(nodes[:1], worker_id="w.1", capacity=2, avoid={"a"})
    assert alone is not None and alone.node_id == "a"  # better than no node at all


def test_an_idle_worker_moves_to_speakers_who_wait() -> None:
    nodes = [node("here", workers=1, capacity=2), node("there", 2, waiting=2)]
    moved = should_move(nodes, current="here", worker_id="w.1", capacity=2)
    assert moved is not None and moved.node_id == "there"


def test_an_idle_worker_moves_only_for_a_much_higher_demand() -> None:
    # here: 2 speakers on 6 (this worker's 2 included) = 0.33; there: 3 on 4+2 = 0.5: stay
    nodes = [node("here", 2, workers=2, capacity=6), node("there", 3, workers=2, capacity=4)]
    assert should_move(nodes, current="here", worker_id="w.1", capacity=2) is None
    # there: 6 on 4+2 = 1.0, three times here's: move
    nodes = [node("here", 2, workers=2, capacity=6), node("there", 6, workers=2, capacity=4)]
    moved = should_move(nodes, current="here", worker_id="w.1", capacity=2)
    assert moved is not None and moved.node_id == "there"


def test_a_worker_stays_when_its_node_is_not_in_the_directory_or_nobody_speaks() -> None:
    assert (
        should_move([node("there", 4, waiting=4)], current="gone", worker_id="w", capacity=2)
        is None
    )
    nodes = [node("here", workers=1, capacity=2), node("there", workers=0)]
    assert should_move(nodes, current="here", worker_id="w", capacity=2) is None


demands = st.builds(
    lambda speakers, waiting, workers, per: (speakers, min(waiting, speakers), workers, per),
    st.integers(0, 40),
    st.integers(0, 40),
    st.integers(0, 8),
    st.integers(1, 8),
)


def directory(specs: list[tuple[int, int, int, int]], extra: int = 0) -> list[NodeInfo]:
    return [
        node(f"n{i}", s, waiting=w, workers=k, capacity=k * per + (extra if i == 0 else 0))
        for i, (s, w, k, per) in enumerate(specs)
    ]


@given(st.lists(demands, min_size=1, max_size=6), st.integers(1, 8), st.randoms())
def test_the_choice_is_a_taking_node_and_does_not_depend_on_the_order(
    specs: list[tuple[int, int, int, int]], capacity: int, rnd: object
) -> None:
    nodes = directory(specs)
    chosen = choose_speech_node(nodes, worker_id="w.1", capacity=capacity)
    assert chosen is not None and chosen in nodes
    shuffled = list(nodes)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert choose_speech_node(shuffled, worker_id="w.1", capacity=capacity) == chosen
    # nobody waits on another node while the chosen one has no one waiting
    if chosen.speech is not None and chosen.speech.waiting == 0:
        assert all(n.speech is None or n.speech.waiting == 0 for n in nodes)


@given(demands, demands, st.integers(1, 8))
def test_a_move_never_invites_the_move_back(
    here: tuple[int, int, int, int], there: tuple[int, int, int, int], capacity: int
) -> None:
    # nobody waits (the ratio rule); the worker is counted in its node's capacity
    here, there = (here[0], 0, *here[2:]), (there[0], 0, *there[2:])
    before = directory([here, there], extra=capacity)
    moved = should_move(before, current="n0", worker_id="w.1", capacity=capacity)
    assume(moved is not None)
    assert moved is not None and moved.node_id == "n1"
    # the next heartbeats: the worker's capacity left n0 and joined n1
    after = [
        node("n0", here[0], workers=here[2], capacity=here[2] * here[3]),
        node("n1", there[0], workers=there[2] + 1, capacity=there[2] * there[3] + capacity),
    ]
    assert should_move(after, current="n1", worker_id="w.1", capacity=capacity) is None


def test_worker_ids_and_records() -> None:
    assert worker_id_for("gpu box/1", 42) == "gpu-box-1.42"
    assert worker_id_for("", 7) == "worker.7"
    assert len(worker_id_for("x" * 200, 123456)) == 64
    record = WorkerRecord("gpu.1", "gpu", "cuda", 8, "a", 3, "0.1.0")
    assert WorkerRecord.from_json(record.to_json()) == record
    assert WorkerRecord.from_json("{}") is None and WorkerRecord.from_json("nope") is None
    keys = WorkerKeys("parley")
    assert (keys.workers, keys.worker("gpu.1")) == (
        "parley:speech-workers",
        "parley:speech-worker:gpu.1",
    )
