"""One speaker's streaming recognition state: the audio, the VAD's pauses, and what to decode
next. The recognizer runs elsewhere (:mod:`interpret.pipeline`); the decisions on its results
(when a caption is final, and with which words) are :mod:`interpret.commit_policy`'s, which
describes the policy.
"""

from __future__ import annotations

import collections

import numpy as np

from .commit_policy import CommitPolicy
from .context import context_window, interim_window
from .frames import ASR_SAMPLE_RATE, Samples
from .segments import Segment
from .stream_frames import (
    AbandonFn,
    CaptionUpdate,
    DecodeAbandoned,
    DecodeJob,
    Hypothesis,
    join_words,
)
from .streaming_settings import StreamingSettings
from .vad import SpeechEnded, SpeechStarted, VadStream

__all__ = [
    "AbandonFn",
    "CaptionUpdate",
    "DecodeAbandoned",
    "DecodeJob",
    "Hypothesis",
    "SpeakerStream",
    "StreamingSettings",
    "join_words",
]


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
        self.settings = settings or StreamingSettings()
        self._vad = vad
        self._policy = CommitPolicy(speaker_id, self.settings, lang=lang, suppressed=suppressed)
        self._audio = np.zeros(0, np.float32)
        self._audio_start_s = 0.0  # stream time of self._audio[0]
        self._keep_s = keep_s
        #: the speaker left: no more audio; forgotten once its last final is out
        self.closing = False

    @property
    def lang(self) -> str | None:
        """The speaker's declared language (None: detect it)."""
        return self._policy.lang

    @lang.setter
    def lang(self, lang: str | None) -> None:
        self._policy.lang = lang

    @property
    def suppressed(self) -> collections.Counter[str]:
        """Finals (or parts) the text guards changed, dropped or decoded again, by reason."""
        return self._policy.suppressed

    @property
    def position_s(self) -> float:
        return self._audio_start_s + len(self._audio) / ASR_SAMPLE_RATE

    def push(self, samples: Samples) -> list[CaptionUpdate]:
        """Add audio; returns finals that became ready without another decode."""
        if not len(samples):
            return []
        if self._policy.stopped:
            self._policy.resume()
        self._audio = np.concatenate([self._audio, samples.astype(np.float32, copy=False)])
        self._policy.position_s = self.position_s
        for event in self._vad.push(samples):
            if isinstance(event, SpeechStarted):
                onset = event.start_s if event.onset_s is None else event.onset_s
                self._policy.speech_started(event.start_s, onset)
            elif isinstance(event, SpeechEnded):
                self._policy.speech_ended(event.end_s)
        self._policy.settled_s = self._vad.settled_s
        ready = self._policy.decide()
        self._trim()
        return ready

    @property
    def stopped(self) -> bool:
        """Did the audio stop (:meth:`flush`) and not resume since?"""
        return self._policy.stopped

    def flush(self) -> list[CaptionUpdate]:
        """The audio stopped arriving (the stream ended or stalled, the speaker left): the
        utterance in progress ends here and every pending decision is settled (finals that
        are ready now; the decodes still due run as usual). More audio later starts afresh:
        its speech is a new utterance. Idempotent until then."""
        for event in self._vad.end():
            if isinstance(event, SpeechEnded):
                self._policy.speech_ended(event.end_s)
        return self._policy.flush()

    def next_job(self) -> DecodeJob | None:
        """The most urgent decode of this speaker, or None."""
        seg = self._policy.seg
        if seg is None or seg.inflight is not None:
            return None
        due = self._due(seg)
        if due is None:
            return None
        kind, key_s, end_s = due
        return self._start(seg, kind, key_s, with_prompt=kind != "retry", end_s=end_s)

    def final_work_due(self) -> bool:
        """Is a decode that a final waits for due (a pause to decode, a decision's decode, the
        bound's cut), were the recognizer free? An interim running now is then worth
        abandoning: its words are superseded by that decode's anyway."""
        seg = self._policy.seg
        if seg is None:
            return False
        due = self._due(seg)
        return due is not None and due[0] != "interim"

    def abandon(self, job: DecodeJob) -> None:
        """``job`` (an interim) was abandoned before its result: the next decode may start."""
        self._policy.abandoned(job)

    def _due(self, seg: Segment) -> tuple[str, float, float | None] | None:
        """The decode due for ``seg`` now (kind, key, end or None for the kind's own), if the
        recognizer were free."""
        s = self.settings
        pending = self._policy.pending_pause(seg)
        if pending is not None:
            if seg.retry_s is not None:
                return "retry", seg.retry_s, None
            if pending not in seg.results:
                return "pause", pending, None
            confirm_to = self._policy.confirm_until(seg, pending)
            if confirm_to is not None and self.position_s >= confirm_to - 1e-6:
                return "confirm", pending, confirm_to
            return None  # waiting for the audio to tell how long the pause is
        if self._policy.needs_cut(seg):
            return "cut", seg.start_s + s.max_segment_s, None
        pause = self._vad.silence_since_s
        if pause is not None and pause > seg.start_s and pause not in seg.results:
            if self.position_s >= pause + max(s.pause_decode_after_s, s.tail_pad_s):
                return "pause", pause, None
            return None
        if pause is not None:
            return None
        heard = self.position_s - seg.onset_s
        # the first interim comes ``first_interim_after_s`` into the speech, however far the
        # segment's audio reaches back before its onset (pad, a quiet opening); the next ones
        # each ``interim_interval_s`` of new audio later
        first = seg.decoded_to_s <= seg.start_s
        if heard >= s.first_interim_after_s and (
            first or self.position_s - seg.decoded_to_s >= s.interim_interval_s
        ):
            return "interim", self.position_s, None
        return None

    def audio_of(self, update: CaptionUpdate) -> Samples:
        """The audio a (final) caption was recognized from, while it is still kept."""
        return self.final_audio(*update.audio_span)

    def final_audio(self, start_s: float, end_s: float) -> Samples:
        """The audio of a final from ``start_s`` whose words end at ``end_s``."""
        return self._slice(start_s, end_s + self.settings.tail_pad_s)

    def likely_final(self) -> tuple[str, float, float] | None:
        """The final the pending pause makes if the speaker stops there: its language and
        :attr:`CaptionUpdate.audio_span` (see :meth:`CommitPolicy.likely_final`), or None."""
        return self._policy.likely_final()

    def next_job_pending(self) -> bool:
        """Is a decode still due or running for this speaker?"""
        seg = self._policy.seg
        if seg is None:
            return False
        if seg.inflight is not None:
            return True
        return self._policy.pending_pause(seg) is not None or self._policy.needs_cut(seg)

    def urgency(self) -> tuple[int, float]:
        """Sort key for the scheduler: decodes a final waits for first, then pause decodes,
        then the stalest interim."""
        seg = self._policy.seg
        if seg is None or seg.inflight is not None:
            return (3, 0.0)
        if self._policy.pending_pause(seg) is not None or self._policy.needs_cut(seg):
            return (0, 0.0)
        if self._vad.silence_since_s is not None:
            return (1, 0.0)
        return (2, -(self.position_s - seg.decoded_to_s))

    def on_result(self, job: DecodeJob, hypothesis: Hypothesis) -> CaptionUpdate | None:
        """A decode's result: the caption update it makes (interim or final), or None."""
        return self._policy.on_result(job, hypothesis)

    def take_ready(self) -> list[CaptionUpdate]:
        """Finals concluded together with the one :meth:`on_result` returned."""
        return self._policy.take_ready()

    # -- internals -------------------------------------------------------------------------
    def _start(
        self,
        seg: Segment,
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
        prev = self._policy.previous
        sure = prev is not None and prev.sure(s.prompt_min_probability)
        if prev is not None and sure and seg.start_s - prev.end_s <= s.context_max_gap_s:
            prompt = self._prompt_end(prev.text)
        context = (
            context_window(prev, seg.start_s, end_s, self._audio_start_s, s)
            if kind in ("pause", "retry", "confirm") and key_s not in seg.no_context
            else None
        )
        tail = self._policy.confirm_tail_from(seg, key_s) if kind == "confirm" else None
        if tail is not None:
            # a confirm decode of a long segment hears only the end of it (and the speech after
            # the pause): it decides the sentence end, the pause decode's words stay the final's
            start_s, prompt = tail
            context = None
            prompt = self._prompt_end(prompt)
        trimmed = (
            interim_window(seg.agreement.committed, seg.start_s, end_s, s.interim_window_s)
            if kind == "interim"
            else None
        )
        if trimmed is not None:
            # a long segment's interim: its last seconds, the words agreed before them as text
            start_s, before = trimmed
            prompt = self._prompt_end(f"{prompt} {before}".strip())
        if context is not None:
            # right after a final: decode with (the end of) that final's audio in front, and
            # the text before that audio as the prompt; the words after the previous final's
            # last words are this segment's
            start_s, prompt = context
            seam = (prev.end_s + seg.start_s) / 2 if prev is not None else None
            prompt = self._prompt_end(prompt) if sure else ""
        job = DecodeJob(
            self.speaker_id,
            seg.uid,
            self._policy.caption_id(seg),
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

    def _prompt_end(self, text: str) -> str:
        """The end of ``text`` a decode gets as its prompt (``context_chars``; 0: none)."""
        chars = self.settings.context_chars
        return text[-chars:] if chars > 0 else ""

    def _slice(self, start_s: float, end_s: float) -> Samples:
        a = max(0, int(round((start_s - self._audio_start_s) * ASR_SAMPLE_RATE)))
        b = max(a, int(round((end_s - self._audio_start_s) * ASR_SAMPLE_RATE)))
        return self._audio[a:b].copy()

    def _trim(self) -> None:
        """Keep only audio that a pending or future decode may still need."""
        keep_from = self.position_s - self._keep_s
        if self._policy.seg is not None:
            keep_from = min(keep_from, self._policy.seg.start_s)
        if self._policy.previous is not None:
            keep_from = min(
                keep_from, max(self._policy.previous.audio_from_s, self.position_s - 60.0)
            )
        drop = int((keep_from - self._audio_start_s) * ASR_SAMPLE_RATE)
        if drop > ASR_SAMPLE_RATE:  # trim in ≥ 1 s steps
            self._audio = self._audio[drop:]
            self._audio_start_s += drop / ASR_SAMPLE_RATE
