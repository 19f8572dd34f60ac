"""Every hook into aiortc/aioice internals (media/hooks.py) against the installed versions.

If one of these fails after an upgrade, the SFU would silently stop forwarding: fix the hook,
then the pin in pyproject.toml.
"""

from __future__ import annotations

import queue
from importlib.metadata import version

import aioice.ice
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.rtcrtpsender import RTCRtpSender as SenderClass
from aiortc.rtp import RtpPacket

from media import hooks


def test_pinned_versions() -> None:
    assert version("aiortc") == "1.16.0"
    assert version("aioice") == "0.13.0"


@pytest.fixture
async def pc() -> RTCPeerConnection:
    connection = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    yield connection
    await connection.close()


async def test_receiver_private_names_exist(pc: RTCPeerConnection) -> None:
    receiver: RTCRtpReceiver = pc.addTransceiver("video", direction="recvonly").receiver
    assert isinstance(getattr(receiver, hooks.DECODER_QUEUE_ATTR), queue.Queue)
    assert isinstance(getattr(receiver, hooks.CODECS_ATTR), dict)
    assert hooks.receiver_enabled(receiver) is True
    assert callable(receiver._send_rtcp_pli)


async def test_decoder_tap_intercepts_and_passes_the_stop_sentinel(pc: RTCPeerConnection) -> None:
    receiver = pc.addTransceiver("video", direction="recvonly").receiver
    seen: list[object] = []
    tap = hooks.tap_decoder_queue(receiver, lambda codec, frame: seen.append(frame), decode=False)
    assert getattr(receiver, hooks.DECODER_QUEUE_ATTR) is tap
    tap.put(("codec", "frame"))
    assert seen == ["frame"] and tap.empty()  # not passed on to the decoder thread
    tap.put(None)
    assert tap.get_nowait() is None  # the decoder thread's stop sentinel still gets through
    decoding = hooks.tap_decoder_queue(receiver, None, decode=True)
    decoding.put(("codec", "frame"))
    assert decoding.get_nowait() == ("codec", "frame")


async def test_rtp_wrapper_sees_packets_then_calls_aiortc(pc: RTCPeerConnection) -> None:
    receiver = pc.addTransceiver("audio", direction="recvonly").receiver
    calls: list[str] = []

    async def original(packet: RtpPacket, arrival_time_ms: int) -> None:
        calls.append("aiortc")

    receiver._handle_rtp_packet = original
    hooks.wrap_rtp_handler(receiver, lambda packet, is_media: calls.append(f"hook:{is_media}"))
    await receiver._handle_rtp_packet(RtpPacket(payload_type=111), 0)
    assert calls == ["hook:False", "aiortc"]  # payload type unknown before negotiation


async def test_sender_private_names_exist(pc: RTCPeerConnection) -> None:
    sender: RTCRtpSender = pc.addTransceiver("video", direction="sendonly").sender
    assert hooks.sender_packet_count(sender) == 0
    requested: list[bool] = []
    hooks.on_sender_keyframe_request(sender, lambda: requested.append(True))
    sender._send_keyframe()
    assert requested == [True]
    assert SenderClass._send_keyframe.__qualname__ == "RTCRtpSender._send_keyframe"
    assert callable(sender._handle_rtcp_packet)


def test_aiortc_packs_encoded_frames_without_encoding() -> None:
    """The SFU hands senders EncodedFrame, not av.Packet: pack() must accept it as is."""
    from aiortc.codecs.opus import OpusEncoder
    from aiortc.codecs.vpx import Vp8Encoder
    from av.frame import Frame

    from media.forward import AUDIO_TIME_BASE, VIDEO_TIME_BASE, EncodedFrame

    video = EncodedFrame(b"\x10" * 3000, 90_000, VIDEO_TIME_BASE, True)
    assert not isinstance(video, Frame)  # so RTCRtpSender takes the pack() path
    payloads, timestamp = Vp8Encoder().pack(video)
    assert timestamp == 90_000 and len(payloads) == 3
    assert b"".join(p[4:] for p in payloads) == video.data  # 4-byte VP8 descriptor each
    payloads, timestamp = OpusEncoder().pack(EncodedFrame(b"opus", 960, AUDIO_TIME_BASE, True))
    assert (payloads, timestamp) == ([b"opus"], 960)


async def test_sender_label_becomes_the_msid(pc: RTCPeerConnection) -> None:
    transceiver = pc.addTransceiver("audio", direction="sendonly")
    hooks.label_sender(transceiver.sender, stream_id="alice", track_id="alice-audio-1")
    await pc.setLocalDescription(await pc.createOffer())
    assert "a=msid:alice alice-audio-1" in pc.localDescription.sdp


async def test_host_addresses_are_restricted_to_the_configured_ones() -> None:
    hooks.restrict_host_addresses(["127.0.0.1"])
    try:
        assert aioice.ice.get_host_addresses(True, True) == ["127.0.0.1"]
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("audio")
        await pc.setLocalDescription(await pc.createOffer())
        candidates = [
            line for line in pc.localDescription.sdp.splitlines() if line.startswith("a=candidate:")
        ]
        assert candidates and all(c.split()[4] == "127.0.0.1" for c in candidates)
        await pc.close()
    finally:
        hooks.restrict_host_addresses([])
    assert aioice.ice.get_host_addresses is hooks._AIOICE_GET_HOST_ADDRESSES


def test_fast_sender_clock_matches_aiortc() -> None:
    from aiortc import clock

    hooks.use_fast_sender_clock()
    import aiortc.rtcrtpsender

    fast = aiortc.rtcrtpsender.clock.current_ntp_time()
    slow = clock.current_ntp_time()
    assert abs(fast - slow) / (1 << 32) < 0.01  # same NTP time within 10 ms
    assert aiortc.rtcrtpsender.clock.current_datetime().tzinfo is not None  # passed through


async def test_picture_loss_replaces_aiortcs_own_pli(pc: RTCPeerConnection) -> None:
    receiver = pc.addTransceiver("video", direction="recvonly").receiver
    lost: list[bool] = []
    hooks.on_picture_loss(receiver, lambda: lost.append(True))
    await receiver._send_rtcp_pli(1234)  # what aiortc calls when its jitter buffer gives up
    assert lost == [True]
    await hooks.send_pli(receiver, 1234)  # the SFU's own PLI still goes out (no RTCP ssrc yet)
    assert lost == [True]


async def test_forwarding_send_loop_packs_what_aiortc_would(pc: RTCPeerConnection) -> None:
    """The forwarding loop (hooks.use_forwarding_send_loop) builds packets itself and reaches
    into the sender's and DTLS transport's private state: the bytes must equal aiortc's own
    serialization, and every private name it uses must exist."""
    from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
    from aiortc.rtp import HeaderExtensionsMap

    extensions_map = HeaderExtensionsMap()
    extensions_map.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
                RTCRtpHeaderExtensionParameters(
                    id=3, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
                ),
            ]
        )
    )
    for marker, payload in ((0, b"\x10" * 900), (1, b"\x01\x02")):
        packet = RtpPacket(payload_type=96, sequence_number=65535, timestamp=4_000_000_000)
        packet.ssrc, packet.payload, packet.marker = 123456789, payload, marker
        packet.extensions.abs_send_time = 0xABCDEF
        packet.extensions.mid = "7"
        assert hooks.pack_rtp(packet, extensions_map.set(packet.extensions)) == (
            packet.serialize(extensions_map)
        )
    transceiver = pc.addTransceiver("video", direction="sendonly")
    sender = transceiver.sender
    for name in (
        "rtp_started", "rtp_history", "rtp_header_extensions_map", "mid", "track",
        "ntp_timestamp", "rtp_timestamp", "octet_count", "packet_count", "encoder", "rtp_exited",
    ):  # fmt: skip
        assert hasattr(sender, f"_RTCRtpSender__{name}"), name
    dtls = sender.transport
    for name in ("_state", "_tx_srtp", "transport", hooks._TX_BYTES, hooks._TX_PACKETS):
        assert hasattr(dtls, name), name
    assert hasattr(dtls.transport._connection, "_nominated")
    hooks.use_forwarding_send_loop(sender)
    assert sender._run_rtp.__func__ is hooks._forwarding_run_rtp
