"""A scripted VAD and synthetic audio for the unit tests of the caption commit policy."""

from __future__ import annotations

import numpy as np

from interpret.frames import ASR_SAMPLE_RATE
from interpret.vad import SpeechEnded, SpeechStarted


class ScriptedVad:
    """Stands in for :class:`interpret.vad.VadStream`: speech exactly where the script says,
    the end confirmed ``min_silence_s`` later, the start reported ``onset_lag_s`` after it
    (Silero's ``min_speech_ms``; the real VAD is tested in test_vad.py)."""

    def __init__(
        self,
        speech: list[tuple[float, float]],
        min_silence_s: float = 0.4,
        pauses: tuple[tuple[float, float], ...] = (),
        onset_lag_s: float = 0.0,
        lead_s: float = 0.0,
    ) -> None:
        self.speech = list(speech)
        self._ended: set[tuple[float, float]] = set()  # runs ended early by end()
        self.pauses = pauses  # short silences inside an utterance
        self.min_silence_s = min_silence_s
        self.onset_lag_s = onset_lag_s
        #: the audio of an utterance starts this long before its speech (the VAD's pad)
        self.lead_s = lead_s
        self.position_s = 0.0
        self.in_speech = False

    @property
    def settled_s(self) -> float:
        """As VadStream's: where a start not reported yet began, else the audio's end."""
        pending = [
            start for start, _ in self.speech if start <= self.position_s < start + self.onset_lag_s
        ]
        return min(pending, default=self.position_s)

    @property
    def silence_since_s(self) -> float | None:
        if not self.in_speech:
            return None
        for start, end in self.pauses:
            if start <= self.position_s < end:
                return start
        for _, end in self.speech:
            if end <= self.position_s < end + self.min_silence_s:
                return end
        return None

    def push(self, samples: np.ndarray) -> list[object]:
        before, self.position_s = self.position_s, self.position_s + len(samples) / ASR_SAMPLE_RATE
        events: list[object] = []
        for start, end in self.speech:
            if before <= start + self.onset_lag_s < self.position_s:
                self.in_speech = True
                events.append(
                    SpeechStarted(max(0.0, start - self.lead_s), start)
                    if self.lead_s
                    else SpeechStarted(start)
                )
            confirmed = end + self.min_silence_s
            if before <= confirmed < self.position_s and (start, end) not in self._ended:
                self.in_speech = False
                events.append(SpeechEnded(end, start))
        return events

    def end(self) -> list[object]:
        """The audio stops here: as VadStream.end, a run in progress ends at once (where its
        speech stopped, or here); speech after the stop starts a new run."""
        here = self.position_s
        for i, (start, end) in enumerate(self.speech):
            if self.in_speech and start <= here < end + self.min_silence_s:
                self.in_speech = False
                cut = min(end, here)
                self.speech[i : i + 1] = [(start, cut), *([(here, end)] if end > here else [])]
                self._ended.add((start, cut))
                return [SpeechEnded(cut, start)]
        return []


def audio(seconds: float) -> np.ndarray:
    return np.full(int(seconds * ASR_SAMPLE_RATE), 0.01, np.float32)
