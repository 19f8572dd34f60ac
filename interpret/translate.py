"""Machine translation behind one seam: the :class:`Translator` protocol, its errors, languages.

Engines live beside this module, each behind the same protocol:

- :mod:`interpret.translate_apertium`: Apertium's rule-based pairs (Debian packages), run as a
  persistent pipeline of the pair's programs (1–3 ms a sentence instead of ≈ 0.16 s a process);
- :mod:`interpret.translate_argos`: Argos Translate packages (neural), installed from
  ``.argosmodel`` files and run with CTranslate2 + SentencePiece directly (no torch, no stanza);
- :mod:`interpret.translate_router`: what is installed, and which engine (or which pivot through
  a third language) translates a given pair.

Language codes are ISO 639-1 where one exists ("en", "es", "ca"), else ISO 639-3 ("ast").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class Translator(Protocol):
    """Translates text of one language pair. Implementations are thread-safe."""

    @property
    def name(self) -> str:
        """The engine: "apertium", "argos", or a composite such as "apertium+argos"."""
        ...

    @property
    def source(self) -> str:
        """Source language (ISO 639-1 where one exists)."""
        ...

    @property
    def target(self) -> str:
        """Target language (ISO 639-1 where one exists)."""
        ...

    def translate(self, text: str) -> str:
        """Translate one caption-sized text (a sentence or a few); blocking, off the loop."""
        ...

    def translate_many(self, texts: Sequence[str]) -> list[str]:
        """Translate several texts, batched where the engine can; same order as ``texts``."""
        ...

    def close(self) -> None:
        """Release processes and models; idempotent."""
        ...


class TranslationError(Exception):
    """A translation failed. ``retryable``: the same call may succeed if tried again."""

    retryable = False


class TranslationTimeoutError(TranslationError):
    """An engine did not answer within its per-text deadline (it is restarted for the next)."""

    retryable = True


class EngineUnavailableError(TranslationError):
    """An engine cannot run here: a program is missing, or its process keeps dying."""


class PackageError(TranslationError):
    """A translation package (an ``.argosmodel`` or an installed one) is not valid."""


class TranslatorClosedError(TranslationError):
    """The translator was closed."""


class NoRouteError(TranslationError):
    """No installed engine translates the pair; ``reason`` says which pair, for people."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


#: ISO 639-3 (and 639-2/B) codes that Apertium uses, mapped to ISO 639-1.
ISO_639_3_TO_1: dict[str, str] = {
    "afr": "af", "ara": "ar", "arg": "an", "aze": "az", "bak": "ba", "bel": "be", "ben": "bn",
    "bos": "bs", "bre": "br", "bul": "bg", "cat": "ca", "ces": "cs", "cze": "cs", "chv": "cv",
    "cor": "kw", "cos": "co", "cym": "cy", "wel": "cy", "dan": "da", "deu": "de", "ger": "de",
    "ell": "el", "gre": "el", "eng": "en", "epo": "eo", "est": "et", "eus": "eu", "baq": "eu",
    "fao": "fo", "fas": "fa", "per": "fa", "fin": "fi", "fra": "fr", "fre": "fr", "fry": "fy",
    "gla": "gd", "gle": "ga", "glg": "gl", "glv": "gv", "grn": "gn", "hbs": "sh", "heb": "he",
    "hin": "hi", "hrv": "hr", "hun": "hu", "hye": "hy", "arm": "hy", "ind": "id", "isl": "is",
    "ice": "is", "ita": "it", "jpn": "ja", "kat": "ka", "geo": "ka", "kaz": "kk", "kir": "ky",
    "kor": "ko", "kur": "ku", "lat": "la", "lav": "lv", "lit": "lt", "ltz": "lb", "mkd": "mk",
    "mac": "mk", "mlt": "mt", "mon": "mn", "msa": "ms", "may": "ms", "nld": "nl", "dut": "nl",
    "nno": "nn", "nob": "nb", "nor": "no", "oci": "oc", "pol": "pl", "por": "pt", "ron": "ro",
    "rum": "ro", "rus": "ru", "sme": "se", "slk": "sk", "slo": "sk", "slv": "sl", "spa": "es",
    "sqi": "sq", "alb": "sq", "srd": "sc", "srp": "sr", "swe": "sv", "tat": "tt", "tgk": "tg",
    "tha": "th", "tur": "tr", "ukr": "uk", "urd": "ur", "uzb": "uz", "vie": "vi", "zho": "zh",
    "chi": "zh", "cmn": "zh",
}  # fmt: skip

_LANG_RE = re.compile(r"[a-z]{2,3}")


def normalize_lang(code: str) -> str:
    """``"ENG"`` → ``"en"``, ``"pt-BR"`` → ``"pt"``, ``"ast"`` → ``"ast"``.

    Only the primary language subtag is kept: engines are chosen per language, not per region.

    Raises:
        ValueError: ``code`` is not a 2- or 3-letter language code.
    """
    primary = code.strip().lower().replace("_", "-").split("-", 1)[0]
    if not _LANG_RE.fullmatch(primary):
        raise ValueError(f"not a language code: {code!r}")
    return ISO_639_3_TO_1.get(primary, primary)


def pair_label(source: str, target: str) -> str:
    """How a pair is written for people: ``"es→ja"``."""
    return f"{source}→{target}"
