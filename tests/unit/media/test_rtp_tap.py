"""The RTP audio tap (Janus's rtp_forward → AudioTap): real Opus over a real UDP socket."""

from __future__ import annotations

import asyncio
import fractions
import socket

import av
import numpy as np
from aiortc.codecs.opus import OpusEncoder
from aiortc.rtp import RtpPacket

from media.api import SpeakerAudio
from media.rtp_tap import RtpAudioReceiver
from media.tap import AudioTap
from tests.support.client import dominant_frequency
from tests.support.waits import wait_until

RATE = 48_000
FRAME = 960


def opus_packets(count: int, *, freq_hz: float = 440.0) -> list[bytes]:
    """``count`` 20 ms Opus payloads of a sine, as a browser would send them."""
    encoder = OpusEncoder()
    payloads = []
    for i in range(count):
        t = (i * FRAME + np.arange(FRAME)) / RATE
        pcm = (0.4 * 32767 * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate, frame.pts = RATE, i * FRAME
        frame.time_base = fractions.Fraction(1, RATE)
        encoded, _ = encoder.encode(frame)
        payloads.extend(encoded)
    return payloads


def rtp(seq: int, payload: bytes) -> bytes:
    packet = RtpPacket(payload_type=111, sequence_number=seq & 0xFFFF, timestamp=seq * FRAME)
    packet.ssrc, packet.payload = 1234, payload
    return packet.serialize()


async def test_forwarded_opus_reaches_the_tap_and_bad_packets_are_dropped() -> None:
    got: list[SpeakerAudio] = []
    tap = AudioTap(room_id="r", peer_id="p", track_id="p-audio-1", on_audio=got.append)
    receiver = RtpAudioReceiver(tap)
    port = await receiver.start("127.0.0.1")
    payloads = opus_packets(60)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.sendto(b"\x00junk", ("127.0.0.1", port))
        for seq, payload in enumerate(payloads, start=65_500):  # sequence numbers wrap
            sender.sendto(rtp(seq, payload), ("127.0.0.1", port))
            if seq == 65_510:
                sender.sendto(rtp(seq, payload), ("127.0.0.1", port))  # a repeat
            await asyncio.sleep(0)
        assert await wait_until(lambda: receiver.packets_in == 60, 5)
    await receiver.aclose()
    assert receiver.dropped == 2
    samples = np.concatenate([a.chunk.samples for a in got])
    assert len(samples) == 60 * 320  # 1.2 s at 16 kHz: every packet decoded, end flushed
    assert abs(dominant_frequency(samples[1600:], 16_000) - 440) < 5
    await receiver.aclose()  # idempotent
