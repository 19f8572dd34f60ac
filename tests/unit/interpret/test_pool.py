"""SpeechPool's plumbing with fake workers (pure logic: commands routed, audio replayed on a
move, captions merged); the real processes are in test_pool_workers.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Mapping

import numpy as np
import pytest

from interpret.compose import PipelineConfig
from interpret.frames import AudioChunk, CaptionFrame, Translated, Translation
from interpret.glossary import Glossary
from interpret.placement import PlacementSettings
from interpret.pool import PoolSettings, SpeechPool, auto_workers
from interpret.supervisor import SpeechWorkerError
from interpret.wire import Pong, Ready


class FakeWorker:
    """Records what it is told; captions are put in by the test."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.on_state: Callable[[bool], None] | None = None
        self.restarts = 0
        self.dropped_captions = 0
        self.ready: Ready | None = None
        self.last_pong: Pong | None = None
        self.log: list[tuple[str, object]] = []
        self.audio: list[AudioChunk] = []
        self._up = False
        self._captions: asyncio.Queue[CaptionFrame | BaseException | None] = asyncio.Queue()
        self.queued = 0

    @property
    def up(self) -> bool:
        return self._up

    @property
    def pid(self) -> int | None:
        return 1000 + int(self.name[-1])

    @property
    def queued_chunks(self) -> int:
        return self.queued

    @property
    def dropped_chunks(self) -> int:
        return 0

    @property
    def suppressed(self) -> dict[str, int]:
        return {"repeat": 1}

    def set_up(self, up: bool) -> None:
        self._up = up
        if self.on_state is not None:
            self.on_state(up)

    async def start(self) -> Ready:
        self.ready = Ready(1, 0.1, 0.1)
        self.set_up(True)
        return self.ready

    async def aclose(self) -> None:
        self._up = False
        await self._captions.put(None)

    def add_speaker(self, speaker_id: str, lang: str | None = None) -> None:
        self.log.append(("add", speaker_id))

    def remove_speaker(self, speaker_id: str) -> None:
        self.log.append(("remove", speaker_id))

    def set_glossary(self, speaker_id: str, glossary: Glossary) -> None:
        self.log.append(("glossary", speaker_id))

    def set_speaker_lang(self, speaker_id: str, lang: str | None) -> None:
        self.log.append(("lang", speaker_id))

    def set_targets(self, langs: Iterable[str]) -> None:
        self.log.append(("targets", tuple(langs)))

    def set_speaker_targets(self, speaker_id: str, langs: Iterable[str]) -> None:
        self.log.append(("speaker_targets", (speaker_id, tuple(langs))))

    def push(self, chunk: AudioChunk) -> None:
        self.audio.append(chunk)

    def ping(self) -> int:
        self.last_pong = Pong(1, 0, 0, {}, 0.0)
        return 1

    async def translate(
        self, text: str, source: str, targets: Iterable[str]
    ) -> Mapping[str, Translation]:
        return {t: Translated(f"{self.name}:{text}", "fake") for t in targets}

    async def captions(self) -> AsyncIterator[CaptionFrame]:
        while (item := await self._captions.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    def caption(self, speaker: str, end_s: float, *, final: bool) -> None:
        frame = CaptionFrame(
            caption_id=f"{speaker}-{end_s}",
            speaker_id=speaker,
            lang="en",
            text="…",
            start_s=0.0,
            end_s=end_s,
            is_final=final,
        )
        self._captions.put_nowait(frame)


def _chunk(speaker: str, start_s: float) -> AudioChunk:
    return AudioChunk(speaker, np.zeros(1600, np.float32), start_s)


async def _pool(n: int, **settings: object) -> tuple[SpeechPool, list[FakeWorker]]:
    fakes = [FakeWorker(f"w{i}") for i in range(n)]
    made = iter(fakes)
    pool = SpeechPool(
        PipelineConfig(),
        settings=PoolSettings(workers=n, monitor_interval_s=3600, **settings),  # type: ignore[arg-type]
        worker_factory=lambda: next(made),
    )
    await pool.start()
    return pool, fakes


async def _drain(pool: SpeechPool, into: list[CaptionFrame]) -> None:
    async for frame in pool.captions():
        into.append(frame)


def test_auto_workers() -> None:
    assert auto_workers(1, cores=2) == 2
    assert auto_workers(2, cores=2) == 1
    assert auto_workers(2, cores=1) == 1
    assert auto_workers(1, cores=64) == 8


async def test_speakers_balanced_and_commands_routed_to_their_worker() -> None:
    pool, (a, b) = await _pool(2)
    pool.set_targets(["es"])
    for s in ("r1-x", "r1-y", "r2-x", "r2-y"):
        pool.add_speaker(s, "en")
    assert {w.worker_id: w.speakers for w in pool.workers()} == {"local-0": 2, "local-1": 2}
    on_a = pool.worker_of("r1-x")
    fake = a if on_a == "local-0" else b
    other = b if fake is a else a
    pool.set_speaker_targets("r1-x", ["fr"])
    pool.set_speaker_lang("r1-x", "es")
    pool.set_glossary("r1-x", ())
    pool.push(_chunk("r1-x", 0.0))
    assert ("speaker_targets", ("r1-x", ("fr",))) in fake.log
    assert ("lang", "r1-x") in fake.log and ("glossary", "r1-x") in fake.log
    assert [c.speaker_id for c in fake.audio] == ["r1-x"]
    assert not any(entry[1] == "r1-x" or entry[1] == ("r1-x", ("fr",)) for entry in other.log)
    assert ("targets", ("es",)) in a.log and ("targets", ("es",)) in b.log
    assert pool.suppressed == {"repeat": 2}
    await pool.aclose()


async def test_a_dead_worker_s_speakers_move_with_their_unfinished_audio() -> None:
    pool, (a, b) = await _pool(2)
    frames: list[CaptionFrame] = []
    drain = asyncio.create_task(_drain(pool, frames))
    pool.set_speaker_targets("s", ["es"])  # before add: not remembered (no such speaker)
    pool.add_speaker("s", "en")
    pool.set_speaker_targets("s", ["es"])
    victim, heir = (a, b) if pool.worker_of("s") == "local-0" else (b, a)
    for i in range(30):  # 3 s
        pool.push(_chunk("s", i * 0.1))
    victim.caption("s", 1.0, final=True)  # the first second is captioned
    victim.caption("s", 2.5, final=False)  # the second utterance is under way
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    victim.set_up(False)
    assert pool.worker_of("s") == ("local-1" if victim is a else "local-0")
    assert ("remove", "s") in victim.log  # its restart will not take them back
    assert heir.log[-2:] == [("add", "s"), ("speaker_targets", ("s", ("es",)))]
    replayed = [round(c.start_s, 1) for c in heir.audio]
    assert replayed == [round(0.1 * i, 1) for i in range(10, 30)]  # all after the final
    pool.push(_chunk("s", 3.0))
    assert heir.audio[-1].start_s == 3.0
    assert pool.moves["worker_down"] == 1
    info = {w.worker_id: w for w in pool.workers()}
    victim_id = "local-0" if victim is a else "local-1"
    assert info[victim_id].moves_out == {"worker_down": 1} and not info[victim_id].up
    await pool.aclose()
    await drain
    assert [f.end_s for f in frames] == [1.0, 2.5]


async def test_no_worker_up_speakers_wait_and_get_their_audio_when_one_comes() -> None:
    pool, (a,) = await _pool(1)
    pool.add_speaker("s", "en")
    a.set_up(False)
    assert pool.worker_of("s") is None and not pool.up
    with pytest.raises(SpeechWorkerError):
        await pool.translate("hi", "en", ["es"])
    for i in range(5):
        pool.push(_chunk("s", i * 0.1))
    assert a.audio == []
    a.set_up(True)  # restarted
    assert pool.worker_of("s") == "local-0"
    assert len(a.audio) == 5
    assert pool.moves == {"worker_down": 1}
    await pool.aclose()


async def test_replay_buffer_is_bounded() -> None:
    pool, (a,) = await _pool(1, replay_max_s=1.0)
    pool.add_speaker("s", "en")
    for i in range(30):
        pool.push(_chunk("s", i * 0.1))
    assert pool.dropped_replay_chunks == 20
    await pool.aclose()


async def test_a_lagging_worker_hands_a_speaker_over_between_utterances() -> None:
    now = [0.0]
    fakes = [FakeWorker("w0"), FakeWorker("w1")]
    made = iter(fakes)
    pool = SpeechPool(
        PipelineConfig(),
        settings=PoolSettings(
            workers=2,
            monitor_interval_s=3600,
            placement=PlacementSettings(lag_after_s=1.0, move_cooldown_s=0),
        ),
        worker_factory=lambda: next(made),
        clock=lambda: now[0],
    )
    await pool.start()
    a, b = fakes
    b.set_up(False)
    pool.add_speaker("s1")
    pool.add_speaker("s2")  # both on a
    b.set_up(True)
    a.queued = 40  # 4 s of audio waiting
    pool.monitor_once()
    now[0] = 2.0
    frames: list[CaptionFrame] = []
    drain = asyncio.create_task(_drain(pool, frames))
    a.caption("s1", 1.0, final=False)
    a.caption("s2", 1.0, final=True)
    await asyncio.sleep(0.01)
    pool.monitor_once()
    assert pool.worker_of("s2") == "local-1" and pool.worker_of("s1") == "local-0"
    assert pool.moves == {"lagging": 1}
    assert ("remove", "s2") in a.log and ("add", "s2") in b.log
    assert b.audio == []  # a slow worker keeps what it had: no replay
    await pool.aclose()
    await drain


async def test_translate_uses_the_least_loaded_worker_and_a_failed_worker_leaves() -> None:
    pool, (a, b) = await _pool(2)
    pool.add_speaker("s")
    busy = pool.worker_of("s")
    answer = await pool.translate("hi", "en", ["es"])
    idle_name = "w1" if busy == "local-0" else "w0"
    assert answer["es"] == Translated(f"{idle_name}:hi", "fake")
    frames: list[CaptionFrame] = []
    drain = asyncio.create_task(_drain(pool, frames))
    a._captions.put_nowait(SpeechWorkerError("model gone", retryable=False))
    await asyncio.sleep(0.01)
    assert [w.worker_id for w in pool.workers()] == ["local-1"]
    assert pool.worker_of("s") == "local-1"
    b._captions.put_nowait(SpeechWorkerError("model gone", retryable=False))
    with pytest.raises(SpeechWorkerError):
        await drain
    await pool.aclose()


async def test_rebalancing_leaves_a_speaker_who_is_speaking_even_before_an_interim() -> None:
    fakes = [FakeWorker("w0"), FakeWorker("w1")]
    made = iter(fakes)
    pool = SpeechPool(
        PipelineConfig(),
        settings=PoolSettings(
            workers=2,
            monitor_interval_s=3600,
            placement=PlacementSettings(lag_after_s=0.0, move_cooldown_s=0),
        ),
        worker_factory=lambda: next(made),
    )
    await pool.start()
    a, b = fakes
    b.set_up(False)
    pool.add_speaker("a-talking")
    pool.add_speaker("b-quiet")  # both on a
    b.set_up(True)
    for i in range(10):  # 1 s each: one speaks (no interim yet), the other is silent
        pool.push(AudioChunk("a-talking", np.full(1600, 0.2, np.float32), i * 0.1))
        pool.push(AudioChunk("b-quiet", np.zeros(1600, np.float32), i * 0.1))
    a.queued = 40
    pool.monitor_once()
    assert pool.worker_of("b-quiet") == "local-1" and pool.worker_of("a-talking") == "local-0"
    await pool.aclose()
