"""Builds the audience service from the settings (the App calls :func:`build_audience`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from interpret.frames import Translation

from .board import BoardLimits
from .service import AudienceConfig, AudienceService

if TYPE_CHECKING:
    from ..retention import Retention
    from ..settings import Settings
    from ..signaling import SignalingServer


def audience_languages(settings: Settings) -> tuple[str, ...]:
    """``[audience] languages``, else the broadcast's caption languages, else captions'."""
    return tuple(
        settings.audience.languages
        or settings.broadcast.caption_languages
        or settings.captions.translation_languages
    )


def build_audience(
    settings: Settings, signaling: SignalingServer, retention: Retention
) -> AudienceService | None:
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
    )

    async def translate(
        room: str, text: str, source: str, targets: tuple[str, ...]
    ) -> Mapping[str, Translation]:
        captions = signaling.captions
        if captions is None:
            raise RuntimeError("captions are off")
        live = signaling.rooms.get(room)
        glossary = live.glossary if live is not None else ()
        return await captions.translate_glossed(text, source, targets, glossary)

    def may_watch(room: str, headers: object) -> bool:
        manager = signaling.broadcasts
        return manager is not None and manager._may_watch(room, headers)  # type: ignore[arg-type]

    return AudienceService(
        config,
        translate=translate if settings.captions.enabled else None,
        may_watch=may_watch,
        verifier=signaling.verifier,
        export=retention.write_export if retention.enabled else None,
    )
