"""One speaker's streaming recognition state. Pure logic: the recognizer runs elsewhere
(:mod:`interpret.pipeline`); this class says *what* to decode next and turns results into
caption updates.

A caption (a *segment*) is not an utterance between two VAD pauses: a pause is not a sentence
end. Speakers pause mid-sentence, and Whisper decoding a 1-3 s fragment alone invents or repeats
text (issue 12: "nachdem der Damm 1963 erbaut worden war, nachdem der Damm …"). So:

- Every decode of a segment covers it from its start: the words after a pause are recognized
  with the first half of the sentence in front of them, and the previous final's text as the
  prompt. A segment is bounded (``max_segment_s``; Whisper's window is 30 s).
- At every pause the VAD confirms (``min_silence_ms``), the audio up to the pause is decoded
  (the *pause decode*, started as soon as the pause begins, so a final lags speech by about
  one decode). The pause ends the caption only when the recognizer heard a sentence end there
  (". ? !") after at least ``min_final_speech_s`` of speech, or when the pause grows long
  (``long_pause_s``: the speaker stopped). Otherwise the segment goes on, and the next pause
  decode covers both halves.
- Whisper, hearing the audio stop, ends a mid-sentence hesitation with a period too. So a
  sentence end ends the caption once its pause reaches ``sentence_pause_s``; when speech comes
  back sooner, the segment is decoded again with the first ``confirm_speech_s`` of that speech
  (the *confirm decode*): the caption ends at the pause only if the sentence end is still there
  and the next word does not start in lower case (a capital proves nothing: German nouns), and
  then with that decode's words up to the pause (it heard how the sentence ends).
- Long segments are cut at a sentence end inside a pause decode (``sentence_cut_after_s``), at
  a clause end at a pause (``clause_cut_after_s``), or, for a speaker who never pauses, at the
  bound by a decode of exactly ``max_segment_s`` of audio.
- A segment that starts right after a final (``context_gap_s``) has that final's audio in front
  of its pause decodes (``context_audio_s``, whole words, window ≤ ``max_window_s``) and the
  text before that audio as the prompt: the second half of a sentence cut at a pause where
  Whisper heard a period ("… zum Ufer. | von Kowloon fahren.") is recognized with its first
  half. Its own words are those after the previous final's last words (or after the middle of
  the pause between them); if Whisper gives none (it can stop after the context when a long
  pause follows), the segment is decoded again without context.
- A comma at a pause, or a fragment shorter than ``min_final_speech_s``, waits for a pause of
  ``short_long_pause_s`` before it ends a caption, "..." (the speaker trailed off) for
  ``trailing_pause_s``; speech coming back sooner goes on with the segment.

Finals depend only on the audio, never on when a decode finished: every decode a final can come
from covers a window fixed by audio times (segment start, pause start, the onset after a pause),
and each decision waits until the audio says how long the pause was. An idle and a busy machine
give the same finals; only interims (every ``interim_interval_s`` of new audio while the
recognizer is free, committed with LocalAgreement-2 so they do not flicker) depend on timing.
One exception: the guard that compares a final with its interims (``interim_mismatch``, rare)
decodes the same audio again without prompt and keeps whichever of the two its interims
support better.
"""

from __future__ import annotations

import collections
import itertools
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .agreement import LocalAgreement, normalized
from .frames import ASR_SAMPLE_RATE, Samples, Word
from .guards import drop_repeated_ngrams, interim_overlap, overlap_with_previous
from .vad import SpeechEnded, SpeechStarted, VadStream


@dataclass(frozen=True, slots=True)
class StreamingSettings:
    #: new speech needed since the last decode before an interim decode is worth it
    interim_interval_s: float = 1.0
    #: the first interim waits for this much speech after its onset (0.8 s gave a first interim
    #: 1.0-1.2 s after the onset, 0.5 s gives 0.71-0.76 s, WER unchanged)
    first_interim_after_s: float = 0.5
    #: silence after which the pause decode starts (before the VAD confirms the pause)
    pause_decode_after_s: float = 0.15
    #: audio after the end of speech given to the decoder (Whisper likes a little silence)
    tail_pad_s: float = 0.15
    #: a sentence end the recognizer heard at a pause ends the caption if at least this much
    #: speech came before it; a shorter fragment waits for ``long_pause_s``
    min_final_speech_s: float = 2.0
    #: a sentence end ends the caption once its pause is this long (the speaker stopped) ...
    sentence_pause_s: float = 1.2
    #: ... or, when speech comes back sooner, if it is still there when the audio up to this
    #: long after that speech's onset is decoded (the *confirm decode*): Whisper, hearing the
    #: audio stop, ends a mid-sentence hesitation with a period ("… zum Ufer." | "von Kowloon
    #: fahren.") and drops it once it hears the sentence go on. The wait adds to every
    #: final's latency; the confirm decode only to a sentence followed by speech within it.
    confirm_speech_s: float = 0.6
    #: a pause this long ends the caption whatever the text says (the speaker stopped) ...
    long_pause_s: float = 2.0
    #: ... and this long when less than ``min_final_speech_s`` of speech came before it (a
    #: fragment is never final on its own while more speech follows within a few seconds), or
    #: when the recognizer ended the words at the pause with a comma (the final of a sentence
    #: Whisper ended with a comma waits this long: 3 s gave p95 2.97 s) ...
    short_long_pause_s: float = 2.0
    #: ... or this long when it ended them with "..." (it heard the speaker trail off, often
    #: inside a word: "construídas para..." | 2 s | "honrar")
    trailing_pause_s: float = 3.0
    #: segments longer than this are cut at a sentence end inside a pause decode ...
    sentence_cut_after_s: float = 10.0
    #: ... and longer than this at a pause after a clause end (", ; :") too
    clause_cut_after_s: float = 14.0
    #: a speaker who never pauses: a decode of exactly this much audio, cut at its last sentence
    #: (or clause) end. Whisper's window is 30 s; a decode costs more the longer it is.
    max_segment_s: float = 20.0
    #: a segment's pause decodes have the previous final's audio in front of them (up to this
    #: much), when that final ended at most ``context_gap_s`` before the segment: a sentence
    #: cut at a pause where Whisper heard a period reads on with its first half
    context_audio_s: float = 12.0
    context_gap_s: float = 4.0
    #: no decode window longer than this (Whisper's is 30 s; the cost grows with it)
    max_window_s: float = 24.0
    #: a tail (within ``context_gap_s`` of the previous final) with less speech than this and
    #: no words of its own once decoded with context is dropped
    min_tail_speech_s: float = 1.0
    #: a final sharing less than this with its own interims is decoded again without prompt
    min_interim_overlap: float = 0.5
    #: the speaker's previous final (its last this-many characters) is given to Whisper as the
    #: text before the audio, as its own long-form decoding does. 0 disables.
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
    #: a decode a final may come from (a pause decode or a cut)
    final: bool
    lang: str | None
    #: text before the audio (the previous final, or what precedes the context audio)
    prompt: str = ""
    #: "interim", "pause", "confirm", "cut" or "retry"
    kind: str = "interim"
    #: the pause (or cut) this decode is for
    key_s: float | None = None
    #: words starting before this stream time belong to the context audio, not the segment
    seam_s: float | None = None


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


def _ends(word: Word, marks: tuple[str, ...]) -> bool:
    return word.text.rstrip().rstrip("\"'”»)").endswith(marks) and not word.text.rstrip().endswith(
        "..."
    )


@dataclass(slots=True)
class _Run:
    """Speech between two pauses, as the VAD saw it."""

    start_s: float  # audio start (padded)
    onset_s: float  # where speech was heard
    end_s: float | None = None  # confirmed end (a pause starts here)


@dataclass(eq=False)
class _Segment:
    uid: int
    part: int
    start_s: float
    lang: str | None
    runs: list[_Run]
    agreement: LocalAgreement = field(default_factory=LocalAgreement)
    #: confirmed pauses decided so far (the first ``decided`` runs' ends)
    decided: int = 0
    #: pause decode results: pause start -> words (absolute times, inside the segment)
    results: dict[float, list[Word]] = field(default_factory=dict)
    retried: set[float] = field(default_factory=set)
    retry_s: float | None = None  # a pause whose final is to be decoded again
    cut: list[Word] | None = None  # the result of the bound's cut decode
    inflight: DecodeJob | None = None
    decoded_to_s: float = 0.0
    interim_keys: set[str] = field(default_factory=set)
    heard_lang: str = ""
    #: pauses whose decode had the previous final's audio in front
    with_context: set[float] = field(default_factory=set)
    #: pauses to decode without it (with it Whisper gave nothing of the segment's own)
    no_context: set[float] = field(default_factory=set)
    #: pauses after a sentence end where speech came back soon: did the sentence end hold
    #: when the speech after the pause was decoded too?
    confirms: dict[float, bool] = field(default_factory=dict)

    @property
    def onset_s(self) -> float:
        return self.runs[0].onset_s if self.runs else self.start_s

    @property
    def caption_lang(self) -> str:
        return self.heard_lang or self.lang or ""

    def speech_s(self, until_s: float) -> float:
        total = 0.0
        for run in self.runs:
            end = until_s if run.end_s is None else min(run.end_s, until_s)
            total += max(0.0, end - max(run.onset_s, self.start_s))
        return total


@dataclass(frozen=True, slots=True)
class _Previous:
    """The latest final: context for what follows."""

    text: str
    words: tuple[Word, ...]
    audio_from_s: float
    end_s: float
    #: the text before it (the prompt when its audio is the context)
    prompt: str


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
        keep_s: float = 40.0,
        suppressed: collections.Counter[str] | None = None,
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
        self._seg: _Segment | None = None
        self._previous: _Previous | None = None
        self._flushed = False
        self._pending_finals: list[CaptionUpdate] = []
        #: finals (or parts) the text guards changed, dropped or decoded again, by reason
        self.suppressed = collections.Counter[str]() if suppressed is None else suppressed
        #: the speaker left: no more audio; forgotten once its last final is out
        self.closing = False

    @property
    def position_s(self) -> float:
        return self._audio_start_s + len(self._audio) / ASR_SAMPLE_RATE

    def push(self, samples: Samples) -> list[CaptionUpdate]:
        """Add audio; returns finals that became ready without another decode."""
        self._audio = np.concatenate([self._audio, samples.astype(np.float32, copy=False)])
        for event in self._vad.push(samples):
            if isinstance(event, SpeechStarted):
                onset = event.start_s if event.onset_s is None else event.onset_s
                run = _Run(event.start_s, onset)
                if self._seg is None:
                    self._seg = self._new_segment(event.start_s, [run])
                else:
                    self._seg.runs.append(run)
            elif isinstance(event, SpeechEnded) and self._seg is not None:
                open_runs = [r for r in self._seg.runs if r.end_s is None]
                if open_runs:
                    open_runs[-1].end_s = event.end_s
        ready = self._decide()
        self._trim()
        return ready

    def flush(self) -> list[CaptionUpdate]:
        """The speaker stopped sending: whatever is being said ends here."""
        seg = self._seg
        if seg is not None:
            for run in seg.runs:
                if run.end_s is None:
                    run.end_s = self.position_s
        self._flushed = True
        return self._decide()

    def next_job(self) -> DecodeJob | None:
        """The most urgent decode of this speaker, or None."""
        seg = self._seg
        if seg is None or seg.inflight is not None:
            return None
        s = self.settings
        pending = self._pending_pause(seg)
        if pending is not None:
            if seg.retry_s is not None:
                return self._start(seg, "retry", seg.retry_s, with_prompt=False)
            if pending not in seg.results:
                return self._start(seg, "pause", pending)
            confirm_to = self._confirm_until(seg, pending)
            if confirm_to is not None and (self.position_s >= confirm_to or self._flushed):
                return self._start(seg, "confirm", pending, end_s=confirm_to)
            return None  # waiting for the audio to tell how long the pause is
        if self._needs_cut(seg):
            return self._start(seg, "cut", seg.start_s + s.max_segment_s)
        pause = self._vad.silence_since_s
        if pause is not None and pause > seg.start_s and pause not in seg.results:
            if self.position_s >= pause + max(s.pause_decode_after_s, s.tail_pad_s):
                return self._start(seg, "pause", pause)
            return None
        if pause is not None:
            return None
        heard = self.position_s - seg.onset_s
        if heard >= s.first_interim_after_s and (
            self.position_s - seg.decoded_to_s >= s.interim_interval_s
        ):
            return self._start(seg, "interim", self.position_s)
        return None

    def audio_of(self, update: CaptionUpdate) -> Samples:
        """The audio a (final) caption was recognized from, while it is still kept."""
        start_s = update.start_s if update.audio_from_s is None else update.audio_from_s
        return self._slice(start_s, update.end_s + self.settings.tail_pad_s)

    def next_job_pending(self) -> bool:
        """Is a decode still due or running for this speaker?"""
        seg = self._seg
        if seg is None:
            return False
        if seg.inflight is not None:
            return True
        return self._pending_pause(seg) is not None or self._needs_cut(seg)

    def urgency(self) -> tuple[int, float]:
        """Sort key for the scheduler: decodes a final waits for first, then pause decodes,
        then the stalest interim."""
        seg = self._seg
        if seg is None or seg.inflight is not None:
            return (3, 0.0)
        if self._pending_pause(seg) is not None or self._needs_cut(seg):
            return (0, 0.0)
        if self._vad.silence_since_s is not None:
            return (1, 0.0)
        return (2, -(self.position_s - seg.decoded_to_s))

    def on_result(self, job: DecodeJob, hypothesis: Hypothesis) -> CaptionUpdate | None:
        seg = self._seg
        if seg is None or seg.inflight is not job:
            return None
        seg.inflight = None
        words = [
            Word(w.start_s + job.offset_s, w.end_s + job.offset_s, w.text, w.probability)
            for w in hypothesis.words
            if w.text.strip()
        ]
        if job.seam_s is not None:
            words = self._after_seam(words, job.seam_s)
            key = None if job.kind == "confirm" else job.key_s
            reason = None if key is None else self._context_failed(seg, words, key)
            if key is not None and reason is not None:
                # Whisper stopped after the context's words, or before the segment's end (a
                # long pause, or a long window, ends its transcript early): decode the segment
                # again without the context
                seg.no_context.add(key)
                self.suppressed[reason] += 1
                return None
            if key is not None:
                seg.with_context.add(key)
        # The language decodes are held to: the speaker's declared one, else the first one
        # Whisper is sure of (a 1 s interim's guess is not). The recognizer may still switch
        # away from it when it hears another language clearly (code-switching): captions
        # carry the language of each decode.
        if seg.lang is None and (
            hypothesis.lang_probability >= 0.8 or job.end_s - job.offset_s >= 3.0
        ):
            seg.lang = hypothesis.lang
        seg.heard_lang = hypothesis.lang or seg.heard_lang
        if job.kind == "cut":
            seg.cut = words
        elif job.kind == "retry" and job.key_s is not None:
            before = seg.results.get(job.key_s, [])
            better = interim_overlap(words, seg.interim_keys) > interim_overlap(
                before, seg.interim_keys
            )
            seg.results[job.key_s] = words if better else before
            seg.retried.add(job.key_s)
            seg.retry_s = None
        elif job.kind == "pause" and job.key_s is not None:
            seg.results[job.key_s] = [w for w in words if w.start_s < job.key_s + 0.3]
        elif job.kind == "confirm" and job.key_s is not None:
            seg.confirms[job.key_s] = self._sentence_holds(seg, words, job.key_s)
            before = self._before_pause(seg, words, job.key_s)
            if seg.confirms[job.key_s] and before and _ends(before[-1], _SENTENCE_END):
                seg.results[job.key_s] = before
            if not seg.confirms[job.key_s]:
                self.suppressed["sentence_continued"] += 1
        if job.kind in ("interim", "pause") and job.seam_s is None:
            seg.agreement.insert(words)
            seg.agreement.commit()
        if job.kind == "interim":
            seg.interim_keys.update(normalized(w.text) for w in words)
        ready = self._decide()
        if ready:
            self._pending_finals.extend(ready[1:])
            return ready[0]
        if job.kind not in ("interim", "pause") or self._seg is not seg:
            return None
        committed, tentative = seg.agreement.committed, seg.agreement.tentative
        text = join_words([*committed, *tentative]) if job.seam_s is None else join_words(words)
        if not text:
            return None
        return CaptionUpdate(
            self.speaker_id,
            self._caption_id(seg),
            seg.caption_lang,
            text,
            len(join_words(committed)) if job.seam_s is None else 0,
            seg.onset_s,
            job.end_s,
            False,
        )

    def take_ready(self) -> list[CaptionUpdate]:
        """Finals concluded together with the one :meth:`on_result` returned."""
        out, self._pending_finals = self._pending_finals, []
        return out

    def _context_failed(self, seg: _Segment, words: list[Word], key: float) -> str | None:
        """Why a decode with context audio cannot be the segment's final, or None."""
        least = self.settings.min_tail_speech_s
        if not words:
            return "context_empty" if seg.speech_s(key) >= least else None
        if seg.speech_s(key) - seg.speech_s(words[-1].end_s) >= least:
            return "context_short"  # ≥ 1 s of speech after the last word recognized
        return None

    def _after_seam(self, words: list[Word], seam_s: float) -> list[Word]:
        """The words of a decode with context audio that are the segment's own: those after
        the previous final's last words where the text shows them (compared as letters, so
        "Nicht-Juden gleichermaßen" matches "Nicht-Judengleichermaßen"), else those whose
        middle lies after ``seam_s`` (Whisper smears a word's start or end into a long pause:
        "letter, even | (2 s) the middle" gave "even" a start 0.8 s before the seam)."""
        prev = self._previous
        if prev is not None and prev.words:
            keys = [normalized(w.text) for w in words]
            tail = [normalized(w.text) for w in prev.words]
            for n in range(min(3, len(tail)), 0, -1):
                wanted = "".join(tail[-n:])
                if len(wanted) < 4 and n < len(tail):
                    continue  # "a", "the": too common to place the seam by
                text = ""
                ends = []
                for e, (key, word) in enumerate(zip(keys, words, strict=True), start=1):
                    text += key
                    if word.start_s < seam_s + 0.5 and key and text.endswith(wanted):
                        ends.append(e)
                if ends:
                    return words[max(ends) :]
        return [w for w in words if (w.start_s + w.end_s) / 2 >= seam_s]

    # -- the decisions -----------------------------------------------------------------------
    def _pending_pause(self, seg: _Segment) -> float | None:
        """The earliest confirmed pause not decided yet."""
        confirmed = [r.end_s for r in seg.runs if r.end_s is not None]
        if seg.decided < len(confirmed):
            return confirmed[seg.decided]
        return None

    def _needs_cut(self, seg: _Segment) -> bool:
        return self.position_s >= seg.start_s + self.settings.max_segment_s

    def _decide(self) -> list[CaptionUpdate]:
        """Conclude what the audio and the results allow; finals in order."""
        finals: list[CaptionUpdate] = []
        while (seg := self._seg) is not None:
            pause = self._pending_pause(seg)
            if pause is None:
                if seg.cut is not None:
                    finals += self._apply_cut(seg, seg.cut, self.settings.max_segment_s)
                    continue
                if self._flushed and all(r.end_s is not None for r in seg.runs):
                    self._seg = None  # nothing left undecided (e.g. an empty rest after a cut)
                break
            if pause not in seg.results or seg.retry_s is not None:
                break
            outcome = self._decide_pause(seg, pause)
            if outcome is None:
                break
            finals += outcome
        return finals

    def _pause_length(self, seg: _Segment, pause: float) -> tuple[float, bool]:
        """How long the pause after run ``seg.decided`` is so far, and whether speech came
        back after it."""
        index = seg.decided
        resumed = index + 1 < len(seg.runs)
        length = seg.runs[index + 1].onset_s - pause if resumed else self.position_s - pause
        if self._flushed and not resumed:
            length = float("inf")
        return length, resumed

    def _sentence_end_at(self, seg: _Segment, pause: float) -> bool:
        """Did the pause decode end with a sentence end that may end the caption?"""
        words = seg.results[pause]
        # a short segment decoded with the previous final's audio in front is no fragment
        # decoded on its own: its sentence end counts
        enough = seg.speech_s(pause) >= self.settings.min_final_speech_s or (
            pause in seg.with_context
        )
        return bool(words) and _ends(words[-1], _SENTENCE_END) and enough

    def _confirm_until(self, seg: _Segment, pause: float) -> float | None:
        """Where the confirm decode of the sentence end at ``pause`` ends, when the decision
        there waits for one (speech came back within ``sentence_pause_s``), else None. Fixed by
        audio times: the finals do not depend on when it runs."""
        if pause in seg.confirms or not self._sentence_end_at(seg, pause):
            return None
        length, resumed = self._pause_length(seg, pause)
        if not resumed or length >= self.settings.sentence_pause_s:
            return None
        return seg.runs[seg.decided + 1].onset_s + self.settings.confirm_speech_s

    def _sentence_holds(self, seg: _Segment, words: list[Word], pause: float) -> bool:
        """A confirm decode (the speech after ``pause`` too): does the sentence still end at
        the pause? Not when the last word before the middle of the pause lost its sentence
        end, or when the first word after it starts in lower case (a sentence continued; a
        capital proves nothing: German nouns, names)."""
        before = self._before_pause(seg, words, pause)
        after = words[len(before) :]
        if not after:
            return True  # nothing heard after the pause: nothing against the sentence end
        if not before or not _ends(before[-1], _SENTENCE_END):
            return False
        first = next((ch for ch in after[0].text if ch.isalpha()), "")
        return not first.islower()

    def _before_pause(self, seg: _Segment, words: list[Word], pause: float) -> list[Word]:
        """The words of a confirm decode before ``pause``: those with their middle before the
        middle of the pause (Whisper smears word edges into a pause)."""
        middle = (pause + seg.runs[seg.decided + 1].onset_s) / 2
        n = 0
        while n < len(words) and (words[n].start_s + words[n].end_s) / 2 < middle:
            n += 1
        return words[:n]

    def _decide_pause(self, seg: _Segment, pause: float) -> list[CaptionUpdate] | None:
        """The decision at a confirmed pause: finals, [] to go on, or None to wait."""
        s = self.settings
        words = seg.results[pause]
        index = seg.decided
        length, resumed = self._pause_length(seg, pause)
        speech = seg.speech_s(pause)
        sentence = self._sentence_end_at(seg, pause)
        enough = speech >= s.min_final_speech_s or pause in seg.with_context
        # a comma or "..." at the pause: the recognizer heard the sentence go on
        trailing = bool(words) and words[-1].text.rstrip().endswith(("...", "…"))
        going_on = trailing or (bool(words) and _ends(words[-1], _CLAUSE_END))
        long_pause = s.long_pause_s if enough and not going_on else s.short_long_pause_s
        if trailing:
            long_pause = s.trailing_pause_s
        final = length >= long_pause
        if sentence and not final:
            if length >= s.sentence_pause_s:
                final = True
            elif resumed:
                if pause not in seg.confirms:
                    return None  # the confirm decode is due
                final = seg.confirms[pause]
        if not final and not resumed:
            return None  # the pause may still grow long
        if final:
            if (
                pause not in seg.retried
                and len(seg.interim_keys) >= 4
                and len(words) >= 4
                and interim_overlap(words, seg.interim_keys) < s.min_interim_overlap
            ):
                self.suppressed["interim_mismatch"] += 1
                seg.retry_s = pause
                return None
            return self._finalize(seg, words, pause, index)
        seg.decided += 1
        seg_len = pause - seg.start_s
        if seg_len > s.clause_cut_after_s and words and _ends(words[-1], _CLAUSE_END):
            seg.decided -= 1
            return self._finalize(seg, words, pause, index)
        if seg_len > s.sentence_cut_after_s:
            for i in range(len(words) - 2, -1, -1):
                if _ends(words[i], _SENTENCE_END):
                    if seg.speech_s(words[i].end_s) >= s.min_final_speech_s:
                        return self._split(seg, words, i)
                    break
        return []

    def _finalize(
        self, seg: _Segment, words: list[Word], pause: float, index: int
    ) -> list[CaptionUpdate]:
        """Final at the confirmed pause after run ``index``; what follows is a new segment."""
        rest = seg.runs[index + 1 :]
        self._seg = None
        if rest:
            self._seg = self._new_segment(rest[0].start_s, rest)
        return self._final(seg, words, pause)

    def _split(self, seg: _Segment, words: list[Word], i: int) -> list[CaptionUpdate]:
        """Final of ``words[: i + 1]``; the segment goes on after them (no pause there)."""
        cut = (words[i].end_s + words[i + 1].start_s) / 2
        runs = [r for r in seg.runs if r.end_s is None or r.end_s > cut]
        confirmed_before = sum(1 for r in seg.runs if r.end_s is not None and r.end_s <= cut)
        if runs and runs[0].start_s < cut:
            first = runs[0]
            runs[0] = _Run(cut, max(cut, first.onset_s), first.end_s)
        rest = self._new_segment(cut, runs, part=seg.part + 1, uid=seg.uid)
        rest.lang = seg.lang
        rest.decoded_to_s = cut
        # pauses of the old segment already decided stay decided
        rest.decided = max(0, seg.decided - confirmed_before)
        self._seg = rest
        return self._final(seg, words[: i + 1], cut)

    def _apply_cut(self, seg: _Segment, words: list[Word], span_s: float) -> list[CaptionUpdate]:
        """The bound: cut a segment with no usable pause at its last sentence/clause end."""
        seg.cut = None
        end = seg.start_s + span_s
        words = [w for w in words if w.end_s <= end]
        for marks in (_SENTENCE_END, (*_SENTENCE_END, *_CLAUSE_END)):
            for i in range(len(words) - 2, 0, -1):
                if _ends(words[i], marks) and words[i].end_s - seg.start_s >= span_s / 3:
                    return self._split(seg, words, i)
        keep = [w for w in words if w.end_s <= end - 1.0]
        if len(keep) >= 1 and len(keep) < len(words):
            return self._split(seg, words, len(keep) - 1)
        # nothing to cut at: final of what there is, the rest starts with 2 s of overlap-free
        # audio before the bound
        cut = keep[-1].end_s + 0.05 if keep else end - 2.0
        runs = [r for r in seg.runs if r.end_s is None or r.end_s > cut]
        if runs and runs[0].start_s < cut:
            runs[0] = _Run(cut, max(cut, runs[0].onset_s), runs[0].end_s)
        rest = self._new_segment(cut, runs, part=seg.part + 1, uid=seg.uid)
        rest.lang = seg.lang
        rest.decoded_to_s = cut
        self._seg = rest
        return self._final(seg, keep, cut) if keep else []

    def _final(self, seg: _Segment, words: list[Word], end_s: float) -> list[CaptionUpdate]:
        s = self.settings
        prev = self._previous
        before = len(words)
        words = drop_repeated_ngrams(words)
        if len(words) < before:
            self.suppressed["repeat"] += 1
        # Whisper copying its prompt or re-reading the context audio: the previous final's
        # last words again
        if prev is not None and seg.start_s - prev.end_s <= s.context_max_gap_s:
            n = overlap_with_previous(words, prev.words)
            if n:
                self.suppressed["repeat_previous"] += 1
                words = words[n:]
            if not words and seg.speech_s(end_s) < s.min_tail_speech_s:
                self.suppressed["short_tail"] += 1
        text = join_words(words)
        start_s = seg.onset_s
        if words and words[0].start_s < start_s - 0.3:  # words before the VAD heard speech
            start_s = max(seg.start_s, words[0].start_s)
        if text:
            prompt = "" if prev is None else prev.text
            self._previous = _Previous(text, tuple(words), seg.start_s, end_s, prompt)
        if not text:
            return []
        return [
            CaptionUpdate(
                self.speaker_id,
                self._caption_id(seg),
                seg.caption_lang,
                text,
                len(text),
                start_s,
                end_s,
                True,
                audio_from_s=seg.start_s,
                words=tuple(words),
            )
        ]

    # -- internals -------------------------------------------------------------------------
    def _new_segment(
        self, start_s: float, runs: list[_Run], part: int = 0, uid: int | None = None
    ) -> _Segment:
        seg = _Segment(next(self._ids) if uid is None else uid, part, start_s, self.lang, runs)
        seg.decoded_to_s = start_s
        return seg

    def _caption_id(self, seg: _Segment) -> str:
        return f"{self.speaker_id}-{self._epoch}{seg.uid}-{seg.part}"

    def _start(
        self,
        seg: _Segment,
        kind: str,
        key_s: float,
        *,
        with_prompt: bool = True,
        end_s: float | None = None,
    ) -> DecodeJob:
        s = self.settings
        if end_s is None:
            end_s = key_s + s.tail_pad_s if kind in ("pause", "retry") else key_s
        end_s = min(end_s, self.position_s)
        start_s, seam, prompt = seg.start_s, None, ""
        prev = self._previous
        if prev is not None and seg.start_s - prev.end_s <= s.context_max_gap_s:
            prompt = prev.text[-s.context_chars :] if s.context_chars > 0 else ""
        context = (
            self._context_audio(seg, end_s)
            if kind in ("pause", "retry", "confirm") and key_s not in seg.no_context
            else None
        )
        if context is not None:
            # right after a final: decode with (the end of) that final's audio in front, and
            # the text before that audio as the prompt; the words after the previous final's
            # last words are this segment's
            start_s, prompt = context
            seam = (prev.end_s + seg.start_s) / 2 if prev is not None else None
            prompt = prompt[-s.context_chars :] if s.context_chars > 0 else ""
        job = DecodeJob(
            self.speaker_id,
            seg.uid,
            self._caption_id(seg),
            self._slice(start_s, end_s),
            start_s,
            end_s,
            kind != "interim",
            seg.lang,
            prompt if with_prompt else "",
            kind,
            key_s,
            seam,
        )
        seg.inflight = job
        if kind == "interim":
            seg.decoded_to_s = end_s
        else:
            seg.decoded_to_s = max(seg.decoded_to_s, end_s)
        return job

    def _context_audio(self, seg: _Segment, end_s: float) -> tuple[float, str] | None:
        """Where a decode of ``seg`` up to ``end_s`` starts when the previous final's audio
        goes in front of it (at a word boundary of that final, at most ``context_audio_s``
        before the segment and ``max_window_s`` before ``end_s``), and the text before."""
        s, prev = self.settings, self._previous
        if prev is None or seg.start_s - prev.end_s > s.context_gap_s:
            return None
        starts = [prev.audio_from_s] + [
            (a.end_s + b.start_s) / 2 for a, b in itertools.pairwise(prev.words)
        ]
        for k, start in enumerate(starts):
            if (
                start >= self._audio_start_s
                and seg.start_s - start <= s.context_audio_s
                and end_s - start <= s.max_window_s
                and start < seg.start_s
            ):
                before = join_words(prev.words[:k])
                return start, f"{prev.prompt} {before}".strip()
        return None

    def _slice(self, start_s: float, end_s: float) -> Samples:
        a = max(0, int(round((start_s - self._audio_start_s) * ASR_SAMPLE_RATE)))
        b = max(a, int(round((end_s - self._audio_start_s) * ASR_SAMPLE_RATE)))
        return self._audio[a:b].copy()

    def _trim(self) -> None:
        """Keep only audio that a pending or future decode may still need."""
        keep_from = self.position_s - self._keep_s
        if self._seg is not None:
            keep_from = min(keep_from, self._seg.start_s)
        if self._previous is not None:
            keep_from = min(keep_from, max(self._previous.audio_from_s, self.position_s - 60.0))
        drop = int((keep_from - self._audio_start_s) * ASR_SAMPLE_RATE)
        if drop > ASR_SAMPLE_RATE:  # trim in ≥ 1 s steps
            self._audio = self._audio[drop:]
            self._audio_start_s += drop / ASR_SAMPLE_RATE
