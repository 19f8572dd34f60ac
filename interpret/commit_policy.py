"""The streaming caption policy (issue 12): when a speaker's caption is final, and with which
words. Pure logic: the recognizer runs elsewhere (:mod:`interpret.pipeline`), the audio and
what to decode next are :mod:`interpret.streaming`'s, the context audio
:mod:`interpret.context`'s.

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
  then with that decode's words up to the pause (it heard how the sentence ends). For a segment
  longer than ``confirm_window_s`` the confirm decode hears only its last seconds (the pause
  decode's words before them as the prompt, and those words kept in front of its own): a
  decode of the whole segment again would delay the final and what follows it by seconds.
- Long segments are cut at a sentence end inside a pause decode (``sentence_cut_after_s``), at
  a clause end at a pause (``clause_cut_after_s``), or, for a speaker who never pauses, at the
  bound by a decode of exactly ``max_segment_s`` of audio.
- A segment that starts right after a final (``context_gap_s``) has that final's audio in front
  of its pause decodes (``context_audio_s``, whole words, window ≤ ``max_window_s``) and the
  text before that audio as the prompt: the second half of a sentence cut at a pause where
  Whisper heard a period ("… zum Ufer. | von Kowloon fahren.") is recognized with its first
  half. Its own words are those after the previous final's last words (or after the middle of
  the pause between them); if Whisper gives none (it can stop after the context when a long
  pause follows), the segment is decoded again without context. A decode of more than
  ``context_max_segment_s`` of the segment has no context: the sentence is in its own audio,
  and the context made the final's decode two to three times as long.
- A comma at a pause, or a fragment shorter than ``min_final_speech_s``, waits for a pause of
  ``short_long_pause_s`` before it ends a caption, "..." (the speaker trailed off) for
  ``trailing_pause_s``; speech coming back sooner goes on with the segment.

Finals depend only on the audio, never on when a decode finished: every decode a final can come
from covers a window fixed by audio times (segment start, pause start, the onset after a pause),
and each decision waits until the audio says how long the pause was. An idle and a busy machine
give the same finals; only interims (every ``interim_interval_s`` of new audio while the
recognizer is free, committed with LocalAgreement-2 so they do not flicker) depend on timing.
The text guard that compares a final with what the segment's earlier pause decodes heard
(``decode_mismatch``, rare: Whisper reading its prompt instead of the audio) decodes the same
audio again without prompt and keeps whichever of the two those decodes support better; it
reads decodes of fixed windows, not the interims, so it does not depend on timing either.
"""

from __future__ import annotations

import collections
import itertools
import secrets

from .agreement import normalized
from .context import context_failure, words_after_seam
from .frames import Word
from .guards import Evidence, agreement_with, drop_repeated_ngrams, overlap_with_previous
from .segments import CLAUSE_END, SENTENCE_END, Previous, Run, Segment, ends
from .stream_frames import CaptionUpdate, DecodeJob, Hypothesis, join_words
from .streaming_settings import StreamingSettings


class CommitPolicy:
    """One speaker's segments and finals: fed speech runs (:meth:`speech_started`,
    :meth:`speech_ended`), the audio position and decode results; says which finals the
    audio and the results allow (:meth:`decide`). Pure: no audio, no VAD, no clock; the
    :class:`~interpret.streaming.SpeakerStream` around it cuts the audio for its decodes."""

    def __init__(
        self,
        speaker_id: str,
        settings: StreamingSettings,
        *,
        lang: str | None = None,
        suppressed: collections.Counter[str] | None = None,
    ) -> None:
        self.speaker_id = speaker_id
        self.lang = lang
        self.settings = settings
        self._ids = itertools.count(1)
        # caption ids stay unique if this speaker's stream is ever recreated (worker restart)
        self._epoch = secrets.token_hex(3)
        #: the caption being recognized, and the latest final (context for what follows)
        self.seg: Segment | None = None
        self.previous: Previous | None = None
        #: how far the audio goes (stream time), and whether it stopped arriving (the stream
        #: ended or stalled, the speaker left) and has not resumed since
        self.position_s = 0.0
        #: how far the VAD is sure the audio holds no speech it has not reported yet (≤
        #: ``position_s``; the stream sets both). A pause is as long as this says, not as the
        #: audio's end says: the VAD reports speech only once it has lasted ``min_speech_ms``,
        #: and a decision taken in between would depend on when it was taken
        self.settled_s = 0.0
        self.stopped = False
        #: where the audio stopped (stream time), for the segment being recognized: a pause
        #: that reaches a stop is as long as a pause gets
        self._stops: list[float] = []
        self._pending_finals: list[CaptionUpdate] = []
        #: finals (or parts) the text guards changed, dropped or decoded again, by reason
        self.suppressed = collections.Counter[str]() if suppressed is None else suppressed

    # -- the VAD's runs ----------------------------------------------------------------------
    def speech_started(self, start_s: float, onset_s: float) -> None:
        """Speech from ``start_s`` (audio, padded), heard from ``onset_s``."""
        run = Run(start_s, onset_s)
        if self.seg is None:
            self.seg = self.new_segment(start_s, [run])
        else:
            self.seg.runs.append(run)

    def speech_ended(self, end_s: float) -> None:
        """The VAD confirmed a pause from ``end_s``."""
        if self.seg is not None:
            open_runs = [r for r in self.seg.runs if r.end_s is None]
            if open_runs:
                open_runs[-1].end_s = end_s

    def flush(self) -> list[CaptionUpdate]:
        """The audio stopped arriving (the speaker's stream ended or stalled, the speaker
        left): whatever is being said ends here, and every decision waiting for the audio to
        tell how long a pause is, or for speech after it, is settled now (the pause reaches
        the stop: it is as long as a pause gets). Nothing waits for audio that may never come.
        Audio arriving later (:meth:`resume`) starts afresh after the stop."""
        if self.seg is not None:
            for run in self.seg.runs:
                if run.end_s is None:
                    run.end_s = self.position_s
        if not self.stopped:
            self.stopped = True
            start = self.position_s if self.seg is None else self.seg.start_s
            self._stops = [s for s in self._stops if s >= start]
            self._stops.append(self.position_s)
        return self.decide()

    def resume(self) -> None:
        """Audio arrives again after :meth:`flush`."""
        self.stopped = False

    def _stop_between(self, from_s: float, to_s: float | None) -> float | None:
        """The first stop of the audio at or after ``from_s`` (and not after ``to_s``)."""
        eps = 1e-6
        for stop in self._stops:
            if stop >= from_s - eps and (to_s is None or stop <= to_s + eps):
                return stop
        return None

    # -- decode results ----------------------------------------------------------------------
    def on_result(self, job: DecodeJob, hypothesis: Hypothesis) -> CaptionUpdate | None:
        seg = self.seg
        if seg is None or seg.inflight is not job:
            return None
        seg.inflight = None
        words = [
            Word(w.start_s + job.offset_s, w.end_s + job.offset_s, w.text, w.probability)
            for w in hypothesis.words
            if w.text.strip()
        ]
        if job.seam_s is not None:
            words = words_after_seam(words, job.seam_s, self.previous)
            key = None if job.kind == "confirm" else job.key_s
            reason = None if key is None else context_failure(seg, words, key, self.settings)
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
            evidence = self._earlier_decodes(seg, job.key_s)
            better = evidence is not None and agreement_with(words, evidence) > agreement_with(
                before, evidence
            )
            seg.results[job.key_s] = words if better else before
            seg.retried.add(job.key_s)
            seg.retry_s = None
        elif job.kind == "pause" and job.key_s is not None:
            seg.results[job.key_s] = [w for w in words if w.start_s < job.key_s + 0.3]
        elif job.kind == "confirm" and job.key_s is not None:
            seg.confirms[job.key_s] = self._sentence_holds(seg, words, job.key_s)
            before = self._before_pause(seg, words, job.key_s)
            if seg.confirms[job.key_s] and before and ends(before[-1], SENTENCE_END):
                tail = self.confirm_tail_from(seg, job.key_s)
                if tail is not None:
                    # it heard only the segment's end: the pause decode's words before its
                    # window, then its own (after those words, where the text shows them)
                    head = [w for w in seg.results[job.key_s] if w.end_s <= tail[0]]
                    seam = Previous(join_words(head), tuple(head), seg.start_s, tail[0], "")
                    before = head + words_after_seam(before, tail[0], seam)
                seg.results[job.key_s] = before
            if not seg.confirms[job.key_s]:
                self.suppressed["sentence_continued"] += 1
        if job.kind in ("interim", "pause") and job.seam_s is None:
            seg.agreement.insert(words)
            seg.agreement.commit()
        ready = self.decide()
        if ready:
            self._pending_finals.extend(ready[1:])
            return ready[0]
        if job.kind not in ("interim", "pause") or self.seg is not seg:
            return None
        committed, tentative = seg.agreement.committed, seg.agreement.tentative
        text = join_words([*committed, *tentative]) if job.seam_s is None else join_words(words)
        if not text:
            return None
        return CaptionUpdate(
            self.speaker_id,
            self.caption_id(seg),
            seg.caption_lang,
            text,
            len(join_words(committed)) if job.seam_s is None else 0,
            seg.onset_s,
            job.end_s,
            False,
        )

    def abandoned(self, job: DecodeJob) -> None:
        """An interim ``job`` ended without a result (the pipeline abandoned it for a decode a
        final waits for): nothing of it is kept, the next decode may start."""
        seg = self.seg
        if seg is not None and seg.inflight is job:
            seg.inflight = None

    def take_ready(self) -> list[CaptionUpdate]:
        """Finals concluded together with the one :meth:`on_result` returned."""
        out, self._pending_finals = self._pending_finals, []
        return out

    # -- the decisions at pauses -------------------------------------------------------------
    def pending_pause(self, seg: Segment) -> float | None:
        """The earliest confirmed pause not decided yet."""
        confirmed = seg.confirmed_pauses
        if seg.decided < len(confirmed):
            return confirmed[seg.decided]
        return None

    def needs_cut(self, seg: Segment) -> bool:
        return self.position_s >= seg.start_s + self.settings.max_segment_s

    def decide(self) -> list[CaptionUpdate]:
        """Conclude what the audio and the results allow; finals in order."""
        finals: list[CaptionUpdate] = []
        while (seg := self.seg) is not None:
            pause = self.pending_pause(seg)
            if pause is None:
                if seg.cut is not None:
                    finals += self._apply_cut(seg, seg.cut, self.settings.max_segment_s)
                    continue
                if self.stopped and all(r.end_s is not None for r in seg.runs):
                    self.seg = None  # nothing left undecided (e.g. an empty rest after a cut)
                break
            if pause not in seg.results or seg.retry_s is not None:
                break
            outcome = self._decide_pause(seg, pause)
            if outcome is None:
                break
            finals += outcome
        return finals

    def _pause_length(self, seg: Segment, pause: float) -> tuple[float, bool]:
        """How long the pause after run ``seg.decided`` is so far, and whether speech came
        back after it."""
        index = seg.decided
        resumed = index + 1 < len(seg.runs)
        onset = seg.runs[index + 1].onset_s if resumed else None
        length = (onset if onset is not None else self.settled_s) - pause
        if self._stop_between(pause, onset) is not None:
            length = float("inf")  # the audio stopped during the pause
        return length, resumed

    def _sentence_end_at(self, seg: Segment, pause: float) -> bool:
        """Did the pause decode end with a sentence end that may end the caption?"""
        words = seg.results[pause]
        # a short segment decoded with the previous final's audio in front is no fragment
        # decoded on its own: its sentence end counts
        enough = seg.speech_s(pause) >= self.settings.min_final_speech_s or (
            pause in seg.with_context
        )
        return bool(words) and ends(words[-1], SENTENCE_END) and enough

    def likely_final(self) -> tuple[str, float, float] | None:
        """The final the pending pause makes if the speaker does not go on: its language and
        the audio it is recognized from (start, end; :meth:`SpeakerStream.audio_of`). There is
        one when that pause's decode heard a sentence end the caption may end at. For work on
        the final's audio done while the pause grows (Whisper's speech translation): a final
        with other audio (the speaker went on) does not use it. None when there is none."""
        seg = self.seg
        if seg is None or seg.retry_s is not None:
            return None
        pause = self.pending_pause(seg)
        if pause is None or pause not in seg.results or not self._sentence_end_at(seg, pause):
            return None
        return seg.caption_lang, seg.start_s, pause

    def confirm_until(self, seg: Segment, pause: float) -> float | None:
        """Where the confirm decode of the sentence end at ``pause`` ends, when the decision
        there waits for one (speech came back within ``sentence_pause_s``), else None. Fixed by
        audio times: the finals do not depend on when it runs."""
        if pause in seg.confirms or not self._sentence_end_at(seg, pause):
            return None
        length, resumed = self._pause_length(seg, pause)
        if not resumed or length >= self.settings.sentence_pause_s:
            return None
        onset = seg.runs[seg.decided + 1].onset_s
        end = onset + self.settings.confirm_speech_s
        # the audio stopped before the speech after the pause reached that far: what there is
        stop = self._stop_between(onset, end)
        return end if stop is None else max(onset, stop)

    def confirm_tail_from(self, seg: Segment, pause: float) -> tuple[float, str] | None:
        """Where the confirm decode of the sentence end at ``pause`` starts when it hears only
        the end of a long segment (``confirm_window_s``), and its prompt (the pause decode's
        words before that), at a word boundary of the pause decode; None: the whole segment."""
        window = self.settings.confirm_window_s
        if window <= 0 or pause - seg.start_s <= window:
            return None
        words = seg.results.get(pause, [])
        for k in range(1, len(words)):
            start = (words[k - 1].end_s + words[k].start_s) / 2
            if pause - start <= window:
                return start, join_words(words[:k])
        return None

    def _sentence_holds(self, seg: Segment, words: list[Word], pause: float) -> bool:
        """A confirm decode (the speech after ``pause`` too): does the sentence still end at
        the pause? Not when the last word before the middle of the pause lost its sentence
        end, or when the first word after it starts in lower case (a sentence continued; a
        capital proves nothing: German nouns, names)."""
        before = self._before_pause(seg, words, pause)
        after = words[len(before) :]
        if not after:
            return True  # nothing heard after the pause: nothing against the sentence end
        if not before or not ends(before[-1], SENTENCE_END):
            return False
        first = next((ch for ch in after[0].text if ch.isalpha()), "")
        return not first.islower()

    def _before_pause(self, seg: Segment, words: list[Word], pause: float) -> list[Word]:
        """The words of a confirm decode before ``pause``: those with their middle before the
        middle of the pause (Whisper smears word edges into a pause)."""
        middle = (pause + seg.runs[seg.decided + 1].onset_s) / 2
        n = 0
        while n < len(words) and (words[n].start_s + words[n].end_s) / 2 < middle:
            n += 1
        return words[:n]

    def _earlier_decodes(self, seg: Segment, pause: float) -> Evidence | None:
        """What the segment's pause decodes at its earlier pauses heard, for the text guard
        that compares a final with them: their words, and how far they reach (the last earlier
        pause). Those decodes cover windows fixed by audio times, so the guard, unlike one
        reading the interims (which run when the recognizer is free), does not depend on
        timing; only the confirmed pauses' decodes count, as a decode made early at a silence
        that did not last is made only when the recognizer is free then. None when there are
        fewer than 4 such words (nothing to compare with)."""
        confirmed = set(seg.confirmed_pauses)
        earlier = [k for k in seg.results if k < pause - 1e-6 and k in confirmed]
        if not earlier:
            return None
        keys = {normalized(w.text) for k in earlier for w in seg.results[k]} - {""}
        if len(keys) < 4:
            return None
        return Evidence(frozenset(keys), max(earlier) + 0.3)

    def _decide_pause(self, seg: Segment, pause: float) -> list[CaptionUpdate] | None:
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
        going_on = trailing or (bool(words) and ends(words[-1], CLAUSE_END))
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
            evidence = self._earlier_decodes(seg, pause)
            if (
                pause not in seg.retried
                and evidence is not None
                and agreement_with(words, evidence) < s.min_interim_overlap
            ):
                self.suppressed["decode_mismatch"] += 1
                seg.retry_s = pause
                return None
            return self._finalize(seg, words, pause, index)
        seg.decided += 1
        seg_len = pause - seg.start_s
        if seg_len > s.clause_cut_after_s and words and ends(words[-1], CLAUSE_END):
            seg.decided -= 1
            return self._finalize(seg, words, pause, index)
        if seg_len > s.sentence_cut_after_s:
            for i in range(len(words) - 2, -1, -1):
                if ends(words[i], SENTENCE_END):
                    if seg.speech_s(words[i].end_s) >= s.min_final_speech_s:
                        return self._split(seg, words, i)
                    break
        return []

    def _finalize(
        self, seg: Segment, words: list[Word], pause: float, index: int
    ) -> list[CaptionUpdate]:
        """Final at the confirmed pause after run ``index``; what follows is a new segment."""
        rest = seg.runs[index + 1 :]
        self.seg = None
        if rest:
            self.seg = self.new_segment(rest[0].start_s, rest)
        return self._final(seg, words, pause)

    def _split(self, seg: Segment, words: list[Word], i: int) -> list[CaptionUpdate]:
        """Final of ``words[: i + 1]``; the segment goes on after them (no pause there)."""
        cut = (words[i].end_s + words[i + 1].start_s) / 2
        runs = [r for r in seg.runs if r.end_s is None or r.end_s > cut]
        confirmed_before = sum(1 for end in seg.confirmed_pauses if end <= cut)
        if runs and runs[0].start_s < cut:
            first = runs[0]
            runs[0] = Run(cut, max(cut, first.onset_s), first.end_s)
        rest = self.new_segment(cut, runs, part=seg.part + 1, uid=seg.uid)
        rest.lang = seg.lang
        rest.decoded_to_s = cut
        # pauses of the old segment already decided stay decided
        rest.decided = max(0, seg.decided - confirmed_before)
        self.seg = rest
        return self._final(seg, words[: i + 1], cut)

    def _apply_cut(self, seg: Segment, words: list[Word], span_s: float) -> list[CaptionUpdate]:
        """The bound: cut a segment with no usable pause at its last sentence/clause end."""
        seg.cut = None
        end = seg.start_s + span_s
        words = [w for w in words if w.end_s <= end]
        for marks in (SENTENCE_END, (*SENTENCE_END, *CLAUSE_END)):
            for i in range(len(words) - 2, 0, -1):
                if ends(words[i], marks) and words[i].end_s - seg.start_s >= span_s / 3:
                    return self._split(seg, words, i)
        keep = [w for w in words if w.end_s <= end - 1.0]
        if len(keep) >= 1 and len(keep) < len(words):
            return self._split(seg, words, len(keep) - 1)
        # nothing to cut at: final of what there is, the rest starts with 2 s of overlap-free
        # audio before the bound
        cut = keep[-1].end_s + 0.05 if keep else end - 2.0
        runs = [r for r in seg.runs if r.end_s is None or r.end_s > cut]
        if runs and runs[0].start_s < cut:
            runs[0] = Run(cut, max(cut, runs[0].onset_s), runs[0].end_s)
        rest = self.new_segment(cut, runs, part=seg.part + 1, uid=seg.uid)
        rest.lang = seg.lang
        rest.decoded_to_s = cut
        self.seg = rest
        return self._final(seg, keep, cut) if keep else []

    def _final(self, seg: Segment, words: list[Word], end_s: float) -> list[CaptionUpdate]:
        s = self.settings
        prev = self.previous
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
            prompt = prev.text if prev is not None and prev.sure(s.prompt_min_probability) else ""
            self.previous = Previous(text, tuple(words), seg.start_s, end_s, prompt)
        if not text:
            return []
        return [
            CaptionUpdate(
                self.speaker_id,
                self.caption_id(seg),
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

    def new_segment(
        self, start_s: float, runs: list[Run], part: int = 0, uid: int | None = None
    ) -> Segment:
        seg = Segment(next(self._ids) if uid is None else uid, part, start_s, self.lang, runs)
        seg.decoded_to_s = start_s
        return seg

    def caption_id(self, seg: Segment) -> str:
        return f"{self.speaker_id}-{self._epoch}{seg.uid}-{seg.part}"
