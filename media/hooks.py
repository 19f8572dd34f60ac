"""Every place where Parley reaches into aiortc/aioice internals, in one module.

aiortc has no public API for forwarding encoded media (its maintainer declined one: aiortc#449,
#55, #627), so the SFU installs per-instance hooks. They touch private names, which is why
aiortc is pinned exactly in pyproject.toml and why ``tests/unit/media/test_hooks.py`` checks each
one against the installed aiortc: an upgrade that moves them fails loudly there, not in a call.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import struct
import time
import types
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aioice.ice
import aiortc.rtcrtpsender
from aiortc import RTCDtlsTransport, RTCRtpReceiver, RTCRtpSender
from aiortc import clock as aiortc_clock
from aiortc.codecs import is_rtx
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RTP_HISTORY_SIZE, RtpPacket
from aiortc.utils import random32, uint16_add, uint32_add

_log = logging.getLogger(__name__)

#: Name-mangled attribute holding the receiver's queue towards its decoder thread
#: (rtcrtpreceiver.py: ``self.__decoder_queue.put((codec, encoded_frame))``).
DECODER_QUEUE_ATTR = "_RTCRtpReceiver__decoder_queue"
#: Name-mangled attribute mapping payload type -> codec, filled by ``receive()``.
CODECS_ATTR = "_RTCRtpReceiver__codecs"
#: Name-mangled RTP packet counter of a sender.
_SENDER_PACKET_COUNT_ATTR = "_RTCRtpSender__packet_count"

EncodedFrameHandler = Callable[[RTCRtpCodecParameters, JitterFrame], None]
RtpHandler = Callable[[RtpPacket, int], Awaitable[None]]


class DecoderTap(queue.Queue[Any]):
    """Stands in for a receiver's decoder queue; ``put()`` runs on the event-loop thread.

    Complete encoded frames (after the jitter buffer has repaired gaps with NACK/RTX) go to
    ``on_frame`` and, only when ``decode`` is true, on to aiortc's decoder thread. The ``None``
    sentinel that stops the decoder thread is always passed through, so the remote track still
    ends when the receiver stops.
    """

    def __init__(self, on_frame: EncodedFrameHandler | None, *, decode: bool) -> None:
        super().__init__()
        self._on_frame = on_frame
        self._decode = decode

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:
            super().put(item, block, timeout)
            return
        if self._on_frame is not None:
            codec, frame = item
            self._on_frame(codec, frame)
        if self._decode:
            super().put(item, block, timeout)


def tap_decoder_queue(
    receiver: RTCRtpReceiver, on_frame: EncodedFrameHandler | None, *, decode: bool
) -> DecoderTap:
    """Intercept ``receiver``'s complete encoded frames.

    Must run before ``receiver.receive()`` hands the queue to the decoder thread, i.e. inside a
    *synchronous* ``pc.on("track")`` handler.
    """
    tap = DecoderTap(on_frame, decode=decode)
    setattr(receiver, DECODER_QUEUE_ATTR, tap)
    return tap


def wrap_rtp_handler(receiver: RTCRtpReceiver, before: Callable[[RtpPacket, bool], None]) -> None:
    """Call ``before(packet, is_media)`` for each RTP packet, then aiortc's own handler.

    ``is_media`` is false for RTX retransmissions and unknown payload types. aiortc's handler
    still runs, so RTCP receiver reports, NACK generation and the jitter buffer keep working.
    """
    original: RtpHandler = receiver._handle_rtp_packet
    codecs: dict[int, RTCRtpCodecParameters] = getattr(receiver, CODECS_ATTR)

    async def handle_rtp_packet(packet: RtpPacket, arrival_time_ms: int) -> None:
        codec = codecs.get(packet.payload_type)
        before(packet, codec is not None and not is_rtx(codec))
        await original(packet, arrival_time_ms)

    receiver._handle_rtp_packet = handle_rtp_packet  # type: ignore[method-assign]


def receiver_enabled(receiver: RTCRtpReceiver) -> bool:
    """aiortc drops packets while a receiver is disabled; so must the forwarding tap."""
    return bool(receiver._enabled)


async def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """Ask the publisher behind ``receiver`` for a keyframe (RTCP PLI to its media SSRC)."""
    await _ORIGINAL_SEND_PLI(receiver, media_ssrc)


def on_picture_loss(receiver: RTCRtpReceiver, lost: Callable[[], None]) -> None:
    """Call ``lost()`` instead of sending aiortc's own PLI when the receiver's jitter buffer
    gives up on frames (a gap NACK/RTX did not repair).

    Frames after such a gap reference a picture the subscribers never got: the SFU must hold
    them until the next keyframe and ask for one (through its coalescing, not aiortc's).
    """

    async def send_rtcp_pli(media_ssrc: int) -> None:
        lost()

    receiver._send_rtcp_pli = send_rtcp_pli  # type: ignore[method-assign]


def on_sender_keyframe_request(sender: RTCRtpSender, request: Callable[[], None]) -> None:
    """Route a subscriber's PLI/FIR on ``sender`` to ``request``.

    In pack mode (pre-encoded ``av.Packet``s) aiortc's own ``_send_keyframe`` only sets a flag
    that nothing reads; the SFU must ask the publisher instead.
    """
    sender._send_keyframe = request  # type: ignore[method-assign]


def label_sender(sender: RTCRtpSender, *, stream_id: str, track_id: str) -> None:
    """Set the ``a=msid:<stream_id> <track_id>`` that the next offer shows for ``sender``.

    aiortc gives every sender of a connection one stream id; a browser would then put every
    remote participant into one ``MediaStream``.
    """
    sender._stream_id = stream_id
    sender._track_id = track_id


def sender_packet_count(sender: RTCRtpSender) -> int:
    """RTP packets sent so far by ``sender`` (aiortc keeps the counter private)."""
    return int(getattr(sender, _SENDER_PACKET_COUNT_ATTR))


class _FastNtpClock:
    """aiortc's sender reads the NTP clock twice per RTP packet through ``datetime.now()``
    arithmetic (≈ 7 % of the SFU's time at 32 subscribers, profiled); ``time.time()`` gives the
    same value far cheaper. Everything else of ``aiortc.clock`` is passed through."""

    _NTP_UNIX_OFFSET_S = 2_208_988_800

    def __getattr__(self, name: str) -> Any:
        return getattr(aiortc_clock, name)

    @classmethod
    def current_ntp_time(cls) -> int:
        now = time.time() + cls._NTP_UNIX_OFFSET_S
        seconds = int(now)
        return (seconds << 32) | int((now - seconds) * (1 << 32))


def use_fast_sender_clock() -> None:
    """Replace the clock module aiortc's RTP sender uses (process-wide, idempotent)."""
    aiortc.rtcrtpsender.clock = _FastNtpClock()  # type: ignore[attr-defined,assignment]


def restrict_host_addresses(addresses: Sequence[str]) -> None:
    """Make ICE announce exactly ``addresses`` as host candidates (process-wide).

    aioice has no per-connection setting for this and always leaves 127.0.0.1 out. An empty
    sequence restores aioice's own choice (every interface address except loopback).
    """
    if not addresses:
        aioice.ice.get_host_addresses = _AIOICE_GET_HOST_ADDRESSES
        return
    fixed = list(addresses)

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in fixed if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = get_host_addresses


_AIOICE_GET_HOST_ADDRESSES = aioice.ice.get_host_addresses
_ORIGINAL_SEND_PLI = RTCRtpReceiver._send_rtcp_pli


# -- the forwarding sender: aiortc's RTP send loop without its per-packet overhead -------------
_S = "_RTCRtpSender__"
_RTP_HEADER = struct.Struct("!BBHLLHH")  # RTP header with one extension block (no CSRC)
_TX_BYTES = "_RTCDtlsTransport__tx_bytes"
_TX_PACKETS = "_RTCDtlsTransport__tx_packets"


def pack_rtp(packet: RtpPacket, extensions: tuple[int, bytes]) -> bytes:
    """``packet.serialize(map)`` for a packet without CSRCs or padding, given what
    ``map.set(packet.extensions)`` returned (profile, value) — computed once per frame."""
    profile, value = extensions
    return (
        _RTP_HEADER.pack(
            0x90,  # version 2, extension bit
            (packet.marker << 7) | packet.payload_type,
            packet.sequence_number,
            packet.timestamp,
            packet.ssrc,
            profile,
            len(value) >> 2,
        )
        + value
        + packet.payload
    )


def _send_rtp_now(dtls: RTCDtlsTransport, data: bytes) -> bool:
    """``RTCDtlsTransport._send_rtp`` without its three nested awaits: SRTP-protect and hand
    the datagram to the selected ICE pair's UDP transport. False when that pair is not plain
    UDP (a TURN relay: its protocol wraps data itself), for the caller to take the slow path."""
    if dtls._state != DtlsState.CONNECTED:
        raise ConnectionError("Cannot send encrypted RTP, not connected")
    pair = dtls.transport._connection._nominated.get(1)
    if pair is None:
        raise ConnectionError("Cannot send data, not connected")
    if type(pair.protocol) is not aioice.ice.StunProtocol:
        return False
    protected = dtls._tx_srtp.protect(data)
    pair.protocol.transport.sendto(protected, pair.remote_addr)
    setattr(dtls, _TX_BYTES, getattr(dtls, _TX_BYTES) + len(protected))
    setattr(dtls, _TX_PACKETS, getattr(dtls, _TX_PACKETS) + 1)
    return True


async def _forwarding_run_rtp(self: RTCRtpSender, codec: RTCRtpCodecParameters) -> None:
    """aiortc 1.16.0's ``RTCRtpSender._run_rtp`` for pre-encoded frames (what the SFU sends),
    same packets on the wire, same history for NACK/RTX and counters for RTCP sender reports,
    without what costs per packet there and buys nothing here: a debug log line formatted even
    when disabled, two clock reads, the header extensions packed again for every packet of a
    frame (they are equal within a frame: abs-send-time is read once per frame), and three
    nested coroutines down to ``sendto``. Profiled at 8 subscribers: the send loop was 55 % of
    the SFU's busy time."""
    getattr(self, _S + "rtp_started").set()
    history = getattr(self, _S + "rtp_history")
    extensions_map = getattr(self, _S + "rtp_header_extensions_map")
    mid = getattr(self, _S + "mid")
    payload_type = codec.payloadType
    assert payload_type is not None
    sequence_number = aiortc.rtcrtpsender.random_sequence_number()
    timestamp_origin = random32()
    try:
        while True:
            if not getattr(self, _S + "track"):
                await asyncio.sleep(0.02)
                continue
            enc_frame = await self._next_encoded_frame(codec)
            if enc_frame is None:
                continue
            timestamp = uint32_add(timestamp_origin, enc_frame.timestamp)
            ntp_time = _FastNtpClock.current_ntp_time()
            payloads = enc_frame.payloads
            last = len(payloads) - 1
            extensions: tuple[int, bytes] | None = None
            dtls = self.transport
            octets = 0
            for i, payload in enumerate(payloads):
                packet = RtpPacket(
                    payload_type=payload_type,
                    sequence_number=sequence_number,
                    timestamp=timestamp,
                )
                packet.ssrc = self._ssrc
                packet.payload = payload
                packet.marker = 1 if i == last else 0
                packet.extensions.abs_send_time = (ntp_time >> 14) & 0x00FFFFFF
                packet.extensions.mid = mid
                if enc_frame.audio_level is not None:
                    packet.extensions.audio_level = (False, -enc_frame.audio_level)
                history[sequence_number % RTP_HISTORY_SIZE] = packet
                if extensions is None:  # the same for every packet of the frame
                    extensions = extensions_map.set(packet.extensions)
                data = (
                    pack_rtp(packet, extensions)
                    if extensions[1]
                    else packet.serialize(extensions_map)
                )
                if not _send_rtp_now(dtls, data):
                    await dtls._send_rtp(data)
                octets += len(payload)
                sequence_number = uint16_add(sequence_number, 1)
            setattr(self, _S + "ntp_timestamp", ntp_time)
            setattr(self, _S + "rtp_timestamp", timestamp)
            setattr(self, _S + "octet_count", getattr(self, _S + "octet_count") + octets)
            setattr(self, _S + "packet_count", getattr(self, _S + "packet_count") + len(payloads))
    except (asyncio.CancelledError, ConnectionError, MediaStreamError):
        pass
    except Exception:  # as aiortc does: rtp_exited must be set or stop() hangs
        _log.warning("RTCRtpSender(%s) forwarding loop failed", self.kind, exc_info=True)
    track = getattr(self, _S + "track")
    if track:
        track.stop()
        setattr(self, _S + "track", None)
    setattr(self, _S + "encoder", None)
    getattr(self, _S + "rtp_exited").set()


def use_forwarding_send_loop(sender: RTCRtpSender) -> None:
    """Make ``sender`` run :func:`_forwarding_run_rtp` (before it starts: ``send()`` looks
    ``_run_rtp`` up on the instance)."""
    sender._run_rtp = types.MethodType(_forwarding_run_rtp, sender)  # type: ignore[method-assign]
