"""Composition of one process's caption pipeline: model, VAD, translation router, pipeline.

What a speech worker (:mod:`interpret.worker`) runs, and ``parley interpret`` too, so that a file
goes through exactly the pipeline a meeting does. Models load here, once per process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .frames import CaptionFrame, Samples, Translated, Translation, Untranslated
from .pipeline import CaptionPipeline, TranslateFn
from .streaming import StreamingSettings
from .transcribe import BatchItem, RecognizerSettings, words_text
from .translate_router import ENGINES, WHISPER, Route, RoutingPolicy
from .vad import VadSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TranslationSettings:
    """Which engines translate, and whether interims are translated too."""

    #: engines in order of preference (see :class:`interpret.translate_router.RoutingPolicy`)
    engines: tuple[str, ...] = ENGINES
    pivots: tuple[str, ...] = ("en", "es")
    #: per pair ("es-en"): the engines allowed for it, in order (forces an engine)
    pair_engines: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Argos packages directory; None = Argos's own
    argos_packages_dir: str | None = None
    translate_interims: bool = True

    def __post_init__(self) -> None:
        self.policy()  # validates engines and language codes now, not in the worker later

    def policy(self) -> RoutingPolicy:
        return RoutingPolicy(
            engines=self.engines, pivots=self.pivots, pair_engines=self.pair_engines
        )


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """Everything a speech worker needs to build its pipeline (sent as its first frame)."""

    recognizer: RecognizerSettings = field(default_factory=RecognizerSettings)
    translation: TranslationSettings = field(default_factory=TranslationSettings)
    streaming: StreamingSettings = field(default_factory=StreamingSettings)
    vad: VadSettings = field(default_factory=VadSettings)
    #: languages read at start (changeable later with ``set_targets``)
    targets: tuple[str, ...] = ()
    #: decodes of different speakers due at once, sent to Whisper as one batch (1: one at a
    #: time, best on a CPU; 8 on a GPU, where a batch costs about what one decode does)
    batch_size: int = 1


@dataclass(frozen=True, slots=True)
class BuiltPipeline:
    """A pipeline ready to start, what closes its engines, and what loading cost."""

    pipeline: CaptionPipeline
    close: Callable[[], None]
    model_dir: Path
    load_s: float
    warm_up_s: float


def router_translate_fn(router: Any) -> TranslateFn:
    """Adapts :class:`interpret.translate_router.TranslationRouter` to the pipeline.

    Text without audio (chat, interims) takes a text route. With ``english`` (Whisper's
    translation of a final's audio) a route may start with Whisper: the rest of the route runs
    on it. Reasons are for people (no engine names); engines stay in ``engine`` and the log."""
    from .translate import TranslationError, pair_label
    from .translate_router import WHISPER, NoRoute, Route

    def translate(
        text: str, source: str, target: str, *, english: str | None = None
    ) -> Translation:
        route = router.route(source, target, speech=english is not None)
        if isinstance(route, NoRoute):
            return Untranslated(route.reason)
        try:
            if route.hops and route.hops[0].engine == WHISPER:
                assert english is not None  # a text route never starts with Whisper
                rest = Route("en", target, route.hops[1:])
                return Translated(router.translator(rest).translate(english), route.engine)
            return Translated(router.translator(route).translate(text), route.engine)
        except TranslationError as exc:  # costs this translation, not the caption
            log.warning("translation %s (%s) failed: %s", pair_label(source, target), route, exc)
            return Untranslated(f"translation {pair_label(source, target)} failed")

    return translate


def build_pipeline(
    config: PipelineConfig,
    emit: Callable[[CaptionFrame], None],
    *,
    loaded: LoadedModels | None = None,
) -> BuiltPipeline:
    """Load the model (raises :class:`interpret.models.ModelError` when it is missing), warm it
    up, discover the translation engines and build the (not yet started) pipeline. ``loaded``
    reuses models loaded before (a benchmark building several pipelines)."""
    models = loaded or load_models(config)
    recognizer, router = models.recognizer, models.router
    whisper_languages = models.whisper_languages

    def needs_speech(source: str, targets: frozenset[str]) -> bool:
        for target in targets:
            route = router.route(source, target, speech=True)
            if isinstance(route, Route) and route.hops and route.hops[0].engine == WHISPER:
                return True
        return False

    def translate_speech(audio: Samples, lang: str) -> str:
        return words_text(recognizer.translate_to_english(audio, lang=lang).words)

    pipeline = CaptionPipeline(
        recognizer=recognizer,
        vad=models.vad,
        emit=emit,
        translate=router_translate_fn(router),
        streaming=config.streaming,
        vad_settings=config.vad,
        translate_interims=config.translation.translate_interims,
        translate_speech=translate_speech if whisper_languages else None,
        needs_speech=needs_speech,
        batch_size=config.batch_size,
        batch_item=BatchItem,
    )
    pipeline.set_targets(config.targets)
    close = router.close if loaded is None else (lambda: None)
    return BuiltPipeline(pipeline, close, models.model_dir, models.load_s, models.warm_up_s)


@dataclass(frozen=True, slots=True)
class LoadedModels:
    """What a process loads once: recognizer, VAD, translation router."""

    recognizer: Any
    vad: Any
    router: Any
    model_dir: Path
    whisper_languages: tuple[str, ...]
    load_s: float
    warm_up_s: float


def load_models(config: PipelineConfig) -> LoadedModels:
    from .models import ModelResolver
    from .transcribe import WhisperRecognizer
    from .translate_router import EngineRegistry, TranslationRouter
    from .vad import SileroVad

    r, t = config.recognizer, config.translation
    t0 = time.monotonic()
    model_dir = ModelResolver().resolve(r.model)
    recognizer = WhisperRecognizer(
        model_dir,
        device=r.device,
        compute_type=r.compute_type,
        cpu_threads=r.cpu_threads,
        num_workers=r.num_workers,
        beam_size=r.beam_size,
        final_beam_size=r.final_beam_size,
        final_beam_max_s=r.final_beam_max_s,
        temperatures=r.temperatures,
        encoder_window=r.encoder_window,
        fit_margin_s=r.fit_margin_s,
        guards=r.guards,
        switch_probability=r.switch_probability,
    )
    vad = SileroVad()
    t1 = time.monotonic()
    recognizer.warm_up()
    t2 = time.monotonic()
    argos_dir = None if t.argos_packages_dir is None else Path(t.argos_packages_dir)
    whisper_languages = tuple(recognizer.languages) if recognizer.multilingual else ()
    router = TranslationRouter(
        EngineRegistry.discover(argos_packages_dir=argos_dir, whisper_languages=whisper_languages),
        policy=t.policy(),
    )
    return LoadedModels(recognizer, vad, router, model_dir, whisper_languages, t1 - t0, t2 - t1)
