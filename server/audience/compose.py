"""Builds the audience service from the settings (the App calls :func:`build_audience`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Protocol

from websockets.datastructures import Headers

from interpret.frames import Translation
from interpret.glossary import Glossary

from .board import BoardLimits
from .service import AudienceConfig, AudienceService
from .stage import StageLimits

if TYPE_CHECKING:
    from ..auth import TokenVerifier
    from ..retention import Retention
    from ..settings import Settings


class GlossedTranslator(Protocol):
    """What the audience needs of the captions (:class:`server.captions.CaptionService`)."""

    async def translate_glossed(
        self, text: str, source: str, targets: Iterable[str], glossary: Glossary = ()
    ) -> Mapping[str, Translation]: ...


def audience_languages(settings: Settings) -> tuple[str, ...]:
    """``[audience] languages``, else the broadcast's caption languages, else captions'."""
    return tuple(
        settings.audience.languages
        or settings.broadcast.caption_languages
        or settings.captions.translation_languages
    )


def build_audience(
    settings: Settings,
    retention: Retention,
    *,
    translator: GlossedTranslator | None,
    glossary: Callable[[str], Glossary],
    may_watch: Callable[[str, Headers], bool],
    verifier: TokenVerifier | None,
) -> AudienceService | None:
    """``translator``: the captions (None when off); ``glossary``: a room's glossary (its terms
    are rendered as in captions); ``may_watch``: whether a request may watch a room's broadcast
    (:meth:`server.broadcast.BroadcastManager.may_watch`)."""
    a = settings.audience
    if not a.enabled:
        return None
    config = AudienceConfig(
        languages=audience_languages(settings),
        pivot=a.pivot_lang,
        limits=BoardLimits(
            max_chars=a.max_chars,
            per_viewer_per_min=a.per_viewer_per_min,
            per_address_per_min=a.per_address_per_min,
            max_pending=a.max_pending,
            group_threshold=a.group_threshold,
        ),
        document_max_age_s=a.document_max_age_s,
        translate_queue_max=a.translate_queue_max,
        translate_timeout_s=settings.chat.translate_timeout_ms / 1000 * 4,
        stage=StageLimits(
            invite_ttl_s=a.stage_invite_ttl_s,
            join_window_s=a.stage_join_window_s,
            max_on_stage=a.max_on_stage,
        ),
    )

    async def translate(
        room: str, text: str, source: str, targets: tuple[str, ...]
    ) -> Mapping[str, Translation]:
        if translator is None:
            raise RuntimeError("captions are off")
        return await translator.translate_glossed(text, source, targets, glossary(room))

    return AudienceService(
        config,
        translate=translate if settings.captions.enabled else None,
        may_watch=may_watch,
        verifier=verifier,
        export=retention.write_export if retention.enabled else None,
    )
