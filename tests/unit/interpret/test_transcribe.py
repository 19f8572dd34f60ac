"""WhisperRecognizer with the real Whisper base model (the PyPI packages, joined into a
temporary cache) on real evalset speech, in both encoder-window modes."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from interpret.frames import ASR_SAMPLE_RATE
from interpret.guards import GuardSettings
from interpret.streaming import DecodeAbandoned, Hypothesis
from interpret.transcribe import Recognition, WhisperRecognizer, words_text
from tests.support.paths import evalset_dir
from tests.support.waits import TIME_SCALE

#: CPU seconds (all threads of this process: unlike wall time, not inflated when other work
#: shares the cores) of a call on ≤ 10 s of audio, 2 threads, base int8: ≈ 1–4 s measured; a
#: repetition loop without the token cap would cost ≈ 20 s
CALL_LIMIT_S = 12.0 * TIME_SCALE


def evalset() -> Path:
    path = evalset_dir()
    if not (path / "manifest.jsonl").is_file():
        pytest.fail(f"evalset not found at {path} (set PARLEY_EVALSET)")
    return path


def clip(clip_id: str) -> tuple[np.ndarray, dict[str, object]]:
    from faster_whisper import decode_audio

    root = evalset()
    for line in (root / "manifest.jsonl").read_text().splitlines():
        item = json.loads(line)
        if item["id"] == clip_id:
            audio = decode_audio(str(root / item["audio"]), sampling_rate=ASR_SAMPLE_RATE)
            return np.asarray(audio, np.float32), item
    raise LookupError(clip_id)


def tokens(text: str) -> list[str]:
    return re.sub(r"[^\w\s]", " ", text.lower()).split()


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from interpret.models import resolve_model

    return resolve_model("base", cache_dir=tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module", params=["fit", "full"])
def recognizer(request: pytest.FixtureRequest, base_dir: Path) -> WhisperRecognizer:
    r = WhisperRecognizer(base_dir, cpu_threads=2, encoder_window=request.param)
    r.warm_up()
    return r


def timed(r: WhisperRecognizer, audio: np.ndarray, **kwargs: object) -> Recognition:
    started = time.process_time()
    result = r.recognize(audio, **kwargs)  # type: ignore[arg-type]
    assert time.process_time() - started < CALL_LIMIT_S
    return result


@pytest.mark.models
def test_english_speech_gives_timed_words_and_detects_english(
    recognizer: WhisperRecognizer,
) -> None:
    # LibriSpeech dev-clean 1272-128104-0000, with reference word times (±0.1 s, model-made)
    audio, item = clip("en_leopard_test")
    duration_s = len(audio) / ASR_SAMPLE_RATE

    result = timed(recognizer, audio, lang=None, word_timestamps=True)

    assert isinstance(result, Hypothesis)
    assert result.lang == "en" and result.source_lang == "en"
    assert result.lang_probability > 0.5
    words = list(result.words)
    assert words
    starts = [w.start_s for w in words]
    assert starts == sorted(starts)
    assert all(0.0 <= w.start_s <= w.end_s <= duration_s for w in words)
    assert all(0.0 <= w.probability <= 1.0 for w in words)
    ref = tokens(str(item["reference"]))
    hyp = tokens(words_text(words))
    assert len(set(ref) & set(hyp)) >= 0.8 * len(set(ref)), (ref, hyp)

    # word times agree with the reference alignment
    times = json.loads((evalset() / str(item["word_times"])).read_text())
    reference = times["words"] if isinstance(times, dict) else times
    errors = []
    at = 0
    for w in words:  # match in order: "the" occurs twice
        key = (tokens(w.text) or [""])[0]
        for j in range(at, len(reference)):
            if tokens(str(reference[j]["word"]))[:1] == [key]:
                errors.append(abs(w.start_s - float(reference[j]["start"])))
                at = j + 1
                break
    assert len(errors) >= 8
    assert float(np.median(errors)) < 0.3, errors


@pytest.mark.models
def test_without_word_timestamps_words_still_span_the_speech(
    recognizer: WhisperRecognizer,
) -> None:
    audio, _ = clip("en_fleurs-en-003")
    duration_s = len(audio) / ASR_SAMPLE_RATE

    result = timed(recognizer, audio, lang="en", word_timestamps=False)

    words = list(result.words)
    assert len(words) >= 8
    assert [w.start_s for w in words] == sorted(w.start_s for w in words)
    assert all(0.0 <= w.start_s <= w.end_s <= duration_s for w in words)
    assert {"cabbage", "juice", "color"} <= set(tokens(words_text(words)))


@pytest.mark.models
def test_spanish_is_detected_and_translated_to_english(recognizer: WhisperRecognizer) -> None:
    audio, _ = clip("es_fleurs-es-003")

    heard = timed(recognizer, audio, lang=None)
    translated = recognizer.translate_to_english(audio)

    assert heard.lang == "es"
    assert translated.lang == "en" and translated.source_lang == "es"
    assert translated.task == "translate"
    english = set(tokens(words_text(translated.words)))
    assert {"the", "earth"} <= english, english


@pytest.mark.models
def test_a_translation_after_the_decode_of_the_same_audio_reuses_its_encoder_output(
    base_dir: Path,
) -> None:
    # a final's speech translation (de→en) follows the pause decode of the same audio: it
    # needs only the decoder then, and gives what it gives alone
    audio, _ = clip("de_fleurs-de-000")
    alone = WhisperRecognizer(base_dir, cpu_threads=2).translate_to_english(audio, lang="de")
    r = WhisperRecognizer(base_dir, cpu_threads=2)
    heard = r.recognize(audio, lang="de")
    assert r.encoder_reused == 0
    after = r.translate_to_english(audio, lang="de")
    assert r.encoder_reused == 1
    assert words_text(after.words) == words_text(alone.words)
    assert len(tokens(words_text(after.words))) >= 5
    # other audio (a second longer) is encoded anew; the same audio again reuses it
    longer = np.concatenate([audio, np.zeros(ASR_SAMPLE_RATE, np.float32)])
    r.recognize(longer, lang="de")
    assert r.encoder_reused == 1
    again = r.recognize(audio, lang="de")
    assert r.encoder_reused == 2
    assert words_text(again.words) == words_text(heard.words)
    assert [(w.start_s, w.end_s) for w in again.words] == [
        (w.start_s, w.end_s) for w in heard.words
    ]


@pytest.mark.models
def test_a_decode_asked_to_stop_stops_between_its_stages(base_dir: Path) -> None:
    # an interim gives way to a final's pause decode (issue 12): the recognizer asks after
    # its encoder and after its decoder; a decode not asked to stop gives what it gives alone
    audio, _ = clip("de_fleurs-de-000")
    r = WhisperRecognizer(base_dir, cpu_threads=2)
    alone = r.recognize(audio, lang="de")
    asked: list[str] = []

    def after(stage: int) -> Callable[[], bool]:
        def abandon() -> bool:
            asked.append("asked")
            return len(asked) == stage

        return abandon

    with pytest.raises(DecodeAbandoned, match="encoder"):
        r.recognize(audio, lang="de", abandon=after(1))
    asked.clear()
    with pytest.raises(DecodeAbandoned, match="decoder"):
        r.recognize(audio, lang="de", abandon=after(2))
    asked.clear()
    kept = r.recognize(audio, lang="de", abandon=after(3))
    assert asked == ["asked", "asked"]
    assert words_text(kept.words) == words_text(alone.words)
    assert len(tokens(words_text(kept.words))) >= 5


@pytest.mark.models
@pytest.mark.parametrize("lang", [None, "en"])
def test_silence_gives_no_words(recognizer: WhisperRecognizer, lang: str | None) -> None:
    zeros = np.zeros(5 * ASR_SAMPLE_RATE, np.float32)
    assert list(timed(recognizer, zeros, lang=lang).words) == []


@pytest.mark.models
@pytest.mark.parametrize("lang", [None, "en"])
def test_digital_silence_is_rejected_by_the_model_guards_too(
    base_dir: Path, lang: str | None
) -> None:
    """With the peak gate off, Whisper decodes silence ("you", Welsh loops): the no-speech
    guards must drop it."""
    for window in ("fit", "full"):
        r = WhisperRecognizer(base_dir, encoder_window=window, guards=GuardSettings(min_peak=0.0))
        result = timed(r, np.zeros(5 * ASR_SAMPLE_RATE, np.float32), lang=lang)
        assert list(result.words) == [], (window, result.segments)
        assert any(s.dropped == "no_speech" for s in result.segments) or not result.segments


@pytest.mark.models
@pytest.mark.parametrize("amplitude", [0.01, 0.1, 0.3])
@pytest.mark.parametrize("lang", [None, "en"])
def test_white_noise_gives_no_words(
    recognizer: WhisperRecognizer, amplitude: float, lang: str | None
) -> None:
    noise = np.random.default_rng(7).standard_normal(8 * ASR_SAMPLE_RATE) * amplitude
    result = timed(recognizer, noise.astype(np.float32), lang=lang)
    assert list(result.words) == [], result.segments


@pytest.mark.models
def test_a_buffer_cut_mid_sentence_keeps_its_unfinished_tail(
    recognizer: WhisperRecognizer,
) -> None:
    """Interims see buffers that end mid-sentence: the last words must come back (one window,
    no second decode of the tail)."""
    audio, item = clip("en_fleurs-en-002")
    cut = audio[: int(0.7 * len(audio))]

    result = timed(recognizer, cut, lang="en")

    words = list(result.words)
    assert words
    assert words[-1].end_s > 0.75 * len(cut) / ASR_SAMPLE_RATE
    assert not any(s.dropped == "repetitive" for s in result.segments)


@pytest.mark.models
def test_long_prompt_and_limits(recognizer: WhisperRecognizer) -> None:
    audio, _ = clip("en_fleurs-en-004")
    # ≈ 600 tokens of unrelated text: more than Whisper keeps (223), must not raise
    lines = (evalset() / "mt" / "flores200_devtest" / "eng_Latn.devtest").read_text().splitlines()
    prompt = " ".join(lines[:20])

    result = timed(recognizer, audio, lang="en", prompt=prompt)

    assert "feathers" in tokens(words_text(result.words))
    with pytest.raises(ValueError):
        recognizer.recognize(np.zeros(31 * ASR_SAMPLE_RATE, np.float32), lang="en")
    empty = recognizer.recognize(np.zeros(100, np.float32), lang="en")
    assert list(empty.words) == []


@pytest.mark.models
def test_english_only_model_refuses_other_languages(tmp_path: Path) -> None:
    from interpret.models import resolve_model
    from interpret.transcribe import RecognizerError

    tiny = WhisperRecognizer(resolve_model("tiny.en", cache_dir=tmp_path))
    audio, _ = clip("en_fleurs-en-003")

    assert timed(tiny, audio, lang=None).lang == "en"
    with pytest.raises(RecognizerError):
        tiny.recognize(audio, lang="es")


@pytest.mark.models
def test_a_batch_gives_each_speaker_what_their_buffer_gives_alone(
    recognizer: WhisperRecognizer,
) -> None:
    """Issue 17, GPU batching: several speakers' windows (languages, prompts, a silent one) in
    one encoder call and one decoder call; each result is the one its buffer gives alone (the
    windows are cut to the same length, so the padding is the same)."""
    from interpret.transcribe import BatchItem

    seconds = int(6 * ASR_SAMPLE_RATE)
    en, _ = clip("en_fleurs-en-000")
    es, _ = clip("es_fleurs-es-000")
    de, _ = clip("de_fleurs-de-000")
    items = [
        BatchItem(en[:seconds], "en", ""),
        BatchItem(es[:seconds], "es", "Se recomienda"),
        BatchItem(np.zeros(seconds, np.float32), "en", ""),  # digital silence: no decode
        BatchItem(de[:seconds], None, ""),  # language detected inside the batch
    ]
    alone = [recognizer.recognize(i.audio, lang=i.lang, prompt=i.prompt) for i in items]
    batch = recognizer.recognize_batch(items)
    assert [r.lang for r in batch] == [r.lang for r in alone] == ["en", "es", "en", "de"]
    for one, many in zip(alone, batch, strict=True):
        assert words_text(many.words) == words_text(one.words)
        assert [round(w.start_s, 2) for w in many.words] == [round(w.start_s, 2) for w in one.words]
    assert batch[2].words == [] and words_text(batch[0].words)
    assert recognizer.recognize_batch([]) == []


@pytest.mark.models
def test_a_decode_a_final_may_come_from_gets_the_final_beam(base_dir: Path) -> None:
    """Issue 12: interims are greedy, a decode a final may come from (``final=True``) uses
    ``final_beam_size`` up to ``final_beam_max_s`` of audio, alone and in a batch beside greedy
    rows (rows are grouped by beam)."""
    from interpret.transcribe import BatchItem

    r = WhisperRecognizer(base_dir, cpu_threads=2, final_beam_size=5)
    north, _ = clip("en_fleurs-en-002")  # "… town of Sintra": greedy hears "Cintra"
    audio = north[: 6 * ASR_SAMPLE_RATE]
    greedy = words_text(r.recognize(audio, lang="en", beam_size=1).words)
    beam = words_text(r.recognize(audio, lang="en", beam_size=5).words)
    assert greedy != beam, "the clip must tell the beams apart"
    assert words_text(r.recognize(audio, lang="en").words) == greedy
    assert words_text(r.recognize(audio, lang="en", final=True).words) == beam
    assert words_text(r.recognize(audio, lang="en", final=True, beam_size=1).words) == greedy
    batch = r.recognize_batch([BatchItem(audio, "en", ""), BatchItem(audio, "en", "", final=True)])
    assert [words_text(b.words) for b in batch] == [greedy, beam]
    cheap = WhisperRecognizer(base_dir, cpu_threads=2, final_beam_size=1)
    assert words_text(cheap.recognize(audio, lang="en", final=True).words) == greedy
    # a window longer than final_beam_max_s is greedy (the beam's cost grows with it)
    short = WhisperRecognizer(base_dir, cpu_threads=2, final_beam_max_s=5.0)
    assert words_text(short.recognize(audio, lang="en", final=True).words) == greedy
    five = audio[: 5 * ASR_SAMPLE_RATE]
    assert words_text(short.recognize(five, lang="en", final=True).words) == words_text(
        r.recognize(five, lang="en", beam_size=5).words
    )
    with pytest.raises(ValueError, match="beam"):
        WhisperRecognizer(base_dir, final_beam_size=0)
