"""A room's polls (pure): a host writes a question with options in one language; viewers and
participants vote (one vote per voter, which they may change while the poll is open); results
are counts only, never who voted. Translations are handed in by the service."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .text import AudienceError, clean_text

MAX_OPTIONS = 10
MAX_POLL_CHARS = 300


@dataclass(slots=True)
class Poll:
    poll_id: str
    lang: str
    question: str
    options: tuple[str, ...]
    created_at: float
    closed_at: float | None = None
    #: voter -> option index
    votes: dict[str, int] = field(default_factory=dict)
    #: lang -> (question, options)
    translations: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)

    def counts(self) -> list[int]:
        counts = [0] * len(self.options)
        for option in self.votes.values():
            counts[option] += 1
        return counts

    def texts(self, lang: str) -> tuple[str, tuple[str, ...], bool]:
        """(question, options, translated) in ``lang`` where made, else the original."""
        if lang == self.lang:
            return self.question, self.options, True
        made = self.translations.get(lang)
        if made is None:
            return self.question, self.options, False
        return made[0], made[1], True

    def to_export(self) -> dict[str, Any]:
        return {
            "id": self.poll_id,
            "lang": self.lang,
            "question": self.question,
            "options": list(self.options),
            "translations": {
                lang: {"question": q, "options": list(o)}
                for lang, (q, o) in sorted(self.translations.items())
            },
            "created_at": round(self.created_at, 3),
            "closed_at": None if self.closed_at is None else round(self.closed_at, 3),
            "counts": self.counts(),
            "voters": len(self.votes),
        }


class PollBook:
    def __init__(self, *, max_polls: int = 100) -> None:
        self.polls: dict[str, Poll] = {}
        self.version = 0
        self._max_polls = max_polls

    def create(self, *, lang: str, question: str, options: list[str], now: float) -> Poll:
        if len(self.polls) >= self._max_polls:
            raise AudienceError("queue_full", f"at most {self._max_polls} polls an event")
        kept = [clean_text(o, max_chars=MAX_POLL_CHARS) for o in options]
        if not 2 <= len(kept) <= MAX_OPTIONS:
            raise AudienceError("bad_message", f"a poll has 2 to {MAX_OPTIONS} options")
        poll_id = f"p{len(self.polls)}"
        poll = Poll(poll_id, lang, clean_text(question, max_chars=MAX_POLL_CHARS), tuple(kept), now)
        self.polls[poll_id] = poll
        self.version += 1
        return poll

    def vote(self, voter: str, poll_id: str, option: int) -> None:
        poll = self.polls.get(poll_id)
        if poll is None:
            raise AudienceError("not_found", f"no poll {poll_id}")
        if poll.closed_at is not None:
            raise AudienceError("closed", "this poll is closed")
        if not 0 <= option < len(poll.options):
            raise AudienceError("bad_message", f"no option {option}")
        poll.votes[voter] = option
        self.version += 1

    def close(self, poll_id: str, now: float) -> Poll:
        poll = self.polls.get(poll_id)
        if poll is None:
            raise AudienceError("not_found", f"no poll {poll_id}")
        if poll.closed_at is None:
            poll.closed_at = now
            self.version += 1
        return poll

    def translated(self, poll_id: str, lang: str, question: str, options: tuple[str, ...]) -> None:
        poll = self.polls.get(poll_id)
        if poll is not None and lang not in poll.translations:
            poll.translations[lang] = (question, options)
            self.version += 1

    def snapshot(self) -> list[dict[str, Any]]:
        """Every poll with its votes (JSON-ready; :meth:`restored` reads it back)."""
        return [
            {
                "id": p.poll_id,
                "lang": p.lang,
                "question": p.question,
                "options": list(p.options),
                "created_at": p.created_at,
                "closed_at": p.closed_at,
                "votes": dict(p.votes),
                "translations": {k: [q, list(o)] for k, (q, o) in p.translations.items()},
            }
            for p in self.polls.values()
        ]

    @classmethod
    def restored(cls, data: Any) -> PollBook:
        """A book as :meth:`snapshot` left it; ``ValueError`` (or ``KeyError``/``TypeError``)
        for a value it cannot read."""
        book = cls()
        for raw in data:
            options = tuple(str(o) for o in raw["options"])
            votes = {str(k): int(v) for k, v in dict(raw["votes"]).items()}
            if not 2 <= len(options) <= MAX_OPTIONS or any(
                not 0 <= v < len(options) for v in votes.values()
            ):
                raise ValueError("a poll's options or votes do not fit")
            poll = Poll(
                poll_id=str(raw["id"]),
                lang=str(raw["lang"]),
                question=str(raw["question"]),
                options=options,
                created_at=float(raw["created_at"]),
                closed_at=None if raw["closed_at"] is None else float(raw["closed_at"]),
                votes=votes,
                translations={
                    str(k): (str(v[0]), tuple(str(o) for o in v[1]))
                    for k, v in dict(raw["translations"]).items()
                },
            )
            book.polls[poll.poll_id] = poll
        book.version = 1
        return book

    def document(self, lang: str) -> dict[str, Any]:
        polls = []
        for poll in self.polls.values():
            question, options, translated = poll.texts(lang)
            counts = poll.counts()
            polls.append(
                {
                    "id": poll.poll_id,
                    "question": question,
                    "lang": lang if translated else poll.lang,
                    "options": [
                        {"text": t, "votes": c} for t, c in zip(options, counts, strict=True)
                    ],
                    "total": sum(counts),
                    "closed": poll.closed_at is not None,
                }
            )
        polls.reverse()
        return {"lang": lang, "polls": polls}
