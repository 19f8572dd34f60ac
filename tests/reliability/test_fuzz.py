"""Fuzzing a real ``parley serve`` process with hypothesis: signaling messages of every type with
random fields, non-JSON frames, and mutated SDP answers. Whatever arrives, the server answers
with a documented error or close code, never an internal error, and keeps serving: a fresh pair
of aiortc clients exchanges media afterwards.

``PARLEY_FUZZ_EXAMPLES`` sets the number of signaling examples (1,000 in CI, ≥ 10,000 in the
long form, ``bench/prove.py --long``); mutated SDP gets a fifth of it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from media.hooks import restrict_host_addresses
from tests.support.client import ParleyClient, SineAudio
from tests.support.origin import ws_origin
from tests.support.reliability import FUZZ_EXAMPLES, report, served_config, unhandled_in_log
from tests.support.server import ServerProcess

pytestmark = pytest.mark.reliability

TYPES = [
    "hello",
    "join",
    "publish",
    "unpublish",
    "answer",
    "mute",
    "leave",
    "captions",
    "mute_participant",
    "remove_participant",
    "room_settings",
    "admit",
    "deny",
    "end_meeting",
    "chat",
    "unknown",
]
FIELDS = [
    "protocol",
    "client",
    "room",
    "name",
    "publish",
    "lang",
    "token",
    "password",
    "role",
    "kinds",
    "track_id",
    "sdp",
    "revision",
    "muted",
    "languages",
    "participant_id",
    "locked",
    "lobby",
    "text",
    "to",
]
#: close codes the protocol documents for a misbehaving or leaving client (PROTOCOL.md)
EXPECTED_CLOSES = {1000, 1008, 1009, 4001, 4002}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64)
    | st.floats(allow_nan=False)
    | st.text(max_size=80)
    | st.sampled_from(["audio", "video", "en", "fuzz", "host", "viewer", "p1", "t1"]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
typed_messages = st.builds(
    lambda type_, fields: {"type": type_, **fields},
    st.sampled_from(TYPES) | st.text(max_size=12),
    st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), json_values, max_size=5),
)
frames = st.one_of(
    typed_messages.map(json.dumps),
    typed_messages.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=200),
)


def open_ws(url: str) -> ClientConnection:
    """A sync client connection (entered: websockets 17 wants its context manager)."""
    return connect(url, max_size=None, open_timeout=20, origin=ws_origin(url)).__enter__()


class FuzzConnection:
    """A joined socket that reconnects after the server closed it for a documented reason."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.ws: ClientConnection | None = None
        self.closes: dict[int, int] = {}
        self.errors: dict[str, int] = {}
        self.examples = 0

    def _open(self) -> ClientConnection:
        ws = open_ws(self.server.ws_url)
        ws.send(json.dumps({"type": "hello", "protocol": 1}))
        self._until(ws, "welcome")
        ws.send(json.dumps({"type": "join", "room": "fuzz", "name": "fuzzer"}))
        self._until(ws, "joined")
        return ws

    def _until(self, ws: ClientConnection, kind: str) -> dict[str, Any]:
        while True:
            message = json.loads(ws.recv(timeout=20))
            self._note(message)
            if message["type"] == kind:
                return dict(message)

    def _note(self, message: dict[str, Any]) -> None:
        if message["type"] == "error":
            code = message["code"]
            assert code != "internal", message
            self.errors[code] = self.errors.get(code, 0) + 1

    def exchange(self, frame: str | bytes) -> None:
        """Send ``frame``, then a second ``hello`` whose ``bad_state`` error marks the point where
        the server has dealt with ``frame``."""
        self.examples += 1
        if self.ws is None:
            self.ws = self._open()
        ws = self.ws
        try:
            ws.send(frame)
            ws.send(json.dumps({"type": "hello", "protocol": 1}))
            while True:
                message = json.loads(ws.recv(timeout=20))
                self._note(message)
                if message["type"] == "error" and message["code"] == "bad_state":
                    return
        except ConnectionClosed:
            code = ws.close_code or 1006
            self.closes[code] = self.closes.get(code, 0) + 1
            assert code in EXPECTED_CLOSES, (code, ws.close_reason, frame)
            self.ws = None

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # The message rate limit has its own test (test_host_powers); here it would only slow the
    # fuzzer down.
    server = ServerProcess(
        tmp_path_factory.mktemp("fuzz"),
        served_config(
            "[captions]\nenabled = false\n\n[limits]\nmessages_per_connection_per_s = 100000.0\n"
            "message_burst = 100000\njoins_per_room_per_s = 100000.0\njoin_burst = 100000\n"
            # one greeted connection takes every example, most of which are not joins; failed
            # credentials (fuzzed tokens and passwords) must get their own code, not the backoff
            "join_timeout_s = 3600.0\ncredential_failures_free = 100\n"
            "rooms_created_per_address_per_minute = 100000\n"
        ),
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.timeout(120 + FUZZ_EXAMPLES // 5)
def test_fuzzed_signaling_messages_get_documented_answers(fuzz_server: ServerProcess) -> None:
    connection = FuzzConnection(fuzz_server)

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(frames)
    def one(frame: str | bytes) -> None:
        connection.exchange(frame)

    try:
        one()
    finally:
        connection.close()
    report(
        "fuzz_signaling",
        {"examples": connection.examples, "errors": connection.errors, "closes": connection.closes},
    )
    print(f"fuzz: {connection.examples} frames, errors {connection.errors}")
    print(f"fuzz: closes {connection.closes}")
    assert connection.examples >= FUZZ_EXAMPLES
    assert "bad_message" in connection.errors  # the fuzzer did reach the parser's refusals
    assert fuzz_server.alive()
    assert unhandled_in_log(fuzz_server.log_text()) == []
    assert "internal error" not in fuzz_server.log_text()
    assert_serves_media(fuzz_server)


def base_answer(server: ServerProcess) -> tuple[str, str]:
    """A real aiortc answer to the offer a one-audio publisher gets (the thing to mutate), and
    that offer."""
    ws = open_ws(server.ws_url)
    ws.send(json.dumps({"type": "hello", "protocol": 1}))
    ws.send(json.dumps({"type": "join", "room": "sdp", "name": "base", "publish": ["audio"]}))
    offer: dict[str, Any] = {}
    while offer.get("type") != "offer":
        offer = json.loads(ws.recv(timeout=20))
    ws.close()

    async def answer() -> str:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
        for transceiver in pc.getTransceivers():
            transceiver.sender.replaceTrack(SineAudio(440))
            transceiver.direction = "sendonly"
        await pc.setLocalDescription(await pc.createAnswer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return str(sdp)

    restrict_host_addresses(["127.0.0.1"])
    try:
        return asyncio.run(answer()), str(offer["sdp"])
    finally:
        restrict_host_addresses([])


def mutations(lines: list[str]) -> st.SearchStrategy[str]:
    """SDP with lines dropped, duplicated, swapped, truncated, or with bytes changed."""
    index = st.integers(min_value=0, max_value=len(lines) - 1)

    def drop(i: int) -> list[str]:
        return lines[:i] + lines[i + 1 :]

    def duplicate(i: int, times: int) -> list[str]:
        return lines[: i + 1] + [lines[i]] * times + lines[i + 1 :]

    def swap(i: int, j: int) -> list[str]:
        out = list(lines)
        out[i], out[j] = out[j], out[i]
        return out

    def change(i: int, at: int, text: str) -> list[str]:
        line = lines[i]
        at = at % (len(line) + 1)
        return lines[:i] + [line[:at] + text + line[at + len(text) :]] + lines[i + 1 :]

    def truncate(i: int) -> list[str]:
        return lines[:i]

    edits = st.one_of(
        index.map(drop),
        st.builds(duplicate, index, st.integers(1, 40)),
        st.builds(swap, index, index),
        st.builds(change, index, st.integers(0, 200), st.text(min_size=1, max_size=12)),
        st.builds(
            change,
            index,
            st.integers(0, 200),
            st.sampled_from(
                ["0", "-1", "99999999999", " ", ":", "\r\n", "m=video 9 UDP/TLS/RTP/SAVPF 96"]
            ),
        ),
        index.map(truncate),
    )
    return edits.map("\r\n".join)


@pytest.mark.timeout(120 + FUZZ_EXAMPLES // 10)
def test_mutated_sdp_answers_get_documented_answers(fuzz_server: ServerProcess) -> None:
    answer, _ = base_answer(fuzz_server)
    lines = answer.split("\r\n")
    outcomes: dict[str, int] = {}

    @settings(
        max_examples=max(100, FUZZ_EXAMPLES // 5),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(mutations(lines))
    def one(sdp: str) -> None:
        ws = open_ws(fuzz_server.ws_url)
        try:
            ws.send(json.dumps({"type": "hello", "protocol": 1}))
            ws.send(json.dumps({"type": "join", "room": "sdp", "name": "m", "publish": ["audio"]}))
            offer: dict[str, Any] = {}
            while offer.get("type") != "offer":
                offer = json.loads(ws.recv(timeout=20))
            ws.send(json.dumps({"type": "answer", "sdp": sdp, "revision": offer["revision"]}))
            # a marker: the answer has been dealt with once this error arrives
            ws.send(json.dumps({"type": "hello", "protocol": 1}))
            while True:
                message = json.loads(ws.recv(timeout=20))
                if message["type"] == "error":
                    assert message["code"] != "internal", message
                    if message["code"] == "bad_state" and message.get("ref") == "hello":
                        outcomes["accepted"] = outcomes.get("accepted", 0) + 1
                        return
                    outcomes[message["code"]] = outcomes.get(message["code"], 0) + 1
        except ConnectionClosed:
            assert ws.close_code in EXPECTED_CLOSES, (ws.close_code, ws.close_reason)
        finally:
            ws.close()

    one()
    report("fuzz_sdp", {"examples": max(100, FUZZ_EXAMPLES // 5), "outcomes": outcomes})
    print(f"mutated SDP: outcomes {outcomes}")
    assert sum(outcomes.values()) >= max(100, FUZZ_EXAMPLES // 5)
    assert len(outcomes) >= 2  # both refusals and acceptances happened
    assert fuzz_server.alive()
    assert unhandled_in_log(fuzz_server.log_text()) == []
    assert "internal error" not in fuzz_server.log_text()
    assert_serves_media(fuzz_server)


def assert_serves_media(server: ServerProcess) -> None:
    """A fresh publisher and subscriber (aiortc) meet and the subscriber hears the tone."""

    async def meet() -> float | None:
        restrict_host_addresses(["127.0.0.1"])
        speaker = ParleyClient(server.ws_url, room="after-fuzz", name="s", audio=SineAudio(660))
        listener = ParleyClient(server.ws_url, room="after-fuzz", name="l")
        try:
            await listener.join()
            await speaker.join()
            await listener.wait_for(
                lambda: sum(m.audio_frames for m in listener.remote.values()) > 50, 20
            )
            assert speaker.participant_id is not None
            return listener.audio_frequency(speaker.participant_id)
        finally:
            await speaker.leave()
            await listener.leave()
            restrict_host_addresses([])

    frequency = asyncio.run(meet())
    assert frequency is not None and abs(frequency - 660) < 5, frequency
