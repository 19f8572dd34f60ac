"""The frame codec of every worker pipe (the speech worker's and the media workers').

A frame is an 8-byte header (big-endian ``u32`` JSON length, ``u32`` payload length), a UTF-8
JSON object, then the payload: raw bytes such as audio samples (never a JSON array or base64:
16 kHz audio as JSON costs ~50x the bytes and the CPU to match). Messages are encoded field by
field, never pickled: a bad frame fails as a :class:`WireFormatError`, it cannot run code.

A leaf: it imports nothing of Parley, so that :mod:`media` may use it (see the README's
dependency rule).
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Mapping
from typing import Any, BinaryIO

HEADER = struct.Struct(">II")
#: longest JSON part accepted by default (a config, a caption, an offer: a few KiB)
MAX_JSON_BYTES = 1 << 20
#: longest payload accepted by default: 30 s of float32 audio is 1.9 MiB
MAX_PAYLOAD_BYTES = 4 << 20


class WireFormatError(Exception):
    """A frame that is not a known message; the other side is broken."""


def encode_frame(header: Mapping[str, Any], payload: bytes = b"") -> bytes:
    """One frame: ``header`` as compact JSON, then ``payload``."""
    text = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode()
    return HEADER.pack(len(text), len(payload)) + text + payload


def frame_sizes(
    head: bytes,
    *,
    max_json_bytes: int = MAX_JSON_BYTES,
    max_payload_bytes: int = MAX_PAYLOAD_BYTES,
) -> tuple[int, int]:
    """The JSON and payload lengths announced by an 8-byte header (validated)."""
    json_len, payload_len = HEADER.unpack(head)
    if json_len > max_json_bytes or payload_len > max_payload_bytes:
        raise WireFormatError(f"frame of {json_len} + {payload_len} bytes is too long")
    return json_len, payload_len


def split_frame(data: bytes) -> tuple[bytes, bytes]:
    """One whole frame's JSON and payload (tests, and anything holding a frame in memory)."""
    if len(data) < HEADER.size:
        raise WireFormatError("a frame ends inside its header")
    json_len, payload_len = frame_sizes(data[: HEADER.size])
    if len(data) != HEADER.size + json_len + payload_len:
        raise WireFormatError(f"{len(data)} bytes are not one frame")
    body = data[HEADER.size :]
    return body[:json_len], body[json_len:]


def read_frame(stream: BinaryIO) -> tuple[bytes, bytes] | None:
    """The next frame's JSON and payload from a blocking stream; None at a clean end."""
    head = stream.read(HEADER.size)
    if not head:
        return None
    if len(head) < HEADER.size:
        raise WireFormatError("input ended inside a frame header")
    json_len, payload_len = frame_sizes(head)
    body = stream.read(json_len + payload_len)
    if len(body) < json_len + payload_len:
        raise WireFormatError("input ended inside a frame")
    return body[:json_len], body[json_len:]


async def receive_frame(
    stream: asyncio.StreamReader, *, max_json_bytes: int = MAX_JSON_BYTES
) -> tuple[bytes, bytes] | None:
    """The next frame's JSON and payload from an asyncio stream; None when the stream ends
    between frames (a frame cut short is a :class:`WireFormatError`)."""
    try:
        head = await stream.readexactly(HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise WireFormatError("input ended inside a frame header") from None
    json_len, payload_len = frame_sizes(head, max_json_bytes=max_json_bytes)
    try:
        body = await stream.readexactly(json_len + payload_len)
    except asyncio.IncompleteReadError:
        raise WireFormatError("input ended inside a frame") from None
    return body[:json_len], body[json_len:]


class Fields:
    """Typed access to one decoded JSON object; every mismatch is a :class:`WireFormatError`
    that names ``what`` was being decoded."""

    def __init__(self, obj: object, what: str) -> None:
        if not isinstance(obj, dict):
            raise WireFormatError(f"{what}: expected an object")
        self._obj: dict[str, object] = obj
        self.what = what

    @classmethod
    def load(cls, data: bytes, what: str) -> Fields:
        """Parse a frame's JSON part."""
        try:
            return cls(json.loads(data), what)
        except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
            raise WireFormatError(f"{what}: not JSON ({exc})") from None

    def error(self, message: str) -> WireFormatError:
        return WireFormatError(f"{self.what}: {message}")

    def bad(self, key: str, expected: str) -> WireFormatError:
        return self.error(f"{key!r} must be {expected}")

    def raw(self, key: str) -> object:
        try:
            return self._obj[key]
        except KeyError:
            raise self.error(f"missing {key!r}") from None

    def has(self, key: str) -> bool:
        return key in self._obj

    def text(self, key: str) -> str:
        value = self.raw(key)
        if not isinstance(value, str):
            raise self.bad(key, "a string")
        return value

    def optional_text(self, key: str) -> str | None:
        return None if self.raw(key) is None else self.text(key)

    def integer(self, key: str) -> int:
        value = self.raw(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.bad(key, "an integer")
        return value

    def boolean(self, key: str) -> bool:
        value = self.raw(key)
        if not isinstance(value, bool):
            raise self.bad(key, "a boolean")
        return value

    def number(self, key: str) -> float:
        value = self.raw(key)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self.bad(key, "a number")
        return float(value)

    def texts(self, key: str) -> tuple[str, ...]:
        value = self.raw(key)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.bad(key, "a list of strings")
        return tuple(value)

    def text_map(self, key: str) -> dict[str, str]:
        value = self.raw(key)
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise self.bad(key, "an object of strings")
        return dict(value)

    def object(self, key: str) -> dict[str, Any]:
        value = self.raw(key)
        if not isinstance(value, dict):
            raise self.bad(key, "an object")
        return value

    def fields(self, key: str) -> Fields:
        return Fields(self.raw(key), f"{self.what}.{key}")

    def items(self, key: str) -> list[tuple[str, Fields]]:
        return [(k, Fields(v, f"{self.what}.{key}.{k}")) for k, v in self.object(key).items()]

    def elements(self, key: str) -> list[Fields]:
        value = self.raw(key)
        if not isinstance(value, list):
            raise self.bad(key, "a list")
        return [Fields(v, f"{self.what}.{key}[{i}]") for i, v in enumerate(value)]
