"""One speaker's streaming recognition state. Pure logic: the recognizer runs elsewhere
(:mod:`interpret.pipeline`); this class says *what* to decode next and turns results into
caption updates.

Why this shape (measured on 2 cores: one Whisper-base call ≈ 1 s whatever the audio length):
- Every decode covers the utterance from its start, so its result is as good as an offline
  decode of that audio. The last one, covering all of the speech, *is* the final: no separate
  final decode when a pause-time decode already covered everything.
- A decode starts as soon as a pause begins (``pause_decode_after_s`` of silence), before the
  VAD has confirmed that the utterance ended (``min_silence_ms``). If the speaker goes on, its
  result serves as an interim; if not, it becomes the final the moment the end is confirmed.
  So a final lags the speech by about one decode, not by silence + decode.
- While someone speaks, interims come every ``interim_interval_s`` of new audio when the
  recognizer is free (finals and pause decodes of every speaker go first), committed with
  LocalAgreement-2 so that the stable prefix does not flicker.
- Utterances longer than ``max_utterance_s`` are cut at committed words (a sentence end if
  there is one), so no decode exceeds Whisper's 30 s window.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .agreement import LocalAgreement
from .frames import ASR_SAMPLE_RATE, Samples, Word
from .vad import SpeechEnded, SpeechStarted, VadStream


@dataclass(frozen=True, slots=True)
class StreamingSettings:
    #: new speech needed since the last decode before an interim decode is worth it
    interim_interval_s: float = 1.0
    #: the first interim waits for this much speech after its onset (Whisper guesses wildly on
    #: shorter fragments; the decode also gets the padding before the onset). 0.8 s gave a first
    #: interim 1.0-1.2 s after the onset, 0.5 s gives 0.71-0.76 s, WER unchanged.
    first_interim_after_s: float = 0.5
    #: silence after which a decode starts (before the VAD confirms the end of the utterance)
    pause_decode_after_s: float = 0.15
    #: audio after the end of speech given to the decoder (Whisper likes a little silence)
    tail_pad_s: float = 0.15
    #: cut an utterance once it is this long (Whisper's window is 30 s)
    max_utterance_s: float = 20.0
    #: a speaker who does not pause: once the utterance is this long, cut it after a committed
    #: sentence end (". ? !") ...
    sentence_cut_after_s: float = 10.0
    #: ... and once it is this long, after a committed clause end (", ; :") too. The words
    #: before the cut are final as agreed (no decode); every later decode is shorter. Without
    #: it a 18 s French sentence without a pause got its final 4.8 s after it ended: the decodes
    #: grew to 2.4 s each and the final waited for one in flight, then ran another (with cuts:
    #: 1.6 s). Not earlier: interims of a sentence's first half sometimes agree on a sentence
    #: end that is not there ("All nouns … say for you." at 6 s), and a cut makes it final.
    clause_cut_after_s: float = 14.0
    #: an utterance shorter than this ("However,") is held back this long after it ends, to be
    #: joined with what follows: Whisper recognizes a fragment of a sentence poorly
    short_utterance_s: float = 1.2
    short_hold_s: float = 0.8
    #: the speaker's previous final (its last this-many characters) is given to Whisper as the
    #: text before the audio, as its own long-form decoding does: names and terms stay
    #: consistent and a sentence's second half reads on from its first. 0 disables.
    context_chars: int = 200
    #: ... unless it ended longer ago than this (another topic by then)
    context_max_gap_s: float = 30.0


@dataclass(frozen=True, slots=True)
class DecodeJob:
    """Audio for the recognizer. ``offset_s`` is the stream time of ``audio[0]``."""

    speaker_id: str
    utterance_id: int
    caption_id: str
    audio: Samples
    offset_s: float
    #: stream time the audio reaches
    end_s: float
    final: bool
    lang: str | None
    #: committed text of earlier decodes (keeps interims consistent)
    prompt: str = ""


@dataclass(slots=True)
class Hypothesis:
    """What the recognizer returned for a job; word times are relative to the job's audio."""

    words: Sequence[Word]
    lang: str
    lang_probability: float = 1.0


@dataclass(frozen=True, slots=True)
class CaptionUpdate:
    """An interim or final caption concluded from a decode."""

    speaker_id: str
    caption_id: str
    lang: str
    text: str
    stable_chars: int
    start_s: float
    end_s: float
    final: bool
    #: where the audio recognized starts (``start_s`` is where the speech starts)
    audio_from_s: float | None = None
    #: Whisper's own English translation of the utterance's audio (finals, when a route
    #: starts with the "whisper" engine)
    english: str | None = None
    #: a final's words with their probabilities (for confidence display)
    words: tuple[Word, ...] = ()
    #: the languages to translate it into, fixed when it is queued for output (the speaker's
    #: may change, or go with the speaker, before it is translated); None: not yet fixed
    targets: frozenset[str] | None = None


def join_words(words: Sequence[Word]) -> str:
    """Whisper words carry their leading space ("Hello", " world")."""
    return "".join(w.text for w in words).strip()


_SENTENCE_END = (".", "?", "!", "。", "？", "！")
_CLAUSE_END = (",", ";", ":", "，", "、", "；")


@dataclass(eq=False)
class _Utterance:
    uid: int
    part: int
    start_s: float
    lang: str | None
    agreement: LocalAgreement = field(default_factory=LocalAgreement)
    end_s: float | None = None  # where speech stopped, once the VAD confirmed it
    decoded_to_s: float = 0.0  # audio end of the latest decode started
    inflight_end_s: float | None = None  # audio end of the decode running now
    best: tuple[float, Hypothesis] | None = None  # latest result and its audio end
    final_queued: bool = False
    #: language of the latest decode (differs from ``lang`` when the speaker switched)
    heard_lang: str = ""
    #: where the speech starts as captions show it (``start_s`` is where its audio starts)
    onset_s: float | None = None

    @property
    def shown_start_s(self) -> float:
        return self.start_s if self.onset_s is None else self.onset_s

    @property
    def caption_lang(self) -> str:
        return self.heard_lang or self.lang or ""


@dataclass(eq=False)
class _Held:
    utterance: _Utterance
    end_s: float


class SpeakerStream:
    """Feed audio with :meth:`push`; ask :meth:`next_job`; hand results to :meth:`on_result`.

    Not thread-safe: the pipeline serializes calls.
    """

    def __init__(
        self,
        speaker_id: str,
        vad: VadStream,
        settings: StreamingSettings | None = None,
        *,
        lang: str | None = None,
        keep_s: float = 35.0,
    ) -> None:
        self.speaker_id = speaker_id
        self.lang = lang
        self.settings = settings or StreamingSettings()
        self._vad = vad
        self._ids = itertools.count(1)
        # caption ids stay unique if this speaker's stream is ever recreated (worker restart)
        self._epoch = secrets.token_hex(3)
        self._audio = np.zeros(0, np.float32)
        self._audio_start_s = 0.0  # stream time of self._audio[0]
        self._keep_s = keep_s
        self._current: _Utterance | None = None
        self._ended: list[_Utterance] = []  # ended, final not yet emitted
        self._held: _Held | None = None  # a short utterance that may go on
        self._context = ""  # the latest final's text (the prompt of the next utterance)
        self._context_end_s = 0.0  # where it ended
        #: the speaker left: no more audio; forgotten once its last final is out
        self.closing = False

    @property
    def position_s(self) -> float:
        return self._audio_start_s + len(self._audio) / ASR_SAMPLE_RATE

    def push(self, samples: Samples) -> list[CaptionUpdate]:
        """Add audio; returns finals that became ready without another decode."""
        self._audio = np.concatenate([self._audio, samples.astype(np.float32, copy=False)])
        ready: list[CaptionUpdate] = []
        for event in self._vad.push(samples):
            if isinstance(event, SpeechStarted):
                held, self._held = self._held, None
                if held is not None and event.start_s - held.end_s <= self.settings.short_hold_s:
                    held.utterance.end_s = None  # the fragment goes on: one utterance
                    self._current = held.utterance
                else:
                    if held is not None:
                        ready.extend(self._end(held.utterance, held.end_s))
                    self._current = self._new_utterance(event.start_s, onset_s=event.onset_s)
            elif isinstance(event, SpeechEnded) and self._current is not None:
                u, self._current = self._current, None
                if event.end_s - u.start_s < self.settings.short_utterance_s:
                    self._held = _Held(u, event.end_s)
                else:
                    ready.extend(self._end(u, event.end_s))
        held = self._held
        if held is not None and self.position_s - held.end_s > self.settings.short_hold_s:
            self._held = None
            ready.extend(self._end(held.utterance, held.end_s))
        current = self._current
        if current is not None:
            ready.extend(self._maybe_cut(current))
        self._trim()
        return ready

    def flush(self) -> list[CaptionUpdate]:
        """The speaker stopped sending: whatever is being said ends here."""
        ready: list[CaptionUpdate] = []
        held, self._held = self._held, None
        if held is not None:
            ready += self._end(held.utterance, held.end_s)
        u, self._current = self._current, None
        return ready if u is None else ready + self._end(u, self.position_s)

    def next_job(self) -> DecodeJob | None:
        """The most urgent decode of this speaker, or None."""
        for ended in self._ended:
            if ended.final_queued and ended.inflight_end_s is None:
                end_s = (ended.end_s or 0.0) + self.settings.tail_pad_s
                return self._start(ended, ended.start_s, end_s)
        u = self._current
        if u is None or u.inflight_end_s is not None:
            return None
        s = self.settings
        pause = self._vad.silence_since_s
        if pause is not None and pause > u.decoded_to_s - s.tail_pad_s:
            end = pause + s.tail_pad_s
            if self.position_s >= pause + max(s.pause_decode_after_s, s.tail_pad_s):
                return self._start(u, u.start_s, end)
            return None
        heard = self.position_s - u.shown_start_s
        if heard >= s.first_interim_after_s and self.position_s - u.decoded_to_s >= (
            s.interim_interval_s
        ):
            return self._start(u, u.start_s, self.position_s)
        return None

    def audio_of(self, update: CaptionUpdate) -> Samples:
        """The audio a (final) caption was recognized from, while it is still kept."""
        start_s = update.start_s if update.audio_from_s is None else update.audio_from_s
        return self._slice(start_s, update.end_s + self.settings.tail_pad_s)

    def next_job_pending(self) -> bool:
        """Is a decode still due or running for this speaker?"""
        us = [*self._ended, self._current]
        return any(u is not None and (u.final_queued or u.inflight_end_s is not None) for u in us)

    def urgency(self) -> tuple[int, float]:
        """Sort key for the scheduler: finals first, then pause decodes, then stalest interim."""
        if any(u.final_queued and u.inflight_end_s is None for u in self._ended):
            return (0, 0.0)
        u = self._current
        if u is None or u.inflight_end_s is not None:
            return (3, 0.0)
        if self._vad.silence_since_s is not None:
            return (1, 0.0)
        return (2, -(self.position_s - u.decoded_to_s))

    def on_result(self, job: DecodeJob, hypothesis: Hypothesis) -> CaptionUpdate | None:
        u = self._find(job.utterance_id, job.caption_id)
        if u is None:
            return None
        u.inflight_end_s = None
        words = [
            Word(w.start_s + job.offset_s, w.end_s + job.offset_s, w.text, w.probability)
            for w in hypothesis.words
            if w.text.strip()
        ]
        absolute = Hypothesis(words, hypothesis.lang, hypothesis.lang_probability)
        # The language decodes are held to: the speaker's declared one, else the first one
        # Whisper is sure of (a 1 s interim's guess is not). The recognizer may still switch
        # away from it when it hears another language clearly (code-switching): captions
        # carry the language of each decode.
        if u.lang is None and (
            hypothesis.lang_probability >= 0.8 or job.end_s - job.offset_s >= 3.0
        ):
            u.lang = hypothesis.lang
        u.heard_lang = hypothesis.lang or u.heard_lang
        if u.end_s is not None:
            if job.end_s >= u.end_s:  # this decode heard all of the utterance: it is the final
                return self._final(u, absolute, job.end_s)
            u.final_queued = True  # it did not: the final decode is next; show this meanwhile
            text = join_words(words)
            if not text:
                return None
            return CaptionUpdate(
                self.speaker_id,
                job.caption_id,
                u.caption_lang,
                text,
                0,
                u.shown_start_s,
                job.end_s,
                False,
            )
        u.best = (job.end_s, absolute)
        u.agreement.insert(words)
        u.agreement.commit()
        stable = join_words(u.agreement.committed)
        text = join_words([*u.agreement.committed, *u.agreement.tentative])
        if not text:
            return None
        return CaptionUpdate(
            self.speaker_id,
            job.caption_id,
            u.caption_lang,
            text,
            len(stable),
            u.shown_start_s,
            job.end_s,
            False,
        )

    # -- internals -------------------------------------------------------------------------
    def _new_utterance(
        self,
        start_s: float,
        part: int = 0,
        uid: int | None = None,
        *,
        onset_s: float | None = None,
    ) -> _Utterance:
        u = _Utterance(next(self._ids) if uid is None else uid, part, start_s, self.lang)
        u.onset_s = onset_s
        return u

    def _caption_id(self, u: _Utterance) -> str:
        return f"{self.speaker_id}-{self._epoch}{u.uid}-{u.part}"

    def _start(self, u: _Utterance, start_s: float, end_s: float) -> DecodeJob:
        end_s = min(end_s, self.position_s)
        u.inflight_end_s = end_s
        u.decoded_to_s = end_s
        # No prompt from this utterance's own words: the audio starts at the utterance start,
        # and Whisper, told the words already, skips them (measured: the finals lost their
        # first half). The previous utterance's words are not in the audio: they are context.
        n = self.settings.context_chars
        recent = start_s - self._context_end_s <= self.settings.context_max_gap_s
        prompt = self._context[-n:] if n > 0 and recent else ""
        return DecodeJob(
            self.speaker_id,
            u.uid,
            self._caption_id(u),
            self._slice(start_s, end_s),
            start_s,
            end_s,
            u.end_s is not None,
            u.lang,
            prompt,
        )

    def _end(self, u: _Utterance, end_s: float) -> list[CaptionUpdate]:
        u.end_s = end_s
        self._ended.append(u)
        if u.best is not None and u.best[0] >= end_s:
            return [self._final(u, u.best[1], u.best[0])]
        if u.inflight_end_s is None or u.inflight_end_s < end_s:
            u.final_queued = True  # else: the decode in flight covers it and becomes final
        return []

    def _final(self, u: _Utterance, hypothesis: Hypothesis, audio_end_s: float) -> CaptionUpdate:
        self._ended.remove(u)
        words = [w for w in hypothesis.words if w.start_s < (u.end_s or audio_end_s) + 0.3]
        text = join_words(words)
        if text:
            self._context, self._context_end_s = text, u.end_s or audio_end_s
        start_s = u.shown_start_s
        if words and words[0].start_s < start_s - 0.3:  # words before the VAD heard speech
            start_s = max(u.start_s, words[0].start_s)
        return CaptionUpdate(
            self.speaker_id,
            self._caption_id(u),
            hypothesis.lang or u.lang or "",
            text,
            len(text),
            start_s,
            u.end_s or audio_end_s,
            True,
            audio_from_s=u.start_s,
            words=tuple(words),
        )

    def _find(self, uid: int, caption_id: str) -> _Utterance | None:
        held = None if self._held is None else self._held.utterance
        for u in [*self._ended, self._current, held]:
            if u is not None and u.uid == uid and self._caption_id(u) == caption_id:
                return u
        return None

    def _maybe_cut(self, u: _Utterance) -> list[CaptionUpdate]:
        s = self.settings
        length = self.position_s - u.start_s
        if length > s.max_utterance_s:
            return self._cut(u)
        ends: tuple[str, ...] = ()
        if length > s.clause_cut_after_s:
            ends = (*_SENTENCE_END, *_CLAUSE_END)
        elif length > s.sentence_cut_after_s:
            ends = _SENTENCE_END
        committed = u.agreement.committed
        # keep at least one committed word after the cut: the sentence is known to go on
        for i in range(len(committed) - 2, -1, -1):
            if ends and committed[i].text.rstrip().endswith(ends):
                return self._cut_after(u, i)
        return []

    def _cut_after(self, u: _Utterance, i: int) -> list[CaptionUpdate]:
        """Final for ``u``'s committed words up to ``i``; the rest goes on as the next part."""
        words = u.agreement.committed
        cut = (words[i].end_s + words[i + 1].start_s) / 2
        text = join_words(words[: i + 1])
        self._context, self._context_end_s = text, cut
        final = CaptionUpdate(
            self.speaker_id,
            self._caption_id(u),
            u.caption_lang,
            text,
            len(text),
            u.shown_start_s,
            cut,
            True,
            audio_from_s=u.start_s,
            words=tuple(words[: i + 1]),
        )
        self._current = rest = self._new_utterance(cut, part=u.part + 1, uid=u.uid)
        rest.lang = u.lang
        rest.decoded_to_s = cut
        return [final]

    def _cut(self, u: _Utterance) -> list[CaptionUpdate]:
        """Finalize the committed words (up to the last sentence end among them, if any) and go
        on with the rest as the next part of the same utterance."""
        committed = u.agreement.committed
        if len(committed) >= 2:
            ends = [
                i for i, w in enumerate(committed[:-1]) if w.text.rstrip().endswith(_SENTENCE_END)
            ]
            return self._cut_after(u, ends[-1] if ends else len(committed) - 2)
        if committed:
            cut = committed[-1].end_s
        else:
            cut = self.position_s - 5.0  # nothing agreed on: cut blindly, keep 5 s of context
        done = _Utterance(u.uid, u.part, u.start_s, u.lang, end_s=cut, final_queued=True)
        self._ended.append(done)
        self._current = rest = self._new_utterance(cut, part=u.part + 1, uid=u.uid)
        rest.lang = u.lang
        rest.decoded_to_s = cut
        return []

    def _slice(self, start_s: float, end_s: float) -> Samples:
        a = max(0, int(round((start_s - self._audio_start_s) * ASR_SAMPLE_RATE)))
        b = max(a, int(round((end_s - self._audio_start_s) * ASR_SAMPLE_RATE)))
        return self._audio[a:b].copy()

    def _trim(self) -> None:
        """Keep only audio that a pending or future decode may still need."""
        keep_from = self.position_s - self._keep_s
        held = None if self._held is None else self._held.utterance
        for u in [*self._ended, self._current, held]:
            if u is not None:
                keep_from = min(keep_from, u.start_s)
        drop = int((keep_from - self._audio_start_s) * ASR_SAMPLE_RATE)
        if drop > ASR_SAMPLE_RATE:  # trim in ≥ 1 s steps
            self._audio = self._audio[drop:]
            self._audio_start_s += drop / ASR_SAMPLE_RATE
