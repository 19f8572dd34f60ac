"""The caption pipeline of one process: speakers' audio in, caption frames out.

Three kinds of work, each on its own thread so that none waits for another:
- ingest (the caller of :meth:`CaptionPipeline.push`): VAD and utterance bookkeeping, ~0.4 % of
  a core per speaker;
- decode (one thread, owns the recognizer): picks the most urgent job over all speakers (finals
  first, then pause decodes, then the stalest interim) and runs Whisper; with nothing due, it
  makes Whisper's speech translation of a final that is likely to come (a sentence end heard at
  a pause that may still grow), so that the final does not wait for it;
- output: translates into the languages someone reads and emits frames, superseded interims
  dropped, finals never.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from .frames import AudioChunk, CaptionFrame, Samples, Translation, Untranslated
from .glossary import Glossary, apply_to_source, protect, recognition_hint, restore, with_hint
from .streaming import (
    AbandonFn,
    CaptionUpdate,
    DecodeAbandoned,
    DecodeJob,
    Hypothesis,
    SpeakerStream,
    StreamingSettings,
)
from .vad import SileroVad, VadSettings

log = logging.getLogger(__name__)

#: a speaker's audio that has not arrived for this long (wall clock) has stopped (the stream
#: ended or stalled): their pending caption is settled. Audio comes in 100 ms chunks; 1 s is
#: well past a scheduling hiccup and adds at most that to the last final of a stream that ends
#: without the speaker leaving (a speaker who leaves is settled at once).
AUDIO_IDLE_S = 1.0


class Recognizer(Protocol):
    def recognize(
        self,
        audio: Samples,
        *,
        lang: str | None,
        prompt: str,
        final: bool = False,
        abandon: AbandonFn | None = None,
    ) -> Hypothesis:
        """``final``: a final caption may come from this decode (worth a wider beam than an
        interim's). ``abandon``: asked between the decode's stages; True raises
        :class:`~interpret.streaming.DecodeAbandoned`."""
        ...


class BatchRequest(Protocol):
    """One buffer of a batch: :class:`interpret.transcribe.BatchItem` has these fields."""

    @property
    def audio(self) -> Samples: ...
    @property
    def lang(self) -> str | None: ...
    @property
    def prompt(self) -> str: ...
    @property
    def final(self) -> bool: ...


#: builds one item of a batch (the recognizer's own type)
BatchItemFn = Callable[[Samples, str | None, str, bool], BatchRequest]
#: a recognizer's ``recognize_batch``: several speakers' buffers in one call (a GPU's batch)
RecognizeBatchFn = Callable[[Sequence[BatchRequest]], Sequence[Hypothesis]]


class TranslateFn(Protocol):
    """Translate a caption's text ``source→target``. ``english`` is Whisper's translation of
    its audio, where the pipeline made one (finals whose route starts with Whisper)."""

    def __call__(
        self, text: str, source: str, target: str, *, english: str | None = None
    ) -> Translation: ...


#: Whisper's speech → English translation of an utterance's audio (runs on the decode thread,
#: which owns the model)
SpeechTranslateFn = Callable[[Samples, str], str]
#: does ``source`` need Whisper's audio translation for any of these targets?
NeedsSpeechFn = Callable[[str, frozenset[str]], bool]


@dataclasses.dataclass(frozen=True, slots=True)
class _SpeechJob:
    """Whisper's English translation of a final's audio: for ``update``, or ahead of the final
    (``update`` None) while its pause grows. ``key``: the final's language and audio span."""

    stream: SpeakerStream
    key: tuple[str, float, float]
    audio: Samples
    update: CaptionUpdate | None = None


def no_translation(
    text: str, source: str, target: str, *, english: str | None = None
) -> Translation:
    return Untranslated(f"no translation {source}→{target}")


class CaptionPipeline:
    """Thread-safe: every public method may be called from any thread."""

    def __init__(
        self,
        *,
        recognizer: Recognizer,
        vad: SileroVad,
        emit: Callable[[CaptionFrame], None],
        translate: TranslateFn = no_translation,
        streaming: StreamingSettings | None = None,
        vad_settings: VadSettings | None = None,
        translate_interims: bool = True,
        translate_speech: SpeechTranslateFn | None = None,
        needs_speech: NeedsSpeechFn | None = None,
        batch_size: int = 1,
        batch_item: BatchItemFn | None = None,
        audio_idle_s: float = AUDIO_IDLE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be ≥ 1")
        recognize_batch: RecognizeBatchFn | None = getattr(recognizer, "recognize_batch", None)
        if batch_size > 1 and (batch_item is None or recognize_batch is None):
            raise ValueError(
                "batch_size > 1 needs a recognizer with recognize_batch and batch_item"
            )
        self._recognizer = recognizer
        self._recognize_batch = recognize_batch
        #: decodes of different speakers due at once go to the recognizer together, up to this
        #: many (1: one at a time, the CPU's best; a GPU decodes a batch in about one's time)
        self._batch_size = batch_size
        self._batch_item = batch_item
        self._translate_speech = translate_speech
        self._needs_speech = needs_speech
        #: finals waiting for Whisper's English translation of their audio (as many as there
        #: are finals: a speaker's next final needs a decode first)
        self._speech_jobs: list[_SpeechJob] = []
        #: per stream, the speech translation made ahead of a likely final: its key (language
        #: and audio span) and the English (None while it is being made); one per stream
        self._ahead: dict[SpeakerStream, tuple[tuple[str, float, float], str | None]] = {}
        #: speech translations made ahead of their final, and those a final used
        self.speech_ahead: collections.Counter[str] = collections.Counter()
        self._vad = vad
        self._emit = emit
        self._translate = translate
        self._streaming = streaming or StreamingSettings()
        self._vad_settings = vad_settings or VadSettings()
        self._translate_interims = translate_interims
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._speakers: dict[str, SpeakerStream] = {}
        #: streams of speakers who came back (placed on this worker again, or rejoined) while
        #: their last final was still being decoded: it finishes there, new audio goes to a
        #: new stream
        self._draining: list[SpeakerStream] = []
        #: a speaker whose audio stopped arriving this long ago (wall clock) is settled
        #: (:meth:`SpeakerStream.flush`): nothing waits for audio that may never come
        self._audio_idle_s = audio_idle_s
        self._clock = clock
        #: speaker -> when their last audio arrived (``clock``)
        self._last_audio: dict[str, float] = {}
        #: speaker -> their room's glossary (applied to recognition and translation)
        self._glossaries: dict[str, Glossary] = {}
        self._targets: frozenset[str] = frozenset()
        #: speaker -> the languages of their room's readers (instead of ``_targets``)
        self._speaker_targets: dict[str, frozenset[str]] = {}
        self._out: queue.Queue[CaptionUpdate | None] = queue.Queue()
        self._running = False
        self._threads: list[threading.Thread] = []
        self.error: BaseException | None = None
        self.decodes = 0
        #: recognizer calls (a batch of several decodes is one call)
        self.recognizer_calls = 0
        #: interims abandoned after their encoder or decoder for a decode a final waited for
        self.interims_abandoned = 0
        #: seconds spent in the recognizer (and speech translation) since start
        self.decode_s = 0.0
        #: captions the text guards changed, dropped or decoded again, by reason
        #: (``parley_asr_suppressed_total{reason}``)
        self.suppressed: collections.Counter[str] = collections.Counter()

    # -- control ---------------------------------------------------------------------------
    def start(self) -> None:
        self._running = True
        self._threads = [
            threading.Thread(target=self._decode_loop, name="asr-decode", daemon=True),
            threading.Thread(target=self._output_loop, name="captions-out", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, *, drain: bool = True, timeout_s: float = 30.0) -> None:
        """End every speaker (their last finals are decoded when ``drain``) and stop."""
        if drain:
            for speaker_id in list(self._speakers):
                self.remove_speaker(speaker_id)
            self.wait_idle(timeout_s)
        with self._work:
            self._running = False
            self._work.notify_all()
        self._out.put(None)
        for thread in self._threads:
            thread.join(timeout_s)

    def _streams(self) -> list[SpeakerStream]:
        """Every stream with work, the draining ones included (lock held)."""
        return [*self._speakers.values(), *self._draining]

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no decode is pending or running (e.g. after the last audio)."""

        def idle() -> bool:
            return (
                not self._busy
                and not self._speech_jobs
                and all(s.next_job_pending() is False for s in self._streams())
            )

        with self._work:
            return self._work.wait_for(lambda: idle() or self.error is not None, timeout_s)

    def suppressed_counts(self) -> dict[str, int]:
        """A copy of :attr:`suppressed` (the decode thread updates it)."""
        with self._work:
            return dict(self.suppressed)

    # -- speakers and listeners ------------------------------------------------------------
    def add_speaker(self, speaker_id: str, lang: str | None = None) -> None:
        with self._work:
            old = self._speakers.get(speaker_id)
            if old is not None and old.closing:
                # back before their last final was done (a pool moved them away and back):
                # a closing stream takes no audio, and would have dropped theirs for good
                self._draining.append(self._speakers.pop(speaker_id))
            if speaker_id not in self._speakers:
                stream = self._vad.stream(self._vad_settings)
                self._speakers[speaker_id] = SpeakerStream(
                    speaker_id, stream, self._streaming, lang=lang, suppressed=self.suppressed
                )

    def set_speaker_lang(self, speaker_id: str, lang: str | None) -> None:
        with self._work:
            if speaker_id in self._speakers:
                self._speakers[speaker_id].lang = lang

    def set_glossary(self, speaker_id: str, glossary: Glossary) -> None:
        """The glossary of this speaker's room, for their next decode and translation."""
        with self._work:
            if glossary:
                self._glossaries[speaker_id] = glossary
            else:
                self._glossaries.pop(speaker_id, None)

    def remove_speaker(self, speaker_id: str) -> None:
        """The speaker left: finish what they were saying, then forget them."""
        with self._work:
            stream = self._speakers.get(speaker_id)
            if stream is None:
                return
            self._queue_updates(stream.flush(), stream)
            stream.closing = True
            self._last_audio.pop(speaker_id, None)
            self._work.notify_all()

    def set_targets(self, languages: Iterable[str]) -> None:
        """The languages someone reads: only these are translated."""
        with self._work:
            self._targets = frozenset(languages)

    def set_speaker_targets(self, speaker_id: str, languages: Iterable[str]) -> None:
        """The languages this speaker's captions are translated into (their room's readers),
        instead of :meth:`set_targets`'; forgotten with the speaker."""
        with self._work:
            if speaker_id in self._speakers:
                self._speaker_targets[speaker_id] = frozenset(languages)

    def push(self, chunk: AudioChunk) -> None:
        with self._work:
            stream = self._speakers.get(chunk.speaker_id)
            if stream is None or stream.closing:
                return
            now = self._clock()
            self._last_audio[chunk.speaker_id] = now
            self._queue_updates(stream.push(chunk.samples), stream)
            self._settle_idle(now)
            self._work.notify_all()

    # -- threads ---------------------------------------------------------------------------
    _busy = False

    def _queue_updates(self, updates: list[CaptionUpdate], stream: SpeakerStream) -> None:
        """Called with the lock held."""
        targets = self._speaker_targets.get(stream.speaker_id, self._targets)
        for queued in updates:
            update = dataclasses.replace(queued, targets=targets)
            if (
                update.final
                and self._translate_speech is not None
                and self._needs_speech is not None
                and update.text
                and self._needs_speech(update.lang, targets - {update.lang})
            ):
                key = (update.lang, *update.audio_span)
                english = self._made_ahead(stream, key)
                if english is not None:
                    self._out.put(dataclasses.replace(update, english=english))
                else:
                    self._speech_jobs.append(
                        _SpeechJob(stream, key, stream.audio_of(update), update)
                    )
                    self._work.notify_all()
            else:
                self._out.put(update)

    def _made_ahead(self, stream: SpeakerStream, key: tuple[str, float, float]) -> str | None:
        """The speech translation made ahead for the final ``key`` of ``stream`` (lock held):
        the same audio, so the same English as a translation made after the final."""
        made = self._ahead.get(stream)
        if made is None or made[0] != key or made[1] is None:
            return None
        del self._ahead[stream]
        self.speech_ahead["used"] += 1
        return made[1]

    def _speech_ahead_job(self) -> _SpeechJob | None:
        """With no decode due (lock held): the speech translation of a final likely to come,
        not made yet. If the speaker goes on, it is thrown away (only the decoder's idle time
        was spent on it; a decode due meanwhile waits for it)."""
        if self._translate_speech is None or self._needs_speech is None:
            return None
        for stream in self._streams():
            likely = stream.likely_final()
            made = self._ahead.get(stream)
            if likely is None or (made is not None and made[0] == likely):
                continue
            lang = likely[0]
            targets = self._speaker_targets.get(stream.speaker_id, self._targets)
            if not lang or not self._needs_speech(lang, targets - {lang}):
                continue
            self._ahead[stream] = (likely, None)
            return _SpeechJob(stream, likely, stream.final_audio(likely[1], likely[2]))
        return None

    def _settle_idle(self, now: float) -> None:
        """Settle every speaker whose audio stopped arriving (lock held): a stream that ended
        without the speaker leaving (a track ended, a stalled network, a file's end) must not
        keep a caption waiting for a pause to grow or for the speech after it."""
        for speaker_id, last in self._last_audio.items():
            stream = self._speakers.get(speaker_id)
            if stream is not None and not stream.stopped and now - last >= self._audio_idle_s:
                self._queue_updates(stream.flush(), stream)

    def _pick(self) -> list[tuple[SpeakerStream, DecodeJob]] | _SpeechJob | None:
        """The next work, lock held: a speech translation a final waits for, the most urgent
        decodes, one per speaker, up to the batch size, or a speech translation ahead."""
        self._settle_idle(self._clock())
        while self._speech_jobs:  # a final waits for it: before any decode
            speech = self._speech_jobs.pop(0)
            english = self._made_ahead(speech.stream, speech.key)
            if english is None:
                return speech
            assert speech.update is not None
            self._out.put(dataclasses.replace(speech.update, english=english))
        picked: list[tuple[SpeakerStream, DecodeJob]] = []
        for stream in sorted(self._streams(), key=lambda s: s.urgency()):
            job = stream.next_job()  # starts the job: only asked while there is room for it
            if job is not None:
                picked.append((stream, job))
                if len(picked) >= self._batch_size:
                    break
        if picked:
            return picked
        ahead = self._speech_ahead_job()
        if ahead is not None:
            return ahead
        self._draining = [s for s in self._draining if s.next_job_pending()]
        for speaker_id, stream in list(self._speakers.items()):
            if stream.closing and not stream.next_job_pending():
                del self._speakers[speaker_id]
                self._last_audio.pop(speaker_id, None)
                self._speaker_targets.pop(speaker_id, None)
        live = set(self._streams())
        for stream in [s for s in self._ahead if s not in live]:
            del self._ahead[stream]
        return None

    def _decode_loop(self) -> None:
        try:
            while True:
                with self._work:
                    picked = self._pick()
                    while picked is None and self._running:
                        self._busy = False
                        self._work.notify_all()
                        self._work.wait(0.05)
                        picked = self._pick()
                    if picked is None:
                        return
                    self._busy = True
                    if isinstance(picked, _SpeechJob):
                        speech: _SpeechJob | None = picked
                        jobs: list[tuple[SpeakerStream, DecodeJob]] = []
                    else:
                        speech, jobs = None, picked
                    prompts = [
                        with_hint(
                            job.prompt,
                            recognition_hint(self._glossaries.get(stream.speaker_id, ()), job.lang),
                        )
                        for stream, job in jobs
                    ]
                began = time.perf_counter()
                if speech is not None:
                    self._speech_translate(speech)
                    self.decode_s += time.perf_counter() - began
                    continue
                try:
                    hypotheses = self._recognize(jobs, prompts)
                except DecodeAbandoned:
                    with self._work:
                        self.decode_s += time.perf_counter() - began
                        self.interims_abandoned += 1
                        for stream, job in jobs:
                            stream.abandon(job)
                    continue
                with self._work:
                    self.decode_s += time.perf_counter() - began
                    self.decodes += len(jobs)
                    self.recognizer_calls += 1
                    for (stream, job), hypothesis in zip(jobs, hypotheses, strict=True):
                        update = stream.on_result(job, hypothesis)
                        if update is not None:
                            self._queue_updates([update, *stream.take_ready()], stream)
        except BaseException as exc:  # the worker reports it and is restarted
            log.exception("decoder failed")
            with self._work:
                self.error = exc
                self._busy = False
                self._work.notify_all()

    def _recognize(
        self, jobs: list[tuple[SpeakerStream, DecodeJob]], prompts: list[str]
    ) -> Sequence[Hypothesis]:
        if len(jobs) == 1:
            job = jobs[0][1]
            # an interim gives way to a decode a final waits for (the speaker paused while it
            # ran): its words would be superseded by that decode's anyway
            abandon = self._overtaken if job.kind == "interim" else None
            return [
                self._recognizer.recognize(
                    job.audio, lang=job.lang, prompt=prompts[0], final=job.final, abandon=abandon
                )
            ]
        assert self._batch_item is not None and self._recognize_batch is not None
        items = [
            self._batch_item(job.audio, job.lang, prompt, job.final)
            for (_, job), prompt in zip(jobs, prompts, strict=True)
        ]
        return list(self._recognize_batch(items))

    def _overtaken(self) -> bool:
        """Is work that a final waits for due now (a decode of any speaker's pause, decision
        or bound, or a final's speech translation)? Asked by an interim's decode."""
        with self._work:
            return bool(self._speech_jobs) or any(s.final_work_due() for s in self._streams())

    def _speech_translate(self, job: _SpeechJob) -> None:
        assert self._translate_speech is not None
        lang = job.key[0]
        try:
            english: str | None = self._translate_speech(job.audio, lang)
        except Exception:  # costs the translation, not the caption
            log.exception("speech translation %s→en failed", lang)
            english = None
        if job.update is not None:
            self._out.put(dataclasses.replace(job.update, english=english))
            return
        with self._work:
            self.speech_ahead["made"] += 1
            made = self._ahead.get(job.stream)
            # failed (None): not tried ahead again; the final's own translation tries again
            if made is not None and made[0] == job.key:
                self._ahead[job.stream] = (job.key, english)

    def _output_loop(self) -> None:
        while True:
            first = self._out.get()
            if first is None:
                return
            batch = [first]
            while not self._out.empty():
                item = self._out.get_nowait()
                if item is None:
                    self._out.put(None)
                    break
                batch.append(item)
            for update in _supersede(batch):
                self._emit(self._frame(update))

    def _frame(self, update: CaptionUpdate) -> CaptionFrame:
        translations: dict[str, Translation] = {}
        with self._work:
            glossary = self._glossaries.get(update.speaker_id, ())
        text = apply_to_source(update.text, update.lang, glossary) if glossary else update.text
        if update.final or self._translate_interims:
            targets = self._targets if update.targets is None else update.targets
            for target in sorted(targets - {update.lang}):
                try:
                    translations[target] = translate_with_glossary(
                        self._translate, text, update.lang, target, glossary, update.english
                    )
                except Exception as exc:  # an engine failing costs its translation, not the caption
                    log.warning("translation %s→%s failed: %s", update.lang, target, exc)
                    translations[target] = Untranslated(
                        f"translation {update.lang}→{target} failed"
                    )
        return CaptionFrame(
            caption_id=update.caption_id,
            speaker_id=update.speaker_id,
            lang=update.lang,
            text=text,
            start_s=update.start_s,
            end_s=update.end_s,
            is_final=update.final,
            translations=translations,
            stable_chars=update.stable_chars,
            words=update.words,
        )


def translate_with_glossary(
    translate: TranslateFn,
    text: str,
    source: str,
    target: str,
    glossary: Glossary,
    english: str | None = None,
) -> Translation:
    """``translate`` with the glossary's terms protected as placeholders and replaced by their
    renderings afterwards (Whisper's own English translation of the audio included)."""
    if not glossary:
        return translate(text, source, target, english=english)
    protected = protect(text, source, target, glossary)
    english_protected = None if english is None else protect(english, "en", target, glossary)
    result = translate(
        protected.text,
        source,
        target,
        english=None if english_protected is None else english_protected.text,
    )
    if isinstance(result, Untranslated):
        return result
    out = restore(result.text, protected)
    if english_protected is not None:
        out = restore(out, english_protected)
    return dataclasses.replace(result, text=out)


def _supersede(batch: list[CaptionUpdate]) -> list[CaptionUpdate]:
    """Keep finals and, per caption, only the newest interim (and none after its final)."""
    keep: list[CaptionUpdate] = []
    finals = {u.caption_id for u in batch if u.final}
    for i, update in enumerate(batch):
        if update.final:
            keep.append(update)
        elif update.caption_id not in finals and not any(
            later.caption_id == update.caption_id for later in batch[i + 1 :]
        ):
            keep.append(update)
    return keep
