"""Raw media for the program: per-participant audio buffers mixed every 20 ms, and the latest
decoded picture of each video source scaled into the program's frame. Fed from the event loop
(track consumers), read by the program clock thread; a lock guards the shared state."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping

import numpy as np
from av import AudioFrame, VideoFrame

from .program import AudioSource

AUDIO_RATE = 48_000
CHUNK_SAMPLES = 960  # 20 ms
#: a participant's buffer holds at most this much (drop the oldest: live audio)
MAX_BUFFER_SAMPLES = 2 * AUDIO_RATE // 5
#: after running dry, wait for this much before playing again: WebRTC jitter and a program
#: clock that catches up after the machine was busy (100 ms: nothing next to HLS's seconds)
PREBUFFER_SAMPLES = 5 * CHUNK_SAMPLES


#: weight of each tick in a voice's mean buffer depth (20 ms ticks: about 1 s of memory)
DEPTH_EMA_WEIGHT = 0.02


class _Voice:
    __slots__ = ("chunks", "samples", "primed", "depth")

    def __init__(self) -> None:
        self.chunks: deque[np.ndarray] = deque()
        self.samples = 0
        self.primed = False
        #: mean samples waiting here: how long after arriving a sample goes into the program
        self.depth = float(PREBUFFER_SAMPLES)


class AudioMixer:
    """Each participant's decoded audio (48 kHz mono int16) and the renditions' mixes."""

    def __init__(self) -> None:
        self._voices: dict[str, _Voice] = {}
        self._lock = threading.Lock()

    def push(self, participant_id: str, frame: AudioFrame) -> None:
        pcm = frame.to_ndarray().reshape(-1, len(frame.layout.channels)).astype(np.int32)
        mono = pcm.mean(axis=1).astype(np.int16) if pcm.shape[1] > 1 else pcm[:, 0].astype(np.int16)
        if frame.sample_rate != AUDIO_RATE:  # Opus always decodes at 48 kHz; be safe anyway
            index = np.linspace(0, len(mono) - 1, int(len(mono) * AUDIO_RATE / frame.sample_rate))
            mono = mono[index.astype(np.int64)]
        with self._lock:
            voice = self._voices.setdefault(participant_id, _Voice())
            voice.chunks.append(mono)
            voice.samples += len(mono)
            while voice.samples > MAX_BUFFER_SAMPLES and len(voice.chunks) > 1:
                voice.samples -= len(voice.chunks.popleft())

    def forget(self, participant_id: str) -> None:
        with self._lock:
            self._voices.pop(participant_id, None)

    def delay_s(self, participant_id: str) -> float:
        """How long a participant's audio waits here before it is mixed (a recent mean): the
        program plays their words this much after they reached the worker."""
        with self._lock:
            voice = self._voices.get(participant_id)
            depth = voice.depth if voice is not None else float(PREBUFFER_SAMPLES)
        return depth / AUDIO_RATE

    def _take(self, voice: _Voice) -> np.ndarray:
        out = self._take_chunk(voice)
        # what is still waiting after this chunk: the time a sample arriving now waits
        voice.depth += DEPTH_EMA_WEIGHT * (voice.samples - voice.depth)
        return out

    def _take_chunk(self, voice: _Voice) -> np.ndarray:
        out = np.zeros(CHUNK_SAMPLES, np.int16)
        if not voice.primed:
            if voice.samples < PREBUFFER_SAMPLES:
                return out
            voice.primed = True
        filled = 0
        while filled < CHUNK_SAMPLES and voice.chunks:
            head = voice.chunks[0]
            n = min(CHUNK_SAMPLES - filled, len(head))
            out[filled : filled + n] = head[:n]
            filled += n
            if n == len(head):
                voice.chunks.popleft()
            else:
                voice.chunks[0] = head[n:]
            voice.samples -= n
        if filled < CHUNK_SAMPLES:
            voice.primed = False
        return out

    def tick(
        self, plan: Mapping[str, AudioSource], floor: Iterable[str]
    ) -> tuple[dict[str, bytes], dict[str, float]]:
        """20 ms of each rendition (``plan``: rendition key -> source) and each participant's
        RMS level (0–1) over it."""
        with self._lock:
            chunks = {pid: self._take(voice) for pid, voice in self._voices.items()}
        levels = {
            pid: float(np.sqrt(np.mean((c.astype(np.float64) / 32768) ** 2)))
            for pid, c in chunks.items()
        }
        floor_ids = [pid for pid in floor if pid in chunks]
        floor_mix = np.zeros(CHUNK_SAMPLES, np.int32)
        for pid in floor_ids:
            floor_mix += chunks[pid]
        floor_pcm = np.clip(floor_mix, -32768, 32767).astype(np.int16).tobytes()
        silence = bytes(2 * CHUNK_SAMPLES)
        out: dict[str, bytes] = {}
        for key, source in plan.items():
            if source.floor:
                out[key] = floor_pcm
            else:
                chunk = chunks.get(source.participant_id or "")
                out[key] = silence if chunk is None else chunk.tobytes()
        return out, levels


class VideoSources:
    """The latest decoded frame of each (participant, source); the picture for the program."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self._latest: dict[tuple[str, str], tuple[VideoFrame, float]] = {}
        self._lock = threading.Lock()
        self._slate = black_frame(width, height)
        self._cache: tuple[int, bytes] | None = None

    def push(self, participant_id: str, source: str, frame: VideoFrame, now_s: float) -> None:
        with self._lock:
            self._latest[(participant_id, source)] = (frame, now_s)

    def forget(self, participant_id: str, source: str | None = None) -> None:
        with self._lock:
            for key in list(self._latest):
                if key[0] == participant_id and (source is None or key[1] == source):
                    del self._latest[key]

    def live(self, source: str, now_s: float, max_age_s: float = 2.0) -> set[str]:
        """Participants with a recent frame from ``source``."""
        with self._lock:
            return {
                p
                for (p, s), (_, t) in self._latest.items()
                if s == source and now_s - t < max_age_s
            }

    def picture(self, chosen: tuple[str, str] | None) -> bytes:
        """The program frame (yuv420p bytes): ``chosen``'s latest frame letterboxed, or black."""
        with self._lock:
            entry = None if chosen is None else self._latest.get(chosen)
        if entry is None:
            return self._slate
        frame = entry[0]
        if self._cache is not None and self._cache[0] == id(frame):
            return self._cache[1]
        data = letterbox(frame, self.width, self.height)
        self._cache = (id(frame), data)
        return data


def black_frame(width: int, height: int) -> bytes:
    y = np.full((height, width), 16, np.uint8)
    uv = np.full((height // 2, width), 128, np.uint8)
    return np.vstack([y, uv]).tobytes()


def letterbox(frame: VideoFrame, width: int, height: int) -> bytes:
    """``frame`` scaled to fit ``width`` x ``height`` (aspect kept, even sizes), centred on
    black, as yuv420p bytes."""
    scale = min(width / frame.width, height / frame.height)
    w = max(2, int(frame.width * scale) // 2 * 2)
    h = max(2, int(frame.height * scale) // 2 * 2)
    scaled = frame.reformat(width=w, height=h, format="yuv420p")
    planes = scaled.to_ndarray()  # (h * 3 / 2, w): Y rows, then U and V rows
    y = np.full((height, width), 16, np.uint8)
    u = np.full((height // 2, width // 2), 128, np.uint8)
    v = np.full((height // 2, width // 2), 128, np.uint8)
    top, left = (height - h) // 2 // 2 * 2, (width - w) // 2 // 2 * 2
    y[top : top + h, left : left + w] = planes[:h]
    chroma = planes[h:].reshape(2, h // 2, w // 2)
    u[top // 2 : top // 2 + h // 2, left // 2 : left // 2 + w // 2] = chroma[0]
    v[top // 2 : top // 2 + h // 2, left // 2 : left // 2 + w // 2] = chroma[1]
    return y.tobytes() + u.tobytes() + v.tobytes()
