"""RTP packet counts of one ``RTCPeerConnection``, by kind, for the benchmarks."""

from __future__ import annotations

from aiortc import RTCPeerConnection

#: aiortc's per-SSRC receive statistics (rtcrtpreceiver.py ``self.__remote_streams``)
REMOTE_STREAMS_ATTR = "_RTCRtpReceiver__remote_streams"

Counts = dict[str, dict[str, int]]


async def sent_by_kind(pc: RTCPeerConnection) -> Counts:
    """RTP packets and payload bytes sent (aiortc's public ``outbound-rtp`` stats; one SSRC per
    sender, retransmissions not included)."""
    out: Counts = {}
    for stats in (await pc.getStats()).values():
        if stats.type == "outbound-rtp":
            entry = out.setdefault(stats.kind, {"packets": 0, "bytes": 0})
            entry["packets"] += stats.packetsSent
            entry["bytes"] += stats.bytesSent
    return out


def received_by_kind(pc: RTCPeerConnection) -> Counts:
    """RTP packets received (media and RTX retransmissions) and lost (media SSRC gaps), by kind.

    Not ``getStats()``: aiortc gives every SSRC of a receiver the same ``inbound-rtp`` id, so
    once an RTX packet has arrived the RTX stream's counts replace the media stream's.
    """
    out: Counts = {}
    for transceiver in pc.getTransceivers():
        streams = getattr(transceiver.receiver, REMOTE_STREAMS_ATTR, {})
        entry = out.setdefault(transceiver.kind, {"packets": 0, "lost": 0})
        for stream in streams.values():
            entry["packets"] += stream.packets_received
            entry["lost"] += max(0, stream.packets_lost)
    return out


def add(total: Counts, more: Counts) -> None:
    for kind, counts in more.items():
        entry = total.setdefault(kind, {})
        for key, value in counts.items():
            entry[key] = entry.get(key, 0) + value
