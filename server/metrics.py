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
    from media.tap import SpeakerAudioQueue

    from .captions import CaptionService
    from .signaling import SignalingServer

log = structlog.get_logger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
KINDS = ("audio", "video")
LOOP_LAG_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: reasons always exported (0 until they happen), see interpret.commit_policy
ASR_SUPPRESSED_REASONS = (
    "context_empty",
    "context_short",
    "interim_mismatch",
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
) -> LiveState:
    """Read every part once (media stats are awaited: a media worker process answers them)."""
    state = LiveState(ready=ready, rooms=len(signaling.rooms))
    per_room: dict[object, Mapping[str, Mapping[str, int]]] = {}
    for live in list(signaling.rooms.values()):
        state.participants += len(live.clients)
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
        suppressed = CounterMetricFamily(
            "parley_asr_suppressed",
            "Caption text the recognizer's guards changed, dropped or decoded again (repeated"
            " n-grams, a final unlike its interims, a short tail with no words of its own)",
            labels=["reason"],
        )
        for reason in sorted({*ASR_SUPPRESSED_REASONS, *s.asr_suppressed}):
            suppressed.add_metric([reason], s.asr_suppressed.get(reason, 0))
        yield suppressed

    def describe(self) -> Iterable[Metric]:
        return []  # collected live; nothing to check at registration


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
