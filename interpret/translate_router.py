"""Which engine translates a pair: what is installed, an order of preference, pivots.

Default order for ``src→tgt`` (:class:`RoutingPolicy`):

1. a direct Argos package, 2. a direct Apertium pair (neural beats rule-based when both exist);
3. two hops through a pivot language, English first (every Argos package is X↔en), then Spanish
   (Apertium's pairs centre on Spanish: fr→es→en, pt→es→en); per hop the preferred engine, so
   all-Argos pivots rank before mixed ones, mixed before all-Apertium.

Pivots compound errors and double the latency, so a direct pair of any engine wins over them.
Nothing covering the pair gives a :class:`NoRoute` whose ``reason`` is for people
(``"no translation es→ja"``) and whose ``hint`` is for operators.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .translate import (
    EngineUnavailableError,
    NoRouteError,
    Translator,
    TranslatorClosedError,
    normalize_lang,
    pair_label,
)
from .translate_apertium import (
    DEFAULT_MODE_DIRS,
    ApertiumMode,
    ApertiumSettings,
    ApertiumTranslator,
    discover_apertium_modes,
)
from .translate_argos import ArgosSettings, ArgosTranslator, InstalledPackage, list_argos_packages

log = logging.getLogger(__name__)

#: "whisper" is Whisper's own speech → English translation (``task="translate"``): a hop
#: X→en for every language the multilingual model recognizes. It needs the utterance's audio,
#: so only the caption pipeline can run it, and only on finals (see
#: :class:`interpret.pipeline.CaptionPipeline`); as a first hop it pivots too (de→en→es).
ENGINES: tuple[str, ...] = ("argos", "apertium", "whisper")
WHISPER = "whisper"


@dataclass(frozen=True, slots=True)
class Hop:
    """One installed engine pair: what a route's step runs."""

    engine: str
    source: str
    target: str
    resource: ApertiumMode | InstalledPackage | None = None

    def __str__(self) -> str:
        return f"{self.engine} {pair_label(self.source, self.target)}"


@dataclass(frozen=True, slots=True)
class Route:
    """How to translate ``source→target``: one hop, two through a pivot, none if same language."""

    source: str
    target: str
    hops: tuple[Hop, ...]

    @property
    def engine(self) -> str:
        """For caption events: "argos", "apertium", "apertium+argos" (pivot), "identity"."""
        return "+".join(dict.fromkeys(hop.engine for hop in self.hops)) or "identity"

    @property
    def pivot(self) -> str | None:
        return self.hops[0].target if len(self.hops) == 2 else None

    def __str__(self) -> str:
        return ", then ".join(str(hop) for hop in self.hops) or "identity"


@dataclass(frozen=True, slots=True)
class NoRoute:
    """No installed engine translates the pair."""

    source: str
    target: str
    #: for listeners: "no translation es→ja"
    reason: str
    #: for operators: what is missing
    hint: str = ""

    def __str__(self) -> str:
        return f"{self.reason} ({self.hint})" if self.hint else self.reason


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    """Engine preference and pivots (validated, codes normalized)."""

    #: engines in order of preference; one left out is never used
    engines: tuple[str, ...] = ENGINES
    #: languages to pivot through, in order of preference; () disables pivoting
    pivots: tuple[str, ...] = ("en", "es")
    #: per pair ("es-en"): the engines allowed for it, in order (forces an engine)
    pair_engines: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = {e for e in self.engines if e not in ENGINES}
        for engines in self.pair_engines.values():
            unknown |= {e for e in engines if e not in ENGINES}
        if unknown:
            raise ValueError(f"unknown translation engines: {', '.join(sorted(unknown))}")
        object.__setattr__(self, "pivots", tuple(normalize_lang(p) for p in self.pivots))
        pairs = {}
        for pair, engines in self.pair_engines.items():
            source, _, target = pair.partition("-")
            pairs[f"{normalize_lang(source)}-{normalize_lang(target)}"] = tuple(engines)
        object.__setattr__(self, "pair_engines", pairs)

    def engines_for(self, source: str, target: str) -> tuple[str, ...]:
        return self.pair_engines.get(f"{source}-{target}", self.engines)


class EngineRegistry:
    """The installed engine pairs; built once (at start, or after installing a package)."""

    def __init__(self, hops: Iterable[Hop] = ()) -> None:
        self._hops: dict[tuple[str, str], dict[str, Hop]] = {}
        for hop in hops:
            self._hops.setdefault((hop.source, hop.target), {}).setdefault(hop.engine, hop)

    @classmethod
    def discover(
        cls,
        *,
        apertium_mode_dirs: Iterable[Path] = DEFAULT_MODE_DIRS,
        argos_packages_dir: Path | None = None,
        whisper_languages: Iterable[str] = (),
    ) -> EngineRegistry:
        """Apertium modes in ``apertium_mode_dirs``, Argos packages in ``argos_packages_dir``
        (default: Argos's own directory), and Whisper's X→en for ``whisper_languages`` (the
        loaded multilingual model's; none where there is no audio, e.g. ``parley translate``)."""
        hops = [
            Hop("argos", p.from_code, p.to_code, p) for p in list_argos_packages(argos_packages_dir)
        ]
        hops += [
            Hop("apertium", m.source, m.target, m)
            for m in discover_apertium_modes(apertium_mode_dirs)
        ]
        hops += [Hop(WHISPER, lang, "en") for lang in whisper_languages if lang != "en"]
        return cls(hops)

    def hop(self, source: str, target: str, engine: str) -> Hop | None:
        return self._hops.get((source, target), {}).get(engine)

    def hops(self) -> list[Hop]:
        return [hop for by_engine in self._hops.values() for hop in by_engine.values()]

    def pairs(self) -> list[tuple[str, str]]:
        return sorted(self._hops)


class PivotTranslator:
    """Two translators in a row (``source→pivot→target``); closing it leaves them open (the
    router owns them)."""

    def __init__(self, first: Translator, second: Translator) -> None:
        self.first, self.second = first, second
        self.name = "+".join(dict.fromkeys((first.name, second.name)))

    @property
    def source(self) -> str:
        return self.first.source

    @property
    def target(self) -> str:
        return self.second.target

    def translate(self, text: str) -> str:
        return self.second.translate(self.first.translate(text))

    def translate_many(self, texts: Sequence[str]) -> list[str]:
        return self.second.translate_many(self.first.translate_many(texts))

    def close(self) -> None:
        return None


class IdentityTranslator:
    """Same language on both sides."""

    name = "identity"

    def __init__(self, lang: str) -> None:
        self.source = self.target = lang

    def translate(self, text: str) -> str:
        return text

    def translate_many(self, texts: Sequence[str]) -> list[str]:
        return list(texts)

    def close(self) -> None:
        return None


class TranslationRouter:
    """Routes pairs to engines and keeps each loaded engine pair (one per process). Thread-safe."""

    def __init__(
        self,
        registry: EngineRegistry,
        *,
        policy: RoutingPolicy | None = None,
        apertium: ApertiumSettings | None = None,
        argos: ArgosSettings | None = None,
        load: Callable[[Hop], Translator] | None = None,
    ) -> None:
        self.registry = registry
        self.policy = policy or RoutingPolicy()
        self._apertium = apertium or ApertiumSettings()
        self._argos = argos or ArgosSettings()
        self._load = load or self._load_engine
        self._lock = threading.Lock()
        self._hop_locks: dict[Hop, threading.Lock] = {}
        self._loaded: dict[Hop, Translator] = {}
        self._closed = False

    def route(self, source: str, target: str, *, speech: bool = False) -> Route | NoRoute:
        """The best route for ``source→target`` under the policy, or why there is none.

        Text (chat, caption interims, ``parley translate``) takes text engines only; ``speech``
        (a caption final whose audio Whisper can translate) may also start with Whisper."""
        try:
            src, tgt = normalize_lang(source), normalize_lang(target)
        except ValueError as exc:
            return NoRoute(source, target, f"no translation {pair_label(source, target)}", str(exc))
        if src == tgt:
            return Route(src, tgt, ())
        engines = self.policy.engines_for(src, tgt)
        if not speech:
            engines = tuple(e for e in engines if e != WHISPER)
        direct = self._best_hop(src, tgt, engines)
        if direct is not None:
            return Route(src, tgt, (direct,))
        candidates: list[tuple[tuple[int, int, int], Route]] = []
        for pivot_rank, pivot in enumerate(self.policy.pivots):
            if pivot in (src, tgt):
                continue
            first = self._best_hop(src, pivot, engines)
            # Whisper translates speech: it can only be the first step
            second = self._best_hop(pivot, tgt, [e for e in engines if e != WHISPER])
            if first is None or second is None:
                continue
            ranks = (engines.index(first.engine), engines.index(second.engine))
            key = (pivot_rank, max(ranks), sum(ranks))
            candidates.append((key, Route(src, tgt, (first, second))))
        if candidates:
            return min(candidates, key=lambda candidate: candidate[0])[1]
        return NoRoute(src, tgt, f"no translation {pair_label(src, tgt)}", self._hint(src, tgt))

    def translator(self, route: Route) -> Translator:
        """The loaded translator for ``route`` (each engine pair is loaded once).

        Raises:
            EngineUnavailableError: the route starts with a Whisper hop (that needs audio: the
                caption pipeline translates the audio, then the rest of the route).
        """
        if not route.hops:
            return IdentityTranslator(route.source)
        loaded = [self._loaded_hop(hop) for hop in route.hops]
        if len(loaded) == 1:
            return loaded[0]
        return PivotTranslator(loaded[0], loaded[1])

    def translator_for(self, source: str, target: str) -> Translator:
        """Route and load in one step.

        Raises:
            NoRouteError: nothing installed translates the pair (``reason`` for people).
        """
        route = self.route(source, target)
        if isinstance(route, NoRoute):
            raise NoRouteError(route.reason)
        return self.translator(route)

    def close(self) -> None:
        """Close every loaded translator; idempotent."""
        with self._lock:
            self._closed = True
            loaded, self._loaded = list(self._loaded.values()), {}
        for translator in loaded:
            translator.close()

    def _best_hop(self, source: str, target: str, engines: Sequence[str]) -> Hop | None:
        for engine in engines:
            hop = self.registry.hop(source, target, engine)
            if hop is not None:
                return hop
        return None

    def _hint(self, source: str, target: str) -> str:
        engines = self.policy.engines_for(source, target)
        usable = [hop for hop in self.registry.hops() if hop.engine in engines]
        if not any(hop.source == source for hop in usable):
            return f"no installed engine ({', '.join(engines)}) translates from {source}"
        if not any(hop.target == target for hop in usable):
            return f"no installed engine ({', '.join(engines)}) translates into {target}"
        pivots = ", ".join(self.policy.pivots) or "none allowed"
        return f"no direct pair and no two-step route through a pivot ({pivots})"

    def _loaded_hop(self, hop: Hop) -> Translator:
        with self._lock:
            if self._closed:
                raise TranslatorClosedError("the translation router is closed")
            translator = self._loaded.get(hop)
            if translator is not None:
                return translator
            hop_lock = self._hop_locks.setdefault(hop, threading.Lock())
        with hop_lock:  # loading can take a second: other pairs go on meanwhile
            with self._lock:
                translator = self._loaded.get(hop)
            if translator is not None:
                return translator
            log.info("loading %s", hop)
            translator = self._load(hop)
            with self._lock:
                if not self._closed:
                    self._loaded[hop] = translator
                    return translator
            translator.close()
            raise TranslatorClosedError("the translation router is closed")

    def _load_engine(self, hop: Hop) -> Translator:
        if isinstance(hop.resource, ApertiumMode):
            return ApertiumTranslator(hop.resource, settings=self._apertium)
        if isinstance(hop.resource, InstalledPackage):
            return ArgosTranslator(hop.resource, settings=self._argos)
        if hop.engine == WHISPER:
            raise EngineUnavailableError(f"{hop} translates speech, not text")
        raise EngineUnavailableError(f"nothing to load for {hop}")


@dataclass(frozen=True, slots=True)
class TranslationCoverage:
    """What a server can translate among the languages it is configured for (logged at start)."""

    #: installed engine pairs, e.g. ``"apertium en→es"`` (Whisper's X→en included when given)
    pairs: tuple[str, ...]
    #: configured languages that no other configured language has a route into
    untranslatable: tuple[str, ...]


def translation_coverage(
    router: TranslationRouter, languages: Iterable[str]
) -> TranslationCoverage:
    """Pure: which of ``languages`` nothing translates into from another of them (direct or
    through a pivot, under the router's policy). Loads no engine."""
    langs = list(dict.fromkeys(normalize_lang(lang) for lang in languages))
    if len(langs) < 2:  # nothing to translate between
        langs = []
    untranslatable = tuple(
        target
        for target in langs
        if not any(
            isinstance(router.route(source, target, speech=True), Route)
            for source in langs
            if source != target
        )
    )
    hops = sorted(router.registry.hops(), key=lambda h: (h.engine, h.source, h.target))
    return TranslationCoverage(tuple(str(hop) for hop in hops), untranslatable)
