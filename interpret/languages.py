"""The languages Parley knows: those Whisper recognises, plus Norwegian Bokmål.

A copy of faster-whisper's list (``faster_whisper.tokenizer._LANGUAGE_CODES``; a test keeps the
two equal) so that the server can check a language code without importing faster-whisper and
CTranslate2. ``nb`` is added because the web client offers it: Whisper says ``no`` for
Norwegian, while the translation engines (Apertium's ``nob``, Argos) name Bokmål ``nb``.
"""

from __future__ import annotations

#: ISO 639-1 codes (and Whisper's three-letter ``haw`` and ``yue``), in Whisper's order
WHISPER_LANGUAGES: tuple[str, ...] = (
    "af", "am", "ar", "as", "az", "ba", "be", "bg", "bn", "bo", "br", "bs", "ca", "cs", "cy",
    "da", "de", "el", "en", "es", "et", "eu", "fa", "fi", "fo", "fr", "gl", "gu", "ha", "haw",
    "he", "hi", "hr", "ht", "hu", "hy", "id", "is", "it", "ja", "jw", "ka", "kk", "km", "kn",
    "ko", "la", "lb", "ln", "lo", "lt", "lv", "mg", "mi", "mk", "ml", "mn", "mr", "ms", "mt",
    "my", "ne", "nl", "nn", "no", "oc", "pa", "pl", "ps", "pt", "ro", "ru", "sa", "sd", "si",
    "sk", "sl", "sn", "so", "sq", "sr", "su", "sv", "sw", "ta", "te", "tg", "th", "tk", "tl",
    "tr", "tt", "uk", "ur", "uz", "vi", "yi", "yo", "zh", "yue",
)  # fmt: skip

#: every language a participant may speak, read, chat in or interpret into
KNOWN_LANGUAGES: frozenset[str] = frozenset(WHISPER_LANGUAGES) | {"nb"}


def is_known_language(code: str) -> bool:
    return code in KNOWN_LANGUAGES
