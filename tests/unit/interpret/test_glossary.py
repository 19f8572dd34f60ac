"""Glossary string work (pure), and its round trip through real Apertium."""

from __future__ import annotations

import pytest

from interpret.frames import Translated
from interpret.glossary import (
    GlossaryEntry,
    apply_to_source,
    entries_json,
    parse_entries,
    protect,
    recognition_hint,
    restore,
    with_hint,
)
from interpret.pipeline import translate_with_glossary

GLOSSARY = (
    GlossaryEntry("Sintra", "en", {"es": "la villa de Sintra"}),
    GlossaryEntry("Parley", keep=True),
    GlossaryEntry("town of Sintra", "en", {"fr": "bourg de Sintra"}),
)


def test_protect_replaces_terms_longest_first_and_restore_renders_them() -> None:
    p = protect("The town of sintra and Parley.", "en", "fr", GLOSSARY)
    assert "Sintra" not in p.text and "sintra" not in p.text and "Parley" not in p.text
    assert sorted(p.slots.values()) == ["Parley", "bourg de Sintra"]
    back = restore(p.text, p)
    assert back == "The bourg de Sintra and Parley."


def test_terms_match_whole_words_only_and_by_language() -> None:
    assert protect("Sintras and Parleys", "en", "es", GLOSSARY).slots == {}
    # an entry of English does not apply to German speech; a keep entry applies everywhere
    p = protect("Sintra und Parley", "de", "es", GLOSSARY)
    assert list(p.slots.values()) == ["Parley"]


def test_restore_survives_an_engine_that_formats_numbers() -> None:
    p = protect("Parley works", "en", "es", GLOSSARY)
    placeholder = next(iter(p.slots))
    mangled = f"{placeholder[:2]}.{placeholder[2:]} funciona"
    assert restore(mangled, p) == "Parley funciona"


def test_recognition_hint_lists_the_terms_of_the_speakers_language() -> None:
    assert recognition_hint(GLOSSARY, "en") == "Sintra, Parley, town of Sintra"
    assert recognition_hint(GLOSSARY, "es") == "la villa de Sintra, Parley"
    assert recognition_hint((), "en") == ""
    assert with_hint("previous words", "Sintra") == "Sintra. previous words"
    assert with_hint("", "") == ""


def test_source_spelling_follows_the_glossary() -> None:
    assert apply_to_source("the town of sintra", "en", GLOSSARY) == "the town of Sintra"


def test_entries_round_trip_and_bad_entries_are_refused() -> None:
    assert parse_entries(entries_json(GLOSSARY)) == GLOSSARY
    with pytest.raises(ValueError, match="term"):
        parse_entries([{"term": " "}])
    with pytest.raises(ValueError, match="renderings"):
        parse_entries([{"term": "x", "renderings": {"es": 1}}])


def test_translate_with_glossary_around_a_translate_function() -> None:
    seen: list[str] = []

    def upper(text: str, source: str, target: str, *, english: str | None = None) -> Translated:
        seen.append(text)
        return Translated(text.upper(), "fake")

    out = translate_with_glossary(upper, "we met in Sintra", "en", "es", GLOSSARY)
    assert out.text == "WE MET IN la villa de Sintra" and out.engine == "fake"
    assert "Sintra" not in seen[0]


def test_real_apertium_keeps_the_configured_rendering() -> None:
    from interpret.translate_apertium import ApertiumTranslator
    from tests.support.apertium import apertium_mode

    translator = ApertiumTranslator(apertium_mode("eng-spa"))
    try:

        def apertium(
            text: str, source: str, target: str, *, english: str | None = None
        ) -> Translated:
            return Translated(translator.translate(text), "apertium")

        plain = apertium("The Bank of England raised the rates.", "en", "es").text
        glossary = (GlossaryEntry("Bank of England", "en", keep=True),)
        kept = translate_with_glossary(
            apertium, "The Bank of England raised the rates.", "en", "es", glossary
        ).text
        assert plain is not None and "Banco de Inglaterra" in plain
        assert kept is not None and "Bank of England" in kept and "Banco" not in kept, kept
    finally:
        translator.close()
