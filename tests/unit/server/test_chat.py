"""The pure part of room chat: ids, order, what is kept and what a joiner sees as history."""

from __future__ import annotations

from server.chat import TRANSLATION_DOWN, ChatHistory


def post(history: ChatHistory, text: str, to: str | None = None) -> str:
    message = history.post(sender_id="a", sender_name="Ann", lang="en", text=text, to=to, now=1.0)
    return message.message_id


def test_history_keeps_room_messages_in_order_and_never_private_ones() -> None:
    history = ChatHistory(max_messages=3)
    assert [post(history, t) for t in ("one", "two")] == ["m0", "m1"]
    assert post(history, "secret", to="b") == "m2"  # ids stay unique across both
    since = history.next_seq
    assert [m.text for m in history.before(since)] == ["one", "two"]
    post(history, "three")
    post(history, "four")
    assert [m.text for m in history.before(history.next_seq)] == ["two", "three", "four"]
    assert [m.text for m in history.before(since)] == ["two"]  # what came later is live


def test_no_history_kept_when_configured_off() -> None:
    history = ChatHistory(max_messages=0)
    post(history, "gone")
    assert history.before(history.next_seq) == []


def test_wire_form_per_reader() -> None:
    message = ChatHistory(max_messages=5).post(
        sender_id="a", sender_name="Ann", lang="en", text="Hello", to="b", now=12.34567
    )
    message.translations["es"] = ("Hola", "apertium")
    wire = message.to_wire(["es", "en", "ja"], {"ja": "no translation en→ja"})
    assert wire == {
        "message_id": "m0",
        "from": "a",
        "from_name": "Ann",
        "private": True,
        "to": "b",
        "lang": "en",
        "text": "Hello",
        "translations": {"es": "Hola"},
        "engines": {"es": "apertium"},
        "untranslated": {"ja": "no translation en→ja"},
        "sent_at": 12.346,
    }
    # a language nobody could translate into gets a reason, never silence
    assert message.to_wire(["fr"], {})["untranslated"] == {"fr": TRANSLATION_DOWN}
