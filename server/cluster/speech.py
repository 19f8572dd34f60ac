"""The speech-worker pool across a cluster's nodes: the pure core under
:mod:`server.cluster.speech_worker` (``parley speech-worker --cluster redis://…``). No I/O, no
clock: the nodes' caption demand comes in as :class:`SpeechDemand` (a field of each node's
heartbeat, :class:`~server.cluster.placement.NodeInfo`), the answer is a node.

A node that accepts remote speech workers (captions on, ``[captions] worker_secret_file`` set)
publishes with each heartbeat where workers connect and what it needs: its captioned speakers
(``speakers``; ``waiting``: those with no worker) and the workers serving it (``workers`` up,
their summed ``capacity`` in speakers). A cluster worker attaches to the node that needs it
most (:func:`choose_speech_node`); when idle, it moves to a node whose speakers per unit of
worker capacity are much higher (:func:`should_move`).

Each cluster worker also registers itself (:class:`WorkerRecord`, a key that expires), so
that operators see the cluster-wide pool (``parley workers --cluster``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

#: where a node's remote speech workers connect, beside its signaling path
SPEECH_WORKER_PATH = "/speech-worker"
#: an idle worker moves when another node's speakers per worker capacity (counting this worker)
#: is at least this many times its own node's
MOVE_RATIO = 2.0
#: worker ids: short, printable, no separator of the Redis keys
MAX_WORKER_ID_CHARS = 64


def speech_worker_url(address: str) -> str:
    """A node's speech-worker endpoint from its signaling address: ``wss://h/node/a/ws`` ->
    ``wss://h/node/a/speech-worker`` (a proxy that routes ``/node/a/`` to the node routes both)."""
    parts = urlsplit(address)
    path = parts.path.removesuffix("/").removesuffix("/ws") + SPEECH_WORKER_PATH
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


@dataclass(frozen=True, slots=True)
class SpeechDemand:
    """A node's caption demand and speech-worker supply, as its heartbeat says (JSON object
    ``speech``; absent: the node takes no remote worker)."""

    #: the node's speech-worker endpoint (``ws://`` or ``wss://``)
    url: str
    #: speakers whose audio is captioned now (placed on a worker or waiting for one)
    speakers: int
    #: of those, speakers with no worker up to serve them (captions paused for them)
    waiting: int
    #: speech workers up on the node (local and remote)
    workers: int
    #: the speakers those workers serve in real time, summed
    capacity: int

    def to_dict(self) -> dict[str, object]:
        return {
            "url": self.url,
            "speakers": self.speakers,
            "waiting": self.waiting,
            "workers": self.workers,
            "capacity": self.capacity,
        }

    @classmethod
    def from_dict(cls, data: Any) -> SpeechDemand | None:
        """None for anything this version cannot read (the node is then no candidate)."""
        try:
            demand = cls(
                url=str(data["url"]),
                speakers=int(data["speakers"]),
                waiting=int(data["waiting"]),
                workers=int(data["workers"]),
                capacity=int(data["capacity"]),
            )
        except (ValueError, TypeError, KeyError):
            return None
        counts = (demand.speakers, demand.waiting, demand.workers, demand.capacity)
        if min(counts) < 0 or not demand.url.startswith(("ws://", "wss://")):
            return None
        return demand

    def need(self, extra_capacity: int = 0) -> float:
        """Speakers per unit of worker capacity, with ``extra_capacity`` more (a worker that
        would join); 0 without speakers, infinite with speakers and no capacity at all."""
        capacity = self.capacity + extra_capacity
        if self.speakers == 0:
            return 0.0
        return float("inf") if capacity <= 0 else self.speakers / capacity


class SpeechNode(Protocol):
    """What the choice needs of a node's heartbeat (:class:`~.placement.NodeInfo` has it)."""

    @property
    def node_id(self) -> str: ...
    @property
    def speech(self) -> SpeechDemand | None: ...


N = TypeVar("N", bound=SpeechNode)


def _affinity(worker_id: str, node_id: str) -> int:
    """Rendezvous hashing: among equally needy nodes each worker has its own favourite, so that
    workers starting together spread over the nodes instead of all picking the lowest id."""
    digest = hashlib.blake2b(f"{worker_id}\0{node_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _rank(node: SpeechNode, worker_id: str, capacity: int) -> tuple[bool, float, int, int]:
    assert node.speech is not None
    demand = node.speech
    return (
        demand.waiting > 0,
        demand.need(capacity),
        -demand.capacity,
        _affinity(worker_id, node.node_id),
    )


def candidates(nodes: Iterable[N]) -> list[N]:
    """The live nodes that take remote speech workers."""
    return [n for n in nodes if n.speech is not None]


def choose_speech_node(
    nodes: Sequence[N],
    *,
    worker_id: str,
    capacity: int,
    avoid: Iterable[str] = (),
) -> N | None:
    """The node a worker of ``capacity`` speakers attaches to: the one that needs it most —
    speakers waiting for a worker first, then the most speakers per worker capacity once it
    joins, then the least capacity already there, then this worker's own favourite (stable,
    different for each worker). Nodes in ``avoid`` (its link to them just failed) only when no
    other takes workers. None when no live node takes remote workers."""
    avoided = set(avoid)
    pool = candidates(nodes)
    preferred = [n for n in pool if n.node_id not in avoided] or pool
    if not preferred:
        return None
    return max(preferred, key=lambda n: _rank(n, worker_id, capacity))


def should_move(
    nodes: Sequence[N],
    *,
    current: str,
    worker_id: str,
    capacity: int,
    ratio: float = MOVE_RATIO,
) -> N | None:
    """Where an idle worker attached to node ``current`` should go, or None to stay. It moves
    when another node has speakers waiting for a worker and its own node has none waiting, or
    when another node's speakers per worker capacity (this worker counted there) is at least
    ``ratio`` times its own node's (counted here) and strictly higher, so that a move never
    invites the move back. The caller asks only when this worker serves no speaker (a move
    then splits no utterance)."""
    here = next((n for n in nodes if n.node_id == current), None)
    if here is None or here.speech is None:
        return None  # its node is not in the directory: the link decides
    others = [n for n in candidates(nodes) if n.node_id != current]
    best = choose_speech_node(others, worker_id=worker_id, capacity=capacity)
    if best is None or best.speech is None or best.speech.speakers == 0:
        return None
    if best.speech.waiting > 0 and here.speech.waiting == 0:
        return best
    # this worker is counted in its node's capacity once the node's heartbeat says so
    need_here = here.speech.need(max(0, capacity - here.speech.capacity))
    need_there = best.speech.need(capacity)
    if need_there > need_here and need_there >= ratio * need_here:
        return best
    return None


def worker_id_for(name: str, pid: int) -> str:
    """A cluster worker's id: its name (letters, digits, ``-_.``; others become ``-``) and its
    process id, so that two workers of one name on two machines do not share a key."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip("-") or "worker"
    suffix = f".{pid}"
    return cleaned[: MAX_WORKER_ID_CHARS - len(suffix)] + suffix


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """What a cluster worker says about itself in Redis (``<prefix>:speech-worker:<id>``, a
    key that expires unless refreshed): for operators, never for placement."""

    worker_id: str
    name: str
    device: str
    capacity: int
    #: the node it serves now ("" while it looks for one)
    node: str
    #: speakers it serves now
    speakers: int
    version: str

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.worker_id,
                "name": self.name,
                "device": self.device,
                "capacity": self.capacity,
                "node": self.node,
                "speakers": self.speakers,
                "version": self.version,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> WorkerRecord | None:
        try:
            data: Any = json.loads(text)
            return cls(
                worker_id=str(data["id"]),
                name=str(data["name"]),
                device=str(data["device"]),
                capacity=int(data["capacity"]),
                node=str(data["node"]),
                speakers=int(data["speakers"]),
                version=str(data["version"]),
            )
        except (ValueError, TypeError, KeyError):
            return None


@dataclass(frozen=True, slots=True)
class WorkerKeys:
    """The Redis keys of a cluster's speech workers (``[cluster] key_prefix``)."""

    prefix: str

    @property
    def workers(self) -> str:
        return f"{self.prefix}:speech-workers"

    def worker(self, worker_id: str) -> str:
        return f"{self.prefix}:speech-worker:{worker_id}"
