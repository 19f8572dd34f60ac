"""Remote audio -> 16 kHz mono float32 chunks for transcription (the audio tap).

aiortc's receiver decodes Opus on its own decoder thread (only when the tap is on: see
:meth:`media.sfu.SfuRoom._attach_source`); the coroutine that drains the remote track hands each
decoded frame to an :class:`AudioTap`, which resamples it and batches ~100 ms
:class:`~interpret.frames.AudioChunk`s on the speaker's stream clock. Chunks go to an
:data:`media.api.OnAudio` callback, normally a :class:`SpeakerAudioQueue`'s ``put``: bounded,
drop-oldest, read by async iteration.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterator

import av
import numpy as np

from interpret.frames import ASR_SAMPLE_RATE, AudioChunk, Samples

from .api import OnAudio, SpeakerAudio

#: Samples per chunk handed out (a partial chunk only before a gap and at the end).
CHUNK_MS = 100
#: A frame whose timestamp is later than expected by at least this much starts a new segment
#: whose position follows the timestamp (a lost packet, DTX silence, a muted publisher).
GAP_TOLERANCE_MS = 10
_WRAP = 1 << 32
#: libswresample downmixes stereo to mono as (L + R) / sqrt(2): +3 dB for the dual-mono that
#: aiortc's Opus decoder makes of a browser's mono Opus (0.5 became 0.707, measured). This factor
#: turns it into the average (L + R) / 2, so a speaker's level reaches ASR unchanged.
_STEREO_TO_MEAN = np.float32(1 / np.sqrt(2))

log = logging.getLogger(__name__)


class AudioChunker:
    """Pure core of the tap: decoded :class:`av.AudioFrame`s in, :class:`AudioChunk`s out.

    Invariants: every chunk but the last before a gap or the end has ``chunk_ms`` of samples;
    ``start_s`` never decreases and follows sample counts (continuous) within a segment; a
    segment starts where the frame timestamp puts it, never before the previous segment's end.
    Frame timestamps are RTP timestamps (32-bit, random start), so they are unwrapped.
    """

    def __init__(self, speaker_id: str, *, chunk_ms: int = CHUNK_MS) -> None:
        self.speaker_id = speaker_id
        self._chunk_samples = ASR_SAMPLE_RATE * chunk_ms // 1000
        self._resampler: av.AudioResampler | None = None
        self._scale: np.float32 | None = None
        self._pending: list[Samples] = []
        self._pending_samples = 0
        #: stream-clock position (16 kHz samples) of the first pending sample
        self._pending_start = 0
        self._first_pts: int | None = None
        self._last_raw_pts: int | None = None
        self._unwrapped_pts = 0
        #: unwrapped pts (input rate units) that a continuous next frame would carry
        self._expected_pts: int | None = None
        self.gaps = 0
        self.gap_s = 0.0

    @property
    def position_s(self) -> float:
        """Stream-clock time of the next sample out."""
        return (self._pending_start + self._pending_samples) / ASR_SAMPLE_RATE

    def push(self, frame: av.AudioFrame) -> list[AudioChunk]:
        """Resample ``frame``; return the chunks it completed (often none)."""
        chunks: list[AudioChunk] = []
        pts = self._unwrap(frame.pts)
        rate = frame.sample_rate
        if pts is not None:
            if self._first_pts is None:
                self._first_pts = pts
            expected = self._expected_pts
            if expected is not None and pts - expected >= rate * GAP_TOLERANCE_MS // 1000:
                chunks.extend(self._end_segment())
                target = (pts - self._first_pts) * ASR_SAMPLE_RATE // rate
                end = self._pending_start
                if target > end:
                    self.gaps += 1
                    self.gap_s += (target - end) / ASR_SAMPLE_RATE
                    self._pending_start = target
            self._expected_pts = pts + frame.samples
        if self._resampler is None:
            self._resampler = av.AudioResampler(format="flt", layout="mono", rate=ASR_SAMPLE_RATE)
        self._scale = _STEREO_TO_MEAN if frame.layout.nb_channels == 2 else None
        self._append(self._resampler.resample(frame))
        chunks.extend(self._take(full_only=True))
        return chunks

    def flush(self) -> list[AudioChunk]:
        """Everything still buffered (the resampler's tail included), e.g. when the track ends."""
        return self._end_segment()

    def _end_segment(self) -> list[AudioChunk]:
        if self._resampler is not None:
            # libswresample holds ~1 ms back; a fresh resampler starts aligned again.
            self._append(self._resampler.resample(None))
            self._resampler = None
        return self._take(full_only=False)

    def _unwrap(self, pts: int | None) -> int | None:
        if pts is None:
            return None
        if self._last_raw_pts is not None:
            delta = (pts - self._last_raw_pts) % _WRAP
            if delta >= _WRAP // 2:
                delta -= _WRAP
            self._unwrapped_pts += delta
        else:
            self._unwrapped_pts = pts
        self._last_raw_pts = pts
        return self._unwrapped_pts

    def _append(self, frames: list[av.AudioFrame]) -> None:
        for out in frames:
            # the plane itself, not to_ndarray() (which stacks planes: ~10 µs a frame more)
            samples: Samples = np.frombuffer(memoryview(out.planes[0]), np.float32, out.samples)
            if self._scale is not None:
                samples = samples * self._scale
            if len(samples):
                self._pending.append(samples)
                self._pending_samples += len(samples)

    def _take(self, *, full_only: bool) -> list[AudioChunk]:
        if self._pending_samples == 0 or (
            full_only and self._pending_samples < self._chunk_samples
        ):
            return []
        joined = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        chunks: list[AudioChunk] = []
        offset = 0
        while len(joined) - offset >= self._chunk_samples:
            chunks.append(self._chunk(joined[offset : offset + self._chunk_samples]))
            offset += self._chunk_samples
        rest = joined[offset:]
        if len(rest) and not full_only:
            chunks.append(self._chunk(rest))
            rest = rest[:0]
        self._pending = [rest] if len(rest) else []
        self._pending_samples = len(rest)
        return chunks

    def _chunk(self, samples: Samples) -> AudioChunk:
        chunk = AudioChunk(
            self.speaker_id,
            np.ascontiguousarray(samples, dtype=np.float32),
            self._pending_start / ASR_SAMPLE_RATE,
        )
        self._pending_start += len(samples)
        return chunk


class AudioTap:
    """One published audio track's tap: fed by the coroutine that drains the remote track."""

    def __init__(self, *, room_id: str, peer_id: str, track_id: str, on_audio: OnAudio) -> None:
        self.room_id = room_id
        self.peer_id = peer_id
        self.track_id = track_id
        self._on_audio = on_audio
        self._chunker = AudioChunker(peer_id)
        self.frames_in = 0
        self.chunks_out = 0
        self.failed = False

    def push(self, frame: object) -> None:
        """Called on the event loop for each frame of the remote track (≈ 40 µs per 20 ms).

        This is a boundary: an error turns the tap off for this speaker (captions stop for
        them) and is logged, while the caller goes on draining the track and the call goes on.
        """
        if self.failed or not isinstance(frame, av.AudioFrame):
            return
        self.frames_in += 1
        try:
            self._deliver(self._chunker.push(frame))
        except Exception:
            self.failed = True
            log.exception("audio tap of %s failed; no captions for this track", self.track_id)

    def end_input(self) -> None:
        """The track ended: hand out what is buffered."""
        if self.failed:
            return
        try:
            self._deliver(self._chunker.flush())
        except Exception:
            self.failed = True
            log.exception("audio tap of %s failed at the end", self.track_id)

    def stats(self) -> dict[str, float | bool]:
        return {
            "frames_in": self.frames_in,
            "chunks_out": self.chunks_out,
            "gaps": self._chunker.gaps,
            "gap_s": round(self._chunker.gap_s, 3),
            "failed": self.failed,
        }

    def _deliver(self, chunks: list[AudioChunk]) -> None:
        for chunk in chunks:
            self.chunks_out += 1
            self._on_audio(SpeakerAudio(self.room_id, self.peer_id, self.track_id, chunk))


class SpeakerAudioQueue:
    """Bounded queue of :class:`SpeakerAudio` towards the transcription side.

    Overflow policy: drop the oldest chunk (live audio: late speech is worth less than current
    speech) and count it in :attr:`dropped`. ``put`` never blocks, so it is a valid
    :data:`media.api.OnAudio`. Iterate with ``async for``; iteration ends after :meth:`aclose`.
    """

    def __init__(self, *, max_chunks: int = 200) -> None:
        if max_chunks < 1:
            raise ValueError("max_chunks must be >= 1")
        self._items: collections.deque[SpeakerAudio] = collections.deque(maxlen=max_chunks)
        self._ready = asyncio.Event()
        self._closed = False
        self.dropped = 0

    def put(self, item: SpeakerAudio) -> None:
        if self._closed:
            return
        if len(self._items) == self._items.maxlen:
            self.dropped += 1
        self._items.append(item)
        self._ready.set()

    def __len__(self) -> int:
        return len(self._items)

    async def get(self) -> SpeakerAudio:
        """The oldest chunk; raises :class:`EOFError` once closed and empty."""
        while not self._items:
            if self._closed:
                raise EOFError("audio queue closed")
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    async def __aiter__(self) -> AsyncIterator[SpeakerAudio]:
        while True:
            try:
                yield await self.get()
            except EOFError:
                return

    async def aclose(self) -> None:
        """Stop accepting chunks; iteration ends once the queued ones are read (idempotent)."""
        self._closed = True
        self._ready.set()
