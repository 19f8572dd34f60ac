"""Routing: which engine translates a pair, pivots, and the reason when none does."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from interpret.frames import Translated, Untranslated
from interpret.translate import NoRouteError, Translator
from interpret.translate_apertium import DEFAULT_MODE_DIRS
from interpret.translate_argos import install_argos_package
from interpret.translate_router import (
    EngineRegistry,
    Hop,
    NoRoute,
    PivotTranslator,
    Route,
    RoutingPolicy,
    TranslationRouter,
)
from tests.support.argos import build_tiny_argos_package


@pytest.fixture(scope="module")
def packages_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Argos packages: a tiny en→de (no Apertium pair has German here)."""
    work = tmp_path_factory.mktemp("argos")
    packages = work / "packages"
    install_argos_package(build_tiny_argos_package(work, from_code="en", to_code="de"), packages)
    return packages


@pytest.fixture(scope="module")
def router(packages_dir: Path) -> Iterator[TranslationRouter]:
    registry = EngineRegistry.discover(
        apertium_mode_dirs=DEFAULT_MODE_DIRS, argos_packages_dir=packages_dir
    )
    instance = TranslationRouter(registry)
    yield instance
    instance.close()


def _route(router: TranslationRouter, source: str, target: str, *, speech: bool = False) -> Route:
    route = router.route(source, target, speech=speech)
    assert isinstance(route, Route), route
    return route


def test_direct_pairs_pick_the_installed_engine(router: TranslationRouter) -> None:
    assert str(_route(router, "en", "de")) == "argos en→de"
    assert str(_route(router, "en", "es")) == "apertium en→es"
    assert _route(router, "ENG", "spa") == _route(router, "en", "es-MX")
    spanish = router.translator_for("en", "es").translate("The United Nations will meet.")
    assert "Naciones Unidas" in spanish
    german = router.translator_for("en", "de")
    assert german.name == "argos" and isinstance(german.translate("Good morning."), str)


def test_pivot_through_english_when_no_direct_pair(router: TranslationRouter) -> None:
    route = _route(router, "es", "de")
    assert route.pivot == "en" and route.engine == "apertium+argos"
    assert str(route) == "apertium es→en, then argos en→de"
    translator = router.translator(route)
    assert isinstance(translator, PivotTranslator)
    assert (translator.source, translator.target) == ("es", "de")
    out = translator.translate("Las Naciones Unidas celebrarán un diálogo.")
    assert isinstance(out, str) and out
    assert translator.translate_many(["Buenos días.", ""])[1] == ""
    # each engine pair is loaded once: the pivot's first hop is the direct es→en translator
    assert translator.first is router.translator_for("es", "en")


def test_apertium_pivots_through_spanish(router: TranslationRouter) -> None:
    route = _route(router, "fr", "en")
    assert str(route) == "apertium fr→es, then apertium es→en"
    english = router.translator(route).translate("Les Nations unies organiseront un dialogue.")
    assert "United Nations" in english


def test_no_route_says_which_pair(router: TranslationRouter) -> None:
    none = router.route("es", "ja")
    assert isinstance(none, NoRoute)
    assert none.reason == "no translation es→ja"
    assert "into ja" in none.hint
    back = router.route("ja", "es")
    assert isinstance(back, NoRoute) and "from ja" in back.hint
    bad = router.route("klingon!", "es")
    assert isinstance(bad, NoRoute) and bad.reason == "no translation klingon!→es"
    with pytest.raises(NoRouteError, match="no translation es→ja"):
        router.translator_for("es", "ja")


def test_same_language_is_identity(router: TranslationRouter) -> None:
    route = _route(router, "es", "es-AR")
    assert route.hops == () and route.engine == "identity"
    assert router.translator(route).translate("hola") == "hola"


def test_argos_preferred_unless_configured(tmp_path: Path) -> None:
    install_argos_package(build_tiny_argos_package(tmp_path, to_code="es"), tmp_path / "pk")
    registry = EngineRegistry.discover(argos_packages_dir=tmp_path / "pk")
    assert str(TranslationRouter(registry).route("en", "es")) == "argos en→es"
    apertium_first = RoutingPolicy(engines=("apertium", "argos"))
    assert str(TranslationRouter(registry, policy=apertium_first).route("en", "es")) == (
        "apertium en→es"
    )
    forced = RoutingPolicy(pair_engines={"eng-spa": ("apertium",)})
    router = TranslationRouter(registry, policy=forced)
    assert str(router.route("en", "es")) == "apertium en→es"
    assert str(router.route("es", "en")) == "apertium es→en"
    # with Apertium alone, English→German has no route
    only_apertium = TranslationRouter(registry, policy=RoutingPolicy(engines=("apertium",)))
    assert isinstance(only_apertium.route("en", "de"), NoRoute)
    with pytest.raises(ValueError, match="unknown translation engines"):
        RoutingPolicy(engines=("google",))


class _Echo:
    """A fake engine pair (routing is pure logic; loading is injected)."""

    def __init__(self, hop: Hop) -> None:
        self.name, self.source, self.target = hop.engine, hop.source, hop.target
        self.closed = False

    def translate(self, text: str) -> str:
        return f"{text}>{self.target}"

    def translate_many(self, texts: Sequence[str]) -> list[str]:
        return [self.translate(t) for t in texts]

    def close(self) -> None:
        self.closed = True


def test_pivot_ranking_and_loading_once() -> None:
    hops = [
        Hop("apertium", "pt", "es"),
        Hop("apertium", "es", "fr"),
        Hop("argos", "pt", "en"),
        Hop("argos", "en", "fr"),
        Hop("apertium", "ca", "es"),
        Hop("argos", "en", "ca"),
        Hop("apertium", "es", "ca"),
    ]
    loaded: list[_Echo] = []

    def load(hop: Hop) -> Translator:
        loaded.append(_Echo(hop))
        return loaded[-1]

    router = TranslationRouter(EngineRegistry(hops), load=load)
    assert str(router.route("pt", "fr")) == "argos pt→en, then argos en→fr"
    no_en = TranslationRouter(EngineRegistry(hops), policy=RoutingPolicy(pivots=("es",)))
    assert str(no_en.route("pt", "fr")) == "apertium pt→es, then apertium es→fr"
    assert isinstance(
        TranslationRouter(EngineRegistry(hops), policy=RoutingPolicy(pivots=())).route("pt", "fr"),
        NoRoute,
    )
    assert str(router.route("pt", "ca")) == "argos pt→en, then argos en→ca"
    translator = router.translator_for("pt", "fr")
    assert translator.translate("olá") == "olá>en>fr"
    assert translator.name == "argos"
    router.translator_for("pt", "fr")
    router.translator_for("en", "fr")
    assert [(t.source, t.target) for t in loaded] == [("pt", "en"), ("en", "fr")]
    router.close()
    router.close()
    assert all(t.closed for t in loaded)


def test_whisper_translates_speech_into_english_only_as_a_first_step() -> None:
    registry = EngineRegistry.discover(
        apertium_mode_dirs=DEFAULT_MODE_DIRS, whisper_languages=["en", "de", "es", "fr"]
    )
    router = TranslationRouter(registry)
    try:
        # no text engine has German here: Whisper's speech translation, then Apertium en→es
        assert str(_route(router, "de", "en", speech=True)) == "whisper de→en"
        assert _route(router, "de", "es", speech=True).engine == "whisper+apertium"
        assert str(_route(router, "es", "en", speech=True)) == "apertium es→en"  # text first
        # never as a second step (it needs the audio): en→de stays untranslated
        assert isinstance(router.route("en", "de", speech=True), NoRoute)
        with pytest.raises(Exception, match="translates speech"):
            router.translator(_route(router, "de", "en", speech=True))
        # an operator may prefer it for a pair
        forced = TranslationRouter(
            registry, policy=RoutingPolicy(pair_engines={"es-en": ("whisper",)})
        )
        assert str(_route(forced, "es", "en", speech=True)) == "whisper es→en"
    finally:
        router.close()


def test_text_takes_a_text_route_where_whisper_translates_speech() -> None:
    """Issue 13 bug 2: French chat (and caption interims) for an English reader. Whisper's
    fr→en needs the audio; text pivots through Spanish with Apertium, and a reason shown to
    people names no engine."""
    from interpret.compose import router_translate_fn

    registry = EngineRegistry.discover(
        apertium_mode_dirs=DEFAULT_MODE_DIRS, whisper_languages=["en", "de", "es", "fr"]
    )
    router = TranslationRouter(registry)
    try:
        assert str(_route(router, "fr", "en")) == "apertium fr→es, then apertium es→en"
        speech = router.route("fr", "en", speech=True)
        assert str(speech) == "whisper fr→en"  # finals with their audio keep Whisper's
        translate = router_translate_fn(router)
        text = translate("Bonjour à tous.", "fr", "en")
        assert isinstance(text, Translated) and text.engine == "apertium", text
        assert "all" in text.text.lower(), text  # "Greeting to all."
        heard = translate("Bonjour", "fr", "en", english="Hello")
        assert isinstance(heard, Translated) and heard.text == "Hello"
        untranslatable = translate("Guten Tag", "de", "en")  # only Whisper has de→en here
        assert untranslatable == Untranslated("no translation de→en")
    finally:
        router.close()
