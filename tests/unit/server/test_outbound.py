"""The server's messages (server.outbound) serialize exactly as PROTOCOL.md writes them: type
first, fields in order, optional ones left out while unset."""

from __future__ import annotations

import json

from server import outbound


def test_type_first_then_the_fields_in_order() -> None:
    text = outbound.Welcome(protocol=1, server="parley/x", max_message_bytes=65536, auth="open")
    assert text.encode() == (
        '{"type":"welcome","protocol":1,"server":"parley/x","max_message_bytes":65536,'
        '"auth":"open"}'
    )


def test_optional_fields_are_left_out_while_unset() -> None:
    assert json.loads(outbound.Muted("p1", "t1", True).encode()) == {
        "type": "muted",
        "participant_id": "p1",
        "track_id": "t1",
        "muted": True,
    }
    assert json.loads(outbound.Muted("p1", "t1", True, by="h").encode())["by"] == "h"
    hidden = json.loads(outbound.Joined("b-1", "r", "broadcaster", []).encode())
    assert list(hidden) == ["type", "participant_id", "room", "role", "participants", "ice_servers"]
    # a glossary's ``by`` and an export's ``lang`` are null, not absent
    assert json.loads(outbound.Glossary([], None).encode()) == {
        "type": "glossary",
        "entries": [],
        "by": None,
    }
    assert json.loads(outbound.Export("json", None, "r.json", "{}").encode())["lang"] is None


def test_errors_carry_their_details_after_the_rest() -> None:
    text = outbound.Error("rate_limited", "later", "join", {"retry_after_ms": 250}).encode()
    assert text == (
        '{"type":"error","code":"rate_limited","message":"later","ref":"join","retry_after_ms":250}'
    )


def test_a_chat_line_is_the_chat_message_without_its_type_in_a_history() -> None:
    line = outbound.Chat("m0", "p1", "Ann", True, "en", "hi", {}, {}, {"fr": "busy"}, 1.5, to="p2")
    message = json.loads(line.encode())
    assert message["from"] == "p1" and message["from_name"] == "Ann" and message["to"] == "p2"
    [item] = json.loads(outbound.ChatHistory([line]).encode())["messages"]
    assert item == {k: v for k, v in message.items() if k != "type"}


def test_broadcast_state_says_more_only_while_on_air() -> None:
    assert json.loads(outbound.Broadcast(on_air=False).encode()) == {
        "type": "broadcast",
        "on_air": False,
    }
    on = json.loads(outbound.Broadcast(True, None, "/watch.html?room=r", None).encode())
    assert on == {
        "type": "broadcast",
        "on_air": True,
        "by": None,
        "watch_url": "/watch.html?room=r",
        "pinned": None,
    }


def test_one_caption_for_live_and_corrected_lines() -> None:
    live = outbound.Caption("c1", "p1", "en", "hi", False, 1, 0.12345, 0.5)
    assert json.loads(live.encode()) == {
        "type": "caption",
        "caption_id": "c1",
        "participant_id": "p1",
        "lang": "en",
        "text": "hi",
        "final": False,
        "stable_chars": 1,
        "start_s": 0.123,
        "end_s": 0.5,
        "translations": {},
        "engines": {},
        "untranslated": {},
        "machine_generated": True,
    }
    fixed = outbound.Caption(
        "c1", "p1", "en", "hello", True, 5, 0, 1, corrected_by="i1", corrected_langs=("en",)
    )
    wire = json.loads(fixed.encode())
    assert (wire["corrected"], wire["corrected_langs"], wire["corrected_by"]) == (
        True,
        ["en"],
        "i1",
    )


def test_features_fields_in_joined_come_before_the_ice_servers() -> None:
    joined = outbound.Joined(
        "p1",
        "r",
        "host",
        [],
        room_settings={"locked": False},
        lobby=[],
        ice_servers=[{"urls": "stun:x"}],
        extra={"moderate_url": "/moderate.html?room=r#key=k", "media_engine": "janus"},
    )
    wire = json.loads(joined.encode())
    assert list(wire) == [
        "type",
        "participant_id",
        "room",
        "role",
        "participants",
        "room_settings",
        "lobby",
        "moderate_url",
        "media_engine",
        "ice_servers",
    ]
    assert wire["media_engine"] == "janus"


def test_captions_status_publish_answer_and_recordings() -> None:
    assert outbound.CaptionsStatus("paused").encode() == (
        '{"type":"captions_status","state":"paused"}'
    )
    assert json.loads(outbound.PublishAnswer("v=0", 3).encode()) == {
        "type": "publish_answer",
        "sdp": "v=0",
        "revision": 3,
    }
    assert json.loads(outbound.Recordings(kept=False, recordings=[]).encode()) == {
        "type": "recordings",
        "kept": False,
        "recordings": [],
    }
