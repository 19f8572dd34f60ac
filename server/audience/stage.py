"""On stage (issue 16, PROTOCOL.md "Audience: on stage"), pure: a moderator invites a viewer to
speak; the viewer accepts within ``invite_ttl_s`` and gets a **stage pass**, the credential that
lets that one viewer join the room as a participant (and nothing before the invitation: a
viewer holds no room credential of its own); the stage lasts until a moderator dismisses them,
they leave, or they are banned.

Life of an invitation::

    invited --accept--> accepted --joined--> on_stage
       |                  ^  |                  |
       |                  |  +--(join window)   +--left (socket dropped: may rejoin within the
       |                  +---------------------+        join window with the same pass)
       +-- expired / declined / dismissed / banned: ended (remembered, so a replay is answered)

Invariants: a viewer has at most one live invitation; at most ``max_on_stage`` invitations live
at once; a pass is valid only while its invitation is ``accepted`` (within the join window) or
``on_stage``; an ended invitation never comes back. Clocks are passed in (unix seconds)."""

from __future__ import annotations

import collections
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .text import AudienceError

StageState = Literal["invited", "accepted", "on_stage"]
EndReason = Literal["dismissed", "expired", "declined", "left", "banned", "room_closed"]
#: ended invitations remembered (to answer a replay with what happened to it)
ENDED_KEPT = 256


@dataclass(frozen=True, slots=True)
class StageLimits:
    #: how long an invitation may wait for the viewer's answer
    invite_ttl_s: float = 60.0
    #: how long an accepted pass may wait for its join (and a dropped one for its rejoin)
    join_window_s: float = 30.0
    #: invitations live at once in a room (invited, accepted or on stage)
    max_on_stage: int = 4


@dataclass(slots=True)
class Invitation:
    invite_id: str
    viewer_id: str
    #: the question or comment the moderator invited from
    item_id: str
    #: a named viewer's name (their viewer token's), else None: the page asks for one
    name: str | None
    invited_at: float
    #: unix time the answer must come by
    answer_by: float
    state: StageState = "invited"
    stage_pass: str | None = None
    #: unix time the (re)join must happen by, while ``accepted``
    join_by: float | None = None
    participant_id: str | None = None

    def to_wire(self, now: float) -> dict[str, Any]:
        """As moderators see it (never the pass)."""
        by = self.answer_by if self.state == "invited" else self.join_by
        return {
            "invite_id": self.invite_id,
            "item_id": self.item_id,
            "name": self.name,
            "state": self.state,
            "participant_id": self.participant_id,
            "expires_in_ms": None if by is None else max(0, round((by - now) * 1000)),
        }


class StageBook:
    """One room's invitations (see the module docstring)."""

    def __init__(
        self, limits: StageLimits, *, new_secret: Callable[[], str] = secrets.token_urlsafe
    ) -> None:
        self.limits = limits
        self._secret = new_secret
        #: live invitations by id
        self.live: dict[str, Invitation] = {}
        self._by_pass: dict[str, str] = {}
        self._ended: collections.OrderedDict[str, EndReason] = collections.OrderedDict()

    def of_viewer(self, viewer_id: str) -> Invitation | None:
        return next((i for i in self.live.values() if i.viewer_id == viewer_id), None)

    def invite(self, *, viewer_id: str, item_id: str, name: str | None, now: float) -> Invitation:
        """A moderator invites ``viewer_id`` (the author of ``item_id``)."""
        if self.of_viewer(viewer_id) is not None:
            raise AudienceError("bad_state", "this viewer is invited or on stage already")
        if len(self.live) >= self.limits.max_on_stage:
            raise AudienceError(
                "stage_full", f"{self.limits.max_on_stage} viewers are invited or on stage"
            )
        invite_id = "s" + secrets.token_hex(6)
        invitation = Invitation(
            invite_id, viewer_id, item_id, name, now, now + self.limits.invite_ttl_s
        )
        self.live[invite_id] = invitation
        return invitation

    def _mine(self, viewer_id: str, invite_id: str) -> Invitation:
        invitation = self.live.get(invite_id)
        if invitation is not None and invitation.viewer_id == viewer_id:
            return invitation
        if self._ended.get(invite_id) == "expired":
            raise AudienceError("invite_expired", "this invitation has expired")
        raise AudienceError("not_invited", "there is no such invitation for you")

    def accept(self, viewer_id: str, invite_id: str, now: float) -> Invitation:
        """The viewer said yes: its stage pass (the same one if it accepted already)."""
        self.expire(now)
        invitation = self._mine(viewer_id, invite_id)
        if invitation.state == "invited":
            invitation.state = "accepted"
            invitation.stage_pass = self._secret()
            invitation.join_by = now + self.limits.join_window_s
            self._by_pass[invitation.stage_pass] = invite_id
        return invitation

    def leave(self, viewer_id: str, invite_id: str, now: float) -> Invitation:
        """The viewer declined, or left the stage."""
        self.expire(now)
        invitation = self._mine(viewer_id, invite_id)
        return self.end(invite_id, "declined" if invitation.state == "invited" else "left")

    def redeem(self, stage_pass: str, now: float) -> Invitation | None:
        """The invitation a join's ``stage_pass`` admits, or None (unknown, ended, or its join
        window passed)."""
        invitation = self.live.get(self._by_pass.get(stage_pass, ""))
        if invitation is None:
            return None
        if invitation.state == "accepted" and (
            invitation.join_by is None or now > invitation.join_by
        ):
            self.end(invitation.invite_id, "expired")
            return None
        return invitation

    def joined(self, invite_id: str, participant_id: str) -> bool:
        """The pass's join entered the room as ``participant_id``."""
        invitation = self.live.get(invite_id)
        if invitation is None:
            return False
        invitation.state = "on_stage"
        invitation.participant_id = participant_id
        invitation.join_by = None
        return True

    def left(self, participant_id: str, now: float) -> Invitation | None:
        """``participant_id`` left the room: a stage seat may be taken again with the same pass
        within the join window (a dropped connection rejoins)."""
        for invitation in self.live.values():
            if invitation.participant_id == participant_id:
                invitation.state = "accepted"
                invitation.participant_id = None
                invitation.join_by = now + self.limits.join_window_s
                return invitation
        return None

    def end(self, invite_id: str, reason: EndReason) -> Invitation:
        invitation = self.live.pop(invite_id, None)
        if invitation is None:
            raise AudienceError("not_found", f"no invitation {invite_id} is open")
        if invitation.stage_pass is not None:
            self._by_pass.pop(invitation.stage_pass, None)
        self._ended[invite_id] = reason
        while len(self._ended) > ENDED_KEPT:
            self._ended.popitem(last=False)
        return invitation

    def ended_reason(self, invite_id: str) -> EndReason | None:
        return self._ended.get(invite_id)

    def expire(self, now: float) -> list[Invitation]:
        """Invitations unanswered past ``answer_by``, and passes unused past ``join_by``."""
        due = [
            i.invite_id
            for i in self.live.values()
            if (i.state == "invited" and now > i.answer_by)
            or (i.state == "accepted" and i.join_by is not None and now > i.join_by)
        ]
        return [self.end(invite_id, "expired") for invite_id in due]

    def views(self, now: float) -> list[dict[str, Any]]:
        return [i.to_wire(now) for i in self.live.values()]
