"""Caption routing (server.features.captions) as plain functions: a frame and a room in,
deliveries out; the transcript's clock injected. No event loop, no socket, no worker."""

from __future__ import annotations

from interpret.frames import CaptionFrame, Translated, Word
from server.channels import Listening, RoomChannels
from server.features.captions import CaptionsFeature, route, transcript_line
from server.features.corrections import CorrectionsFeature
from server.settings import load_settings

from .fakes import FakeRoom

TRANSLATIONS = {
    lang: Translated(text, "argos")
    for lang, text in {"fr": "bonjour", "de": "hallo", "es": "hola"}.items()
}


def frame(
    *, final: bool, speaker: str = "p1", lang: str = "en", caption_id: str = "c1"
) -> CaptionFrame:
    return CaptionFrame(
        caption_id=caption_id,
        speaker_id=speaker,
        lang=lang,
        text="hello",
        start_s=1.0,
        end_s=2.0,
        is_final=final,
        translations=TRANSLATIONS,
        stable_chars=5 if final else 3,
        words=(Word(1.0, 2.0, " hello", 0.9),) if final else (),
    )


def test_each_reader_gets_the_languages_they_read_and_finals_are_transcribed() -> None:
    room = FakeRoom()
    speaker = room.join("Sam")
    french = room.join("Flo", languages=frozenset({"fr"}))
    both = room.join("Dee", languages=frozenset({"de", "es"}))
    routed = route(frame(final=True), room, None, latency_s=0.4321)
    assert routed.transcribed
    by_peer = {id(d.peer): d.caption for d in routed.deliveries}
    assert set(by_peer) == {id(speaker), id(french), id(both)}
    assert by_peer[id(speaker)].translations == {}
    assert by_peer[id(french)].translations == {"fr": "bonjour"}
    assert by_peer[id(both)].translations == {"de": "hallo", "es": "hola"}
    assert by_peer[id(both)].engines == {"de": "argos", "es": "argos"}
    wire = by_peer[id(french)]
    assert (wire.final, wire.latency_ms, wire.channel, wire.avg_logprob) == (
        True,
        432,
        None,
        -0.105,
    )
    assert wire.words == (("hello", 0.9),)


def test_interims_are_not_transcribed_and_carry_no_confidence() -> None:
    room = FakeRoom()
    room.join("Sam")
    routed = route(frame(final=False), room, None, latency_s=None)
    assert not routed.transcribed
    [delivery] = routed.deliveries
    assert (delivery.caption.final, delivery.caption.avg_logprob) == (False, None)
    assert '"avg_logprob"' not in delivery.caption.encode()


def test_an_interpreter_on_air_reaches_the_console_and_those_who_take_their_captions() -> None:
    room = FakeRoom()
    host = room.join("Hana", role="host")
    interpreter = room.join("Ines", role="interpreter")
    taker = room.join("Flo", languages=frozenset({"fr"}))
    machine = room.join("Fred", languages=frozenset({"fr"}))  # keeps machine translation
    channels = RoomChannels()
    assert interpreter.participant is not None and taker.participant is not None
    channels.go_on_air(interpreter.participant.participant_id, "fr")
    channels.listening[taker.participant.participant_id] = Listening(
        "fr", interpreter_captions=True
    )
    speech = frame(final=True, speaker=interpreter.participant.participant_id, lang="fr")
    routed = route(speech, room, channels, latency_s=None)
    assert not routed.transcribed  # the transcript is the floor's
    assert [d.peer for d in routed.deliveries] == [host, interpreter, taker]
    assert all(
        d.caption.channel == "fr" and d.caption.translations == {} for d in routed.deliveries
    )
    assert machine not in [d.peer for d in routed.deliveries]


def test_languages_taken_from_an_interpreter_are_left_out_of_the_floors_caption() -> None:
    room = FakeRoom()
    speaker = room.join("Sam")
    interpreter = room.join("Ines", role="interpreter")
    taker = room.join("Flo", languages=frozenset({"fr", "de"}))
    channels = RoomChannels()
    assert interpreter.participant and taker.participant and speaker.participant
    channels.go_on_air(interpreter.participant.participant_id, "fr")
    channels.listening[taker.participant.participant_id] = Listening(
        "fr", interpreter_captions=True
    )
    routed = route(frame(final=True, speaker=speaker.participant.participant_id), room, channels)
    [caption] = [d.caption for d in routed.deliveries if d.peer is taker]
    assert caption.translations == {"de": "hallo"}  # French comes from the interpreter


def test_delivery_keeps_finals_on_the_rooms_clock_and_drops_interims_for_a_lagging_reader() -> None:
    settings = load_settings(None)
    room = FakeRoom(started_monotonic=100.0)
    speaker = room.join("Sam")
    reader = room.join("Flo", languages=frozenset({"fr"}))
    reader.lagging = True
    notes = CorrectionsFeature(settings=settings.interpreting, retranslator=None)

    class NoChannels:
        def of(self, room_name: str) -> RoomChannels | None:
            return None

        def recognition_lang(self, room_name: str, pid: str, spoken: str | None) -> str | None:
            return spoken

    feature = CaptionsFeature(
        rooms={"r": room}, channels=NoChannels(), notes=notes, service=None, clock=lambda: 130.0
    )
    assert feature.deliver("gone", frame(final=True), latency_s=None, audio_offset_s=None) is None
    feature.deliver("r", frame(final=False), latency_s=None, audio_offset_s=None)
    assert reader.dropped_interims == 1 and len(speaker.sent) == 1
    # stream time 0 of this speaker was at monotonic 110: 10 s into the room
    feature.deliver("r", frame(final=True), latency_s=0.5, audio_offset_s=110.0)
    [line] = list(notes.transcript(room))
    assert (line.start_s, line.end_s, line.speaker_name, line.latency_s) == (11.0, 12.0, "Sam", 0.5)
    assert reader.of_type("caption")[-1]["translations"] == {"fr": "bonjour"}
    # without the speaker's audio clock, the final ends "now" (the injected clock)
    feature.deliver("r", frame(final=True, caption_id="c2"), latency_s=None, audio_offset_s=None)
    assert [(ln.start_s, ln.end_s) for ln in notes.transcript(room)][-1] == (29.0, 30.0)


def test_a_transcript_line_never_starts_before_the_room() -> None:
    room = FakeRoom(started_monotonic=100.0)
    room.join("Sam")
    line = transcript_line(frame(final=True), room, audio_offset_s=95.0, latency_s=None)
    assert (line.start_s, line.end_s) == (0.0, 0.0)
