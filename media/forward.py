"""Encoded-frame fan-out: one ``EncodedSource`` per published track, one ``ForwardTrack`` per
subscriber. Nothing here decodes or encodes: frames go from the publisher's receiver to each
subscriber's ``RTCRtpSender`` as ``av.Packet``s, which aiortc only re-packetizes.
"""

from __future__ import annotations

import asyncio
import fractions
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

import av
from aiortc.mediastreams import VIDEO_TIME_BASE, MediaStreamError, MediaStreamTrack

AUDIO_TIME_BASE = fractions.Fraction(1, 48_000)


def vp8_is_keyframe(frame: bytes) -> bool:
    """RFC 6386 §9.1: bit 0 of the frame tag is 0 for a key frame."""
    return len(frame) > 0 and (frame[0] & 0x01) == 0


class ForwardTrack(MediaStreamTrack):
    """What one subscriber receives of one source: a track whose ``recv()`` yields encoded
    ``av.Packet``s, which makes aiortc's sender re-packetize instead of encode.

    Bounded queue (``max_frames``). Video: a subscriber is gated until a keyframe; on overflow
    the queue is flushed and the subscriber waits for the next keyframe (a partial GOP is
    useless to a decoder). Audio: on overflow the oldest packet is dropped.
    """

    def __init__(self, source: EncodedSource, *, max_frames: int) -> None:
        super().__init__()
        self.kind = source.kind
        self._source = source
        self._queue: deque[av.Packet[Any]] = deque()
        self._max_frames = max_frames
        self._wakeup: asyncio.Event = asyncio.Event()
        self._need_keyframe = source.kind == "video"
        self._started = False
        self._ended = False
        self.forwarded = 0
        self.dropped = 0

    def push(self, packet: av.Packet[Any], *, keyframe: bool) -> None:
        if self._ended:
            return
        if self._need_keyframe:
            if not keyframe:
                return  # never hand a decoder a delta frame it cannot use
            self._need_keyframe = False
        if len(self._queue) >= self._max_frames:
            if self.kind == "video":
                self.dropped += len(self._queue) + 1
                self._queue.clear()
                self._need_keyframe = True
                self._source.request_keyframe()
                return
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(packet)
        self.forwarded += 1
        self._wakeup.set()

    def end(self) -> None:
        """No more frames will come (the source went away): ``recv()`` raises once drained."""
        self._ended = True
        self._wakeup.set()

    async def recv(self) -> av.Packet[Any]:
        if not self._started:
            # The sender starts pulling once the subscriber's connection is up. Whatever
            # queued before is stale: start from a fresh keyframe, asked for right now.
            self._started = True
            self._queue.clear()
            if self.kind == "video":
                self._need_keyframe = True
                self._source.request_keyframe()
        while not self._queue:
            if self._ended or self.readyState != "live":
                raise MediaStreamError
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._queue.popleft()

    def stop(self) -> None:
        self._ended = True
        self._wakeup.set()
        super().stop()
        self._source.unsubscribe(self)


class EncodedSource:
    """One published track: receives encoded frames and fans them out to subscribers.

    Keyframe requests (a new subscriber, a subscriber's PLI/FIR, an overflowing subscriber) are
    coalesced: at most one PLI upstream per ``pli_min_interval_s``, and a keyframe that arrives
    meanwhile satisfies every pending request.
    """

    def __init__(
        self,
        kind: str,
        *,
        send_pli: Callable[[int], Coroutine[Any, Any, None]],
        pli_min_interval_s: float,
        subscriber_max_frames: int,
    ) -> None:
        self.kind = kind
        self._send_pli = send_pli
        self._pli_min_interval_s = pli_min_interval_s
        self._subscriber_max_frames = subscriber_max_frames
        self._subscribers: set[ForwardTrack] = set()
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

    @property
    def subscribers(self) -> frozenset[ForwardTrack]:
        return frozenset(self._subscribers)

    def subscribe(self) -> ForwardTrack:
        track = ForwardTrack(self, max_frames=self._subscriber_max_frames)
        if self._ended:
            track.end()
            return track
        self._subscribers.add(track)
        return track

    def unsubscribe(self, track: ForwardTrack) -> None:
        self._subscribers.discard(track)

    def push(self, packet: av.Packet[Any], *, keyframe: bool) -> None:
        self.frames_in += 1
        if keyframe and self.kind == "video":
            self.keyframes_in += 1
            if self._pending_pli is not None:
                self._pending_pli.cancel()
                self._pending_pli = None
        for track in self._subscribers:
            track.push(packet, keyframe=keyframe)

    def push_video_frame(self, data: bytes, timestamp: int) -> None:
        """A complete VP8 frame from the jitter buffer (timestamp in 90 kHz units)."""
        packet = av.Packet(data)
        packet.pts = timestamp
        packet.time_base = VIDEO_TIME_BASE
        self.push(packet, keyframe=vp8_is_keyframe(data))

    def push_audio_packet(self, payload: bytes, timestamp: int) -> None:
        """One Opus packet (timestamp in 48 kHz units, already unwrapped)."""
        packet = av.Packet(payload)
        packet.pts = timestamp
        packet.time_base = AUDIO_TIME_BASE
        self.push(packet, keyframe=True)

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe, coalesced and rate-limited."""
        self.pli_requests += 1
        if self.kind != "video" or self._ended or self._pending_pli is not None:
            return
        delay_s = max(0.0, self._last_pli_s + self._pli_min_interval_s - self._loop.time())
        self._pending_pli = self._loop.call_later(delay_s, self._fire_pli)

    def _fire_pli(self) -> None:
        self._pending_pli = None
        if self.media_ssrc is None or self._ended:
            return
        self._last_pli_s = self._loop.time()
        self.pli_sent += 1
        task = self._loop.create_task(self._send_pli(self.media_ssrc), name="pli")
        self._pli_tasks.add(task)
        task.add_done_callback(self._pli_tasks.discard)

    async def aclose(self) -> None:
        """End every subscriber's track and stop asking for keyframes (idempotent)."""
        self._ended = True
        if self._pending_pli is not None:
            self._pending_pli.cancel()
            self._pending_pli = None
        for track in list(self._subscribers):
            track.end()
        self._subscribers.clear()
        for task in list(self._pli_tasks):
            task.cancel()
        if self._pli_tasks:
            await asyncio.gather(*self._pli_tasks, return_exceptions=True)
