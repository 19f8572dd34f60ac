"""Text checks and near-duplicate comparison for audience questions (pure)."""

from __future__ import annotations

import re
import unicodedata

#: C0 controls but newline and tab, DEL, C1 controls: never in a question
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"\s+")


class AudienceError(Exception):
    """A refused audience action: ``code`` is PROTOCOL.md's, ``retry_after_ms`` for rates."""

    def __init__(self, code: str, message: str, *, retry_after_ms: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_ms = retry_after_ms


def clean_text(text: str, *, max_chars: int) -> str:
    """The text as kept (whitespace runs folded), or :class:`AudienceError` ``empty``,
    ``bad_text`` (control characters) or ``too_long``."""
    if _CONTROL.search(text):
        raise AudienceError("bad_text", "control characters are not allowed")
    folded = _SPACES.sub(" ", text).strip()
    if not folded:
        raise AudienceError("empty", "the text is empty")
    if len(folded) > max_chars:
        raise AudienceError("too_long", f"at most {max_chars} characters")
    return folded


#: English function words: machine translations into the pivot vary most in these
#: ("It will record the presentation?" / "Will the presentation be recorded?")
_STOPWORDS = frozenset(
    "a an the it its is are was were be been being do does did will would shall should can "
    "could may might must to of in on at by for with from as that this these those there here "
    "i you he she we they me him her us them my your our their what which who whom whose "
    "and or but if so not no yes have has had up".split()
)
_SUFFIXES = ("ing", "ed", "es", "s")


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def tokens(text: str) -> frozenset[str]:
    """What near-duplicates compare: casefolded words, punctuation and symbols stripped,
    English function words dropped, crude suffixes (-ing, -ed, -es, -s) cut; all words when
    nothing else is left."""
    kept = "".join(" " if unicodedata.category(ch)[0] in "PSZC" else ch for ch in text.casefold())
    words = kept.split()
    content = frozenset(_stem(w) for w in words if w not in _STOPWORDS)
    return content or frozenset(words)


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)
