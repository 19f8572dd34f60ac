"""Voice activity detection with Silero VAD v6 (the ONNX model shipped inside faster-whisper:
no download), streaming: one :class:`VadStream` per speaker, the model loaded once."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .frames import ASR_SAMPLE_RATE, Samples

WINDOW_SAMPLES = 512  # 32 ms at 16 kHz: the model's hop
CONTEXT_SAMPLES = 64  # the model sees the last 64 samples of the previous window too


def silero_model_path() -> Path:
    import faster_whisper

    return Path(faster_whisper.__file__).parent / "assets" / "silero_vad_v6.onnx"


@dataclass(frozen=True, slots=True)
class VadSettings:
    #: speech probability that starts speech; it ends below ``threshold - 0.15``
    threshold: float = 0.5
    #: silence that ends an utterance
    min_silence_ms: int = 400
    #: shorter bursts are not speech (clicks, coughs)
    min_speech_ms: int = 200
    #: audio kept before the detected start (the model reacts a little late)
    speech_pad_ms: int = 200
    #: the start is moved back over windows still scoring ≥ ``onset_floor`` (with gaps of at
    #: most ``onset_gap_ms``), by up to this much: Silero scores quiet openings far below its
    #: threshold (a FLEURS sentence's "To the north and": 0.01-0.4), and Whisper never hears
    #: what the VAD leaves out. Never reaches back into the previous utterance.
    onset_backtrack_ms: int = 1000
    onset_floor: float = 0.01
    onset_gap_ms: int = 100
    #: the model hears quiet input amplified: each window by what brings the loudest 32 ms of
    #: the last ``level_window_ms`` to ``level_target_dbfs``, at most ``max_gain_db``, never
    #: attenuated. Silero misses speech 40 dB below full scale, the more so after louder speech
    #: (a FLEURS reader at -65 dBFS after one at -22: "To the north and within" lost); a far
    #: microphone or a browser without AGC gives such levels. Loud input is heard as it is.
    #: The window outlasts most pauses inside a sentence, and is short enough that a quieter
    #: voice after a louder one is heard from its first words. Whisper is not affected (the
    #: audio decoded is untouched). ``None``: no gain.
    level_target_dbfs: float | None = -30.0
    max_gain_db: float = 30.0
    level_window_ms: int = 1500
    #: speech this many dB below the speaker's own (someone across the room, the floor's sound
    #: in their microphone) is no speech of theirs: it does not keep their utterance going, nor
    #: start one within ``background_hold_ms`` of their last (a talker 15 dB below kept
    #: captions open for 10-20 s, and was captioned in every pause). After that any voice is
    #: theirs again (another person at a quiet microphone: heard from its start, give or take
    #: ``onset_backtrack_ms``). The speaker's level is the loudest of their speech smoothed over
    #: ``background_smooth_ms`` (syllables and the gaps between them), falling
    #: ``background_decay_db_s`` a second while they talk. ``None``: every voice is theirs.
    background_gate_db: float | None = 15.0
    background_hold_ms: int = 3000
    background_smooth_ms: int = 320
    background_decay_db_s: float = 1.0


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    #: where the audio of the utterance starts (padded, moved back over a quiet opening)
    start_s: float
    #: where the model first heard speech (the threshold crossing): when the speaker started,
    #: as far as anyone watching can tell
    onset_s: float | None = None


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    #: where speech stopped (not where the silence was confirmed, ``min_silence_ms`` later)
    end_s: float
    start_s: float


VadEvent = SpeechStarted | SpeechEnded


class SileroVad:
    """The ONNX session, shared by every stream of a process (one thread calls it)."""

    def __init__(self, model_path: Path | None = None) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = 1
        options.log_severity_level = 4
        self._session = onnxruntime.InferenceSession(
            str(model_path or silero_model_path()),
            providers=["CPUExecutionProvider"],
            sess_options=options,
        )

    def stream(self, settings: VadSettings | None = None) -> VadStream:
        return VadStream(self, settings or VadSettings())

    def probabilities(
        self, windows: Samples, state: tuple[Samples, Samples]
    ) -> tuple[Samples, tuple[Samples, Samples]]:
        """Speech probability of each row of ``windows`` (n × 576), carrying the LSTM state."""
        probs, h, c = self._session.run(None, {"input": windows, "h": state[0], "c": state[1]})
        return np.asarray(probs, dtype=np.float32).reshape(-1), (h, c)


class VadStream:
    """Feed audio as it comes; get :data:`VadEvent`s at utterance starts and ends."""

    def __init__(self, vad: SileroVad, settings: VadSettings) -> None:
        self._vad = vad
        self.settings = settings
        self._state = (np.zeros((1, 1, 128), np.float32), np.zeros((1, 1, 128), np.float32))
        self._context = np.zeros(CONTEXT_SAMPLES, np.float32)
        self._pending = np.zeros(0, np.float32)
        self._position = 0  # samples consumed by the model
        self.in_speech = False
        self._candidate_start: int | None = None  # window where probability first rose
        self._speech_start = 0
        self._silence_start: int | None = None
        self._last_end = 0  # where the previous utterance stopped (+ pad)
        self._recent: deque[tuple[int, float]] = deque(
            maxlen=(settings.onset_backtrack_ms + settings.min_speech_ms)
            * ASR_SAMPLE_RATE
            // 1000
            // WINDOW_SAMPLES
            + 2
        )
        self.last_probability = 0.0
        #: RMS of the last windows the model heard, for the input gain
        self._levels: deque[float] = deque(
            maxlen=max(1, settings.level_window_ms * ASR_SAMPLE_RATE // 1000 // WINDOW_SAMPLES)
        )
        #: the gain (dB) the model's last window was heard with
        self.gain_db = 0.0
        #: energies of the last windows (the smoothed level the background gate compares)
        self._energies: deque[float] = deque(
            maxlen=max(1, settings.background_smooth_ms * ASR_SAMPLE_RATE // 1000 // WINDOW_SAMPLES)
        )
        #: the speaker's level (dB), and the sample up to which it holds after their speech
        self._voice_db = -math.inf
        self._voice_until = 0

    @property
    def position_s(self) -> float:
        return self._position / ASR_SAMPLE_RATE

    @property
    def settled_s(self) -> float:
        """How far the audio is known to hold no speech this stream has not reported yet: where
        a possible onset began (a probability over the threshold, not yet ``min_speech_ms``
        long), else as far as the model has heard. A speech start reported later has its onset
        at or after this point, so a pause measured up to here is at least that long whatever
        the audio still to come says."""
        if not self.in_speech and self._candidate_start is not None:
            return self._candidate_start / ASR_SAMPLE_RATE
        return self.position_s

    @property
    def silence_since_s(self) -> float | None:
        """While in speech: where the current pause began (None while someone is talking)."""
        if not self.in_speech or self._silence_start is None:
            return None
        return self._silence_start / ASR_SAMPLE_RATE

    def push(self, samples: Samples) -> list[VadEvent]:
        audio = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        n = len(audio) // WINDOW_SAMPLES
        self._pending = audio[n * WINDOW_SAMPLES :]
        if n == 0:
            return []
        blocks = audio[: n * WINDOW_SAMPLES].reshape(n, WINDOW_SAMPLES)
        contexts = np.vstack([self._context, blocks[:-1, -CONTEXT_SAMPLES:]])
        self._context = blocks[-1, -CONTEXT_SAMPLES:].copy()
        windows = np.hstack([contexts, blocks])
        energies = np.mean(np.square(blocks, dtype=np.float64), axis=1)
        if self.settings.level_target_dbfs is not None:
            gains = self._gains(np.sqrt(energies).astype(np.float32))
            windows = np.clip(windows * gains[:, None], -1.0, 1.0).astype(np.float32)
        probs, self._state = self._vad.probabilities(windows, self._state)
        events: list[VadEvent] = []
        for p, energy in zip(probs, energies.tolist(), strict=True):
            event = self._step(float(p), self._gate(float(p), energy))
            self._position += WINDOW_SAMPLES
            if event is not None:
                events.append(event)
        return events

    def _gains(self, levels: Samples) -> Samples:
        """Each window's input gain (linear) from the loudest window of the last
        ``level_window_ms`` up to and including it."""
        s = self.settings
        assert s.level_target_dbfs is not None
        span = self._levels.maxlen or 1
        # the span - 1 windows before the first new one (silence before the stream's start)
        before = list(self._levels)[max(0, len(self._levels) - (span - 1)) :]
        self._levels.extend(levels.tolist())
        padded = np.concatenate(
            [np.zeros(span - 1 - len(before), np.float32), np.asarray(before, np.float32), levels]
        )
        loudest = np.lib.stride_tricks.sliding_window_view(padded, span).max(axis=1)
        target = 10.0 ** (s.level_target_dbfs / 20.0)
        most = 10.0 ** (s.max_gain_db / 20.0)
        gains: Samples = np.clip(target / np.maximum(loudest, 1e-9), 1.0, most).astype(np.float32)
        self.gain_db = float(20.0 * np.log10(gains[-1]))
        return gains

    def _gate(self, p: float, energy: float) -> float:
        """``p``, or 0 where the window's smoothed level is ``background_gate_db`` below the
        speaker's own (while that holds); tracks the speaker's level."""
        s = self.settings
        if s.background_gate_db is None:
            return p
        self._energies.append(energy)
        level = 10.0 * math.log10(max(sum(self._energies) / len(self._energies), 1e-12))
        decay = s.background_decay_db_s * WINDOW_SAMPLES / ASR_SAMPLE_RATE
        if not self.in_speech and self._position >= self._voice_until:
            self._voice_db = -math.inf  # they stopped a while ago: any voice may be theirs
        if level < self._voice_db - s.background_gate_db:
            return 0.0
        if p >= s.threshold:
            self._voice_db = max(level, self._voice_db - decay)
        return p

    def end(self) -> list[VadEvent]:
        """The audio stops here (the stream ended or stalled): an utterance in progress ends
        where its silence began, or here. Audio pushed later is heard afresh: its speech
        starts a new utterance (a :class:`SpeechStarted`)."""
        self._candidate_start = None
        self._voice_db = -math.inf  # what comes after a stall is heard afresh
        if not self.in_speech:
            return []
        end = self._position if self._silence_start is None else self._silence_start
        self.in_speech = False
        self._silence_start = None
        # the next utterance may start right here (the audio stopped mid-speech), not a pad later
        pad = self.settings.speech_pad_ms * ASR_SAMPLE_RATE // 1000
        self._last_end = min(end + pad, self._position)
        return [SpeechEnded(end / ASR_SAMPLE_RATE, self._speech_start / ASR_SAMPLE_RATE)]

    def _step(self, raw: float, p: float) -> VadEvent | None:
        """One window: ``raw`` is the model's probability, ``p`` what the background gate
        left of it."""
        s = self.settings
        rate = ASR_SAMPLE_RATE
        self.last_probability = p
        here = self._position
        self._recent.append((here, raw))
        if not self.in_speech:
            if p >= s.threshold:
                if self._candidate_start is None:
                    self._candidate_start = here
                if here + WINDOW_SAMPLES - self._candidate_start >= s.min_speech_ms * rate // 1000:
                    self.in_speech = True
                    pad = s.speech_pad_ms * rate // 1000
                    onset = self._backtrack(self._candidate_start)
                    self._speech_start = max(0, self._last_end, onset - pad)
                    self._silence_start = None
                    onset = max(self._speech_start, self._candidate_start)
                    return SpeechStarted(self._speech_start / rate, onset / rate)
            elif p < s.threshold - 0.15:
                self._candidate_start = None
            return None
        if p < s.threshold - 0.15:
            if self._silence_start is None:
                self._silence_start = here
            if here + WINDOW_SAMPLES - self._silence_start >= s.min_silence_ms * rate // 1000:
                self.in_speech = False
                self._candidate_start = None
                end = self._silence_start
                self._silence_start = None
                self._last_end = end + s.speech_pad_ms * rate // 1000
                self._voice_until = end + s.background_hold_ms * rate // 1000
                return SpeechEnded(end / rate, self._speech_start / rate)
        elif p >= s.threshold:
            self._silence_start = None
        return None

    def _backtrack(self, start: int) -> int:
        """The earliest window before ``start`` that still belongs to this onset."""
        s = self.settings
        limit = start - s.onset_backtrack_ms * ASR_SAMPLE_RATE // 1000
        max_gap = max(1, s.onset_gap_ms * ASR_SAMPLE_RATE // 1000 // WINDOW_SAMPLES)
        onset, gap = start, 0
        for position, p in reversed(self._recent):
            if position >= start:
                continue
            if position < max(limit, self._last_end):
                break
            if p >= s.onset_floor:
                onset, gap = position, 0
            else:
                gap += 1
                if gap > max_gap:
                    break
        return onset
