"""One room's audience board (pure): questions and comments from viewers, checked (text, rates
per viewer and per client address, duplicates, bans), held for moderation, grouped when they
ask the same thing in different languages, voted on once per viewer, and rendered as one
document per language. Translations are made elsewhere (:mod:`.service`) and handed in with
:meth:`AudienceBoard.translated`; what still needs translating is asked with
:meth:`AudienceBoard.missing`.

Invariants: an item is translated into a language at most once; one viewer counts once per
question (group); a banned viewer id or client address is refused for the rest of the event.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from .text import AudienceError, clean_text, jaccard, tokens

Kind = Literal["question", "comment"]
Status = Literal["pending", "approved", "live", "answered", "dismissed"]
Action = Literal["approve", "dismiss", "live", "answered"]
_STATUS_OF: dict[str, Status] = {
    "approve": "approved",
    "dismiss": "dismissed",
    "live": "live",
    "answered": "answered",
}
#: groups a moderator's view holds at most (the newest)
QUEUE_MAX_GROUPS = 200
PUBLIC: frozenset[str] = frozenset({"approved", "live", "answered"})


@dataclass(frozen=True, slots=True)
class BoardLimits:
    max_chars: int = 500
    #: submissions a viewer (its id) may make per minute
    per_viewer_per_min: int = 5
    #: submissions one client address may make per minute (all its viewer ids together)
    per_address_per_min: int = 30
    #: items waiting for moderation; more are refused (``queue_full``)
    max_pending: int = 500
    #: items a board keeps in all
    max_items: int = 10_000
    #: Jaccard similarity of pivot-language token sets from which two questions are one group
    group_threshold: float = 0.6


class RateBuckets:
    """Token buckets by key: ``per_min`` a minute, bursts up to ``per_min``."""

    def __init__(self, per_min: int, *, max_keys: int = 100_000) -> None:
        self._rate_per_s = per_min / 60.0
        self._burst = float(per_min)
        self._max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}

    def wait_s(self, key: str, now: float) -> float:
        """0 if ``key`` may act now (then charged), else how long until it may."""
        tokens_left, at = self._buckets.get(key, (self._burst, now))
        tokens_left = min(self._burst, tokens_left + (now - at) * self._rate_per_s)
        if tokens_left < 1.0:
            self._buckets[key] = (tokens_left, now)
            return (1.0 - tokens_left) / self._rate_per_s
        if len(self._buckets) >= self._max_keys:  # bounded: forget the full ones
            full_after_s = self._burst / self._rate_per_s
            self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after_s}
        self._buckets[key] = (tokens_left - 1.0, now)
        return 0.0


@dataclass(slots=True)
class AudienceItem:
    item_id: str
    kind: Kind
    viewer_id: str
    name: str | None
    address: str
    lang: str
    text: str
    submitted_at: float
    status: Status = "pending"
    decided_at: float | None = None
    #: the group's first item (itself when it leads one)
    group: str = ""
    #: lang -> (text, engine)
    translations: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: lang -> why there is no translation (yet)
    untranslated: dict[str, str] = field(default_factory=dict)
    votes: set[str] = field(default_factory=set)
    banned: bool = False

    def text_in(self, lang: str) -> str:
        if lang == self.lang:
            return self.text
        made = self.translations.get(lang)
        return made[0] if made is not None else self.text

    def to_export(self) -> dict[str, Any]:
        return {
            "id": self.item_id,
            "kind": self.kind,
            "group": self.group,
            "name": self.name,
            "lang": self.lang,
            "text": self.text,
            "translations": {lang: text for lang, (text, _) in sorted(self.translations.items())},
            "submitted_at": round(self.submitted_at, 3),
            "decided_at": None if self.decided_at is None else round(self.decided_at, 3),
            "status": self.status,
            "votes": len(self.votes),
            "banned": self.banned,
        }


class AudienceBoard:
    """Questions and comments of one room (see the module docstring)."""

    def __init__(self, *, languages: tuple[str, ...], pivot: str, limits: BoardLimits) -> None:
        #: the languages the event offers (documents exist for these)
        self.languages = tuple(sorted(set(languages) | {pivot}))
        self.pivot = pivot
        self.limits = limits
        self.items: dict[str, AudienceItem] = {}
        #: bumped on every change the documents or the moderators' queue show
        self.version = 0
        self._next = 0
        self._viewer_rate = RateBuckets(limits.per_viewer_per_min)
        self._address_rate = RateBuckets(limits.per_address_per_min)
        self._banned_viewers: set[str] = set()
        self._banned_addresses: set[str] = set()
        #: (viewer, casefolded text) already submitted: exact resubmissions are refused
        self._seen: set[tuple[str, str]] = set()
        self._pending = 0
        #: group (its leader's id) -> its members, the leader first
        self._groups: dict[str, list[AudienceItem]] = {}
        #: pivot-language word -> leaders whose pivot text has it (candidates to compare)
        self._index: dict[str, set[str]] = {}
        self._leader_tokens: dict[str, frozenset[str]] = {}

    # -- viewers ---------------------------------------------------------------------------------
    def is_banned(self, viewer_id: str, address: str) -> bool:
        return viewer_id in self._banned_viewers or address in self._banned_addresses

    def submit(
        self,
        *,
        viewer_id: str,
        name: str | None,
        address: str,
        kind: Kind,
        lang: str,
        text: str,
        now: float,
    ) -> AudienceItem:
        """Accept a question or comment for moderation, or raise :class:`AudienceError`."""
        if self.is_banned(viewer_id, address):
            raise AudienceError("banned", "a moderator blocked you for the rest of this event")
        kept = clean_text(text, max_chars=self.limits.max_chars)
        seen = (viewer_id, kept.casefold())
        if seen in self._seen:
            raise AudienceError("duplicate", "you sent this already")
        for buckets, key in ((self._viewer_rate, viewer_id), (self._address_rate, address)):
            wait_s = buckets.wait_s(key, now)
            if wait_s > 0:
                raise AudienceError(
                    "rate_limited",
                    "too many questions from you just now",
                    retry_after_ms=math.ceil(wait_s * 1000),
                )
        if self._pending >= self.limits.max_pending or len(self.items) >= self.limits.max_items:
            raise AudienceError(
                "queue_full", "too many questions wait for the moderators", retry_after_ms=10_000
            )
        self._seen.add(seen)
        item_id = f"q{self._next}"
        self._next += 1
        item = AudienceItem(item_id, kind, viewer_id, name, address, lang, kept, now)
        item.group = item_id
        self.items[item_id] = item
        self._groups[item_id] = [item]
        self._pending += 1
        if lang == self.pivot:
            self._regroup(item)
        self.version += 1
        return item

    def vote(self, viewer_id: str, item_id: str) -> int:
        """One vote per viewer per question (its group); returns the group's count."""
        item = self.items.get(item_id)
        if item is None or item.kind != "question" or item.status not in PUBLIC:
            raise AudienceError("not_found", f"no question {item_id} to vote on")
        leader = self.items[item.group]
        if any(viewer_id in m.votes for m in self.members(leader.item_id)):
            raise AudienceError("already_voted", "you voted for this question already")
        leader.votes.add(viewer_id)
        self.version += 1
        return self.vote_count(leader.item_id)

    # -- translations ----------------------------------------------------------------------------
    def missing(self, item_id: str, languages: tuple[str, ...]) -> tuple[str, ...]:
        """Which of ``languages`` the item still lacks (never its own)."""
        item = self.items[item_id]
        return tuple(
            lang for lang in languages if lang != item.lang and lang not in item.translations
        )

    def translated(self, item_id: str, lang: str, text: str, engine: str) -> None:
        item = self.items.get(item_id)
        if item is None or lang in item.translations:
            return
        item.translations[lang] = (text, engine)
        item.untranslated.pop(lang, None)
        if lang == self.pivot:
            self._regroup(item)
        self.version += 1

    def not_translated(self, item_id: str, lang: str, reason: str) -> None:
        item = self.items.get(item_id)
        if item is not None and lang not in item.translations:
            item.untranslated[lang] = reason

    def _regroup(self, item: AudienceItem) -> None:
        """Join the oldest group (of the same kind, not dismissed) whose leader asks nearly the
        same in the pivot language; else lead a group others may join. Only leaders sharing a
        word are compared (an inverted index), so a submission costs its candidates, not the
        board's size."""
        if item.group != item.item_id or len(self._groups[item.item_id]) > 1:
            return  # already in a group, or leads one that others joined
        pivot = self._pivot_of(item)
        if pivot is None:
            return
        mine = tokens(pivot)
        candidates: set[str] = set()
        for word in mine:
            candidates |= self._index.get(word, set())
        for leader_id in sorted(candidates, key=lambda i: int(i[1:])):
            leader = self.items[leader_id]
            if leader.kind != item.kind or leader.status == "dismissed":
                continue
            if jaccard(mine, self._leader_tokens[leader_id]) >= self.limits.group_threshold:
                del self._groups[item.item_id]
                self._groups[leader_id].append(item)
                item.group = leader_id
                if leader.status != "pending" and item.status == "pending":
                    self._decide(item, leader.status, item.submitted_at)
                return
        self._leader_tokens[item.item_id] = mine
        for word in mine:
            self._index.setdefault(word, set()).add(item.item_id)

    def _pivot_of(self, item: AudienceItem) -> str | None:
        if item.lang == self.pivot:
            return item.text
        made = item.translations.get(self.pivot)
        return None if made is None else made[0]

    # -- moderators ------------------------------------------------------------------------------
    def members(self, group: str) -> list[AudienceItem]:
        return self._groups.get(group, [])

    def vote_count(self, group: str) -> int:
        voters: set[str] = set()
        for member in self.members(group):
            voters |= member.votes
        return len(voters)

    def moderate(self, item_id: str, action: Action, now: float) -> list[AudienceItem]:
        """Apply ``action`` to the item's whole group; returns its members."""
        item = self.items.get(item_id)
        if item is None:
            raise AudienceError("not_found", f"no item {item_id}")
        group = self.members(item.group)
        for member in group:
            self._decide(member, _STATUS_OF[action], now)
        self.version += 1
        return group

    def _decide(self, item: AudienceItem, status: Status, now: float) -> None:
        if item.status == "pending" and status != "pending":
            self._pending -= 1
        item.status = status
        item.decided_at = now

    def ban(self, item_id: str, now: float) -> AudienceItem:
        """Block the item's viewer id and client address for the rest of the event; their
        items still pending are dismissed."""
        item = self.items.get(item_id)
        if item is None:
            raise AudienceError("not_found", f"no item {item_id}")
        self._banned_viewers.add(item.viewer_id)
        self._banned_addresses.add(item.address)
        for other in self.items.values():
            if other.viewer_id == item.viewer_id or other.address == item.address:
                other.banned = True
                if other.status == "pending":
                    self._decide(other, "dismissed", now)
        self.version += 1
        return item

    # -- snapshots (a cluster: the board outlives its node) ---------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Everything :meth:`restored` needs (JSON-ready): the items with their translations,
        votes and statuses, and the bans. Not the rate buckets (they refill in a minute)."""
        return {
            "next": self._next,
            "items": [
                {
                    "id": i.item_id,
                    "kind": i.kind,
                    "viewer": i.viewer_id,
                    "name": i.name,
                    "address": i.address,
                    "lang": i.lang,
                    "text": i.text,
                    "at": i.submitted_at,
                    "status": i.status,
                    "decided_at": i.decided_at,
                    "group": i.group,
                    "translations": {k: list(v) for k, v in i.translations.items()},
                    "votes": sorted(i.votes),
                    "banned": i.banned,
                }
                for i in self.items.values()
            ],
            "banned_viewers": sorted(self._banned_viewers),
            "banned_addresses": sorted(self._banned_addresses),
        }

    @classmethod
    def restored(
        cls,
        data: Any,
        *,
        languages: tuple[str, ...],
        pivot: str,
        limits: BoardLimits,
    ) -> AudienceBoard:
        """A board as :meth:`snapshot` left it (groups and the grouping index rebuilt). Raises
        ``ValueError`` (or ``KeyError``/``TypeError``) for a value it cannot read."""
        board = cls(languages=languages, pivot=pivot, limits=limits)
        for raw in data["items"]:
            status = str(raw["status"])
            kind = str(raw["kind"])
            if status not in _STATUS_OF.values() and status != "pending":
                raise ValueError(f"unknown status {status!r}")
            if kind not in ("question", "comment"):
                raise ValueError(f"unknown kind {kind!r}")
            item = AudienceItem(
                item_id=str(raw["id"]),
                kind=kind,  # type: ignore[arg-type]  # checked above
                viewer_id=str(raw["viewer"]),
                name=None if raw["name"] is None else str(raw["name"]),
                address=str(raw["address"]),
                lang=str(raw["lang"]),
                text=str(raw["text"]),
                submitted_at=float(raw["at"]),
                status=status,  # type: ignore[arg-type]  # checked above
                decided_at=None if raw["decided_at"] is None else float(raw["decided_at"]),
                group=str(raw["group"]),
                translations={
                    str(k): (str(v[0]), str(v[1])) for k, v in dict(raw["translations"]).items()
                },
                votes={str(v) for v in raw["votes"]},
                banned=bool(raw["banned"]),
            )
            if not item.item_id.startswith("q") or item.item_id in board.items:
                raise ValueError(f"bad item id {item.item_id!r}")
            board.items[item.item_id] = item
            board._seen.add((item.viewer_id, item.text.casefold()))
            board._pending += item.status == "pending"
            leader = board._groups.get(item.group)
            if item.group != item.item_id and leader is not None:
                leader.append(item)
                continue
            item.group = item.item_id  # a leader (or its leader is gone: it leads)
            board._groups[item.item_id] = [item]
            pivot_text = board._pivot_of(item)
            if pivot_text is not None:
                mine = tokens(pivot_text)
                board._leader_tokens[item.item_id] = mine
                for word in mine:
                    board._index.setdefault(word, set()).add(item.item_id)
        board._next = max(int(data["next"]), len(board.items))
        board._banned_viewers = {str(v) for v in data["banned_viewers"]}
        board._banned_addresses = {str(a) for a in data["banned_addresses"]}
        board.version = 1
        return board

    # -- views -----------------------------------------------------------------------------------
    def queue(self, lang: str) -> list[dict[str, Any]]:
        """The moderators' view in ``lang``: the newest ``QUEUE_MAX_GROUPS`` groups, newest
        first, with their members' originals one click away."""
        groups: list[dict[str, Any]] = []
        for members in reversed(self._groups.values()):
            if len(groups) >= QUEUE_MAX_GROUPS:
                break
            leader = members[0]
            groups.append(
                {
                    "id": leader.item_id,
                    "kind": leader.kind,
                    "status": leader.status,
                    "count": len(members),
                    "votes": self.vote_count(leader.item_id),
                    "text": leader.text_in(lang),
                    "items": [
                        {
                            "id": m.item_id,
                            "name": m.name,
                            "lang": m.lang,
                            "original": m.text,
                            "text": m.text_in(lang),
                            "translated": m.lang == lang or lang in m.translations,
                            "status": m.status,
                            "banned": m.banned,
                            "at": round(m.submitted_at, 3),
                        }
                        for m in members
                    ],
                }
            )
        return groups

    def document(self, lang: str) -> dict[str, Any]:
        """What the audience of ``lang`` sees: approved questions and comments, one entry per
        group, in ``lang`` where translated (else the original, marked)."""
        entries: dict[str, list[dict[str, Any]]] = {"questions": [], "comments": []}
        for members in self._groups.values():
            leader = members[0]
            if leader.status not in PUBLIC:
                continue
            translated = leader.lang == lang or lang in leader.translations
            entries["questions" if leader.kind == "question" else "comments"].append(
                {
                    "id": leader.item_id,
                    "text": leader.text_in(lang),
                    "lang": leader.lang if not translated else lang,
                    "original_lang": leader.lang,
                    "name": leader.name,
                    "status": leader.status,
                    "asked": len(members),
                    "votes": self.vote_count(leader.item_id),
                    "at": round(leader.submitted_at, 3),
                }
            )
        entries["questions"].sort(key=lambda e: (-e["votes"], e["at"]))
        return {"lang": lang, **entries}
