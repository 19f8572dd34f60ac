"""The answer's media-section cap counts m-lines the way aiortc's SDP parser splits lines
(``str.splitlines()``: ``\\r``, ``\\n``, ``\\r\\n`` and the other Unicode line breaks), so an
answer cannot slip past the cap by separating its m-lines with bare ``\\r``."""

from __future__ import annotations

import pytest

from tests.support.app import started_app, ws_url
from tests.support.raw import RawClient

MLINE = "m=audio 9 UDP/TLS/RTP/SAVPF 111"


@pytest.mark.parametrize("separator", ["\r", "\x85", "\u2028", "\x0b"])
async def test_media_sections_split_by_any_line_break_count(separator: str) -> None:
    app = await started_app()
    try:
        client = await RawClient.connect(ws_url(app))
        await client.send({"type": "join", "room": "sdp", "name": "Sam", "publish": ["audio"]})
        assert (await client.recv("joined"))["room"] == "sdp"
        offer = await client.recv("offer")
        cap = app.settings.limits.max_media_sections
        sdp = "v=0" + separator + separator.join([MLINE] * (cap + 1)) + separator
        await client.send({"type": "answer", "revision": offer["revision"], "sdp": sdp})
        error = await client.error()
        assert error["code"] == "bad_message", error
        assert f"{cap + 1} media sections" in error["message"]
        await client.close()
    finally:
        await app.stop()
