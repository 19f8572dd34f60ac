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
import math
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

VIDEO_TIME_BASE = fractions.Fraction(1, 90_000)
AUDIO_TIME_BASE = fractions.Fraction(1, 48_000)


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """The part of the event loop the forwarding reads time from and sets timers on (the
    running loop in production; tests pass a fake one and step it)."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], object], /) -> Timer: ...


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

    def __init__(
        self, kind: str, *, max_frames: int, subscriber_id: str = "", clock: Clock | None = None
    ) -> None:
        super().__init__()
        self.kind = kind
        self.subscriber_id = subscriber_id
        self.source: EncodedSource | None = None
        self._max_frames = max_frames
        self._queue: deque[EncodedFrame] = deque()
        self._wakeup = asyncio.Event()
        self._clock: Clock = asyncio.get_running_loop() if clock is None else clock
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


class KeyframeRequestPolicy:
    """When to send a PLI upstream: a pure function of the times it is given (no event loop, no
    timers), so that its tests step a number instead of sleeping.

    Requests are coalesced: at most one PLI per ``min_interval_s``, and a keyframe that arrives
    meanwhile satisfies every pending request. A PLI may go unanswered (Chrome ignores one that
    comes within 300 ms of the previous; RTCP can be lost): ``retry_s`` after a PLI, if a
    subscriber still waits for a keyframe, another one is requested. The owner calls
    :meth:`poll` at :attr:`wake_at_s`, and reads that again after every call.
    """

    def __init__(self, *, min_interval_s: float, retry_s: float = 1.0) -> None:
        self._min_interval_s = min_interval_s
        self._retry_s = max(retry_s, min_interval_s)
        self._send_at_s: float | None = None
        self._retry_at_s: float | None = None
        self._last_sent_s = -math.inf
        #: keyframe requests (the retries included), PLIs sent, retries
        self.requests = 0
        self.sent = 0
        self.retries = 0

    @property
    def pending(self) -> bool:
        """A PLI is due (now or once the interval since the last one has passed)."""
        return self._send_at_s is not None

    @property
    def wake_at_s(self) -> float | None:
        """When :meth:`poll` has something to do; None: nothing until the next request."""
        due = [t for t in (self._send_at_s, self._retry_at_s) if t is not None]
        return min(due, default=None)

    def request(self, now_s: float) -> None:
        """Someone needs a keyframe (a new subscriber, a PLI/FIR, an overflow, a lost picture)."""
        self.requests += 1
        if self._send_at_s is None:
            self._send_at_s = max(now_s, self._last_sent_s + self._min_interval_s)

    def keyframe_arrived(self) -> None:
        """A keyframe satisfies every pending request (the retry still checks)."""
        self._send_at_s = None

    def poll(self, now_s: float, *, can_send: bool, waiting: bool) -> bool:
        """Advance to ``now_s``; True: send one PLI now. ``can_send``: the publisher's media
        SSRC is known (until then its first frame will be a keyframe anyway, and the retry
        checks again); ``waiting``: a live subscriber still waits for a keyframe."""
        if self._retry_at_s is not None and self._retry_at_s <= now_s:
            self._retry_at_s = None
            if waiting:
                self.retries += 1
                self.request(now_s)
        if self._send_at_s is None or self._send_at_s > now_s:
            return False
        self._send_at_s = None
        if self._retry_at_s is None:
            self._retry_at_s = now_s + self._retry_s
        if not can_send:
            return False
        self._last_sent_s = now_s
        self.sent += 1
        return True


class EncodedSource:
    """One published track: receives encoded frames and fans them out to subscriber tracks.

    Keyframe requests (a new subscriber, a subscriber's PLI/FIR, an overflowing subscriber) go
    through a :class:`KeyframeRequestPolicy`; this class only keeps one timer at the time the
    policy names, and sends the PLIs it asks for.
    """

    def __init__(
        self,
        kind: str,
        *,
        send_pli: Callable[[int], Coroutine[Any, Any, None]],
        pli_min_interval_s: float,
        pli_retry_s: float = 1.0,
        clock: Clock | None = None,
    ) -> None:
        self.kind = kind
        self._send_pli = send_pli
        self._keyframes = KeyframeRequestPolicy(
            min_interval_s=pli_min_interval_s, retry_s=pli_retry_s
        )
        self._clock: Clock = asyncio.get_running_loop() if clock is None else clock
        self._timer: Timer | None = None
        self._timer_at_s: float | None = None
        self._ignored_requests = 0  # audio, or after the end: counted, never sent
        self._subscribers: set[SubscriberTrack] = set()
        self._pli_tasks: set[asyncio.Task[None]] = set()
        self._ended = False
        #: the publisher's media SSRC (never its RTX SSRC: a PLI addressed there is ignored)
        self.media_ssrc: int | None = None
        self.frames_in = 0
        self.keyframes_in = 0

    @property
    def pli_requests(self) -> int:
        return self._keyframes.requests + self._ignored_requests

    @property
    def pli_sent(self) -> int:
        return self._keyframes.sent

    @property
    def pli_retries(self) -> int:
        return self._keyframes.retries

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
            if self._keyframes.pending:
                self._keyframes.keyframe_arrived()
                self._set_timer()
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
        if self.kind != "video" or self._ended:
            self._ignored_requests += 1
            return
        self._keyframes.request(self._clock.time())
        self._set_timer()

    def _set_timer(self) -> None:
        """Keep one timer, at the policy's :attr:`~KeyframeRequestPolicy.wake_at_s`."""
        wake_at_s = self._keyframes.wake_at_s
        if wake_at_s == self._timer_at_s:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at_s = wake_at_s
        self._timer = None if wake_at_s is None else self._clock.call_at(wake_at_s, self._on_timer)

    def _on_timer(self) -> None:
        # The loop may run a timer up to its clock resolution early: it is due all the same.
        now_s = max(self._clock.time(), self._timer_at_s or 0.0)
        self._timer = self._timer_at_s = None
        if self._ended:
            return
        waiting = any(t.waiting_for_keyframe for t in self._subscribers)
        ssrc = self.media_ssrc
        if self._keyframes.poll(now_s, can_send=ssrc is not None, waiting=waiting):
            assert ssrc is not None
            task = asyncio.get_running_loop().create_task(self._send_pli(ssrc), name="pli")
            self._pli_tasks.add(task)
            task.add_done_callback(self._pli_tasks.discard)
        self._set_timer()

    async def aclose(self) -> None:
        """Detach every subscriber and stop asking for keyframes (idempotent)."""
        self._ended = True
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_at_s = None
        for track in list(self._subscribers):
            track.detach()
        self._subscribers.clear()
        for task in list(self._pli_tasks):
            task.cancel()
        if self._pli_tasks:
            await asyncio.gather(*self._pli_tasks, return_exceptions=True)
