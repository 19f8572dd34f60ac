"""The connection's Sans-I/O core (server.connection.ConnectionCore): frames in, actions out;
the clock injected. No event loop, no socket."""

from __future__ import annotations

import json
from typing import Any

from server.connection import (
    CLOSE_NORMAL,
    CLOSE_POLICY,
    MAX_ERRORS_IN_A_ROW,
    Action,
    Close,
    ConnectionCore,
    Handle,
    LanguagesChanged,
    Send,
)
from server.protocol import Join, ProtocolError
from server.settings import load_settings

HELLO = json.dumps({"type": "hello", "protocol": 1})
JOIN = json.dumps({"type": "join", "room": "r", "name": "Ann", "lang": "fr"})


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def core(clock: Clock | None = None, **limits: Any) -> ConnectionCore:
    settings = load_settings(None, limits=limits)
    return ConnectionCore(
        limits=settings.limits,
        welcome=lambda version: json.dumps({"type": "welcome", "protocol": version}),
        captions_on=True,
        clock=clock or Clock(),
    )


def sent(actions: list[Action]) -> list[dict[str, Any]]:
    return [json.loads(a.message) for a in actions if isinstance(a, Send)]


def codes(actions: list[Action]) -> list[str]:
    return [m.get("code", m["type"]) for m in sent(actions)]


def test_hello_first_then_join_then_room_messages() -> None:
    c = core()
    assert codes(c.receive(HELLO)) == ["welcome"]
    [handle] = c.receive(JOIN)
    assert isinstance(handle, Handle) and isinstance(handle.message, Join)
    assert c.spoken_lang == "fr"
    c.placed(True)
    assert codes(c.receive(JOIN)) == ["already_joined"]  # one room per socket
    [chat] = c.receive(json.dumps({"type": "chat", "text": "hi"}))
    assert isinstance(chat, Handle)  # the feature decides (not_joined, forbidden...)


def test_anything_before_hello_closes_and_so_does_another_version() -> None:
    c = core()
    actions = c.receive(JOIN)
    assert codes(actions) == ["hello_required"]
    assert actions[-1] == Close(CLOSE_POLICY, "hello_required")
    assert c.receive(HELLO) == []  # closing: read and discarded
    c = core()
    actions = c.receive(json.dumps({"type": "hello", "protocol": 99}))
    assert codes(actions) == ["unsupported_protocol"] and actions[-1].code == CLOSE_POLICY  # type: ignore[union-attr]


def test_a_second_hello_is_an_error_that_keeps_the_connection() -> None:
    c = core()
    c.receive(HELLO)
    actions = c.receive(HELLO)
    assert codes(actions) == ["bad_state"] and not c.closing


def test_a_streak_of_errors_closes_and_a_good_message_ends_the_streak() -> None:
    c = core(message_burst=1000)
    c.receive(HELLO)
    for _ in range(MAX_ERRORS_IN_A_ROW - 1):
        assert codes(c.receive("not json")) == ["bad_json"]
    assert codes(c.receive(json.dumps({"type": "captions", "languages": []}))) == []
    for _ in range(MAX_ERRORS_IN_A_ROW - 1):
        c.receive("{}")
    assert not c.closing
    actions = c.receive("{}")
    assert codes(actions) == ["unknown_type", "too_many_errors"]
    assert actions[-1] == Close(CLOSE_POLICY, "too_many_errors", aborted=True)


def test_handler_refusals_count_in_the_streak() -> None:
    c = core(message_burst=1000)
    c.receive(HELLO)
    for _ in range(MAX_ERRORS_IN_A_ROW - 1):
        c.refused(ProtocolError("not_joined", "no"))
    c.handled()
    assert codes(c.refused(ProtocolError("not_joined", "no"))) == ["not_joined"]


def test_the_message_rate_limit_closes() -> None:
    clock = Clock()
    c = core(clock, message_burst=3, messages_per_connection_per_s=1.0)
    c.receive(HELLO)
    c.receive(JOIN)
    c.receive(JOIN)
    actions = c.receive(JOIN)
    assert codes(actions) == ["too_many_messages"] and c.closing
    clock.now_s += 60
    assert c.receive(JOIN) == []


def test_captions_languages_are_the_connections() -> None:
    c = core()
    c.receive(HELLO)
    actions = c.receive(json.dumps({"type": "captions", "languages": ["fr", "de"]}))
    assert actions == [LanguagesChanged()] and c.languages == {"fr", "de"}
    off = ConnectionCore(
        limits=load_settings(None).limits, welcome=str, captions_on=False, clock=Clock()
    )
    off.receive(HELLO)
    assert codes(off.receive(json.dumps({"type": "captions", "languages": []}))) == ["bad_state"]


def test_leave_closes_normally_and_ends_the_reading() -> None:
    c = core()
    c.receive(HELLO)
    assert c.receive(json.dumps({"type": "leave"})) == [Close(CLOSE_NORMAL, "left", end=True)]


def test_hello_and_join_deadlines() -> None:
    clock = Clock()
    c = core(clock, hello_timeout_s=5, join_timeout_s=30)
    assert c.deadline_s() == 1005.0 and c.expire() == []
    clock.now_s = 1005.0
    assert codes(c.expire()) == ["hello_timeout"] and c.closing

    clock.now_s = 0.0
    c = core(clock, hello_timeout_s=5, join_timeout_s=30)
    c.receive(HELLO)
    assert c.deadline_s() == 30.0
    clock.now_s = 10.0
    c.receive(JOIN)
    # a refused join: another join_timeout_s, plus its retry_after_ms
    c.join_refused(ProtocolError("rate_limited", "later", "join", retry_after_ms=2000))
    assert c.deadline_s() == 42.0
    c.placed(True)  # in a room or a lobby: no deadline
    assert c.deadline_s() == float("inf")
    clock.now_s = 100.0
    c.placed(False)  # denied, lobby closed: join again in time
    assert c.deadline_s() == 130.0
    clock.now_s = 130.0
    assert codes(c.expire()) == ["join_timeout"]


def test_a_full_outbox_closes_without_a_message_once() -> None:
    c = core()
    actions = c.abort("outbox_full", "not reading")
    assert actions == [Close(CLOSE_POLICY, "outbox_full", aborted=True)]
    assert c.abort("media_failed", "gone") == [] and c.close(4001, "removed") == []


def test_a_redirected_join_is_no_error_and_leaves_time_to_join_again() -> None:
    """Issue 18: the room lives on another node; the client is told where (``redirect``), its
    error streak is not touched, and it may still join here within ``join_timeout_s``."""
    clock = Clock()
    clock.now_s = 0.0
    c = core(clock, join_timeout_s=30)
    c.receive(HELLO)
    for _ in range(MAX_ERRORS_IN_A_ROW + 1):  # more redirects than the error streak allows
        clock.now_s += 1.0
        c.receive(JOIN)
        redirect = '{"type":"redirect","room":"r","node":"b","url":"ws://b/ws"}'
        actions = c.redirected(redirect)
        assert codes(actions) == ["redirect"] and not c.closing
    assert c.deadline_s() == clock.now_s + 30
    assert not c.joined
