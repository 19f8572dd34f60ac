"""Where a room lives in a cluster of Parley nodes (issue 18): the pure core under
:mod:`server.cluster.node`. No I/O, no clock: what the nodes say about themselves comes in as
:class:`NodeInfo`, the answer goes out as :class:`Placement`.

A room lives on one node. Its placement is one Redis key (``<prefix>:room:<name>`` = the node
id; its node refreshes it with each heartbeat, and it outlives the heartbeat key by
:data:`PLACEMENT_TTL_FACTOR`, so that a dead node's rooms are seen as its) that a node claims
atomically (:data:`CLAIM_SCRIPT`) for the least loaded live node
(:func:`choose_node`) when the key is absent or names a node whose heartbeat key expired. A
node that gets a ``join`` for a room placed elsewhere answers ``redirect`` with that node's
address (:func:`placement_of`).

A node whose rooms' media a Janus server forwards (``[media] backend = "janus"``) also writes
that Janus's heartbeat key (``<prefix>:media:<id>``, :class:`MediaNodeInfo`) while Janus
answers; while it does not, the node says ``ready: false`` in its own heartbeat and placement
sends new rooms elsewhere (:meth:`NodeInfo.takes_rooms`)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from .speech import SpeechDemand

T = TypeVar("T")

#: a placement key lives this many heartbeat ttls past its node's last heartbeat
PLACEMENT_TTL_FACTOR = 2

#: node ids: short, printable, no separator of the Redis keys
MAX_NODE_ID_CHARS = 64


class ClusterConfigError(ValueError):
    """A node address or id that cannot work; the message says why."""


def check_node_id(node_id: str) -> str:
    if not node_id or len(node_id) > MAX_NODE_ID_CHARS:
        raise ClusterConfigError(f"node id must have 1 to {MAX_NODE_ID_CHARS} characters")
    if not all(c.isalnum() or c in "-_." for c in node_id):
        raise ClusterConfigError(f"node id {node_id!r}: use letters, digits, '-', '_' and '.' only")
    return node_id


def check_node_address(address: str) -> str:
    """The URL clients reach a node's signaling at: ``ws://`` or ``wss://``, a host, a path
    (``/ws`` directly, or the path a proxy routes to this node)."""
    try:
        parts = urlsplit(address)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError as exc:
        raise ClusterConfigError(f"{address!r} is not a URL ({exc})") from None
    if parts.scheme not in ("ws", "wss"):
        raise ClusterConfigError(f"{address!r}: the node address must be a ws:// or wss:// URL")
    if not parts.hostname:
        raise ClusterConfigError(f"{address!r}: no host")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ClusterConfigError(f"{address!r}: no user, password, query or fragment")
    if not parts.path.startswith("/"):
        raise ClusterConfigError(f"{address!r}: give the signaling path, e.g. /ws")
    return address


def socket_origin(address: str) -> str:
    """``ws://h:p/x`` -> ``ws://h:p``: what a page's Content-Security-Policy ``connect-src``
    names to let the page open that socket."""
    parts = urlsplit(address)
    return f"{parts.scheme}://{parts.netloc}"


def page_origin(address: str) -> str:
    """The origin of the pages a node serves beside its socket (``ws`` -> ``http``,
    ``wss`` -> ``https``): a page of one node may open the socket of another."""
    parts = urlsplit(address)
    scheme = "https" if parts.scheme == "wss" else "http"
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    default = 443 if scheme == "https" else 80
    port = parts.port
    return f"{scheme}://{host}" + ("" if port is None or port == default else f":{port}")


def audience_socket_url(address: str, room: str) -> str:
    """The audience socket of ``room`` on the node at ``address`` (PROTOCOL.md "Audience"):
    ``wss://meet.example.org/node/a/ws`` -> ``wss://meet.example.org/node/a/live/<room>/audience``
    (room names are ``[A-Za-z0-9_-]``: nothing to quote)."""
    parts = urlsplit(address)
    path = parts.path.removesuffix("/").removesuffix("/ws")
    return f"{parts.scheme}://{parts.netloc}{path}/live/{room}/audience"


def http_base(address: str) -> str:
    """The node's HTTP base from its socket address: ``wss://meet.example.org/node/a/ws`` ->
    ``https://meet.example.org/node/a`` (what a proxy routes to that node); its documents
    (``/live/<room>/...``) are under it."""
    parts = urlsplit(address)
    scheme = "https" if parts.scheme == "wss" else "http"
    path = parts.path.removesuffix("/").removesuffix("/ws")
    return f"{scheme}://{parts.netloc}{path}"


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """What a node says about itself in its heartbeat key (JSON)."""

    node_id: str
    address: str
    #: participants in its rooms now
    load: int
    #: participants it takes (``[cluster] capacity``)
    capacity: int
    rooms: int
    version: str
    #: False while the media server this node drives does not answer: it takes no new rooms
    #: (a heartbeat without the field, from an older node, reads True)
    ready: bool = True
    #: the id of the media node (Janus) it drives ("": it forwards media itself)
    media: str = ""
    #: its caption demand, where remote speech workers connect (:mod:`.speech`); None: it
    #: takes none (captions off, no worker secret, or a node of a version before this field)
    speech: SpeechDemand | None = None

    def to_json(self) -> str:
        data: dict[str, object] = {
            "id": self.node_id,
            "address": self.address,
            "load": self.load,
            "capacity": self.capacity,
            "rooms": self.rooms,
            "version": self.version,
            "ready": self.ready,
            "media": self.media,
        }
        if self.speech is not None:
            data["speech"] = self.speech.to_dict()
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> NodeInfo | None:
        """None for a value this version cannot read (another program's key, a newer layout
        without these fields): such a node is ignored, never trusted half-read."""
        try:
            data: Any = json.loads(text)
            info = cls(
                node_id=str(data["id"]),
                address=str(data["address"]),
                load=int(data["load"]),
                capacity=int(data["capacity"]),
                rooms=int(data["rooms"]),
                version=str(data["version"]),
                ready=data.get("ready", True),
                media=str(data.get("media", "")),
                # optional (older nodes omit it); unreadable: the node takes no speech worker
                speech=SpeechDemand.from_dict(data["speech"]) if "speech" in data else None,
            )
            check_node_id(info.node_id)
            check_node_address(info.address)
            if not isinstance(info.ready, bool):
                raise TypeError("ready must be true or false")
        except (ValueError, TypeError, KeyError, AttributeError):
            return None
        return info

    @property
    def full(self) -> bool:
        return self.load >= self.capacity

    @property
    def takes_rooms(self) -> bool:
        """Whether placement may send a new room here: ready, not full."""
        return self.ready and self.capacity > 0 and not self.full


def expect_one_more(node: NodeInfo, *, new_room: bool) -> NodeInfo:
    """``node`` as it will be once a join this node sent there arrives (its next heartbeat
    says so for sure; until then placement counts it)."""
    return dataclasses.replace(node, load=node.load + 1, rooms=node.rooms + int(new_room))


def choose_node(nodes: Iterable[NodeInfo], *, prefer: str) -> NodeInfo | None:
    """The node a new room goes to: the least loaded live node (participants over capacity)
    that takes rooms (not full, its media server answering); a tie goes to ``prefer`` (the
    asking node: no redirect), then to the lowest id (every node picks the same). None when no
    node takes rooms."""
    open_nodes = [n for n in nodes if n.takes_rooms]
    if not open_nodes:
        return None
    return min(open_nodes, key=lambda n: (n.load / n.capacity, n.node_id != prefer, n.node_id))


@dataclass(frozen=True, slots=True)
class Placement:
    """The answer for one join: ``here`` (this node holds the room), or the node to send the
    client to (``node_id``, ``address``)."""

    node_id: str
    address: str
    here: bool
    #: this node took the room over from a node whose heartbeat had stopped
    took_over: bool = False


def placement_of(
    owner: str, owner_info: NodeInfo | None, *, me: NodeInfo, previous: str | None
) -> Placement | None:
    """What the claim script's answer means for this node: ``owner`` holds the room now
    (``previous``: who held it before the claim, None if nobody). None when the owner's
    address is unknown (its key vanished between the claim and the read: ask again)."""
    took_over = previous is not None and previous != owner
    if owner == me.node_id:
        return Placement(me.node_id, me.address, here=True, took_over=took_over)
    if owner_info is None:
        return None
    return Placement(owner, owner_info.address, here=False, took_over=took_over)


def live_heartbeats(
    values: Sequence[tuple[str, str | bytes | None]],
    parse: Callable[[str | bytes], T | None],
    id_of: Callable[[T], str],
) -> tuple[list[T], list[str]]:
    """``(id, heartbeat value)`` pairs as read from Redis -> (the live ones, parsed; ids whose
    heartbeat expired, cannot be read or names another id: to forget)."""
    live: list[T] = []
    gone: list[str] = []
    for key_id, value in values:
        info = None if value is None else parse(value)
        if info is None or id_of(info) != key_id:
            gone.append(key_id)
        else:
            live.append(info)
    return live, gone


def live_nodes(
    values: Sequence[tuple[str, str | bytes | None]],
) -> tuple[list[NodeInfo], list[str]]:
    """The Parley nodes' heartbeats -> (live nodes, ids to forget)."""
    return live_heartbeats(values, NodeInfo.from_json, lambda n: n.node_id)


#: KEYS[1] the room's placement key; ARGV: candidate id, placement ttl ms, heartbeat key prefix, the
#: asking node's id. Returns {owner, owner's heartbeat value or false, previous owner or false}.
#: The room is (re)placed on the candidate (the asking node if the candidate's heartbeat expired
#: since it was read) when nobody holds it or its holder's heartbeat expired: one atomic step, so
#: two nodes racing for a room agree on one.
CLAIM_SCRIPT = """
local owner = redis.call('GET', KEYS[1])
if owner then
  local info = redis.call('GET', ARGV[3] .. owner)
  if info then return {owner, info, owner} end
end
local candidate = ARGV[1]
if redis.call('EXISTS', ARGV[3] .. candidate) == 0 then candidate = ARGV[4] end
redis.call('SET', KEYS[1], candidate, 'PX', ARGV[2])
return {candidate, redis.call('GET', ARGV[3] .. candidate), owner}
"""

#: KEYS[1] this node's heartbeat key, KEYS[2] the set of node ids; ARGV: node id, heartbeat
#: ttl ms, heartbeat value, placement ttl ms, then the placement keys of its live rooms, '--',
#: the placement keys of its closed rooms. Refreshes the heartbeat and the live rooms'
#: placements (re-placing one that expired meanwhile on this node), deletes the closed rooms'
#: placements that are still this node's, and returns the live rooms another node holds now
#: (this node lost them).
HEARTBEAT_SCRIPT = """
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
local lost = {}
local closing = false
for i = 5, #ARGV do
  local key = ARGV[i]
  if key == '--' then
    closing = true
  else
    local owner = redis.call('GET', key)
    if closing then
      if owner == ARGV[1] then redis.call('DEL', key) end
    elseif owner == ARGV[1] then
      redis.call('PEXPIRE', key, ARGV[4])
    elseif not owner then
      redis.call('SET', key, ARGV[1], 'PX', ARGV[4])
    else
      table.insert(lost, key)
    end
  end
end
return lost
"""

#: KEYS[1] this node's heartbeat key, KEYS[2] the set of node ids; ARGV: node id, then the
#: placement keys of its rooms. A node that stops on purpose: its rooms are free at once.
LEAVE_SCRIPT = """
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
for i = 2, #ARGV do
  if redis.call('GET', ARGV[i]) == ARGV[1] then redis.call('DEL', ARGV[i]) end
end
return 1
"""


@dataclass(frozen=True, slots=True)
class Keys:
    """The Redis keys of one cluster (``[cluster] key_prefix``): one Redis may serve several."""

    prefix: str

    @property
    def nodes(self) -> str:
        return f"{self.prefix}:nodes"

    @property
    def node_prefix(self) -> str:
        return f"{self.prefix}:node:"

    def node(self, node_id: str) -> str:
        return f"{self.node_prefix}{node_id}"

    def room(self, room: str) -> str:
        return f"{self.prefix}:room:{room}"

    def snapshot(self, room: str, kind: str) -> str:
        return f"{self.prefix}:snapshot:{kind}:{room}"

    def room_of(self, key: str) -> str:
        return key.removeprefix(f"{self.prefix}:room:")

    @property
    def media_nodes(self) -> str:
        return f"{self.prefix}:media_nodes"

    @property
    def media_node_prefix(self) -> str:
        return f"{self.prefix}:media:"

    def media_node(self, media_id: str) -> str:
        return f"{self.media_node_prefix}{media_id}"


def default_node_id(address: str) -> str:
    """A node id from its address (``ws://10.0.0.2:8750/ws`` -> ``10.0.0.2-8750``)."""
    parts = urlsplit(address)
    raw = parts.netloc + ("" if parts.path in ("", "/", "/ws") else parts.path)
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in raw).strip("-")
    return check_node_id(cleaned[:MAX_NODE_ID_CHARS] or "node")
