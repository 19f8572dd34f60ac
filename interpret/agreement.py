"""LocalAgreement-2 commit policy (Macháček et al., whisper_streaming): a word is committed once
two consecutive hypotheses agree on it. Pure: no model, no clock."""

from __future__ import annotations

import re
from collections.abc import Sequence

from .frames import Word

_NORMALIZE = re.compile(r"[^\w]+", re.UNICODE)


def normalized(text: str) -> str:
    """Compare words without case and punctuation ("Hello," == "hello")."""
    return _NORMALIZE.sub("", text.lower())


class LocalAgreement:
    """Feed successive hypotheses of the same growing audio buffer; get committed words back.

    ``insert()`` takes a new hypothesis (words with absolute times); ``commit()`` returns the
    newly committed words: the longest common prefix of this hypothesis and the previous one,
    after what was already committed. ``tentative`` is the rest of the latest hypothesis.
    """

    def __init__(self) -> None:
        self.committed: list[Word] = []
        self._previous: list[Word] = []
        self._current: list[Word] = []

    @property
    def last_committed_end_s(self) -> float:
        return self.committed[-1].end_s if self.committed else 0.0

    @property
    def tentative(self) -> list[Word]:
        return list(self._current)

    def insert(self, words: Sequence[Word]) -> None:
        # Whisper re-transcribes audio it already committed: keep only what lies after the
        # committed part, then drop a repeated n-gram at the seam ("... the cat | the cat sat").
        horizon = self.last_committed_end_s - 0.1
        fresh = [w for w in words if w.start_s > horizon]
        if fresh and self.committed and abs(fresh[0].start_s - self.last_committed_end_s) < 1.0:
            tail = [normalized(w.text) for w in self.committed[-5:]]
            for n in range(min(len(tail), len(fresh), 5), 0, -1):
                if tail[-n:] == [normalized(w.text) for w in fresh[:n]]:
                    fresh = fresh[n:]
                    break
        self._current = fresh

    def commit(self) -> list[Word]:
        agreed: list[Word] = []
        for new, old in zip(self._current, self._previous, strict=False):
            if normalized(new.text) != normalized(old.text):
                break
            agreed.append(new)
        self.committed.extend(agreed)
        self._current = self._current[len(agreed) :]
        self._previous = list(self._current)
        return agreed

    def reset(self) -> None:
        """Forget everything (a new utterance starts)."""
        self.committed.clear()
        self._previous.clear()
        self._current.clear()
