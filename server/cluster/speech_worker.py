"""``parley speech-worker --cluster redis://…``: one speech worker for a whole cluster, the thin
asyncio shell over :mod:`.speech`.

Every ``interval_s`` it reads the cluster's node directory from Redis (the nodes' heartbeat
keys, with their caption demand) and refreshes its own record there. It serves one node at a
time, over the same link as ``--connect`` (:func:`interpret.remote_worker.serve_url`): the node
that needs it most when it starts, and another live node when its link ends or its node's
heartbeat stops (the node it just lost is tried last for ``avoid_s``). When it has served no
speaker for ``move_after_idle_s`` and another node's demand is much higher
(:func:`.speech.should_move`), it leaves its node for that one (a move then splits no
utterance; the node's pool sees an ordinary worker leave).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from interpret.framing import WireFormatError
from interpret.remote_worker import (
    LinkState,
    RefusedError,
    RemoteWorkerSettings,
    describe,
    serve_url,
)
from interpret.supervisor import SpeechWorkerError

from .. import __version__
from .placement import Keys, NodeInfo, live_nodes
from .speech import (
    WorkerKeys,
    WorkerRecord,
    choose_speech_node,
    should_move,
    worker_id_for,
)

log = logging.getLogger("server.cluster.speech_worker")


class ClusterWorkerError(Exception):
    """The cluster cannot be used at all (a bad Redis URL, Redis unreachable at start)."""


@dataclass(frozen=True, slots=True)
class ClusterWorkerSettings:
    redis_url: str
    #: the cluster's ``[cluster] key_prefix``
    key_prefix: str = "parley"
    #: how often the directory is read and this worker's record refreshed
    interval_s: float = 1.0
    #: this worker's record outlives its last refresh by this much
    record_ttl_s: float = 5.0
    #: a node whose link just ended is chosen again only if no other takes workers, this long
    avoid_s: float = 10.0
    #: move to a needier node after serving no speaker this long (0: never move)
    move_after_idle_s: float = 10.0
    redis_timeout_s: float = 3.0


def open_redis(settings: ClusterWorkerSettings) -> Redis:
    """The cluster's Redis; :class:`ClusterWorkerError` for a URL that cannot be one."""
    url = settings.redis_url
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ClusterWorkerError(f"{url!r}: give the cluster's redis://, rediss:// or unix:// URL")
    try:
        return Redis.from_url(
            url,
            socket_timeout=settings.redis_timeout_s,
            socket_connect_timeout=settings.redis_timeout_s,
            decode_responses=True,
        )
    except ValueError as exc:
        raise ClusterWorkerError(f"{url!r} is not a Redis URL ({exc})") from None


class ClusterSpeechWorker:
    """See the module docstring; :meth:`run` until cancelled or refused."""

    def __init__(
        self,
        worker: RemoteWorkerSettings,
        cluster: ClusterWorkerSettings,
        *,
        redis: Redis,
        ssl_context: ssl.SSLContext | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.worker = worker
        self.cluster = cluster
        self.redis = redis
        self.ssl_context = ssl_context
        self.clock = clock
        self.keys = Keys(cluster.key_prefix)
        self.worker_keys = WorkerKeys(cluster.key_prefix)
        self.worker_id = worker_id_for(worker.name, os.getpid())
        #: node id -> until when it is tried last (its link just ended)
        self._avoid: dict[str, float] = {}
        self._redis_up = True
        self._said_no_node = False
        self._warned_clear: set[str] = set()
        #: the node served now ("" while looking for one), for the record
        self.node = ""
        self.moves = 0

    # -- Redis -----------------------------------------------------------------------------
    async def directory(self) -> list[NodeInfo] | None:
        """The live nodes as their heartbeats say; None when Redis does not answer (logged
        once per outage)."""
        try:
            ids = sorted(str(i) for i in await self.redis.smembers(self.keys.nodes))
            values = await self.redis.mget([self.keys.node(i) for i in ids]) if ids else []
        except (RedisError, OSError) as exc:
            if self._redis_up:
                log.error("redis unreachable: %s (the current link goes on)", exc)
            self._redis_up = False
            return None
        if not self._redis_up:
            log.info("redis reachable again")
        self._redis_up = True
        nodes, _gone = live_nodes(list(zip(ids, values, strict=True)))
        return nodes

    async def register(self, speakers: int) -> None:
        """Refresh this worker's record (who it is, which node it serves)."""
        record = WorkerRecord(
            worker_id=self.worker_id,
            name=self.worker.name,
            device=self.worker.device,
            capacity=self.worker.capacity,
            node=self.node,
            speakers=speakers,
            version=__version__,
        )
        ttl_ms = int(self.cluster.record_ttl_s * 1000)
        with contextlib.suppress(RedisError, OSError):  # directory() says when Redis is down
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(self.worker_keys.worker(self.worker_id), record.to_json(), px=ttl_ms)
                pipe.sadd(self.worker_keys.workers, self.worker_id)
                await pipe.execute()

    async def unregister(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.delete(self.worker_keys.worker(self.worker_id))
                pipe.srem(self.worker_keys.workers, self.worker_id)
                await pipe.execute()

    # -- life ------------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve the cluster until cancelled; raises :class:`RefusedError` when a node refuses
        the secret, :class:`ClusterWorkerError` when Redis cannot be reached at start."""
        try:
            await self.redis.ping()
        except (RedisError, OSError) as exc:
            raise ClusterWorkerError(
                f"cannot reach the cluster's Redis at {self.cluster.redis_url}: {exc}"
            ) from None
        log.info("cluster speech worker %s (capacity %d)", self.worker_id, self.worker.capacity)
        failures = 0
        chosen: NodeInfo | None = None
        try:
            while True:
                if chosen is None:
                    chosen = await self._choose()
                    if chosen is None:
                        await self.register(0)
                        await asyncio.sleep(self.cluster.interval_s)
                        continue
                target, chosen = chosen, None
                state = LinkState()
                try:
                    chosen = await self._serve(target, state)
                except (RefusedError, ClusterWorkerError):
                    raise
                except SpeechWorkerError as exc:
                    if not exc.retryable:
                        raise
                    log.error("the worker could not start: %s", exc)
                except (OSError, TimeoutError, WireFormatError, ConnectionError) as exc:
                    log.warning("link to node %s failed: %s", target.node_id, exc)
                except Exception as exc:  # noqa: BLE001 - a closed link (websockets' ConnectionClosed)
                    log.warning("link to node %s ended: %s", target.node_id, describe(exc))
                self.node = ""
                if chosen is not None:  # a move: straight there
                    failures = 0
                    continue
                self._avoid[target.node_id] = self.clock() + self.cluster.avoid_s
                failures = 1 if state.connected else failures + 1
                await asyncio.sleep(min(self.worker.max_backoff_s, 0.25 * 2.0 ** min(failures, 5)))
        finally:
            with contextlib.suppress(Exception):
                await self.unregister()

    async def _choose(self) -> NodeInfo | None:
        nodes = await self.directory()
        if nodes is None:
            return None
        now = self.clock()
        self._avoid = {n: t for n, t in self._avoid.items() if t > now}
        target = choose_speech_node(
            nodes, worker_id=self.worker_id, capacity=self.worker.capacity, avoid=self._avoid
        )
        if target is None:
            if not self._said_no_node:
                log.warning(
                    "no live node takes speech workers (%d live node(s); a node takes them with"
                    " captions on and [captions] worker_secret_file set): waiting",
                    len(nodes),
                )
            self._said_no_node = True
            return None
        self._said_no_node = False
        assert target.speech is not None
        d = target.speech
        log.info(
            "chose node %s (speakers %d, waiting %d, workers %d, capacity %d)",
            target.node_id,
            d.speakers,
            d.waiting,
            d.workers,
            d.capacity,
        )
        return target

    async def _serve(self, target: NodeInfo, state: LinkState) -> NodeInfo | None:
        """Serve ``target`` until its link ends (raises what ended it; None when it ended
        cleanly) or its heartbeat stops (None), or this worker moves (the node to go to)."""
        assert target.speech is not None
        url = target.speech.url
        if url.startswith("ws://") and url not in self._warned_clear:
            self._warned_clear.add(url)
            log.warning("node %s takes workers on ws://: the secret and audio go in clear", url)
        self.node = target.node_id
        link = asyncio.create_task(
            serve_url(url, self.worker, ssl_context=self.ssl_context, state=state),
            name=f"speech-link-{target.node_id}",
        )
        idle_since: float | None = None
        try:
            while True:
                done, _ = await asyncio.wait([link], timeout=self.cluster.interval_s)
                if done:
                    link.result()  # raises what ended the link
                    log.info("link to node %s closed", target.node_id)
                    return None
                await self.register(len(state.speakers))
                nodes = await self.directory()
                if nodes is None:
                    continue
                if target.node_id not in {n.node_id for n in nodes}:
                    log.warning("node %s stopped heartbeating: leaving it", target.node_id)
                    return None
                now = self.clock()
                if state.speakers or not state.serving:
                    idle_since = None
                    continue
                idle_since = now if idle_since is None else idle_since
                after = self.cluster.move_after_idle_s
                if after <= 0 or now - idle_since < after:
                    continue
                there = should_move(
                    nodes,
                    current=target.node_id,
                    worker_id=self.worker_id,
                    capacity=self.worker.capacity,
                )
                if there is not None:
                    self.moves += 1
                    log.info("idle: moving from node %s to node %s", target.node_id, there.node_id)
                    return there
        finally:
            if not link.done():
                link.cancel()
            try:
                await link
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # this worker stops (not only its link)
            except Exception:  # noqa: BLE001 - raised above already, or cut short on purpose
                pass


async def read_workers(redis: Redis, key_prefix: str) -> list[WorkerRecord]:
    """The cluster's registered speech workers (``parley workers --cluster``), by id."""
    keys = WorkerKeys(key_prefix)
    ids = sorted(str(i) for i in await redis.smembers(keys.workers))
    values = await redis.mget([keys.worker(i) for i in ids]) if ids else []
    records: list[WorkerRecord] = []
    gone: list[str] = []
    for worker_id, value in zip(ids, values, strict=True):
        record = None if value is None else WorkerRecord.from_json(value)
        if record is None:
            gone.append(worker_id)
        else:
            records.append(record)
    if gone:
        await redis.srem(keys.workers, *gone)
    return records
