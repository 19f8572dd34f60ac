"""Which words of a decode with context audio are the segment's own (interpret/context.py):
the text of the previous final's last words places the seam, where that text lies at about the
time the final heard it."""

from __future__ import annotations

from interpret.context import words_after_seam
from interpret.frames import Word
from interpret.segments import Previous


def timed(*spec: tuple[float, float, str]) -> list[Word]:
    return [Word(a, b, text, 0.9) for a, b, text in spec]


def previous(words: list[Word]) -> Previous:
    return Previous(" ".join(w.text for w in words), tuple(words), words[0].start_s, 0.0, "")


def test_the_previous_finals_last_words_place_the_seam_even_when_smeared() -> None:
    # "... capital letter, even" | 2 s | "the middle": the context decode smears "even" into
    # the pause, so its middle lies after the seam; the text still says where the final ended
    final = previous(timed((1.0, 1.5, "capital"), (1.5, 2.0, "letter,"), (2.0, 2.4, "even")))
    decode = timed(
        (1.0, 1.5, "capital"),
        (1.5, 2.0, "letter,"),
        (2.0, 3.6, "even"),
        (4.4, 4.6, "in"),
        (4.6, 4.8, "the"),
        (4.8, 5.2, "middle."),
    )
    assert [w.text for w in words_after_seam(decode, 3.0, final)] == ["in", "the", "middle."]


def test_a_match_long_before_the_final_heard_those_words_is_not_the_seam() -> None:
    # slow French: the final misheard its end ("en terrain montagneux" as "en terrement à
    # lieu"); the next decode, hearing the whole clause, has "lieu" 1.2 s earlier. Seaming
    # there would give "en terrain montagneux" twice; the words after the seam's time do not.
    final = previous(
        timed(
            (2.8, 3.3, "l'accident"),
            (3.3, 3.8, "a"),
            (3.8, 3.9, "eu"),
            (3.9, 4.2, "lieu"),
            (4.2, 4.5, "en"),
            (4.5, 5.1, "terrement"),
            (5.1, 5.4, "à"),
            (5.4, 5.7, "lieu"),
        )
    )
    decode = timed(
        (2.5, 3.3, "l'accident"),
        (3.3, 3.8, "a"),
        (3.8, 3.9, "eu"),
        (3.9, 4.2, "lieu"),
        (4.2, 4.5, "en"),
        (4.5, 4.8, "terrain"),
        (4.8, 6.1, "montagneux"),
        (6.1, 6.9, "et"),
        (9.1, 9.4, "il"),
        (9.4, 10.0, "semblerait"),
    )
    own = [w.text for w in words_after_seam(decode, 7.4, final)]
    assert own == ["il", "semblerait"]
