"""The stage's pure book (server/audience/stage.py): invitations, passes, their windows and the
answers a replay gets. Clocks are plain numbers."""

from __future__ import annotations

import itertools

import pytest

from server.audience.stage import StageBook, StageLimits
from server.audience.text import AudienceError

LIMITS = StageLimits(invite_ttl_s=60.0, join_window_s=30.0, max_on_stage=2)


def book() -> StageBook:
    counter = itertools.count()
    return StageBook(LIMITS, new_secret=lambda: f"pass-{next(counter):012d}")


def code(exc: pytest.ExceptionInfo[AudienceError]) -> str:
    return exc.value.code


def test_invite_accept_redeem_join_and_dismiss() -> None:
    stage = book()
    invitation = stage.invite(viewer_id="v1", item_id="q1", name="Vera", now=0.0)
    assert invitation.state == "invited" and invitation.stage_pass is None  # no pass before yes
    assert stage.redeem("pass-000000000000", 1.0) is None
    accepted = stage.accept("v1", invitation.invite_id, 10.0)
    assert accepted.state == "accepted" and accepted.stage_pass == "pass-000000000000"
    assert stage.accept("v1", invitation.invite_id, 11.0).stage_pass == accepted.stage_pass
    assert stage.redeem("pass-000000000000", 20.0) is invitation
    assert stage.joined(invitation.invite_id, "p7")
    assert stage.views(20.0) == [
        {
            "invite_id": invitation.invite_id,
            "item_id": "q1",
            "name": "Vera",
            "state": "on_stage",
            "participant_id": "p7",
            "expires_in_ms": None,
        }
    ]
    ended = stage.end(invitation.invite_id, "dismissed")
    assert ended.participant_id == "p7"
    assert stage.redeem("pass-000000000000", 21.0) is None  # the pass died with it
    with pytest.raises(AudienceError) as exc:
        stage.accept("v1", invitation.invite_id, 22.0)
    assert code(exc) == "not_invited"


def test_accept_without_invitation_or_for_someone_else() -> None:
    stage = book()
    with pytest.raises(AudienceError) as exc:
        stage.accept("v1", "s0123456789ab", 0.0)
    assert code(exc) == "not_invited"
    invitation = stage.invite(viewer_id="v1", item_id="q1", name=None, now=0.0)
    with pytest.raises(AudienceError) as exc:
        stage.accept("v2", invitation.invite_id, 1.0)
    assert code(exc) == "not_invited"


def test_an_expired_invitation_answers_invite_expired_forever() -> None:
    stage = book()
    invitation = stage.invite(viewer_id="v1", item_id="q1", name=None, now=0.0)
    with pytest.raises(AudienceError) as exc:
        stage.accept("v1", invitation.invite_id, 60.5)
    assert code(exc) == "invite_expired"
    with pytest.raises(AudienceError) as exc:  # a replay later: the same answer
        stage.accept("v1", invitation.invite_id, 500.0)
    assert code(exc) == "invite_expired"
    assert stage.ended_reason(invitation.invite_id) == "expired"


def test_an_unused_pass_lapses_after_the_join_window() -> None:
    stage = book()
    invitation = stage.invite(viewer_id="v1", item_id="q1", name=None, now=0.0)
    stage_pass = stage.accept("v1", invitation.invite_id, 5.0).stage_pass
    assert stage_pass is not None
    assert stage.redeem(stage_pass, 35.5) is None
    assert not stage.live and stage.ended_reason(invitation.invite_id) == "expired"


def test_a_dropped_participant_may_rejoin_within_the_window() -> None:
    stage = book()
    invitation = stage.invite(viewer_id="v1", item_id="q1", name=None, now=0.0)
    stage_pass = stage.accept("v1", invitation.invite_id, 1.0).stage_pass
    assert stage_pass is not None
    stage.joined(invitation.invite_id, "p1")
    assert stage.redeem(stage_pass, 500.0) is invitation  # on stage: no window
    assert stage.left("p1", 600.0) is invitation
    assert invitation.state == "accepted" and invitation.join_by == 630.0
    assert stage.redeem(stage_pass, 620.0) is invitation
    stage.joined(invitation.invite_id, "p2")
    assert stage.left("p1", 621.0) is None  # the old seat is nobody now
    assert stage.expire(10_000.0) == []  # on stage until dismissed


def test_one_invitation_per_viewer_and_a_bounded_stage() -> None:
    stage = book()
    stage.invite(viewer_id="v1", item_id="q1", name=None, now=0.0)
    with pytest.raises(AudienceError) as exc:
        stage.invite(viewer_id="v1", item_id="q2", name=None, now=1.0)
    assert code(exc) == "bad_state"
    stage.invite(viewer_id="v2", item_id="q3", name=None, now=1.0)
    with pytest.raises(AudienceError) as exc:
        stage.invite(viewer_id="v3", item_id="q4", name=None, now=2.0)
    assert code(exc) == "stage_full"


def test_decline_and_leave_end_it() -> None:
    stage = book()
    first = stage.invite(viewer_id="v1", item_id="q1", name=None, now=0.0)
    assert stage.leave("v1", first.invite_id, 1.0) is first
    assert stage.ended_reason(first.invite_id) == "declined"
    second = stage.invite(viewer_id="v1", item_id="q1", name=None, now=2.0)
    stage.accept("v1", second.invite_id, 3.0)
    stage.joined(second.invite_id, "p1")
    assert stage.leave("v1", second.invite_id, 4.0).participant_id == "p1"
    assert stage.ended_reason(second.invite_id) == "left"
    with pytest.raises(AudienceError) as exc:
        stage.end(second.invite_id, "dismissed")
    assert code(exc) == "not_found"
