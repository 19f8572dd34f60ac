"""Encoded-frame fan-out: one :class:`EncodedSource` per published track, one
:class:`SubscriberTrack` per subscriber m-line. Nothing here decodes or encodes.

Frames reach each subscriber's ``RTCRtpSender`` as :class:`EncodedFrame`s. aiortc's sender
re-packetizes anything that is not an ``av.Frame`` (``encoder.pack()``); ``pack()`` only reads
``bytes(x)``, ``x.pts`` and ``x.time_base`` (checked in tests/unit/media/test_hooks.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import fractions
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

VIDEO_TIME_BASE = fractions.Fraction(1, 90_000)
AUDIO_TIME_BASE = fractions.Fraction(1, 48_000)


def vp8_is_keyframe(frame: bytes) -> bool:
    """RFC 6386 §9.1: bit 0 of the frame tag is 0 for a key frame."""
    return len(frame) > 0 and (frame[0] & 0x01) == 0


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One encoded frame (VP8) or packet (Opus), shared by every subscriber."""

    data: bytes
    pts: int
    time_base: fractions.Fraction
    keyframe: bool

    def __bytes__(self) -> bytes:
        return self.data


class SubscriberTrack(MediaStreamTrack):
    """The track behind one subscriber m-line, for the m-line's whole life.

    It is attached to a source, detached when that source goes away, and may be attached to
    another source later (the m-line is reused instead of growing the SDP). RTP timestamps stay
    continuous across such a switch: the new source's timestamps are shifted to follow the last
    frame sent by the wall-clock time elapsed since.

    Bounded queue (``max_frames``). Video: gated until a keyframe; on overflow the queue is
    flushed and the subscriber waits for the next keyframe (a partial GOP is useless). Audio:
    on overflow the oldest packet is dropped.

    ``held``: nothing is forwarded (interpretation channels: a listener of a channel does not
    get the floor's audio while an interpreter is on air). The m-line stays; the receiver just
    hears silence, and the RTP timestamps jump by the time held when frames come again.
    """

    def __init__(self, kind: str, *, max_frames: int, subscriber_id: str = "") -> None:
        super().__init__()
        self.kind = kind
        self.subscriber_id = subscriber_id
        self.source: EncodedSource | None = None
        self._max_frames = max_frames
        self._queue: deque[EncodedFrame] = deque()
        self._wakeup = asyncio.Event()
        self._clock = asyncio.get_running_loop()
        # Frames are accepted only while "live": from the sender's first recv() (the connection
        # is up), or after a re-attachment once the subscriber's answer made the m-line active.
        self._live = False
        self._started = False
        self._need_keyframe = kind == "video"
        self._pts_offset = 0
        self._rebase = False
        self._last_pts: int | None = None
        self._last_time_s = 0.0
        self.forwarded = 0
        self.forwarded_bytes = 0
        self.dropped = 0
        self.held = False
        #: frames not sent because the track was held
        self.withheld = 0

    # -- wiring ------------------------------------------------------------------------------
    def attach(self, source: EncodedSource) -> None:
        self.detach()
        self.source = source
        source.add(self)
        if self._started:
            self._live = False  # wait for negotiated(): until then the sender drops frames
            self._rebase = self._last_pts is not None

    def detach(self) -> None:
        if self.source is not None:
            self.source.remove(self)
            self.source = None
        self._live = False
        self._queue.clear()

    def negotiated(self) -> None:
        """The subscriber's answer was applied: a re-attached m-line now sends."""
        if self._started and self.source is not None and not self._live:
            self._go_live()

    def request_keyframe(self) -> None:
        """The subscriber sent PLI/FIR: ask the current source's publisher."""
        if self.source is not None:
            self.source.request_keyframe()

    @property
    def waiting_for_keyframe(self) -> bool:
        """Live video that cannot send until a keyframe comes."""
        return self._live and self._need_keyframe and self.source is not None

    def resync(self) -> None:
        """The source lost a picture: wait for the next keyframe."""
        if self.kind == "video":
            self._need_keyframe = True

    def _go_live(self) -> None:
        self._live = True
        self._queue.clear()
        if self.kind == "video":
            self._need_keyframe = True
            self.request_keyframe()

    # -- frames ------------------------------------------------------------------------------
    def push(self, frame: EncodedFrame) -> None:
        if not self._live:
            return
        if self.held:
            self.withheld += 1
            return
        if self._need_keyframe:
            if not frame.keyframe:
                return  # never hand a decoder a delta frame it cannot use
            self._need_keyframe = False
        if len(self._queue) >= self._max_frames:
            if self.kind == "video":
                self.dropped += len(self._queue) + 1
                self._queue.clear()
                self._need_keyframe = True
                self.request_keyframe()
                return
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(frame)
        self.forwarded += 1
        self.forwarded_bytes += len(frame.data)
        self._wakeup.set()

    async def recv(self) -> EncodedFrame:  # type: ignore[override]
        if not self._started:
            # The sender pulls once the subscriber's connection is up. Start from a fresh
            # keyframe, asked for right now (whatever came before would be stale).
            self._started = True
            if self.source is not None:
                self._go_live()
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._wakeup.clear()
            await self._wakeup.wait()
        frame = self._queue.popleft()
        now_s = self._clock.time()
        if self._rebase and self._last_pts is not None:
            elapsed = int((now_s - self._last_time_s) / frame.time_base)
            self._pts_offset = self._last_pts + max(1, elapsed) - frame.pts
            self._rebase = False
        self._last_pts = frame.pts + self._pts_offset
        self._last_time_s = now_s
        if self._pts_offset:
            return dataclasses.replace(frame, pts=self._last_pts)
        return frame

    def stop(self) -> None:
        self.detach()
        super().stop()
        self._wakeup.set()


class EncodedSource:
    """One published track: receives encoded frames and fans them out to subscriber tracks.

    Keyframe requests (a new subscriber, a subscriber's PLI/FIR, an overflowing subscriber) are
    coalesced: at most one PLI upstream per ``pli_min_interval_s``, and a keyframe that arrives
    meanwhile satisfies every pending request. A PLI may go unanswered (Chrome ignores one that
    comes within 300 ms of the previous; RTCP can be lost): while a subscriber still waits for a
    keyframe ``pli_retry_s`` after a PLI, another one is sent.
    """

    def __init__(
        self,
        kind: str,
        *,
        send_pli: Callable[[int], Coroutine[Any, Any, None]],
        pli_min_interval_s: float,
        pli_retry_s: float = 1.0,
    ) -> None:
        self.kind = kind
        self._send_pli = send_pli
        self._pli_min_interval_s = pli_min_interval_s
        self._pli_retry_s = max(pli_retry_s, pli_min_interval_s)
        self._retry: asyncio.TimerHandle | None = None
        self._subscribers: set[SubscriberTrack] = set()
        self._loop = asyncio.get_running_loop()
        self._pending_pli: asyncio.TimerHandle | None = None
        self._last_pli_s = -1e9
        self._pli_tasks: set[asyncio.Task[None]] = set()
        self._ended = False
        #: the publisher's media SSRC (never its RTX SSRC: a PLI addressed there is ignored)
        self.media_ssrc: int | None = None
        self.frames_in = 0
        self.keyframes_in = 0
        self.pli_requests = 0
        self.pli_sent = 0
        self.pli_retries = 0

    @property
    def subscribers(self) -> frozenset[SubscriberTrack]:
        return frozenset(self._subscribers)

    def add(self, track: SubscriberTrack) -> None:
        if not self._ended:
            self._subscribers.add(track)

    def remove(self, track: SubscriberTrack) -> None:
        self._subscribers.discard(track)

    def push(self, frame: EncodedFrame) -> None:
        self.frames_in += 1
        if frame.keyframe and self.kind == "video":
            self.keyframes_in += 1
            if self._pending_pli is not None:
                self._pending_pli.cancel()
                self._pending_pli = None
        for track in self._subscribers:
            track.push(frame)

    def push_video_frame(self, data: bytes, timestamp: int) -> None:
        """A complete VP8 frame from the jitter buffer (timestamp in 90 kHz units)."""
        self.push(EncodedFrame(data, timestamp, VIDEO_TIME_BASE, vp8_is_keyframe(data)))

    def push_audio_packet(self, payload: bytes, timestamp: int) -> None:
        """One Opus packet (timestamp in 48 kHz units, already unwrapped)."""
        self.push(EncodedFrame(payload, timestamp, AUDIO_TIME_BASE, True))

    def picture_lost(self) -> None:
        """Frames were lost between publisher and SFU and not repaired: what follows cannot be
        decoded by anybody until the next keyframe."""
        for track in self._subscribers:
            track.resync()
        self.request_keyframe()

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe, coalesced and rate-limited."""
        self.pli_requests += 1
        if self.kind != "video" or self._ended or self._pending_pli is not None:
            return
        delay_s = max(0.0, self._last_pli_s + self._pli_min_interval_s - self._loop.time())
        self._pending_pli = self._loop.call_later(delay_s, self._fire_pli)

    def _fire_pli(self) -> None:
        self._pending_pli = None
        if self._ended:
            return
        if self._retry is None:
            self._retry = self._loop.call_later(self._pli_retry_s, self._retry_if_waiting)
        if self.media_ssrc is None:
            return  # nothing received yet (its first frame will be a keyframe); retry checks
        self._last_pli_s = self._loop.time()
        self.pli_sent += 1
        task = self._loop.create_task(self._send_pli(self.media_ssrc), name="pli")
        self._pli_tasks.add(task)
        task.add_done_callback(self._pli_tasks.discard)

    def _retry_if_waiting(self) -> None:
        self._retry = None
        if not self._ended and any(t.waiting_for_keyframe for t in self._subscribers):
            self.pli_retries += 1
            self.request_keyframe()

    async def aclose(self) -> None:
        """Detach every subscriber and stop asking for keyframes (idempotent)."""
        self._ended = True
        for timer in (self._pending_pli, self._retry):
            if timer is not None:
                timer.cancel()
        self._pending_pli = self._retry = None
        for track in list(self._subscribers):
            track.detach()
        self._subscribers.clear()
        for task in list(self._pli_tasks):
            task.cancel()
        if self._pli_tasks:
            await asyncio.gather(*self._pli_tasks, return_exceptions=True)
