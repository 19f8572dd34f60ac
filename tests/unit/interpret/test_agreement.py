"""LocalAgreement-2 commit policy (pure)."""

from __future__ import annotations

from interpret.agreement import LocalAgreement, normalized
from interpret.frames import Word


def words(text: str, start_s: float = 0.0, step_s: float = 0.3) -> list[Word]:
    return [
        Word(start_s + i * step_s, start_s + (i + 1) * step_s, f" {w}")
        for i, w in enumerate(text.split())
    ]


def test_normalized_ignores_case_and_punctuation() -> None:
    assert normalized(" Hello,") == normalized("hello") == "hello"


def test_commits_only_what_two_hypotheses_agree_on() -> None:
    agreement = LocalAgreement()
    agreement.insert(words("the cat sat"))
    assert agreement.commit() == []  # one hypothesis proves nothing
    agreement.insert(words("the cat sat on"))
    assert [w.text for w in agreement.commit()] == [" the", " cat", " sat"]
    assert [w.text for w in agreement.tentative] == [" on"]
    agreement.insert(words("the cat sat on the mat"))
    assert [w.text for w in agreement.commit()] == [" on"]
    agreement.insert(words("the cat sat on a mat."))
    assert agreement.commit() == []  # "the" vs "a": disagreement stops the prefix
    assert [w.text for w in agreement.committed] == [" the", " cat", " sat", " on"]


def test_committed_words_are_not_repeated_at_the_seam() -> None:
    agreement = LocalAgreement()
    agreement.insert(words("hello world how"))
    agreement.commit()
    agreement.insert(words("hello world how are"))
    assert len(agreement.commit()) == 3
    # the next hypothesis starts again at the beginning of the buffer
    agreement.insert(words("hello world how are you", 0.0))
    assert [w.text for w in agreement.tentative] == [" are", " you"]


def test_reset_forgets_everything() -> None:
    agreement = LocalAgreement()
    agreement.insert(words("a b"))
    agreement.commit()
    agreement.insert(words("a b"))
    agreement.commit()
    agreement.reset()
    assert agreement.committed == [] and agreement.tentative == []
