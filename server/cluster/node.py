"""This node's membership of the cluster: the thin asyncio shell over :mod:`.placement`.

Every ``heartbeat_interval_s`` it writes its heartbeat key (address, load, capacity, version;
expires after ``node_ttl_s``), refreshes the placement keys of its live rooms, deletes those of
the rooms that closed, and reads the other nodes' heartbeats (the directory placement chooses
from). A ``join`` for a room that is not live here asks :meth:`ClusterNode.place`: one Redis
script claims the room for the least loaded live node, or answers the node that holds it.

A node that drives a Janus server (``[media] backend = "janus"``) asks it ``info`` at each
heartbeat (:class:`MediaLink`, bounded by half the interval). While Janus answers, the node
writes Janus's own heartbeat key (:class:`.media.MediaNodeInfo`: address without secrets, load,
streams, capacity, Janus's version, this node as its driver); when it does not, the node deletes
that key (it would expire after ``node_ttl_s`` anyway if the node died too) and says
``ready: false`` in its own heartbeat, so that placement sends new rooms elsewhere; the next
answer makes it ready again.

When Redis cannot be reached, the rooms that are live here go on (their participants are
here); joins into other rooms are refused with ``cluster_unavailable`` (and ``retry_after_ms``)
until Redis answers again; the heartbeat says so in the log once per outage.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from .. import __version__
from ..protocol import ProtocolError
from ..settings import ClusterSettings
from .media import MediaNodeInfo, MediaStatus, live_media_nodes, media_node_id
from .placement import (
    CLAIM_SCRIPT,
    HEARTBEAT_SCRIPT,
    LEAVE_SCRIPT,
    PLACEMENT_TTL_FACTOR,
    Keys,
    NodeInfo,
    choose_node,
    default_node_id,
    expect_one_more,
    live_nodes,
    page_origin,
    placement_of,
    socket_origin,
)
from .speech import SpeechDemand

log = structlog.get_logger(__name__)

#: how long a room's snapshot outlives its last write (a day of meetings)
SNAPSHOT_TTL_S = 86_400
#: node addresses remembered for the origin check (oldest forgotten first)
KNOWN_ADDRESSES = 256
#: how long a client waits before joining again when the cluster cannot place its room
RETRY_AFTER_MS = 1000


@dataclass(slots=True)
class ClusterStats:
    """Counts for /metrics (no room names)."""

    redirects: int = 0
    #: rooms this node took over from a node whose heartbeat had stopped
    takeovers: int = 0
    #: live rooms another node claimed while this one could not heartbeat
    lost_rooms: int = 0
    redis_errors: int = 0
    redis_up: bool = False
    #: the live nodes as last read (this one included)
    nodes: list[NodeInfo] = field(default_factory=list)
    #: the live media nodes (Janus servers) as last read
    media_nodes: list[MediaNodeInfo] = field(default_factory=list)
    #: the media server this node drives answered its last probe (None: it drives none)
    media_up: bool | None = None


@dataclass(frozen=True, slots=True)
class MediaLink:
    """The media server this node drives: its URL (secrets are stripped before it is shown)
    and its probe, which raises when the server does not answer."""

    url: str
    probe: Callable[[float], Awaitable[MediaStatus]]


@dataclass(frozen=True, slots=True)
class NodeLoad:
    """What this node holds now: participants, and the names of its live rooms."""

    participants: int
    rooms: list[str]
    #: its caption demand for the cluster's speech workers (None: it takes no remote worker)
    speech: SpeechDemand | None = None


def cluster_node(
    settings: ClusterSettings, *, load: Callable[[], NodeLoad], media: MediaLink | None = None
) -> ClusterNode:
    """This node's membership as ``[cluster]`` configures it (nothing is connected yet);
    ``media``: the Janus it drives, if any."""
    return ClusterNode(
        redis=Redis.from_url(
            settings.redis_url,
            socket_timeout=settings.redis_timeout_s,
            socket_connect_timeout=settings.redis_timeout_s,
            decode_responses=True,
        ),
        keys=Keys(settings.key_prefix),
        node_id=settings.node_id,
        address=settings.node_address,
        capacity=settings.capacity,
        version=__version__,
        heartbeat_interval_s=settings.heartbeat_interval_s,
        node_ttl_s=settings.node_ttl_s,
        load=load,
        media=media,
    )


class ClusterNode:
    """Implements :class:`server.membership.RoomPlacement` for the membership."""

    def __init__(
        self,
        *,
        redis: Redis,
        keys: Keys,
        node_id: str,
        address: str,
        capacity: int,
        version: str,
        heartbeat_interval_s: float,
        node_ttl_s: float,
        load: Callable[[], NodeLoad],
        media: MediaLink | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.node_id = node_id
        self.address = address
        self.capacity = capacity
        self.version = version
        self.interval_s = heartbeat_interval_s
        self.ttl_ms = int(node_ttl_s * 1000)
        self.placement_ttl_ms = self.ttl_ms * PLACEMENT_TTL_FACTOR
        self._load = load
        self.stats = ClusterStats()
        self._media = media
        #: the media node's id in the directory ("": none)
        self.media_id = "" if media is None else media_node_id(media.url)
        #: a live room another node took: (room, its node id, its address); set by the
        #: composition root (the membership sends the room's clients there)
        self.on_lost: Callable[[str, str, str], None] = lambda room, node, address: None
        #: rooms that closed here since the last heartbeat (their placement is deleted then)
        self._closed: set[str] = set()
        #: room snapshots to write (None: delete) at the next heartbeat, the latest per (room,
        #: kind): bounded by the rooms here times the kinds (the glossary, the audience board)
        self._snapshots: dict[tuple[str, str], str | None] = {}
        self._claim = redis.register_script(CLAIM_SCRIPT)
        self._heartbeat = redis.register_script(HEARTBEAT_SCRIPT)
        self._leave = redis.register_script(LEAVE_SCRIPT)
        self._task: asyncio.Task[None] | None = None
        self._registered = False
        self._left = False
        #: every node address seen, the latest last (bounded: KNOWN_ADDRESSES): pages a node
        #: served stay open after it died, and may open the other nodes' sockets
        self._known: dict[str, None] = {}

    # -- what the node says about itself ---------------------------------------------------------
    def me(self) -> NodeInfo:
        load = self._load()
        return NodeInfo(
            node_id=self.node_id,
            address=self.address,
            load=load.participants,
            capacity=self.capacity,
            rooms=len(load.rooms),
            version=self.version,
            ready=self.stats.media_up is not False,
            media=self.media_id,
            speech=load.speech,
        )

    def known_addresses(self) -> list[str]:
        """The addresses of the live nodes and of those seen before (dead ones' pages are
        still open in browsers: their origins may open this node's socket)."""
        return [self.address, *self._known]

    def page_origins(self) -> frozenset[str]:
        """The origins of the pages of the cluster's nodes, live or seen before: they may open
        this node's socket (a client sent on by ``redirect``, or reconnecting after its node
        died)."""
        return frozenset(page_origin(a) for a in self.known_addresses())

    def socket_origins(self) -> list[str]:
        """What this node's pages may connect to besides their own origin: the live nodes'
        sockets, and their HTTP origins (a room's audience documents on its node; the ``307``
        of ``/live/`` goes there) (``connect-src`` of the Content-Security-Policy)."""
        addresses = self.addresses()
        return sorted({socket_origin(a) for a in addresses} | {page_origin(a) for a in addresses})

    def addresses(self) -> list[str]:
        """The live nodes' addresses, this one first (clients try them when theirs is gone)."""
        others = [n.address for n in self.stats.nodes if n.node_id != self.node_id]
        return [self.address, *sorted(set(others))]

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self, *, default_address: str) -> None:
        """Register (one heartbeat, which must reach Redis), then heartbeat in the background.
        ``default_address``: this node's address when none is configured (and its id then)."""
        if not self.address:
            self.address = default_address
        if not self.node_id:
            self.node_id = default_node_id(self.address)
        await self.beat()
        self._registered = True
        self._task = asyncio.get_running_loop().create_task(self._run(), name="cluster-heartbeat")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.beat()
            except (RedisError, OSError) as exc:
                self._redis_failed("heartbeat", exc)
            except Exception:  # a bug must not stop the heartbeat: the node would look dead
                log.exception("heartbeat failed", node=self.node_id)

    async def beat(self) -> None:
        """One heartbeat: the media server's answer, this node's key, its rooms' placements,
        the media server's key, the directory."""
        status = await self._probe_media()
        load = self._load()
        me = self.me()
        closed = sorted(self._closed - set(load.rooms))
        args = [self.node_id, str(self.ttl_ms), me.to_json(), str(self.placement_ttl_ms)]
        args += [self.keys.room(r) for r in load.rooms]
        args += ["--", *(self.keys.room(r) for r in closed)]
        lost = await self._heartbeat(
            keys=[self.keys.node(self.node_id), self.keys.nodes], args=args
        )
        self._closed.difference_update(closed)
        await self._flush_snapshots()
        if self._media is not None:
            await self._write_media(status)
        ids = sorted(str(i) for i in await self.redis.smembers(self.keys.nodes))
        values = await self.redis.mget([self.keys.node(i) for i in ids]) if ids else []
        nodes, gone = live_nodes(list(zip(ids, values, strict=True)))
        if gone:
            await self.redis.srem(self.keys.nodes, *gone)
        self._redis_back()
        self.stats.nodes = nodes
        for node in nodes:
            self._known.pop(node.address, None)
            self._known[node.address] = None
        while len(self._known) > KNOWN_ADDRESSES:
            del self._known[next(iter(self._known))]  # the longest unseen
        await self._read_media()
        for key in lost:
            owner = str(await self.redis.get(key) or "")
            self.stats.lost_rooms += 1
            log.warning("room taken over by another node", node=self.node_id, owner=owner)
            address = next((n.address for n in nodes if n.node_id == owner), None)
            if address is not None:
                self.on_lost(self.keys.room_of(key), owner, address)

    # -- the media server this node drives -------------------------------------------------------
    async def _probe_media(self) -> MediaStatus | None:
        """The media server's answer (None: it did not answer, or this node drives none);
        bounded by half the interval, so that the heartbeat stays on time."""
        if self._media is None:
            return None
        try:
            status = await self._media.probe(self.interval_s / 2)
        except Exception as exc:  # a boundary: whatever failed, the server did not answer
            if self.stats.media_up is not False:
                log.error("media server not answering", media=self.media_id, error=str(exc))
            self.stats.media_up = False
            return None
        if self.stats.media_up is False:
            log.info("media server answering again", media=self.media_id)
        self.stats.media_up = True
        return status

    async def _write_media(self, status: MediaStatus | None) -> None:
        assert self._media is not None
        key = self.keys.media_node(self.media_id)
        if status is None:  # not answering: out of the directory now, not in node_ttl_s
            await self.redis.delete(key)
            return
        info = MediaNodeInfo.of(
            status, address=self._media.url, driver=self.node_id, capacity=self.capacity
        )
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(key, info.to_json(), px=self.ttl_ms)
            pipe.sadd(self.keys.media_nodes, self.media_id)
            await pipe.execute()

    async def _read_media(self) -> None:
        ids = sorted(str(i) for i in await self.redis.smembers(self.keys.media_nodes))
        values = await self.redis.mget([self.keys.media_node(i) for i in ids]) if ids else []
        media, gone = live_media_nodes(list(zip(ids, values, strict=True)))
        if gone:
            await self.redis.srem(self.keys.media_nodes, *gone)
        self.stats.media_nodes = media

    async def leave(self) -> None:
        """Stop heartbeating and free this node's rooms at once (a node stopping on purpose:
        its clients reconnect and the next join places each room anew). Idempotent."""
        if self._left or not self._registered:
            self._left = True
            return
        self._left = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        rooms = [self.keys.room(r) for r in {*self._load().rooms, *self._closed}]
        try:
            await self._flush_snapshots()  # the node that takes a room over finds its glossary
            if self._media is not None:  # nobody drives it now
                await self.redis.delete(self.keys.media_node(self.media_id))
            await self._leave(
                keys=[self.keys.node(self.node_id), self.keys.nodes], args=[self.node_id, *rooms]
            )
        except (RedisError, OSError) as exc:
            self._redis_failed("leave", exc)

    async def aclose(self) -> None:
        await self.leave()
        await self.redis.aclose()

    # -- placement -------------------------------------------------------------------------------
    async def place(self, room: str) -> tuple[str, str] | None:
        """Where ``room`` lives: None here (it was free, or its node died and this node took it
        over), else ``(node id, address)`` to redirect the client to. Raises
        :class:`ProtocolError` ``cluster_unavailable`` when Redis does not answer or every node
        is full."""
        for _ in range(2):  # the owner's key may vanish between the claim and its read: again
            me = self.me()
            directory = [n for n in self.stats.nodes if n.node_id != self.node_id] + [me]
            chosen = choose_node(directory, prefer=self.node_id)
            if chosen is None:
                raise ProtocolError(
                    "cluster_unavailable",
                    "no node of this cluster takes new rooms now (full, or its media server "
                    "is not answering); retry later",
                    "join",
                    retry_after_ms=RETRY_AFTER_MS * 5,
                )
            try:
                owner, owner_value, previous = await self._claim(
                    keys=[self.keys.room(room)],
                    args=[
                        chosen.node_id,
                        str(self.placement_ttl_ms),
                        self.keys.node_prefix,
                        self.node_id,
                    ],
                )
            except (RedisError, OSError) as exc:
                self._redis_failed("claim", exc)
                raise ProtocolError(
                    "cluster_unavailable",
                    "the cluster cannot place this room now; retry later",
                    "join",
                    retry_after_ms=RETRY_AFTER_MS,
                ) from None
            self._redis_back()
            info = NodeInfo.from_json(owner_value) if owner_value else None
            placement = placement_of(str(owner), info, me=me, previous=previous or None)
            if placement is None:
                continue
            if placement.took_over:
                self.stats.takeovers += 1
                log.info("room placed anew", node=self.node_id, on=placement.node_id)
            if placement.here:
                return None
            self.stats.redirects += 1
            # the directory's loads are as old as the last heartbeat: count this join on its
            # node now, so that rooms made faster than heartbeats do not all go to one node
            self.stats.nodes = [
                expect_one_more(n, new_room=not previous) if n.node_id == placement.node_id else n
                for n in self.stats.nodes
            ]
            return placement.node_id, placement.address
        raise ProtocolError(
            "cluster_unavailable",
            "the room's node vanished; retry",
            "join",
            retry_after_ms=RETRY_AFTER_MS,
        )

    # -- room snapshots (what outlives a dead node: the glossary) ----------------------------
    def save(self, room: str, kind: str, value: str | None) -> None:
        """Keep ``value`` in Redis for the node that may take ``room`` over (written with the
        next heartbeat; None deletes it)."""
        self._snapshots[(room, kind)] = value

    async def load(self, room: str, kind: str) -> str | None:
        try:
            value = await self.redis.get(self.keys.snapshot(room, kind))
        except (RedisError, OSError) as exc:
            self._redis_failed("snapshot", exc)
            return None
        return None if value is None else str(value)

    async def _flush_snapshots(self) -> None:
        pending, self._snapshots = self._snapshots, {}
        if not pending:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for (room, kind), value in pending.items():
                    key = self.keys.snapshot(room, kind)
                    if value is None:
                        pipe.delete(key)
                    else:
                        pipe.set(key, value, ex=SNAPSHOT_TTL_S)
                await pipe.execute()
        except BaseException:
            self._snapshots = {**pending, **self._snapshots}  # the next heartbeat tries again
            raise

    async def holder(self, room: str) -> NodeInfo | None:
        """The live node that holds ``room`` when it is another one (read only: nothing is
        claimed); None when it is this one, nobody, or Redis does not answer (then this node
        answers for itself)."""
        try:
            owner = await self.redis.get(self.keys.room(room))
        except (RedisError, OSError) as exc:
            self._redis_failed("holder", exc)
            return None
        if not owner or owner == self.node_id:
            return None
        return next((n for n in self.stats.nodes if n.node_id == owner), None)

    def closed(self, room: str) -> None:
        """The room's last participant left here: its placement is deleted at the next
        heartbeat (bounded: at most one entry per room this node held)."""
        self._closed.add(room)

    # -- Redis's health, logged once per outage ----------------------------------------------------
    def _redis_failed(self, what: str, exc: BaseException) -> None:
        self.stats.redis_errors += 1
        if self.stats.redis_up or self.stats.redis_errors == 1:
            log.error("redis unreachable", node=self.node_id, during=what, error=str(exc))
        self.stats.redis_up = False

    def _redis_back(self) -> None:
        if not self.stats.redis_up and self.stats.redis_errors:
            log.info("redis reachable again", node=self.node_id)
        self.stats.redis_up = True
