"""Whisper recognition of one buffer (≤ 30 s) with faster-whisper, loaded once per process.

:class:`WhisperRecognizer` is synchronous and CPU-bound: call it from a worker thread or
process, never on an event loop. One call is exactly one Whisper window: one encoder pass, one
decoder pass (more only with temperature fallback), one alignment pass for word times; nothing
lazy leaves the call.

Why not ``WhisperModel.transcribe()`` (measured, ``bench/asr_calls.py``):

- it always pads the encoder input to 30 s (faster-whisper 1.2 ``pad_or_trim`` to 3000 frames,
  whatever ``chunk_length`` says: that only changes the seek stride, and it *mutates* the shared
  feature extractor), so a 3 s buffer costs as much as a 30 s one. CTranslate2 accepts a shorter
  encoder input: ``encoder_window="fit"`` pads the buffer with silence to its length plus a
  margin; ``"full"`` is what ``transcribe()`` does;
- its seek loop re-decodes the tail of a buffer that ends mid-sentence in a second 30 s window
  (double cost, and hallucinations such as "Thank you." on the padding). A streaming buffer
  always ends mid-sentence; here the unfinished segment is kept instead.

The decode itself is faster-whisper's: ``get_prompt``, ``generate_with_fallback``,
``find_alignment`` and ``merge_punctuations`` (public names of faster-whisper 1.2).
"""

from __future__ import annotations

import collections
import hashlib
import math
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .frames import ASR_SAMPLE_RATE, Samples, Word
from .guards import (
    GuardSettings,
    WindowScores,
    anomalous_tail,
    collapse,
    drop_reason,
    rescue_repetitive,
)
from .streaming import AbandonFn, DecodeAbandoned, Hypothesis

__all__ = [
    "BatchItem",
    "EncoderWindow",
    "GuardSettings",
    "Recognition",
    "RecognizerError",
    "RecognizerSettings",
    "SegmentInfo",
    "Task",
    "WhisperRecognizer",
    "words_text",
]

Task = Literal["transcribe", "translate"]
EncoderWindow = Literal["full", "fit"]

#: Whisper's window: the encoder was trained on 30 s (3000 mel frames)
WINDOW_S = 30.0
#: shorter buffers are not decoded (an empty result)
MIN_AUDIO_S = 0.1
_FRAMES_PER_S = 100
_TIME_PRECISION_S = 0.02  # one timestamp token
_PREPEND_PUNCTUATION = "\"'“¿([{-"
_APPEND_PUNCTUATION = "\"'.。,，!！?？:：”)]}、"


class RecognizerError(Exception):
    """Base of this module's errors."""

    retryable = False


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """One Whisper segment and the scores the hallucination guards look at."""

    start_s: float
    end_s: float
    text: str
    no_speech_prob: float
    avg_logprob: float
    compression_ratio: float
    temperature: float
    #: why :mod:`interpret.guards` dropped it ("no_speech", "repetitive", "beyond_audio",
    #: "anomalous_tail")
    dropped: str | None = None


@dataclass(slots=True)
class Recognition(Hypothesis):
    """A :class:`~interpret.streaming.Hypothesis` plus what the recognizer saw.

    ``words`` times are relative to the start of the audio; ``lang`` is the language of the
    words ("en" after ``task="translate"``), ``source_lang`` the language spoken.
    """

    segments: Sequence[SegmentInfo] = ()
    source_lang: str = ""
    task: Task = "transcribe"
    duration_s: float = 0.0
    #: wall time of the call (features, encoder, decoder, alignment)
    compute_s: float = 0.0
    #: encoder input length used (30 s with ``encoder_window="full"``)
    encoder_s: float = WINDOW_S


#: encoder outputs kept (base: ≤ 2.7 MB each for a 26 s window; large: 6.6 MB): a speaker's
#: final and its translation with a few other speakers' decodes in between
ENCODED_KEPT = 4


class WhisperRecognizer:
    """faster-whisper loaded once; :meth:`recognize` decodes one buffer of ≤ 30 s.

    Not for concurrent calls from several threads unless ``num_workers`` matches them
    (CTranslate2 then runs that many decodes in parallel over shared weights).
    """

    def __init__(
        self,
        model_dir: Path | str,
        *,
        device: str = "cpu",
        compute_type: str = "int8",
        cpu_threads: int = 2,
        num_workers: int = 1,
        beam_size: int = 1,
        final_beam_size: int = 5,
        final_beam_max_s: float = 12.0,
        temperatures: Sequence[float] = (0.0,),
        encoder_window: EncoderWindow = "fit",
        fit_margin_s: float = 2.0,
        guards: GuardSettings | None = None,
        switch_probability: float = 0.8,
        switch_min_s: float = 2.0,
    ) -> None:
        from faster_whisper import WhisperModel

        if not temperatures or any(t < 0 for t in temperatures):
            raise ValueError("temperatures must be non-empty and ≥ 0")
        if beam_size < 1 or final_beam_size < 1:
            raise ValueError("beam sizes must be ≥ 1")
        self.model_dir = Path(model_dir)
        #: the beam of interims (and of any decode not marked ``final``) ...
        self.beam_size = beam_size
        #: ... and of a decode a final caption may come from (``recognize(final=True)``)
        self.final_beam_size = final_beam_size
        #: ... when its window is at most this long (a longer one is decoded with
        #: ``beam_size``: the beam's cost grows with the window)
        self.final_beam_max_s = final_beam_max_s
        self.temperatures = tuple(temperatures)
        self.encoder_window: EncoderWindow = encoder_window
        self.fit_margin_s = fit_margin_s
        self.guards = guards or GuardSettings()
        #: code-switching: a declared ``lang`` gives way to the detected language when Whisper
        #: is this sure of it, on at least ``switch_min_s`` of audio (1.0 = never)
        self.switch_probability = switch_probability
        self.switch_min_s = switch_min_s
        #: the encoder's output for the last few buffers decoded, by their audio: Whisper's
        #: speech translation of a final's audio comes right after the decode of the same
        #: audio (a pause decode without context), and then costs only the decoder
        self._encoded: collections.OrderedDict[tuple[float, bytes], tuple[int, Any]] = (
            collections.OrderedDict()
        )
        self._encoded_lock = threading.Lock()
        #: decodes that reused an encoder output
        self.encoder_reused = 0
        # model_dir must be a directory: a name would make faster-whisper download it
        if not (self.model_dir / "model.bin").is_file():
            raise RecognizerError(f"{str(self.model_dir)!r} is not a model directory")
        self._model = WhisperModel(
            str(self.model_dir),
            device=device,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            num_workers=num_workers,
            local_files_only=True,
        )

    @property
    def multilingual(self) -> bool:
        return bool(self._model.model.is_multilingual)

    @property
    def languages(self) -> list[str]:
        return list(self._model.supported_languages)

    def warm_up(self) -> None:
        """One throw-away decode: the first call pays CTranslate2's allocations (≈ +0.3 s)."""
        self.recognize(np.zeros(ASR_SAMPLE_RATE, np.float32), lang="en", word_timestamps=True)

    def recognize(
        self,
        audio: Samples,
        *,
        lang: str | None = None,
        prompt: str = "",
        task: Task = "transcribe",
        word_timestamps: bool = True,
        beam_size: int | None = None,
        final: bool = False,
        abandon: AbandonFn | None = None,
    ) -> Recognition:
        """Decode ``audio`` (mono float32, 16 kHz, ≤ 30 s). ``lang=None`` detects the language.

        ``final``: a final caption may come from this decode; it gets ``final_beam_size`` if
        ``audio`` is at most ``final_beam_max_s`` long (``beam_size``, when given, decides).

        Word times are seconds from the start of ``audio``. Without ``word_timestamps`` each
        segment's words get times spread over the segment by character count (cheaper: no
        alignment pass, ≈ segment-accurate). ``abandon`` is asked after the encoder and after
        the decoder: True raises :class:`DecodeAbandoned` (the rest of the work is not done).
        """
        started = time.perf_counter()
        audio, empty = self._checked(audio, lang=lang, task=task, started=started)
        if empty is not None:
            return empty
        duration_s = len(audio) / ASR_SAMPLE_RATE
        from faster_whisper.tokenizer import Tokenizer

        m = self._model
        encoder_s = self._encoder_s(duration_s)
        content_frames, encoder_output = self._encode(audio, encoder_s)
        source_lang, lang_probability = lang or "en", 1.0
        if self._detects(lang, task, duration_s):
            ranked = m.model.detect_language(encoder_output)[0]
            source_lang, lang_probability = self._chosen_lang(lang, ranked)
        if abandon is not None and abandon():
            raise DecodeAbandoned("after the encoder")
        tokenizer = Tokenizer(m.hf_tokenizer, self.multilingual, task=task, language=source_lang)
        options = self._options(
            tokenizer, prompt, beam_size or self._beam(final, duration_s), duration_s
        )
        previous = tokenizer.encode(" " + prompt.strip()) if prompt.strip() else []
        decoder_prompt = m.get_prompt(tokenizer, previous)
        result, avg_logprob, temperature, compression_ratio = m.generate_with_fallback(
            encoder_output, decoder_prompt, tokenizer, options
        )
        window = WindowScores(
            no_speech_prob=float(result.no_speech_prob),
            avg_logprob=float(avg_logprob),
            compression_ratio=float(compression_ratio),
            temperature=float(temperature),
        )
        raw = _split_at_timestamps(result.sequences_ids[0], tokenizer, duration_s)
        if abandon is not None and abandon():
            raise DecodeAbandoned("after the decoder")
        if word_timestamps:
            aligned = self._align(raw, tokenizer, encoder_output, content_frames)
        else:
            aligned = self._spread(raw, tokenizer, window)
        return self._recognition(
            raw,
            aligned,
            tokenizer,
            window,
            lang=lang,
            task=task,
            source_lang=source_lang,
            lang_probability=lang_probability,
            duration_s=duration_s,
            started=started,
            encoder_s=encoder_s,
        )

    def recognize_batch(
        self, items: Sequence[BatchItem], *, word_timestamps: bool = True
    ) -> list[Recognition]:
        """Several buffers, e.g. several speakers' windows, in one encoder call, one decoder
        call and one alignment call per language: what a worker on a GPU does with the
        decodes its speakers have due at once (CTranslate2 runs a batch in about the time of
        one item there). The results are in ``items``' order and each is what
        :meth:`recognize` gives for its item: buffers share an encoder call only when their
        windows have the same length, and a decoder call only when their prompts do. An item
        whose first decode would fall back to a higher temperature is decoded again alone.
        """
        started = time.perf_counter()
        results: list[Recognition | None] = [None] * len(items)
        live: list[tuple[int, BatchItem, Samples]] = []
        for i, item in enumerate(items):
            audio, empty = self._checked(
                item.audio, lang=item.lang, task="transcribe", started=started
            )
            if empty is not None:
                results[i] = empty
            else:
                live.append((i, item, audio))
        if len(live) == 1:
            i, item, audio = live[0]
            results[i] = self.recognize(
                audio,
                lang=item.lang,
                prompt=item.prompt,
                word_timestamps=word_timestamps,
                final=item.final,
            )
        elif live:
            # one encoder call per window length: padding a buffer to a longer window than its
            # own would change its words, and which buffers meet in a batch is a matter of
            # timing (``encoder_window="full"``: one length, every buffer batched together)
            by_window: dict[float, list[tuple[int, BatchItem, Samples]]] = {}
            for entry in live:
                duration_s = len(entry[2]) / ASR_SAMPLE_RATE
                by_window.setdefault(self._encoder_s(duration_s), []).append(entry)
            for group in by_window.values():
                for i, recognition in self._decode_batch(group, word_timestamps, started):
                    results[i] = recognition
        assert all(r is not None for r in results)
        return [r for r in results if r is not None]

    def _decode_batch(
        self,
        live: Sequence[tuple[int, BatchItem, Samples]],
        word_timestamps: bool,
        started: float,
    ) -> list[tuple[int, Recognition]]:
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_compression_ratio

        m = self._model
        durations = [len(audio) / ASR_SAMPLE_RATE for _, _, audio in live]
        encoder_s = max(self._encoder_s(d) for d in durations)
        features = [self._features(audio, encoder_s) for _, _, audio in live]
        content_frames = [frames for frames, _ in features]
        encoder_output = m.encode(np.stack([f for _, f in features]))
        ranked: list[Any] = []
        if any(
            self._detects(item.lang, "transcribe", d)
            for (_, item, _), d in zip(live, durations, strict=True)
        ):
            ranked = m.model.detect_language(encoder_output)
        langs: list[tuple[str, float]] = []
        tokenizers: list[Any] = []
        prompts: list[list[int]] = []
        options: list[Any] = []
        for row, ((_, item, _), duration_s) in enumerate(zip(live, durations, strict=True)):
            chosen = (item.lang or "en", 1.0)
            if self._detects(item.lang, "transcribe", duration_s):
                chosen = self._chosen_lang(item.lang, ranked[row])
            langs.append(chosen)
            tokenizer = Tokenizer(
                m.hf_tokenizer, self.multilingual, task="transcribe", language=chosen[0]
            )
            tokenizers.append(tokenizer)
            options.append(
                self._options(
                    tokenizer, item.prompt, self._beam(item.final, duration_s), duration_s
                )
            )
            previous = tokenizer.encode(" " + item.prompt.strip()) if item.prompt.strip() else []
            prompts.append(m.get_prompt(tokenizer, previous))
        first = options[0]
        # CTranslate2 decodes a batch whose prompts put <|startoftranscript|> at one position:
        # rows are decoded together when their prompts have the same length (no prompt, or
        # the same number of previous-text tokens) and they have the same beam (interims and
        # decodes a final may come from differ); the encoder pass above was one for all
        by_length: dict[tuple[int, int], list[int]] = {}
        for row, prompt in enumerate(prompts):
            by_length.setdefault((len(prompt), options[row].beam_size), []).append(row)
        generated: dict[int, Any] = {}
        for (_, beam), rows in by_length.items():
            results = m.model.generate(
                _rows(encoder_output, rows, len(live)),
                [prompts[r] for r in rows],
                beam_size=beam,
                patience=first.patience,
                length_penalty=first.length_penalty,
                repetition_penalty=first.repetition_penalty,
                no_repeat_ngram_size=first.no_repeat_ngram_size,
                max_length=max(len(prompts[r]) + options[r].max_new_tokens for r in rows),
                return_scores=True,
                return_no_speech_prob=True,
                suppress_blank=first.suppress_blank,
                suppress_tokens=first.suppress_tokens,
                max_initial_timestamp_index=int(
                    round(first.max_initial_timestamp / _TIME_PRECISION_S)
                ),
            )
            generated.update(zip(rows, results, strict=True))
        out: list[tuple[int, Recognition]] = []
        kept: list[int] = []  # rows decided by the batch (no temperature fallback due)
        windows: dict[int, WindowScores] = {}
        raws: dict[int, list[tuple[float, float, list[int]]]] = {}
        for row, result in sorted(generated.items()):
            tokens = result.sequences_ids[0]
            avg_logprob = (
                result.scores[0] * (len(tokens) ** first.length_penalty) / (len(tokens) + 1)
            )
            ratio = get_compression_ratio(tokenizers[row].decode(tokens).strip())
            if len(self.temperatures) > 1 and _needs_fallback(
                options[row], result, avg_logprob, ratio
            ):
                i, item, audio = live[row]
                out.append(
                    (
                        i,
                        self.recognize(
                            audio,
                            lang=item.lang,
                            prompt=item.prompt,
                            word_timestamps=word_timestamps,
                            final=item.final,
                        ),
                    )
                )
                continue
            kept.append(row)
            windows[row] = WindowScores(
                no_speech_prob=float(result.no_speech_prob),
                avg_logprob=float(avg_logprob),
                compression_ratio=float(ratio),
                temperature=0.0,
            )
            raws[row] = _split_at_timestamps(tokens, tokenizers[row], durations[row])
        aligned: dict[int, list[list[_RawWord]]] = {}
        if word_timestamps:
            by_lang: dict[str, list[int]] = {}
            for row in kept:
                by_lang.setdefault(langs[row][0], []).append(row)
            for rows in by_lang.values():
                group = self._align_many(
                    [raws[r] for r in rows],
                    tokenizers[rows[0]],
                    _rows(encoder_output, rows, len(live)),
                    [content_frames[r] for r in rows],
                )
                aligned.update(zip(rows, group, strict=True))
        else:
            aligned = {r: self._spread(raws[r], tokenizers[r], windows[r]) for r in kept}
        for row in kept:
            i, item, _ = live[row]
            out.append(
                (
                    i,
                    self._recognition(
                        raws[row],
                        aligned[row],
                        tokenizers[row],
                        windows[row],
                        lang=item.lang,
                        task="transcribe",
                        source_lang=langs[row][0],
                        lang_probability=langs[row][1],
                        duration_s=durations[row],
                        started=started,
                        encoder_s=encoder_s,
                    ),
                )
            )
        return out

    def _checked(
        self, audio: Samples, *, lang: str | None, task: Task, started: float
    ) -> tuple[Samples, Recognition | None]:
        """``audio`` as contiguous float32, and the empty result when it holds nothing to
        decode (too short, or digital silence: Whisper would only invent words)."""
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError("audio must be mono (1-D)")
        duration_s = len(audio) / ASR_SAMPLE_RATE
        if duration_s > WINDOW_S:
            raise ValueError(f"audio is {duration_s:.1f} s; one call decodes at most {WINDOW_S} s")
        if not self.multilingual and (task == "translate" or lang not in (None, "en")):
            raise RecognizerError("this model is English-only")
        if duration_s < MIN_AUDIO_S or float(np.max(np.abs(audio))) < self.guards.min_peak:
            return audio, Recognition(
                words=[],
                lang="en" if task == "translate" else (lang or ""),
                lang_probability=0.0,
                source_lang=lang or "",
                task=task,
                duration_s=duration_s,
                compute_s=time.perf_counter() - started,
                encoder_s=0.0,
            )
        return audio, None

    def _detects(self, lang: str | None, task: Task, duration_s: float) -> bool:
        """Is the language detected (none declared, or code-switching may override it)?"""
        switching = (
            lang is not None
            and task == "transcribe"
            and self.switch_probability < 1.0
            and duration_s >= self.switch_min_s
        )
        return self.multilingual and (lang is None or switching)

    def _chosen_lang(self, lang: str | None, ranked: Sequence[Any]) -> tuple[str, float]:
        token, probability = ranked[0]
        detected = token[2:-2]  # "<|en|>"
        if lang is None or (detected != lang and probability >= self.switch_probability):
            return detected, float(probability)
        return lang, 1.0

    def _spread(
        self, raw: Sequence[tuple[float, float, list[int]]], tokenizer: Any, window: WindowScores
    ) -> list[list[_RawWord]]:
        return [
            _spread_words(tokenizer.decode(t), start, end, math.exp(window.avg_logprob))
            for start, end, t in raw
        ]

    def _recognition(
        self,
        raw: Sequence[tuple[float, float, list[int]]],
        aligned: Sequence[Sequence[_RawWord]],
        tokenizer: Any,
        window: WindowScores,
        *,
        lang: str | None,
        task: Task,
        source_lang: str,
        lang_probability: float,
        duration_s: float,
        started: float,
        encoder_s: float,
    ) -> Recognition:
        """Segments through the hallucination guards, words collapsed: the result."""
        detected_probability = float(lang_probability) if lang is None else 1.0
        segments: list[SegmentInfo] = []
        words: list[Word] = []
        for (start_s, end_s, tokens), seg_raw_words in zip(raw, aligned, strict=True):
            text = tokenizer.decode(tokens)
            if not text.strip():
                continue
            seg_words: list[Word] | None = _clamped(seg_raw_words, duration_s)
            reason = drop_reason(
                window,
                start_s=start_s,
                duration_s=duration_s,
                lang_probability=detected_probability,
                settings=self.guards,
            )
            if reason is None and seg_words and anomalous_tail(seg_words, duration_s, self.guards):
                reason = "anomalous_tail"
            if reason == "repetitive":
                # the ratio is the whole window's: speech followed by a loop keeps the speech
                seg_words = rescue_repetitive(seg_words or [], self.guards)
                reason = None if seg_words is not None else reason
            segments.append(
                SegmentInfo(
                    start_s,
                    end_s,
                    text,
                    window.no_speech_prob,
                    window.avg_logprob,
                    window.compression_ratio,
                    window.temperature,
                    dropped=reason,
                )
            )
            if reason is None and seg_words:
                words += seg_words
        words = collapse(words, self.guards)
        return Recognition(
            words=words,
            lang="en" if task == "translate" else source_lang,
            lang_probability=float(lang_probability),
            segments=segments,
            source_lang=source_lang,
            task=task,
            duration_s=duration_s,
            compute_s=time.perf_counter() - started,
            encoder_s=encoder_s,
        )

    def translate_to_english(
        self, audio: Samples, *, lang: str | None = None, word_timestamps: bool = False
    ) -> Recognition:
        """Whisper's own speech → English translation (``task="translate"``)."""
        return self.recognize(audio, lang=lang, task="translate", word_timestamps=word_timestamps)

    # -- internals -----------------------------------------------------------------------
    def _encode(self, audio: Samples, encoder_s: float) -> tuple[int, Any]:
        """The number of mel frames with content and the encoder's output, the same as
        computing it again (kept for the last ``ENCODED_KEPT`` buffers)."""
        key = (encoder_s, hashlib.blake2b(audio.tobytes(), digest_size=16).digest())
        with self._encoded_lock:
            kept = self._encoded.get(key)
            if kept is not None:
                self._encoded.move_to_end(key)
                self.encoder_reused += 1
                return kept
        content_frames, encoder_input = self._features(audio, encoder_s)
        encoded = (content_frames, self._model.encode(encoder_input))
        with self._encoded_lock:
            self._encoded[key] = encoded
            while len(self._encoded) > ENCODED_KEPT:
                self._encoded.popitem(last=False)
        return encoded

    def _features(self, audio: Samples, encoder_s: float) -> tuple[int, Any]:
        """The number of mel frames with content, and the encoder's input (``encoder_s``)."""
        from faster_whisper.audio import pad_or_trim

        fe = self._model.feature_extractor
        content_frames = len(audio) // fe.hop_length
        if self.encoder_window == "full":
            # exactly transcribe(): zeros in feature space up to 3000 frames
            features = fe(audio)  # never pass chunk_length: it mutates the extractor
            return content_frames, pad_or_trim(features)
        # "fit": pad the *audio* with silence (measured: zero features make a short window
        # loop far more often); the log-mel normalisation uses the maximum, which silence
        # does not change, so the content frames are those of the unpadded audio
        frames = round(encoder_s * _FRAMES_PER_S)
        padded = np.zeros(frames * fe.hop_length, np.float32)
        padded[: len(audio)] = audio
        return content_frames, fe(padded)[:, :frames]

    def _beam(self, final: bool, duration_s: float) -> int:
        if final and duration_s <= self.final_beam_max_s:
            return self.final_beam_size
        return self.beam_size

    def _encoder_s(self, duration_s: float) -> float:
        if self.encoder_window == "full":
            return WINDOW_S
        # whole seconds keep the frame count even (the encoder's conv stride is 2)
        return float(min(WINDOW_S, max(1, math.ceil(duration_s + self.fit_margin_s))))

    def _options(
        self,
        tokenizer: Any,
        prompt: str,
        beam_size: int,
        duration_s: float,
    ) -> Any:
        """faster-whisper's options; only the decoding ones matter (one window, no seek)."""
        from faster_whisper.transcribe import TranscriptionOptions, get_suppressed_tokens

        g = self.guards
        fallback = len(self.temperatures) > 1
        prompt = prompt.strip()
        # A repetition loop runs to Whisper's 448-token limit (seconds of CPU); speech never
        # needs more than ``max_tokens_per_s``. faster-whisper raises if prompt + new tokens
        # exceed 448 (it keeps at most the prompt's last 223 tokens).
        prompt_tokens = min(223, len(tokenizer.encode(" " + prompt))) + 1 if prompt else 0
        budget = 448 - len(tokenizer.sot_sequence) - prompt_tokens - 2
        max_new_tokens = min(budget, math.ceil(g.max_tokens_per_s * duration_s) + 16)
        return TranscriptionOptions(
            beam_size=beam_size,
            best_of=5,
            patience=1.0,
            length_penalty=1.0,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            # these two only decide temperature fallback; the guards drop segments
            log_prob_threshold=g.silence_logprob,
            compression_ratio_threshold=g.compression_ratio,
            # with fallback, faster-whisper must recognise silence, or it re-decodes silence at
            # every temperature
            no_speech_threshold=g.no_speech_prob if fallback else None,
            condition_on_previous_text=False,
            prompt_reset_on_temperature=0.5,
            temperatures=list(self.temperatures),
            initial_prompt=prompt or None,
            prefix=None,
            suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
            without_timestamps=False,
            max_initial_timestamp=1.0,
            word_timestamps=False,
            prepend_punctuations=_PREPEND_PUNCTUATION,
            append_punctuations=_APPEND_PUNCTUATION,
            multilingual=False,
            max_new_tokens=max_new_tokens,
            clip_timestamps=[0.0],
            hallucination_silence_threshold=None,
            hotwords=None,
        )

    def _align(
        self,
        raw: Sequence[tuple[float, float, list[int]]],
        tokenizer: Any,
        encoder_output: Any,
        content_frames: int,
    ) -> list[list[_RawWord]]:
        """Word times by cross-attention alignment (faster-whisper's ``find_alignment``, one
        pass over every segment's tokens), split back into segments by token count."""
        return self._align_many([raw], tokenizer, encoder_output, [content_frames])[0]

    def _align_many(
        self,
        raws: Sequence[Sequence[tuple[float, float, list[int]]]],
        tokenizer: Any,
        encoder_output: Any,
        content_frames: Sequence[int],
    ) -> list[list[list[_RawWord]]]:
        """:meth:`_align` of a batch (one row of ``encoder_output`` per item, one language):
        one alignment call for every item that has words."""
        from faster_whisper.transcribe import merge_punctuations

        per_item = [
            [[t for t in tokens if t < tokenizer.eot] for _, _, tokens in raw] for raw in raws
        ]
        text_tokens = [[t for tokens in segs for t in tokens] for segs in per_item]
        out: list[list[list[_RawWord]]] = [[[] for _ in raw] for raw in raws]
        rows = [i for i, tokens in enumerate(text_tokens) if tokens]
        if not rows:
            return out
        alignments = self._model.find_alignment(
            tokenizer,
            [text_tokens[i] for i in rows],
            _rows(encoder_output, rows, len(raws)),
            [max(1, content_frames[i]) for i in rows],
        )
        for i, alignment in zip(rows, alignments, strict=True):
            merge_punctuations(alignment, _PREPEND_PUNCTUATION, _APPEND_PUNCTUATION)
            index, used = 0, 0
            for timing in alignment:
                while index < len(raws[i]) - 1 and used >= len(per_item[i][index]):
                    index, used = index + 1, 0
                if timing["word"]:
                    out[i][index].append(
                        (
                            float(timing["start"]),
                            float(timing["end"]),
                            str(timing["word"]),
                            float(timing["probability"]),
                        )
                    )
                used += len(timing["tokens"])
        return out


def _rows(encoder_output: Any, rows: Sequence[int], batch: int) -> Any:
    """Rows ``rows`` of a CTranslate2 encoder output of ``batch`` rows (itself when all)."""
    if list(rows) == list(range(batch)):
        return encoder_output
    import ctranslate2

    if encoder_output.device != "cpu":
        encoder_output = encoder_output.to_device(ctranslate2.Device.cpu)
    array = np.asarray(encoder_output)
    return ctranslate2.StorageView.from_array(np.ascontiguousarray(array[list(rows)]))


_RawWord = tuple[float, float, str, float]  # start_s, end_s, text, probability


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One buffer of :meth:`WhisperRecognizer.recognize_batch` (``recognize``'s arguments)."""

    audio: Samples
    lang: str | None = None
    prompt: str = ""
    #: a decode a final caption may come from (``recognize``'s ``final``: the final beam)
    final: bool = False


def _needs_fallback(options: Any, result: Any, avg_logprob: float, ratio: float) -> bool:
    """faster-whisper's ``generate_with_fallback`` rule for its first (temperature 0) decode."""
    too_repetitive = (
        options.compression_ratio_threshold is not None
        and ratio > options.compression_ratio_threshold
    )
    needs = too_repetitive or (
        options.log_prob_threshold is not None and avg_logprob < options.log_prob_threshold
    )
    silence = (
        options.no_speech_threshold is not None
        and result.no_speech_prob > options.no_speech_threshold
        and options.log_prob_threshold is not None
        and avg_logprob < options.log_prob_threshold
    )
    return bool(needs and not silence)


def _split_at_timestamps(
    tokens: Sequence[int], tokenizer: Any, duration_s: float
) -> list[tuple[float, float, list[int]]]:
    """Whisper's output ``<|0.00|> text <|2.40|><|2.40|> text <|5.00|>`` as segments
    ``(start_s, end_s, text tokens)``. Unlike faster-whisper's seek loop, an unfinished last
    segment (text without a closing timestamp: the buffer ends mid-sentence) is kept, ending at
    the end of the audio: a streaming buffer *always* ends mid-sentence, and a second decode of
    the tail would double the cost."""
    begin = tokenizer.timestamp_begin
    out: list[tuple[float, float, list[int]]] = []
    start_s = 0.0
    text: list[int] = []
    for token in tokens:
        if token >= begin:
            at_s = (token - begin) * _TIME_PRECISION_S
            if text:
                out.append((start_s, max(at_s, start_s), text))
                text = []
            start_s = at_s
        elif token < tokenizer.eot:
            text.append(token)
    if text:
        out.append((start_s, max(duration_s, start_s), text))
    return out


def _clamped(raw: Sequence[_RawWord], duration_s: float) -> list[Word]:
    """Words clamped into the audio, times never decreasing."""
    out: list[Word] = []
    floor = 0.0
    for start, end, text, probability in raw:
        start = min(max(start, floor), duration_s)
        end = min(max(end, start), duration_s)
        out.append(Word(start, end, text, probability))
        floor = start
    return out


def _spread_words(text: str, start_s: float, end_s: float, probability: float) -> list[_RawWord]:
    """Split a segment's text into words (keeping Whisper's leading spaces) with times spread
    over the segment in proportion to their length."""
    tokens = re.findall(r"\s*\S+", text)
    total = sum(len(t.strip()) for t in tokens)
    if not total:
        return []
    span = max(0.0, end_s - start_s)
    out = []
    at = start_s
    for t in tokens:
        step = span * len(t.strip()) / total
        out.append((at, at + step, t if t.startswith(" ") else " " + t, probability))
        at += step
    return out


def words_text(words: Sequence[Word]) -> str:
    """The caption text of ``words`` (Whisper words carry their leading space)."""
    return "".join(w.text for w in words).strip()


@dataclass(frozen=True, slots=True)
class RecognizerSettings:
    """What configuration says about the recognizer (passed to the worker that builds it)."""

    model: str = "base"
    device: str = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = 2
    num_workers: int = 1
    #: the beam of interims: they are replaced within a second, and come often
    beam_size: int = 1
    #: the beam of a decode a final caption may come from (a pause's, a sentence end's, a
    #: cut's): on the evalset's 37 paused, noisy and slow streams 5 made 881 → 831 word
    #: errors and 11 → 8 invented runs, for 1.2-1.7 times a final decode's time
    #: (docs/benchmarks.md, issue 12, "Thirteenth session: a beam for finals")
    final_beam_size: int = 5
    #: ... when its window is at most this long; a longer window's is greedy. The beam's cost
    #: grows with the window (2 cores, base int8: 0.78 s for 8 s against 0.47 s greedy, 1.67 s
    #: for 18 s against 1.12 s), and a long sentence's pause decodes come back to back: two
    #: of 16-18 s took a final to 2.6 s after the speech. 12 s kept most of the beam's gain
    final_beam_max_s: float = 12.0
    temperatures: tuple[float, ...] = (0.0,)
    encoder_window: EncoderWindow = "fit"
    fit_margin_s: float = 2.0
    guards: GuardSettings = field(default_factory=GuardSettings)
    #: a declared language gives way to another one Whisper detects with this probability
    switch_probability: float = 0.8
