"""At start: which translation pairs this machine has, and which configured caption languages
(``[captions] translation_languages``) nothing translates into. One info line, one warning
line; an operator sees at once that e.g. the Apertium pairs are missing (``make run`` installs
them: scripts/translation-deps.sh)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog

from interpret.translate_router import (
    WHISPER,
    EngineRegistry,
    TranslationCoverage,
    TranslationRouter,
    translation_coverage,
)

from .settings import CaptionSettings

log = structlog.get_logger(__name__)


def check_translation(captions: CaptionSettings) -> TranslationCoverage:
    """The pairs the speech worker will find (the same discovery; reads a few directories) and
    the configured languages without a route. Whisper's X→en is counted for a multilingual
    model (one whose name does not end in ``.en``), for the configured languages."""
    translation = captions.pipeline_config().translation
    whisper = WHISPER in captions.translation_engines and not captions.model.endswith(".en")
    argos_dir = translation.argos_packages_dir
    registry = EngineRegistry.discover(
        argos_packages_dir=None if argos_dir is None else Path(argos_dir),
        whisper_languages=captions.translation_languages if whisper else (),
    )
    router = TranslationRouter(registry, policy=translation.policy())
    return translation_coverage(router, captions.translation_languages)


async def log_translation(captions: CaptionSettings) -> TranslationCoverage:
    """Log :func:`check_translation` (run off the event loop: it reads the disk)."""
    coverage = await asyncio.to_thread(check_translation, captions)
    log.info("translation pairs available", pairs=list(coverage.pairs) or "none")
    if coverage.untranslatable:
        log.warning(
            "caption languages without translation",
            languages=list(coverage.untranslatable),
            configured=list(captions.translation_languages),
            hint="install the Apertium pairs (make run does: scripts/translation-deps.sh) "
            "or Argos packages (parley models install)",
        )
    return coverage
