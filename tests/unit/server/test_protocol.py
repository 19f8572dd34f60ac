"""Parsing client messages: every documented error code for malformed input (pure)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server import protocol
from server.protocol import ProtocolError, parse_client_message


def parse(obj: object) -> protocol.ClientMessage:
    return parse_client_message(json.dumps(obj))


def code_of(raw: str | bytes) -> str:
    with pytest.raises(ProtocolError) as info:
        parse_client_message(raw)
    return info.value.code


def test_valid_messages_parse_to_typed_values() -> None:
    assert parse({"type": "hello", "protocol": 1}) == protocol.Hello(type="hello", protocol=1)
    join = parse({"type": "join", "room": "team-1", "name": "  Ada  ", "extra": 1})
    assert isinstance(join, protocol.Join) and join.name == "Ada" and join.room == "team-1"
    publish = parse({"type": "publish", "kinds": ["audio", "video"]})
    assert isinstance(publish, protocol.Publish) and publish.kinds == ["audio", "video"]
    answer = parse({"type": "answer", "sdp": "v=0", "revision": 3})
    assert isinstance(answer, protocol.Answer) and answer.revision == 3
    assert isinstance(parse({"type": "leave"}), protocol.Leave)
    captions = parse({"type": "captions", "languages": ["es", "fr"]})
    assert isinstance(captions, protocol.Captions) and captions.languages == ["es", "fr"]
    join = parse({"type": "join", "room": "r", "name": "n", "lang": "de"})
    assert isinstance(join, protocol.Join) and join.lang == "de"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{", "bad_json"),
        ("null", "bad_json"),
        ('"hello"', "bad_json"),
        (b"{}", "bad_json"),
        ("{}", "unknown_type"),
        ('{"type": 5}', "unknown_type"),
        ('{"type": "offer", "sdp": "v=0"}', "unknown_type"),  # server-to-client only
        ('{"type": "hello"}', "bad_message"),
        ('{"type": "hello", "protocol": "one"}', "bad_message"),
        ('{"type": "join", "room": "", "name": "a"}', "bad_message"),
        ('{"type": "join", "room": "a b", "name": "a"}', "bad_message"),
        ('{"type": "join", "room": "r", "name": "   "}', "bad_message"),
        ('{"type": "join", "room": "r", "name": "a\\u0000b"}', "bad_message"),
        ('{"type": "join", "room": "r", "name": "' + "n" * 65 + '"}', "bad_message"),
        ('{"type": "publish", "kinds": []}', "bad_message"),
        ('{"type": "publish", "kinds": ["screen"]}', "bad_message"),
        ('{"type": "answer", "sdp": "", "revision": 1}', "bad_message"),
        ('{"type": "answer", "sdp": "' + "x" * 1_048_577 + '", "revision": 1}', "bad_message"),
        ('{"type": "mute", "track_id": "t", "muted": "yes"}', "bad_message"),
        ('{"type": "captions", "languages": ["Spanish"]}', "bad_message"),
        ('{"type": "captions", "languages": "es"}', "bad_message"),
        ('{"type": "join", "room": "r", "name": "n", "lang": "EN"}', "bad_message"),
    ],
)
def test_malformed_messages_get_documented_codes(raw: str | bytes, code: str) -> None:
    assert code_of(raw) == code


def test_deeply_nested_json_is_bad_json_not_a_crash() -> None:
    assert code_of("[" * 100_000 + "]" * 100_000) == "bad_json"


@given(st.text(max_size=300))
def test_any_text_parses_or_raises_protocol_error(text: str) -> None:
    try:
        parse_client_message(text)
    except ProtocolError as exc:
        assert exc.code in {"bad_json", "unknown_type", "bad_message"}


@given(
    st.dictionaries(
        st.sampled_from(
            ["type", "room", "name", "kinds", "sdp", "revision", "track_id", "muted", "protocol"]
        ),
        st.one_of(
            st.none(),
            st.integers(),
            st.text(max_size=20),
            st.booleans(),
            st.lists(st.text(max_size=5), max_size=3),
        ),
    )
)
def test_any_object_parses_or_raises_protocol_error(obj: dict[str, object]) -> None:
    try:
        parse(obj)
    except ProtocolError as exc:
        assert exc.code in {"unknown_type", "bad_message"}


def test_server_messages_are_compact_json_with_type_first() -> None:
    text = protocol.error("bad_sdp", "nope", ref="answer")
    assert text.startswith('{"type":"error"')
    assert json.loads(text) == {
        "type": "error",
        "code": "bad_sdp",
        "message": "nope",
        "ref": "answer",
    }
