"""The audience board and polls (pure): checks, rates, duplicates, bans, grouping in the pivot
language, one vote per viewer, per-language documents, export."""

from __future__ import annotations

import pytest

from server.audience.board import AudienceBoard, BoardLimits
from server.audience.export import export_csv, export_json, export_records
from server.audience.polls import PollBook
from server.audience.text import AudienceError, jaccard, tokens


def board(**limits: object) -> AudienceBoard:
    return AudienceBoard(languages=("es", "fr"), pivot="en", limits=BoardLimits(**limits))  # type: ignore[arg-type]


def ask(b: AudienceBoard, text: str, *, viewer: str = "viewer-1", address: str = "10.0.0.1",
        lang: str = "en", now: float = 0.0) -> str:  # fmt: skip
    item = b.submit(
        viewer_id=viewer, name=None, address=address, kind="question", lang=lang, text=text, now=now
    )
    return item.item_id


def code_of(call: object) -> str:
    with pytest.raises(AudienceError) as info:
        call()  # type: ignore[operator]
    return info.value.code


def test_text_checks() -> None:
    b = board(max_chars=20)
    assert code_of(lambda: ask(b, "   ")) == "empty"
    assert code_of(lambda: ask(b, "x" * 21)) == "too_long"
    assert code_of(lambda: ask(b, "bad\x07bell")) == "bad_text"
    assert b.items[ask(b, "  two   spaces\n")].text == "two spaces"


def test_rates_per_viewer_and_per_address_and_duplicates() -> None:
    b = board(per_viewer_per_min=2, per_address_per_min=3)
    ask(b, "one")
    assert code_of(lambda: ask(b, "ONE")) == "duplicate"
    ask(b, "two", now=1)
    with pytest.raises(AudienceError) as info:
        ask(b, "three", now=2)
    assert info.value.code == "rate_limited" and info.value.retry_after_ms
    ask(b, "other viewer", viewer="viewer-2", now=2)  # the address has one left
    assert code_of(lambda: ask(b, "new id, same address", viewer="viewer-3", now=2)) == (
        "rate_limited"
    )
    ask(b, "elsewhere", viewer="viewer-4", address="10.0.0.2", now=2)
    ask(b, "three", now=60)  # a minute later the viewer may ask again


def test_grouping_by_pivot_translation_and_votes_once() -> None:
    b = board()
    en = ask(b, "When does the conference end?")
    es = ask(b, "¿Cuándo termina la conferencia?", viewer="viewer-2", lang="es")
    other = ask(b, "Where is the coffee?", viewer="viewer-3")
    b.translated(es, "en", "When does the conference end?", "argos")
    assert b.items[es].group == en and b.items[other].group == other
    queue = b.queue("es")
    assert [g["count"] for g in queue] == [1, 2]
    b.translated(en, "es", "¿Cuándo termina la conferencia?", "argos")
    assert queue != b.queue("es") and b.queue("es")[1]["text"] == "¿Cuándo termina la conferencia?"
    assert b.document("es")["questions"] == []
    assert code_of(lambda: b.vote("viewer-9", en)) == "not_found"  # not approved yet
    b.moderate(es, "approve", now=5)  # the whole group
    assert {b.items[en].status, b.items[es].status} == {"approved"}
    doc = b.document("es")["questions"]
    assert [(q["id"], q["text"], q["asked"]) for q in doc] == [
        (en, "¿Cuándo termina la conferencia?", 2)
    ]
    assert b.vote("viewer-9", es) == 1  # a member's id counts for its group
    assert code_of(lambda: b.vote("viewer-9", en)) == "already_voted"
    assert b.vote("viewer-8", en) == 2
    fr = b.document("fr")["questions"][0]
    assert fr["lang"] == "en" and fr["original_lang"] == "en"  # no French yet: the original


def test_ban_blocks_viewer_and_address_and_dismisses_pending() -> None:
    b = board()
    first = ask(b, "spam one")
    later = ask(b, "spam two")
    b.ban(first, now=1)
    assert b.items[later].status == "dismissed" and b.items[later].banned
    assert code_of(lambda: ask(b, "again", viewer="new-viewer-id")) == "banned"
    ask(b, "fine", viewer="viewer-5", address="10.0.0.9")


def test_pending_queue_is_bounded() -> None:
    b = board(max_pending=2, per_address_per_min=100)
    ask(b, "a", viewer="v-000001")
    ask(b, "b", viewer="v-000002")
    assert code_of(lambda: ask(b, "c", viewer="v-000003")) == "queue_full"


def test_polls_and_export() -> None:
    polls = PollBook()
    poll = polls.create(lang="en", question="Coffee or tea?", options=["Coffee", "Tea"], now=1)
    polls.translated(poll.poll_id, "es", "¿Café o té?", ("Café", "Té"))
    polls.vote("viewer-1", poll.poll_id, 0)
    polls.vote("viewer-2", poll.poll_id, 1)
    polls.vote("viewer-2", poll.poll_id, 0)  # changed their mind: still one vote
    doc = polls.document("es")["polls"][0]
    assert doc["question"] == "¿Café o té?" and doc["total"] == 2
    assert [o["votes"] for o in doc["options"]] == [2, 0]
    assert "viewer-1" not in str(polls.document("fr"))  # counts, never voters
    polls.close(poll.poll_id, now=9)
    assert code_of(lambda: polls.vote("viewer-3", poll.poll_id, 0)) == "closed"
    b = board()
    ask(b, "Hello?")
    records = export_records("r", b, polls)
    assert '"¿Café o té?"' in export_json(records)
    csv_text = export_csv(records)
    assert "Hello?" in csv_text and "p0.0" in csv_text and "Café" in csv_text


def test_tokens_ignore_case_and_punctuation() -> None:
    assert tokens("When does it END?!") == {"when", "end"}
    assert tokens("It will record  the presentation?") == tokens(
        "Will the presentation be recorded?"
    )
    assert jaccard(tokens("red green blue"), tokens("red green pink")) == 0.5
