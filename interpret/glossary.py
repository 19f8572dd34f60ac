"""A room glossary: terms with fixed renderings per language, and do-not-translate terms.

Pure string work, no engine: :func:`recognition_hint` biases Whisper towards the terms (the same
mechanism as faster-whisper's ``hotwords``: the terms go before the previous text in the
decoder prompt); :func:`protect` swaps every term in a source text for a placeholder the
translation engines pass through unchanged (a number: Apertium and Argos keep numbers), and
:func:`restore` puts the configured rendering (or the term itself) where the placeholder came out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

#: placeholders are this number plus the term's index: unusual enough to never occur in speech
PLACEHOLDER_BASE = 81_730
MAX_HINT_CHARS = 200


@dataclass(frozen=True, slots=True)
class GlossaryEntry:
    """``term`` as it is said in ``lang`` (None: in any language). ``renderings``: target
    language → the text a translation must use. ``keep``: do not translate: the term stays
    as it is in every language without a rendering."""

    term: str
    lang: str | None = None
    renderings: Mapping[str, str] = field(default_factory=dict)
    keep: bool = False

    def applies_to(self, source: str) -> bool:
        return self.lang is None or self.lang == source

    def rendering(self, target: str) -> str | None:
        """What the term becomes in ``target``; None: the glossary says nothing for it."""
        if target in self.renderings:
            return self.renderings[target]
        return self.term if self.keep else None


Glossary = tuple[GlossaryEntry, ...]


def recognition_hint(glossary: Glossary, lang: str | None) -> str:
    """The terms a speaker of ``lang`` may say, for Whisper's prompt ("" when none): each term
    of that language (or of any), and the renderings into it."""
    words: list[str] = []
    for entry in glossary:
        if lang is None or entry.applies_to(lang):
            words.append(entry.term)
        if lang is not None and lang in entry.renderings:
            words.append(entry.renderings[lang])
    hint = ", ".join(dict.fromkeys(w for w in words if w.strip()))
    return hint[:MAX_HINT_CHARS].rsplit(",", 1)[0] if len(hint) > MAX_HINT_CHARS else hint


def with_hint(prompt: str, hint: str) -> str:
    """``prompt`` (the previous final) with the glossary's terms before it."""
    if not hint:
        return prompt
    return f"{hint}. {prompt}" if prompt else f"{hint}."


@dataclass(frozen=True, slots=True)
class Protected:
    """A source text whose glossary terms are placeholders, and what each one becomes."""

    text: str
    #: placeholder → rendering in the target language
    slots: Mapping[str, str]


def _pattern(term: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(term.strip()) + r"(?!\w)", re.IGNORECASE)


def protect(text: str, source: str, target: str, glossary: Glossary) -> Protected:
    """Replace each glossary term of ``source`` that has a rendering into ``target`` (longest
    terms first) by a placeholder."""
    candidates = [
        (entry, rendering)
        for entry in glossary
        if entry.applies_to(source) and (rendering := entry.rendering(target)) is not None
    ]
    candidates.sort(key=lambda c: len(c[0].term), reverse=True)
    slots: dict[str, str] = {}
    for index, (entry, rendering) in enumerate(candidates):
        if not entry.term.strip():
            continue
        placeholder = str(PLACEHOLDER_BASE + index)
        text, n = _pattern(entry.term).subn(placeholder, text)
        if n:
            slots[placeholder] = rendering
    return Protected(text, slots)


def restore(translated: str, protected: Protected) -> str:
    """Put each rendering where its placeholder came out of the engine. An engine that mangled
    a placeholder (split digits, added separators) still gets its digits matched."""
    for placeholder, rendering in protected.slots.items():
        fuzzy = r"[\s.,\u00a0\u202f]?".join(placeholder)
        translated = re.sub(fuzzy, _literal(rendering), translated)
    return translated


def _literal(text: str) -> Callable[[re.Match[str]], str]:
    """A replacement that inserts ``text`` as it is (no backslash escapes)."""
    return lambda _match: text


def apply_to_source(text: str, source: str, glossary: Glossary) -> str:
    """The source text with each term spelled as the glossary spells it (Whisper may have
    written "sintra" for "Sintra")."""
    for entry in sorted(glossary, key=lambda e: len(e.term), reverse=True):
        if entry.applies_to(source) and entry.term.strip():
            text = _pattern(entry.term).sub(_literal(entry.term.strip()), text)
    return text


def parse_entries(raw: Iterable[Mapping[str, object]]) -> Glossary:
    """Entries from their JSON shape (``term``, ``lang``?, ``renderings``?, ``keep``?);
    raises ValueError with the reason."""
    entries: list[GlossaryEntry] = []
    for i, item in enumerate(raw):
        term = item.get("term")
        lang = item.get("lang")
        renderings = item.get("renderings", {})
        keep = item.get("keep", False)
        if not isinstance(term, str) or not term.strip():
            raise ValueError(f"entries.{i}.term: a non-empty string is required")
        if lang is not None and not isinstance(lang, str):
            raise ValueError(f"entries.{i}.lang: must be a language code")
        if not isinstance(renderings, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in renderings.items()
        ):
            raise ValueError(f"entries.{i}.renderings: must map languages to strings")
        if not isinstance(keep, bool):
            raise ValueError(f"entries.{i}.keep: must be a boolean")
        entries.append(GlossaryEntry(term.strip(), lang, dict(renderings), keep))
    return tuple(entries)


def entries_json(glossary: Glossary) -> list[dict[str, object]]:
    """The inverse of :func:`parse_entries`."""
    return [
        {"term": e.term, "lang": e.lang, "renderings": dict(e.renderings), "keep": e.keep}
        for e in glossary
    ]
