"""The media worker's wire format: every command, event and error survives a round trip."""

from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np
import pytest

from interpret import framing
from interpret.frames import AudioChunk
from media import errors
from media import wire as media_wire
from media.api import (
    IceServer,
    MediaSettings,
    OfferReady,
    PeerFailed,
    Slot,
    SpeakerAudio,
    TrackPublished,
    TrackUnpublished,
)
from media.wire import (
    ERROR_TYPES,
    AddPeer,
    Answer,
    Close,
    Command,
    ErrorInfo,
    GetStats,
    Init,
    Publish,
    RemovePeer,
    Reply,
    Request,
    Unpublish,
    WorkerMessage,
    decode_request,
    decode_worker_message,
    encode_request,
    encode_worker_message,
)

SDP = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=x:"é\\\r\n'

SETTINGS = MediaSettings(
    ice_servers=(
        IceServer(("stun:stun.example.org:3478",)),
        IceServer(("turn:a.example.org", "turns:b.example.org:443"), "user", "secret"),
    ),
    ice_host_addresses=("127.0.0.1", "::1"),
    pli_min_interval_s=0.25,
    subscriber_max_frames=48,
    isolation="process",
    audio_tap=True,
)

COMMANDS: list[Command] = [
    Init("room-1", SETTINGS, logging.DEBUG),
    Init("r", MediaSettings(), logging.WARNING),
    AddPeer("p1"),
    RemovePeer("p1"),
    Publish("p1", ("audio", "video")),
    Publish("p1", ("video",)),
    Publish("p1", ("video",), "screen"),
    Unpublish("p1", "p1-video-2"),
    Answer("p1", SDP, 7),
    GetStats(),
    Close(),
]

WORKER_MESSAGES: list[WorkerMessage] = [
    Reply(1),
    Reply(2, ErrorInfo("SdpError", "cannot parse")),
    Reply(3, stats={"peers": 2, "publications": {"t": {"kind": "video", "frames_in": 5}}}),
    OfferReady("p1", SDP, 3, {}),
    OfferReady(
        "p1",
        SDP,
        4,
        {
            "0": Slot("publish", "audio", "p1", None, "microphone"),
            "1": Slot("publish", "video", "p1", "p1-video-2", "camera"),
            "2": Slot("subscribe", "video", "p2", "p2-video-1", "screen"),
        },
    ),
    TrackPublished("p1", "p1-audio-1", "audio", "microphone"),
    TrackUnpublished("p1", "p1-audio-1"),
    PeerFailed("p1", "connection failed"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: type(c).__name__)
def test_request_round_trip(command: Command) -> None:
    request = Request(41, command)
    header, payload = framing.split_frame(encode_request(request))  # exactly one frame
    assert payload == b""
    assert decode_request(header, payload) == request


@pytest.mark.parametrize("message", WORKER_MESSAGES, ids=lambda m: type(m).__name__)
def test_worker_message_round_trip(message: WorkerMessage) -> None:
    decoded = decode_worker_message(*framing.split_frame(encode_worker_message(message)))
    assert decoded == message
    assert type(decoded) is type(message)


@pytest.mark.parametrize("error_type", sorted(ERROR_TYPES))
def test_each_room_error_is_raised_again_as_its_own_type(error_type: str) -> None:
    exc = ERROR_TYPES[error_type]("p9: revision 3 is not the outstanding offer")
    info = ErrorInfo.from_exception(exc)
    reply = decode_worker_message(*framing.split_frame(encode_worker_message(Reply(5, info))))
    assert isinstance(reply, Reply) and reply.error is not None
    again = reply.error.to_exception()
    assert type(again) is type(exc)
    assert str(again) == str(exc)


def test_the_errors_signaling_tells_apart_all_travel() -> None:
    for cls in (
        errors.SdpError,
        errors.StaleAnswerError,
        errors.MediaStateError,
        errors.UnknownPeerError,
    ):
        assert ERROR_TYPES[cls.__name__] is cls


def test_a_subclass_travels_as_the_nearest_listed_type() -> None:
    class OddSdpError(errors.SdpError):
        pass

    assert ErrorInfo.from_exception(OddSdpError("x")) == ErrorInfo("SdpError", "x")
    assert ErrorInfo.from_exception(errors.MediaWorkerError("y")) == ErrorInfo("MediaError", "y")


def test_an_unexpected_exception_travels_as_a_plain_media_error() -> None:
    info = ErrorInfo.from_exception(RuntimeError("boom"))
    assert info == ErrorInfo("MediaError", "RuntimeError: boom")
    assert type(info.to_exception()) is errors.MediaError
    assert type(ErrorInfo("NoSuchError", "x").to_exception()) is errors.MediaError


def test_settings_codec_covers_every_field() -> None:
    """A field added to MediaSettings must be added to the codec too (this then fails)."""
    header, _ = framing.split_frame(encode_request(Request(1, Init("r", SETTINGS, logging.INFO))))
    encoded = json.loads(header)["settings"]
    assert set(encoded) == {f.name for f in dataclasses.fields(MediaSettings)}
    # every field differs from its default, so a field dropped on decoding would show
    for f in dataclasses.fields(MediaSettings):
        assert getattr(SETTINGS, f.name) != getattr(MediaSettings(), f.name), f.name


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"not json\n",
        b"[1, 2]\n",
        b"\xff\xfe\n",
        b'{"id": 1}\n',
        b'{"op": "dance", "id": 1}\n',
        b'{"op": "add_peer", "peer_id": "p"}\n',
        b'{"op": "add_peer", "id": "1", "peer_id": "p"}\n',
        b'{"op": "add_peer", "id": true, "peer_id": "p"}\n',
        b'{"op": "add_peer", "id": 1, "peer_id": 5}\n',
        b'{"op": "publish", "id": 1, "peer_id": "p", "kinds": ["screen"]}\n',
        b'{"op": "publish", "id": 1, "peer_id": "p", "kinds": "audio"}\n',
        b'{"op": "answer", "id": 1, "peer_id": "p", "sdp": "v=0", "revision": 1.5}\n',
        b'{"op": "init", "id": 1, "room_id": "r", "log_level": 20, "settings": {}}\n',
    ],
)
def test_bad_requests_are_wire_format_errors(line: bytes) -> None:
    with pytest.raises(framing.WireFormatError):
        decode_request(line)


def test_a_request_carries_no_payload() -> None:
    header, _ = framing.split_frame(encode_request(Request(1, GetStats())))
    with pytest.raises(framing.WireFormatError):
        decode_request(header, b"\x00")


@pytest.mark.parametrize(
    "line",
    [
        b"{}\n",
        b'{"t": "shout"}\n',
        b'{"t": "reply", "id": 1, "error": "bad", "stats": null}\n',
        b'{"t": "reply", "id": 1, "error": ["SdpError"], "stats": null}\n',
        b'{"t": "reply", "id": 1, "error": null, "stats": [1]}\n',
        b'{"t": "published", "peer_id": "p", "track_id": "t", "kind": "smell"}\n',
        b'{"t": "offer", "peer_id": "p", "sdp": "v=0", "revision": 1, "slots": []}\n',
        b'{"t": "offer", "peer_id": "p", "sdp": "v=0", "revision": 1,'
        b' "slots": {"0": {"direction": "sideways", "kind": "audio",'
        b' "participant_id": "p", "track_id": null}}}\n',
        b'{"t": "audio", "peer_id": "p", "track_id": "t"}\n',
    ],
)
def test_bad_worker_messages_are_wire_format_errors(line: bytes) -> None:
    with pytest.raises(framing.WireFormatError):
        decode_worker_message(line)


@pytest.mark.parametrize(
    "header, payload",
    [
        (b'{"t": "audio", "peer_id": "p", "track_id": "t", "start_s": 0}', b"\x00\x00\x00"),
        (b'{"t": "failed", "peer_id": "p", "reason": "x"}', b"\x00\x00\x00\x00"),
    ],
)
def test_a_payload_must_be_whole_samples_of_audio(header: bytes, payload: bytes) -> None:
    with pytest.raises(framing.WireFormatError):
        decode_worker_message(header, payload)


def test_speaker_audio_travels_exactly() -> None:
    samples = np.random.default_rng(3).uniform(-1, 1, 1600).astype(np.float32)
    message = SpeakerAudio("", "p1", "p1-audio-1", AudioChunk("p1", samples, 12.3))
    header, payload = framing.split_frame(encode_worker_message(message))
    assert len(payload) == 1600 * 4 and len(header) < 100  # raw float32, 6.4 kB per 100 ms
    decoded = decode_worker_message(header, payload)
    assert isinstance(decoded, SpeakerAudio)
    assert (decoded.peer_id, decoded.track_id, decoded.chunk.start_s) == ("p1", "p1-audio-1", 12.3)
    assert decoded.chunk.speaker_id == "p1" and decoded.chunk.samples.dtype == np.float32
    assert np.array_equal(decoded.chunk.samples, samples)


def test_the_media_workers_speak_the_speech_workers_frames() -> None:
    """One codec, one WireFormatError: the parent turns it into a MediaWorkerError when it
    gives up on a garbled worker (tests/media/test_process_backend.py)."""
    assert media_wire.WireFormatError is framing.WireFormatError
    assert media_wire.encode_frame is framing.encode_frame
