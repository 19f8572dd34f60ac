"""The pure rules of interpretation channels (server.channels): who hears whom, on air, handover.
The media and the real clients are in tests/acceptance/test_interpretation_channels.py."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.channels import ChannelError, Listening, RoomChannels, audio_holds
from server.protocol import ProtocolError, parse_client_message

PEOPLE = ["floor1", "floor2", "marie", "jean", "lena", "flo"]


def test_nobody_on_air_everyone_hears_everyone() -> None:
    holds = audio_holds(PEOPLE, {"lena": Listening("fr")}, {})
    assert holds == {pid: frozenset() for pid in PEOPLE}


def test_a_channel_listener_hears_the_interpreter_instead_of_the_floor() -> None:
    on_air = {"fr": "marie"}
    holds = audio_holds(PEOPLE, {"lena": Listening("fr")}, on_air)
    assert holds["lena"] == {"floor1", "floor2", "jean", "flo"}  # everyone but Marie
    # floor listeners never hear an interpreter on air
    for pid in ("floor1", "floor2", "jean", "flo"):
        assert holds[pid] == {"marie"}
    assert holds["marie"] == frozenset()  # she hears the floor she interprets


def test_ducking_keeps_the_floor() -> None:
    holds = audio_holds(PEOPLE, {"lena": Listening("fr", duck=True)}, {"fr": "marie"})
    assert holds["lena"] == frozenset()


def test_relay_an_interpreter_listens_to_another_channel() -> None:
    on_air = {"en": "jean", "fr": "marie"}
    holds = audio_holds(PEOPLE, {"marie": Listening("en")}, on_air)
    assert holds["marie"] == {"floor1", "floor2", "lena", "flo"}  # Jean only
    assert holds["jean"] == {"marie"}  # Jean on the floor: not Marie's French
    assert holds["lena"] == {"jean", "marie"}


def test_a_channel_without_interpreter_falls_back_to_the_floor() -> None:
    holds = audio_holds(PEOPLE, {"lena": Listening("de")}, {"fr": "marie"})
    assert holds["lena"] == {"marie"}


@settings(max_examples=200, deadline=None)
@given(
    choices=st.dictionaries(
        st.sampled_from(PEOPLE),
        st.builds(Listening, st.sampled_from(["floor", "fr", "en", "de"]), st.booleans()),
    ),
    on_air=st.dictionaries(st.sampled_from(["fr", "en", "de"]), st.sampled_from(PEOPLE)),
)
def test_holds_invariants(choices: dict[str, Listening], on_air: dict[str, str]) -> None:
    if len(set(on_air.values())) != len(on_air):
        return  # one channel per interpreter
    holds = audio_holds(PEOPLE, choices, on_air)
    voices = set(on_air.values())
    for pid, held in holds.items():
        assert pid not in held
        heard = set(PEOPLE) - held - {pid}
        choice = choices.get(pid, Listening())
        voice = on_air.get(choice.channel)
        # at most one interpreter is ever heard, and only the chosen channel's
        assert heard & voices <= ({voice} if voice else set())
        if voice is None or voice == pid or choice.duck:
            assert heard >= set(PEOPLE) - voices - {pid}  # the whole floor
        else:
            assert heard == {voice}


def test_on_air_is_exclusive_and_handover_is_one_step() -> None:
    channels = RoomChannels()
    channels.go_on_air("marie", "fr")
    with pytest.raises(ChannelError) as busy:
        channels.go_on_air("jean", "fr")
    assert busy.value.code == "channel_busy" and busy.value.details == {"on_air": "marie"}
    assert channels.request_handover("jean", "fr", expires_monotonic=100.0) == "marie"
    with pytest.raises(ChannelError) as second:
        channels.request_handover("flo", "fr", expires_monotonic=100.0)
    assert second.value.code == "channel_busy"
    with pytest.raises(ChannelError):
        channels.answer_handover("jean", "fr", accept=True)  # only the one on air answers
    assert channels.on_air == {"fr": "marie"}
    assert channels.answer_handover("marie", "fr", accept=True) == "jean"
    assert channels.on_air == {"fr": "jean"} and not channels.requests


def test_declined_and_expired_requests_change_nothing() -> None:
    channels = RoomChannels()
    channels.go_on_air("marie", "fr")
    channels.request_handover("jean", "fr", expires_monotonic=10.0)
    assert channels.answer_handover("marie", "fr", accept=False) == "jean"
    assert channels.on_air == {"fr": "marie"} and not channels.requests
    channels.request_handover("jean", "fr", expires_monotonic=10.0)
    assert channels.expire("fr", now_monotonic=9.0) is None  # not yet
    assert channels.expire("fr", now_monotonic=10.0) == "jean"
    assert channels.on_air == {"fr": "marie"} and not channels.requests
    with pytest.raises(ChannelError):
        channels.answer_handover("marie", "fr", accept=True)  # nothing pending any more


def test_an_interpreter_on_air_elsewhere_moves_channels() -> None:
    channels = RoomChannels()
    channels.go_on_air("jean", "en")
    channels.go_on_air("marie", "fr")
    channels.request_handover("jean", "fr", expires_monotonic=10.0)
    channels.answer_handover("marie", "fr", accept=True)
    assert channels.on_air == {"fr": "jean"}  # he left English: one channel per interpreter
    assert channels.go_on_air("jean", "de") == "fr"
    assert channels.on_air == {"de": "jean"}
    assert channels.known == ["en", "fr", "de"]


def test_leaving_frees_the_channel_and_withdraws_requests() -> None:
    channels = RoomChannels()
    channels.go_on_air("marie", "fr")
    channels.request_handover("jean", "fr", expires_monotonic=10.0)
    channels.listening["jean"] = Listening("fr")
    assert channels.participant_left("jean") is None
    assert not channels.requests and "jean" not in channels.listening
    assert channels.participant_left("marie") == "fr"
    assert channels.on_air == {}


def test_taken_languages_only_when_asked_and_on_air() -> None:
    channels = RoomChannels()
    channels.listening["lena"] = Listening("fr", interpreter_captions=True)
    assert channels.taken_languages("lena", frozenset({"fr", "de"})) == frozenset()
    channels.go_on_air("marie", "fr")
    assert channels.taken_languages("lena", frozenset({"fr", "de"})) == {"fr"}
    assert channels.taken_languages("flo", frozenset({"fr"})) == frozenset()


@pytest.mark.parametrize(
    "raw",
    [
        '{"type":"listen","channel":"French"}',
        '{"type":"listen"}',
        '{"type":"on_air","channel":"floor"}',
        '{"type":"handover_answer","channel":"fr"}',
        '{"type":"handover_answer","channel":"fr","accept":"yes"}',
    ],
)
def test_bad_channel_messages_are_bad_message(raw: str) -> None:
    with pytest.raises(ProtocolError) as err:
        parse_client_message(raw)
    assert err.value.code == "bad_message"
