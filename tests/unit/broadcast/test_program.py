"""The program's choices (broadcast/program.py): audio per rendition, active speaker, video."""

from __future__ import annotations

from broadcast.program import (
    ActiveSpeaker,
    AudioSource,
    audio_plan,
    floor_members,
    video_source,
)


def test_floor_is_everyone_not_on_air() -> None:
    assert floor_members(["a", "b", "i"], {"fr": "i"}) == {"a", "b"}


def test_channel_plays_its_interpreter_or_the_floor() -> None:
    plan = audio_plan(["fr", "de"], {"fr": "i"})
    assert plan == {
        "floor": AudioSource(floor=True),
        "fr": AudioSource(floor=False, participant_id="i"),
        "de": AudioSource(floor=True),
    }
    # the interpreter goes off air: French sounds like the floor again
    assert audio_plan(["fr", "de"], {})["fr"] == AudioSource(floor=True)


def test_active_speaker_holds_against_short_bursts() -> None:
    speaker = ActiveSpeaker(switch_after_s=0.5)
    floor = {"a", "b", "i"}
    speaker.update({"a": 0.2, "b": 0.0}, floor, 0.0)
    assert speaker.current == "a"
    speaker.update({"a": 0.05, "b": 0.3}, floor, 1.0)
    speaker.update({"a": 0.05, "b": 0.3}, floor, 1.3)
    assert speaker.current == "a"  # b loudest for 0.3 s only
    speaker.update({"a": 0.05, "b": 0.3}, floor, 1.6)
    assert speaker.current == "b"
    # interpreters on air are not the floor: never the active speaker
    speaker.update({"i": 0.9}, {"a", "b"}, 5.0)
    assert speaker.current == "b"
    # the speaker left
    speaker.update({"a": 0.2}, {"a"}, 6.0)
    assert speaker.current == "a"


def test_video_prefers_pin_then_screen_then_active_speaker() -> None:
    cams = {"a", "b"}
    assert video_source(pinned=None, screens=set(), cameras=cams, active="b") == ("b", "camera")
    assert video_source(pinned=None, screens={"a"}, cameras=cams, active="b") == ("a", "screen")
    assert video_source(pinned="b", screens={"a"}, cameras=cams, active="a") == ("b", "camera")
    assert video_source(pinned="x", screens=set(), cameras=cams, active=None) == ("a", "camera")
    assert video_source(pinned=None, screens=set(), cameras=set(), active="a") is None
