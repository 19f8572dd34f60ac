"""Comparing recognized text with a reference: normalized words, word error rate."""

from __future__ import annotations

import re


def words(text: str) -> list[str]:
    """Lower-case words of ``text``, punctuation dropped (apostrophes kept)."""
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of ``hypothesis`` against ``reference`` (jiwer, on :func:`words`)."""
    import jiwer

    return float(jiwer.wer(" ".join(words(reference)), " ".join(words(hypothesis))))
