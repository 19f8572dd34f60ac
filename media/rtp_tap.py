"""Plain RTP (Opus) from a UDP port into an :class:`AudioTap`: the audio tap of engines that
forward a copy of each speaker's audio instead of handing Parley the track (Janus's
``rtp_forward``).

One :class:`RtpAudioReceiver` per published audio track: a UDP socket bound to an ephemeral
port, Opus decoded with aiortc's own decoder (the frames are exactly what the aiortc SFU's tap
sees), packets out of order or repeated are dropped (the tap treats the hole as a gap).
"""

from __future__ import annotations

import asyncio
import logging

from aiortc.codecs.opus import OpusDecoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtp import RtpPacket

from .tap import AudioTap

log = logging.getLogger(__name__)

_SEQ_HALF = 1 << 15


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, receiver: RtpAudioReceiver) -> None:
        self._receiver = receiver

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self._receiver.receive(data)


class RtpAudioReceiver:
    """Receives one forwarded Opus stream on ``port`` and feeds ``tap``; ``aclose()`` ends it."""

    def __init__(self, tap: AudioTap) -> None:
        self.tap = tap
        self._decoder = OpusDecoder()
        self._transport: asyncio.DatagramTransport | None = None
        self._last_seq: int | None = None
        self.port = 0
        self.packets_in = 0
        self.dropped = 0

    async def start(self, host: str) -> int:
        """Bind to ``host`` on an ephemeral port; returns the port."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(host, 0)
        )
        self._transport = transport
        self.port = int(transport.get_extra_info("sockname")[1])
        return self.port

    def receive(self, data: bytes) -> None:
        """One datagram: a boundary (a bad packet is counted and dropped, never raised)."""
        try:
            packet = RtpPacket.parse(data)
        except ValueError:
            self.dropped += 1
            return
        if self._last_seq is not None:
            ahead = (packet.sequence_number - self._last_seq) & 0xFFFF
            if ahead == 0 or ahead >= _SEQ_HALF:  # repeated or late
                self.dropped += 1
                return
        self._last_seq = packet.sequence_number
        self.packets_in += 1
        if not packet.payload:
            return
        try:
            frames = self._decoder.decode(
                JitterFrame(data=packet.payload, timestamp=packet.timestamp)
            )
        except Exception:  # a corrupt packet: lose 20 ms, keep the tap
            self.dropped += 1
            log.debug("undecodable Opus packet for %s", self.tap.track_id, exc_info=True)
            return
        for frame in frames:
            self.tap.push(frame)

    async def aclose(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
            self.tap.end_input()
