"""The audience board's snapshot (issue 18, pure): what a node keeps in Redis for the node that
takes its room over reads back into a board that shows and behaves the same: documents and the
moderators' queue in every language, groups, votes, bans, duplicates, polls and the moderator
key; a value it cannot read raises instead of restoring half a board."""

from __future__ import annotations

import json

import pytest

from server.audience.board import AudienceBoard, BoardLimits
from server.audience.cluster import decode_snapshot, encode_snapshot
from server.audience.polls import PollBook
from server.audience.text import AudienceError

LANGUAGES = ("es", "fr")
LIMITS = BoardLimits()


def ask(b: AudienceBoard, text: str, viewer: str, *, lang: str = "en", address: str = "10.0.0.1",
        kind: str = "question") -> str:  # fmt: skip
    return b.submit(
        viewer_id=viewer,
        name=None,
        address=address,
        kind=kind,
        lang=lang,
        text=text,
        now=1.0,  # type: ignore[arg-type]
    ).item_id


def decode(value: str) -> tuple[str, AudienceBoard, PollBook]:
    return decode_snapshot(value, languages=LANGUAGES, pivot="en", limits=LIMITS)


def a_board() -> tuple[AudienceBoard, PollBook]:
    b = AudienceBoard(languages=LANGUAGES, pivot="en", limits=LIMITS)
    first = ask(b, "Will the slides be shared after the talk?", "viewer-1")
    same = ask(b, "Will the slides be shared after talk?", "viewer-2", address="10.0.0.2")
    french = ask(b, "Où est la salle ?", "viewer-3", lang="fr", address="10.0.0.3")
    b.translated(french, "en", "Where is the room?", "apertium")
    b.translated(first, "es", "¿Se compartirán las diapositivas?", "argos")
    spam = ask(b, "buy now", "viewer-9", address="10.0.0.9", kind="comment")
    b.moderate(first, "approve", 2.0)
    b.moderate(french, "live", 3.0)
    b.vote("viewer-5", first)
    b.ban(spam, 4.0)
    assert b.items[same].group == first  # grouped before the snapshot
    polls = PollBook()
    poll = polls.create(lang="en", question="Coffee?", options=["yes", "no"], now=1.0)
    polls.vote("viewer-1", poll.poll_id, 0)
    polls.vote("viewer-2", poll.poll_id, 1)
    polls.translated(poll.poll_id, "es", "¿Café?", ("sí", "no"))
    polls.close(poll.poll_id, 5.0)
    return b, polls


def test_a_restored_board_shows_what_the_old_one_showed() -> None:
    board, polls = a_board()
    keys, restored, restored_polls = decode(encode_snapshot(("k" * 24, "old"), board, polls))
    assert keys == ("k" * 24, "old")
    for lang in ("en", "es", "fr"):
        assert restored.document(lang) == board.document(lang)
        assert restored.queue(lang) == board.queue(lang)
        assert restored_polls.document(lang) == polls.document(lang)
    assert restored.vote_count("q0") == board.vote_count("q0") == 1


def test_a_restored_board_goes_on_as_the_old_one_would() -> None:
    board, polls = a_board()
    _, b, p = decode(encode_snapshot(("key",), board, polls))
    # the same viewer cannot ask the same again, vote twice, or come back after a ban
    with pytest.raises(AudienceError) as info:
        ask(b, "will the slides be shared after the talk?", "viewer-1")
    assert info.value.code == "duplicate"
    with pytest.raises(AudienceError) as info:
        b.vote("viewer-5", "q1")  # q1 is in q0's group: one vote per group
    assert info.value.code == "already_voted"
    with pytest.raises(AudienceError) as info:
        ask(b, "hello again", "viewer-new", address="10.0.0.9")  # a banned address
    assert info.value.code == "banned"
    # a new question gets a new id and joins the restored group it repeats
    late = ask(
        b, "Will the slides be shared after the talk, please?", "viewer-7", address="10.0.0.7"
    )
    assert late == "q4" and b.items[late].group == "q0" and b.items[late].status == "approved"
    with pytest.raises(AudienceError) as info:
        p.vote("viewer-1", "p0", 1)
    assert info.value.code == "closed"
    assert p.create(lang="en", question="Tea?", options=["a", "b"], now=6.0).poll_id == "p1"


def test_a_snapshot_it_cannot_read_raises() -> None:
    board, polls = a_board()
    good = json.loads(encode_snapshot(("key",), board, polls))
    first_item = good["board"]["items"][0]
    for bad in (
        {**good, "layout": 2},
        {**good, "board": {**good["board"], "items": [{"id": "q0"}]}},
        {**good, "board": {**good["board"], "items": [{**first_item, "status": "x"}]}},
        {**good, "polls": [{**good["polls"][0], "votes": {"v": 7}}]},
        {k: v for k, v in good.items() if k != "moderator_keys"},
        {**good, "moderator_keys": [""]},
    ):
        with pytest.raises((ValueError, KeyError, TypeError)):
            decode(json.dumps(bad))
    with pytest.raises(ValueError):
        decode("not json")
