"""``/metrics``: Prometheus text exposition of one server.

Most numbers are read from the live parts at scrape time (:class:`LiveStateCollector` over a
:class:`LiveState` gathered just before), so no counter is sprinkled over signaling or media
code. Only what must be seen as it happens is observed directly: event-loop lag (a probe task)
and caption latency (a callback of the caption service). The registry is this server's own,
never prometheus-client's global one (two servers in one test process stay apart).

Nothing here carries a room name, a participant name or any text: counts only.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

import structlog
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from . import __version__

if TYPE_CHECKING:
    from interpret.pool import WorkerInfo
    from media.tap import SpeakerAudioQueue

    from .audience.service import AudienceService
    from .captions import CaptionService
    from .cluster.node import ClusterStats
    from .signaling import SignalingServer

log = structlog.get_logger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
KINDS = ("audio", "video")
LOOP_LAG_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: reasons always exported (0 until they happen), see interpret.commit_policy
ASR_SUPPRESSED_REASONS = (
    "context_empty",
    "context_short",
    "decode_mismatch",
    "repeat",
    "repeat_previous",
    "sentence_continued",
    "short_tail",
)
CAPTION_LATENCY_BUCKETS_S = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


@dataclasses.dataclass(slots=True)
class LiveState:
    """What the server looks like right now (gathered on the event loop before a scrape)."""

    ready: bool = False
    rooms: int = 0
    participants: int = 0
    tracks: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    #: kind -> {"frames", "bytes", "dropped"} since this server started (see ForwardTotals)
    forwarded: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    captions_enabled: bool = False
    speech_worker_up: bool = False
    speech_worker_restarts: int = 0
    asr_queue_chunks: int = 0
    asr_dropped_chunks: int = 0
    dropped_interim_captions: int = 0
    #: reason -> captions the speech worker's text guards changed, dropped or decoded again
    asr_suppressed: dict[str, int] = dataclasses.field(default_factory=dict)
    #: audience (issue 16): (text, language) translations asked, items held, refusals by code
    audience_translations: int = 0
    audience_items: int = 0
    audience_translation_jobs: int = 0
    audience_refused: dict[str, int] = dataclasses.field(default_factory=dict)
    #: each speech worker of the pool (no speaker names: counts only)
    speech_workers: list[WorkerInfo] = dataclasses.field(default_factory=list)
    #: this node's part in a cluster (issue 18; None: a single node)
    cluster: ClusterStats | None = None


class ForwardTotals:
    """Process-wide forwarding counters from per-room ones.

    A room's counters are monotonic for its life; they are summed by taking, at each scrape,
    each live room's increase since the previous scrape. What a room forwarded between the last
    scrape and its end is not counted (at most one scrape interval of the room's last moments).
    """

    def __init__(self) -> None:
        self._last: dict[object, dict[str, dict[str, int]]] = {}
        self.totals = {kind: {"frames": 0, "bytes": 0, "dropped": 0} for kind in KINDS}

    def update(self, rooms: Mapping[object, Mapping[str, Mapping[str, int]]]) -> None:
        """``rooms``: room key (unique per room life) -> its ``stats()["forwarded"]``."""
        last: dict[object, dict[str, dict[str, int]]] = {}
        for key, per_kind in rooms.items():
            before = self._last.get(key, {})
            for kind in KINDS:
                counts = per_kind.get(kind, {})
                for name in ("frames", "bytes", "dropped"):
                    now = int(counts.get(name, 0))
                    prev = before.get(kind, {}).get(name, 0)
                    self.totals[kind][name] += now - prev if now >= prev else now
            last[key] = {k: dict(per_kind.get(k, {})) for k in KINDS}
        self._last = last


async def gather_live_state(
    *,
    ready: bool,
    signaling: SignalingServer,
    captions: CaptionService | None,
    speaker_audio: SpeakerAudioQueue | None,
    forward_totals: ForwardTotals,
    audience: AudienceService | None = None,
    cluster: ClusterStats | None = None,
) -> LiveState:
    """Read every part once (media stats are awaited: a media worker process answers them)."""
    state = LiveState(ready=ready, rooms=len(signaling.rooms), cluster=cluster)
    per_room: dict[object, Mapping[str, Mapping[str, int]]] = {}
    for live in list(signaling.rooms.values()):
        state.participants += len(live.clients) - len(live.hidden)
        if live.media is None:
            continue
        try:
            stats = await live.media.stats()
        except Exception as exc:  # noqa: BLE001 - a room closing meanwhile must not fail a scrape
            log.debug("no media stats", room=live.name, error=type(exc).__name__)
            continue
        for publication in stats.get("publications", {}).values():
            kind = publication.get("kind")
            if kind in state.tracks:
                state.tracks[kind] += 1
        per_room[(live.name, id(live.media))] = stats.get("forwarded", {})
    forward_totals.update(per_room)
    state.forwarded = {kind: dict(counts) for kind, counts in forward_totals.totals.items()}
    if speaker_audio is not None:
        state.asr_queue_chunks += len(speaker_audio)
        state.asr_dropped_chunks += speaker_audio.dropped
    if captions is not None:
        worker = captions.worker
        state.captions_enabled = True
        state.speech_worker_up = worker.up
        state.speech_worker_restarts = worker.restarts
        state.asr_queue_chunks += worker.queued_chunks
        state.asr_dropped_chunks += worker.dropped_chunks
        state.dropped_interim_captions = worker.dropped_captions
        state.asr_suppressed = worker.suppressed
        state.speech_workers = worker.workers()
    if audience is not None:
        state.audience_translations = audience.translate_calls
        state.audience_items = sum(len(r.board.items) for r in audience.rooms.values())
        state.audience_refused = dict(audience.refused)
        state.audience_translation_jobs = audience.pending_translations
    return state


class LiveStateCollector(Collector):
    """Turns the latest :class:`LiveState` into metric families at collection time."""

    def __init__(self) -> None:
        self.state = LiveState()

    def collect(self) -> Iterator[Metric]:
        s = self.state
        info = GaugeMetricFamily("parley_build_info", "Parley version", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        yield GaugeMetricFamily("parley_ready", "1 when /readyz answers 200", value=int(s.ready))
        yield GaugeMetricFamily("parley_rooms", "Rooms with participants", value=s.rooms)
        yield GaugeMetricFamily(
            "parley_participants", "Participants in all rooms", value=s.participants
        )
        tracks = GaugeMetricFamily("parley_tracks", "Published tracks", labels=["kind"])
        for kind in KINDS:
            tracks.add_metric([kind], s.tracks.get(kind, 0))
        yield tracks
        for name, key, what in (
            ("parley_forwarded_frames", "frames", "Frames (Opus packets, VP8 pictures) sent"),
            ("parley_forwarded_bytes", "bytes", "Payload bytes sent"),
            ("parley_forward_dropped_frames", "dropped", "Frames dropped for slow subscribers"),
        ):
            family = CounterMetricFamily(name, f"{what} to subscribers", labels=["kind"])
            for kind in KINDS:
                family.add_metric([kind], s.forwarded.get(kind, {}).get(key, 0))
            yield family
        yield GaugeMetricFamily(
            "parley_captions_enabled", "1 when live captions are on", value=int(s.captions_enabled)
        )
        yield GaugeMetricFamily(
            "parley_speech_worker_up",
            "1 while the speech worker process runs with its models loaded",
            value=int(s.speech_worker_up),
        )
        restarts = CounterMetricFamily(
            "parley_worker_restarts",
            "Worker processes started again after dying",
            labels=["worker"],
        )
        restarts.add_metric(["speech"], s.speech_worker_restarts)
        yield restarts
        yield GaugeMetricFamily(
            "parley_asr_queue_depth_chunks",
            "Audio chunks (about 100 ms each) waiting for the speech worker",
            value=s.asr_queue_chunks,
        )
        yield CounterMetricFamily(
            "parley_asr_dropped_chunks",
            "Audio chunks dropped (oldest first) because recognition fell behind",
            value=s.asr_dropped_chunks,
        )
        yield CounterMetricFamily(
            "parley_dropped_interim_captions",
            "Interim captions dropped because nobody read them (finals are never dropped)",
            value=s.dropped_interim_captions,
        )
        yield from _speech_worker_families(s.speech_workers)
        suppressed = CounterMetricFamily(
            "parley_asr_suppressed",
            "Caption text the recognizer's guards changed, dropped or decoded again (repeated"
            " n-grams, a final unlike its interims, a short tail with no words of its own)",
            labels=["reason"],
        )
        for reason in sorted({*ASR_SUPPRESSED_REASONS, *s.asr_suppressed}):
            suppressed.add_metric([reason], s.asr_suppressed.get(reason, 0))
        yield suppressed
        yield CounterMetricFamily(
            "parley_audience_translations",
            "Audience texts translated, counted per target language (grows with languages and"
            " approved questions, not with readers)",
            value=s.audience_translations,
        )
        yield GaugeMetricFamily(
            "parley_audience_items", "Audience questions and comments held", value=s.audience_items
        )
        yield GaugeMetricFamily(
            "parley_audience_translation_jobs",
            "Audience translation jobs queued or running",
            value=s.audience_translation_jobs,
        )
        refused = CounterMetricFamily(
            "parley_audience_refused", "Audience messages refused, by code", labels=["code"]
        )
        for code, count in sorted(s.audience_refused.items()):
            refused.add_metric([code], count)
        yield refused
        if s.cluster is not None:
            yield from _cluster_families(s.cluster)

    def describe(self) -> Iterable[Metric]:
        return []  # collected live; nothing to check at registration


def _cluster_speech_families(c: ClusterStats) -> Iterator[Metric]:
    """The cluster's caption demand and speech workers, per live node that takes remote
    workers (what ``parley speech-worker --cluster`` chooses from)."""
    families = {
        "speakers": GaugeMetricFamily(
            "parley_cluster_node_captioned_speakers",
            "Captioned speakers on each live node",
            labels=["node"],
        ),
        "waiting": GaugeMetricFamily(
            "parley_cluster_node_waiting_speakers",
            "Captioned speakers waiting for a speech worker on each live node",
            labels=["node"],
        ),
        "workers": GaugeMetricFamily(
            "parley_cluster_node_speech_workers",
            "Speech workers up on each live node",
            labels=["node"],
        ),
        "capacity": GaugeMetricFamily(
            "parley_cluster_node_speech_capacity",
            "Speakers the speech workers up on each live node serve",
            labels=["node"],
        ),
    }
    for node in c.nodes:
        if node.speech is not None:
            d = node.speech
            families["speakers"].add_metric([node.node_id], d.speakers)
            families["waiting"].add_metric([node.node_id], d.waiting)
            families["workers"].add_metric([node.node_id], d.workers)
            families["capacity"].add_metric([node.node_id], d.capacity)
    yield from families.values()


def _cluster_families(c: ClusterStats) -> Iterator[Metric]:
    """This node in its cluster, and the live nodes as its last heartbeat read them."""
    yield GaugeMetricFamily(
        "parley_cluster_redis_up", "1 while Redis answered the last command", value=int(c.redis_up)
    )
    yield GaugeMetricFamily("parley_cluster_nodes", "Live nodes of the cluster", value=len(c.nodes))
    rooms = GaugeMetricFamily(
        "parley_cluster_node_rooms", "Rooms on each live node", labels=["node"]
    )
    load = GaugeMetricFamily(
        "parley_cluster_node_load", "Participants on each live node", labels=["node"]
    )
    capacity = GaugeMetricFamily(
        "parley_cluster_node_capacity", "Participants each live node takes", labels=["node"]
    )
    ready = GaugeMetricFamily(
        "parley_cluster_node_ready",
        "1 while a live node takes new rooms (0: its media server is not answering)",
        labels=["node"],
    )
    for node in c.nodes:
        rooms.add_metric([node.node_id], node.rooms)
        load.add_metric([node.node_id], node.load)
        capacity.add_metric([node.node_id], node.capacity)
        ready.add_metric([node.node_id], int(node.ready))
    yield from (rooms, load, capacity, ready)
    yield from _media_node_families(c)
    yield from _cluster_speech_families(c)
    for name, value, what in (
        ("parley_cluster_redirects", c.redirects, "Joins sent on to the room's node"),
        ("parley_cluster_takeovers", c.takeovers, "Rooms placed anew after their node died"),
        ("parley_cluster_lost_rooms", c.lost_rooms, "Live rooms another node took over"),
        ("parley_cluster_redis_errors", c.redis_errors, "Redis commands that failed"),
    ):
        yield CounterMetricFamily(name, what, value=value)


def _media_node_families(c: ClusterStats) -> Iterator[Metric]:
    """The live media nodes (Janus servers) as this node last read them, and whether the one
    this node drives answered its last probe."""
    yield GaugeMetricFamily(
        "parley_cluster_media_nodes",
        "Live media nodes (Janus servers) of the cluster",
        value=len(c.media_nodes),
    )
    if c.media_up is not None:
        yield GaugeMetricFamily(
            "parley_cluster_media_up",
            "1 while the Janus this node drives answered its last probe",
            value=int(c.media_up),
        )
    labels = ["media", "driver", "version"]
    load = GaugeMetricFamily(
        "parley_cluster_media_node_load", "Participants on each live media node", labels=labels
    )
    streams = GaugeMetricFamily(
        "parley_cluster_media_node_streams",
        "Published tracks each live media node forwards",
        labels=labels,
    )
    capacity = GaugeMetricFamily(
        "parley_cluster_media_node_capacity",
        "Participants each live media node takes",
        labels=labels,
    )
    for media in c.media_nodes:
        names = [media.media_id, media.driver, media.version]
        load.add_metric(names, media.load)
        streams.add_metric(names, media.streams)
        capacity.add_metric(names, media.capacity)
    yield from (load, streams, capacity)


#: why a speaker left a worker (interpret.placement.MoveReason, less "placed")
MOVE_REASONS = ("worker_down", "lagging", "balance")


def _speech_worker_families(workers: list[WorkerInfo]) -> Iterator[Metric]:
    """One series per speech worker of the pool (``worker`` = local-N or a remote name)."""
    label = ["worker"]
    yield GaugeMetricFamily(
        "parley_speech_workers_up", "Speech workers up", value=sum(w.up for w in workers)
    )
    info = GaugeMetricFamily(
        "parley_speech_worker_info",
        "A speech worker: kind (local or remote), model, device; 1 while up",
        labels=["worker", "kind", "model", "device"],
    )
    families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {
        "speakers": GaugeMetricFamily(
            "parley_speech_worker_speakers", "Speakers placed on the worker", labels=label
        ),
        "capacity": GaugeMetricFamily(
            "parley_speech_worker_capacity",
            "Speakers the worker serves in real time (its weight in placement)",
            labels=label,
        ),
        "rtf": GaugeMetricFamily(
            "parley_speech_worker_real_time_factor",
            "Decode seconds per second of audio the worker received (last window)",
            labels=label,
        ),
        "busy": GaugeMetricFamily(
            "parley_speech_worker_busy_ratio",
            "Decode seconds per second of wall time (1: the decoder never rests)",
            labels=label,
        ),
        "queue": GaugeMetricFamily(
            "parley_speech_worker_queue_seconds",
            "Audio waiting for the worker, plus how long its last load report is overdue",
            labels=label,
        ),
        "restarts": CounterMetricFamily(
            "parley_speech_worker_restarts",
            "Times the worker process was started again after dying",
            labels=label,
        ),
        "dropped": CounterMetricFamily(
            "parley_speech_worker_dropped_chunks",
            "Audio chunks dropped (oldest first) on the way to the worker",
            labels=label,
        ),
    }
    moves = CounterMetricFamily(
        "parley_speech_worker_moves",
        "Speakers moved off the worker, by reason",
        labels=["worker", "reason"],
    )
    for w in workers:
        info.add_metric([w.worker_id, w.kind, w.model, w.device], int(w.up))
        for key, value in (
            ("speakers", w.speakers),
            ("capacity", w.capacity),
            ("rtf", w.real_time_factor),
            ("busy", w.busy),
            ("queue", w.queue_s),
            ("restarts", w.restarts),
            ("dropped", w.dropped_chunks),
        ):
            families[key].add_metric([w.worker_id], value)
        for reason in sorted({*MOVE_REASONS, *w.moves_out}):
            moves.add_metric([w.worker_id, reason], w.moves_out.get(reason, 0))
    yield info
    yield from families.values()
    yield moves


class ServerMetrics:
    """The server's registry: the live-state collector plus the two observed histograms."""

    def __init__(self, *, loop_lag_interval_s: float) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.live = LiveStateCollector()
        self.registry.register(self.live)
        self.forward_totals = ForwardTotals()
        self.loop_lag = Histogram(
            "parley_event_loop_lag_seconds",
            "How late the event loop runs a timer (work blocking the loop shows here)",
            buckets=LOOP_LAG_BUCKETS_S,
            registry=self.registry,
        )
        self.caption_latency = Histogram(
            "parley_caption_latency_seconds",
            "Final captions: from the end of their audio reaching the server to fan-out",
            buckets=CAPTION_LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self._interval_s = loop_lag_interval_s

    def render(self, state: LiveState) -> bytes:
        self.live.state = state
        return generate_latest(self.registry)

    async def probe_loop_lag(self) -> None:
        """Forever: sleep, and record how much later than asked the loop woke us up."""
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(self._interval_s)
            self.loop_lag.observe(max(0.0, loop.time() - asked - self._interval_s))


def parse_text(text: str) -> dict[str, float]:
    """``name{labels}`` -> value of a text exposition (for tests and `parley` tooling)."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values
