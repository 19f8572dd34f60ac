"""The frame codec every worker pipe speaks (speech worker and media workers)."""

from __future__ import annotations

import asyncio
import io

import pytest

from interpret.framing import (
    HEADER,
    Fields,
    WireFormatError,
    encode_frame,
    read_frame,
    receive_frame,
    split_frame,
)


def test_a_frame_is_header_json_payload() -> None:
    data = encode_frame({"t": "x", "text": "é"}, b"\x01\x02")
    assert data[: HEADER.size] == HEADER.pack(len('{"t":"x","text":"é"}'.encode()), 2)
    assert split_frame(data) == ('{"t":"x","text":"é"}'.encode(), b"\x01\x02")
    with pytest.raises(WireFormatError):
        split_frame(data + b"\x00")


def test_blocking_and_async_readers_agree() -> None:
    frames = [encode_frame({"n": i}, bytes(i)) for i in range(3)]
    stream = io.BytesIO(b"".join(frames))
    assert [read_frame(stream) for _ in range(4)] == [*map(split_frame, frames), None]

    async def receive_all() -> list[tuple[bytes, bytes] | None]:
        reader = asyncio.StreamReader()
        reader.feed_data(b"".join(frames))
        reader.feed_eof()
        return [await receive_frame(reader) for _ in range(4)]

    assert asyncio.run(receive_all()) == [*map(split_frame, frames), None]


@pytest.mark.parametrize("cut", [3, HEADER.size + 2])
def test_a_frame_cut_short_is_an_error_not_an_end(cut: int) -> None:
    data = encode_frame({"n": 1})[:cut]
    with pytest.raises(WireFormatError):
        read_frame(io.BytesIO(data))

    async def receive() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        await receive_frame(reader)

    with pytest.raises(WireFormatError):
        asyncio.run(receive())


def test_an_announced_length_over_the_limit_is_refused_before_reading() -> None:
    with pytest.raises(WireFormatError, match="too long"):
        read_frame(io.BytesIO(HEADER.pack(1 << 30, 0)))


def test_fields_name_what_was_wrong() -> None:
    f = Fields.load(b'{"n": true, "s": "x", "m": {"a": 1}}', "message")
    with pytest.raises(WireFormatError, match="message: 'n' must be an integer"):
        f.integer("n")
    with pytest.raises(WireFormatError, match="missing 'z'"):
        f.text("z")
    with pytest.raises(WireFormatError, match="'m' must be an object of strings"):
        f.text_map("m")
    assert f.boolean("n") is True and f.optional_text("s") == "x"
    with pytest.raises(WireFormatError, match="not JSON"):
        Fields.load(b"\xff", "message")
