"""Apertium, real: Debian's pairs (apertium-eng-spa, apertium-fr-es) as persistent pipelines."""

from __future__ import annotations

import os
import signal
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from interpret.translate import TranslationTimeoutError, TranslatorClosedError
from interpret.translate_apertium import (
    DEFAULT_MODE_DIRS,
    ApertiumMode,
    ApertiumSettings,
    ApertiumTranslator,
    discover_apertium_modes,
    escape,
    parse_mode_name,
    pipeline_commands,
    unescape,
)
from tests.support.apertium import apertium_mode

UN_SENTENCE = "The United Nations will hold an online dialogue with people around the world."


@pytest.fixture(scope="module")
def en_es() -> Iterator[ApertiumTranslator]:
    translator = ApertiumTranslator(apertium_mode("eng-spa"))
    yield translator
    translator.close()


def test_english_to_spanish(en_es: ApertiumTranslator) -> None:
    assert (en_es.name, en_es.source, en_es.target) == ("apertium", "en", "es")
    spanish = en_es.translate(UN_SENTENCE)
    assert "Naciones Unidas" in spanish
    assert "*" not in spanish


def test_spanish_to_english_and_french_to_spanish() -> None:
    with ApertiumTranslator(apertium_mode("spa-eng")) as es_en:
        english = es_en.translate("Las Naciones Unidas celebrarán un diálogo con personas.")
        assert "United Nations" in english
    with ApertiumTranslator(apertium_mode("fr-es")) as fr_es:
        spanish = fr_es.translate("Les Nations unies organiseront un dialogue en ligne.")
        assert "Naciones Unidas" in spanish


def test_pipeline_is_persistent(en_es: ApertiumTranslator) -> None:
    assert en_es._pipeline is not None
    pids = [proc.pid for proc in en_es._pipeline.procs]
    sentences = [f"Meeting number {i} starts at nine and ends at ten." for i in range(20)]
    latencies_ms = []
    for sentence in sentences:
        start = time.perf_counter()
        assert en_es.translate(sentence)
        latencies_ms.append((time.perf_counter() - start) * 1000)
    assert [proc.pid for proc in en_es._pipeline.procs] == pids
    assert en_es.restarts == 0
    print(
        f"\napertium eng-spa, {len(sentences)} sentences: median "
        f"{statistics.median(latencies_ms):.2f} ms, max {max(latencies_ms):.2f} ms"
    )


def test_special_characters_and_empty_text_survive(en_es: ApertiumTranslator) -> None:
    assert en_es.translate("") == ""
    assert en_es.translate("   \n ") == ""
    out = en_es.translate("a [b] ^c$ / \\ @ <x> {y} ~z~ 5 * 3 # 2")
    for special in ["[b]", "^c$", "/", "\\", "@", "<x>", "{y}", "~z~", "*", "#"]:
        assert special in out, (special, out)
    # a NUL or newline in the text must not end the request early (the next one stays in step)
    assert en_es.translate("hello\0world\nagain").endswith("otra vez")
    assert "Naciones Unidas" in en_es.translate(UN_SENTENCE)


def test_unknown_words_lose_their_marks(en_es: ApertiumTranslator) -> None:
    assert en_es.translate("Hello xyzzy") == "Hola xyzzy"
    with ApertiumTranslator(
        apertium_mode("eng-spa"), settings=ApertiumSettings(mark_unknown=True)
    ) as raw:
        assert raw.translate("Hello xyzzy") == "Hola *xyzzy"


def test_restarts_a_dead_pipeline() -> None:
    with ApertiumTranslator(apertium_mode("eng-spa")) as translator:
        assert translator._pipeline is not None
        os.kill(translator._pipeline.procs[4].pid, signal.SIGKILL)
        assert "Naciones Unidas" in translator.translate(UN_SENTENCE)
        assert translator.restarts == 1
    with pytest.raises(TranslatorClosedError):
        translator.translate("hello")


def test_timeout_kills_and_next_call_recovers() -> None:
    with ApertiumTranslator(apertium_mode("eng-spa")) as translator:
        assert translator._pipeline is not None
        os.kill(translator._pipeline.procs[2].pid, signal.SIGSTOP)  # a stage hangs
        translator.settings = ApertiumSettings(timeout_s=0.2)
        with pytest.raises(TranslationTimeoutError):
            translator.translate("hello")
        assert "Naciones Unidas" in translator.translate(UN_SENTENCE)


def test_concurrent_callers_get_their_own_answers(en_es: ApertiumTranslator) -> None:
    texts = [f"I have {n} dogs." for n in range(30)]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(en_es.translate, texts))
    assert answers == [f"Tengo {n} perros." for n in range(30)]


def test_discovery_and_mode_parsing() -> None:
    modes = {(m.source, m.target): m for m in discover_apertium_modes(DEFAULT_MODE_DIRS)}
    assert {("en", "es"), ("es", "en"), ("fr", "es"), ("es", "fr")} <= modes.keys()
    assert modes[("en", "es")].name == "eng-spa"
    assert parse_mode_name("fr-es") == ("fr", "es")
    assert parse_mode_name("eng-cat") == ("en", "ca")
    assert parse_mode_name("es-pt_BR") is None
    assert parse_mode_name("eco-es-fr") is None
    with pytest.raises(ValueError):
        ApertiumMode.from_path("/x/eco-es-fr.mode")


def test_mode_commands_and_stream_escaping() -> None:
    commands = pipeline_commands(
        "lt-proc 'a b.bin' | apertium-tagger -g $2 t.prob | lt-proc $1 g.bin"
    )
    assert commands == [
        ["lt-proc", "-z", "a b.bin"],
        ["apertium-tagger", "-z", "-g", "t.prob"],
        ["lt-proc", "-z", "-n", "g.bin"],
    ]
    with pytest.raises(ValueError):
        pipeline_commands("lt-proc a.bin > out")
    assert escape("a^b$ ~\n[c]") == "a\\^b\\$ [~] \\[c\\]"
    assert unescape("a\\^b\\$ [~] \\[c\\] \\\\") == "a^b$ ~ [c] \\"
