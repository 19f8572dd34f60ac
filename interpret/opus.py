"""Speakers' audio as Opus for a remote speech worker: 16 kHz mono, 20 ms packets, ~24 kb/s
(≈ 300 bytes per 100 ms chunk instead of 6,400 as float32). One encoder per speaker on the
server's side of a link and one decoder per speaker on the worker's (both keep state between
chunks: a speaker who moves to another worker starts a new pair).

A chunk's payload is its packets, each preceded by its length (big-endian ``u16``). Opus looks
ahead 6.5 ms, so an encoder holds back the last part of what it was given until more comes; a
speaker's audio reaches the worker that much later, never lost while the speaker speaks on.
"""

from __future__ import annotations

import fractions
import struct

import av
import numpy as np

from .frames import ASR_SAMPLE_RATE, AudioChunk, Samples
from .framing import WireFormatError

#: samples per Opus packet (20 ms at 16 kHz)
FRAME_SAMPLES = 320
BIT_RATE = 24_000
_LENGTH = struct.Struct(">H")


class OpusEncoder:
    """One speaker's audio → Opus packets (see the module docstring)."""

    def __init__(self, *, bit_rate: int = BIT_RATE) -> None:
        codec = av.CodecContext.create("libopus", "w")
        assert isinstance(codec, av.AudioCodecContext)
        codec.sample_rate = ASR_SAMPLE_RATE
        codec.layout = "mono"
        codec.format = "s16"
        codec.bit_rate = bit_rate
        codec.open()
        self._codec = codec
        self._pending = np.zeros(0, np.int16)
        self._pts = 0

    def encode(self, samples: Samples) -> bytes:
        """Whole 20 ms frames of what came so far, as length-prefixed packets (the remainder
        waits for the next call)."""
        pcm = (np.clip(np.asarray(samples, np.float32), -1.0, 1.0) * 32767.0).astype(np.int16)
        self._pending = np.concatenate([self._pending, pcm])
        out = bytearray()
        whole = len(self._pending) // FRAME_SAMPLES * FRAME_SAMPLES
        for i in range(0, whole, FRAME_SAMPLES):
            frame = av.AudioFrame.from_ndarray(
                self._pending[i : i + FRAME_SAMPLES].reshape(1, -1), format="s16", layout="mono"
            )
            frame.sample_rate = ASR_SAMPLE_RATE
            frame.pts = self._pts
            frame.time_base = fractions.Fraction(1, ASR_SAMPLE_RATE)
            self._pts += FRAME_SAMPLES
            for packet in self._codec.encode(frame):
                data = bytes(packet)
                out += _LENGTH.pack(len(data)) + data
        self._pending = self._pending[whole:]
        return bytes(out)


class OpusDecoder:
    """One speaker's Opus packets → 16 kHz float32 samples."""

    def __init__(self) -> None:
        codec = av.CodecContext.create("libopus", "r")
        assert isinstance(codec, av.AudioCodecContext)
        codec.sample_rate = ASR_SAMPLE_RATE
        codec.layout = "mono"
        self._codec = codec
        # libopus decodes at 48 kHz whatever it is asked: back to the recognizer's rate
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=ASR_SAMPLE_RATE)

    def decode(self, payload: bytes) -> Samples:
        parts: list[Samples] = []
        view = memoryview(payload)
        offset = 0
        while offset < len(view):
            if offset + _LENGTH.size > len(view):
                raise WireFormatError("opus payload ends inside a packet length")
            (length,) = _LENGTH.unpack_from(view, offset)
            offset += _LENGTH.size
            if offset + length > len(view):
                raise WireFormatError("opus payload ends inside a packet")
            packet = av.Packet(bytes(view[offset : offset + length]))
            offset += length
            try:
                frames = self._codec.decode(packet)
            except av.FFmpegError as exc:
                raise WireFormatError(f"opus packet does not decode: {exc}") from None
            for frame in frames:
                for out in self._resampler.resample(frame):
                    parts.append(out.to_ndarray().reshape(-1).astype(np.float32))
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)


class OpusSpeakers:
    """Per-speaker decoders at the worker's end of a link."""

    def __init__(self) -> None:
        self._decoders: dict[str, OpusDecoder] = {}

    def decode(self, speaker_id: str, start_s: float, payload: bytes) -> AudioChunk:
        decoder = self._decoders.get(speaker_id)
        if decoder is None:
            decoder = self._decoders[speaker_id] = OpusDecoder()
        return AudioChunk(speaker_id, decoder.decode(payload), start_s)

    def forget(self, speaker_id: str) -> None:
        self._decoders.pop(speaker_id, None)
