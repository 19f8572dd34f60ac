"""The streaming caption policy's knobs (:mod:`interpret.commit_policy`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StreamingSettings:
    #: new speech needed since the last decode before an interim decode is worth it
    interim_interval_s: float = 1.0
    #: the first interim waits for this much speech after its onset (0.8 s gave a first interim
    #: 1.0-1.2 s after the onset, 0.5 s gives 0.71-0.76 s, WER unchanged), and only for that:
    #: not for ``interim_interval_s`` of the segment's audio, which starts before the onset
    #: (pad, a quiet opening) and held it back to 0.75-1.0 s
    first_interim_after_s: float = 0.5
    #: an interim of a segment longer than this hears about its last this-many seconds: it
    #: starts between two words the interims agree on, with those words as text before it
    #: (whisper_streaming's trimmed buffer). An interim's cost grows with its window (2 AVX2
    #: cores, base int8: 0.53 s for 2-4 s, 0.86 s for 6-8 s, 1.2-1.7 s for 10-16 s), and
    #: one running when the speaker stops delays the pause decode a final waits for. Pause,
    #: confirm and cut decodes hear the whole segment. 0: interims hear the whole segment
    interim_window_s: float = 6.0
    #: silence after which the pause decode starts (before the VAD confirms the pause)
    pause_decode_after_s: float = 0.15
    #: audio after the end of speech given to the decoder (Whisper likes a little silence)
    tail_pad_s: float = 0.15
    #: a sentence end the recognizer heard at a pause ends the caption if at least this much
    #: speech came before it; a shorter fragment waits for ``short_long_pause_s``
    min_final_speech_s: float = 2.0
    #: a sentence end ends the caption once its pause is this long (the speaker stopped) ...
    sentence_pause_s: float = 1.2
    #: ... or, when speech comes back sooner, if it is still there when the audio up to this
    #: long after that speech's onset is decoded (the *confirm decode*): Whisper, hearing the
    #: audio stop, ends a mid-sentence hesitation with a period ("… zum Ufer." | "von Kowloon
    #: fahren.") and drops it once it hears the sentence go on. The wait adds to every
    #: final's latency; the confirm decode only to a sentence followed by speech within it.
    confirm_speech_s: float = 0.6
    #: the confirm decode of a segment longer than this hears only its last this-many seconds
    #: before the pause (its first words as the prompt): it decides whether the sentence ends
    #: there, and costs a short decode instead of the whole segment's (an 18 s segment's pause
    #: and confirm decodes and the next one's came 3.8 s after the speech). 0: the whole segment
    confirm_window_s: float = 8.0
    #: a pause this long ends the caption whatever the text says (the speaker stopped) ...
    #: Whisper leaves some sentence ends unpunctuated (hard es: 3 of 5, once its prompt, an
    #: earlier final cut at a pause, has none), and those finals waited for this: 2.0 s made
    #: them 1.95 s after the speech (p50, 1x). 1.5 s: the same words on 35 of the 37 streams
    #: of the evalset's sets (793 → 792 errors), p95 2.05 → 1.57 s on the virtual clock.
    #: A speaker's mid-sentence pause that long is still recognized with the sentence before
    #: it (context audio); a fragment decoded on its own waits ``short_long_pause_s``
    long_pause_s: float = 1.5
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
    #: ... when the decode covers at most this much of the segment: a longer one hears its
    #: sentence in its own audio, and the context made its decode (the final's latency) 2-3
    #: times as long (a 7 s segment behind 12 s of context: 1.9 s on 2 AVX2 cores)
    context_max_segment_s: float = 6.0
    #: no decode window longer than this (Whisper's is 30 s; the cost grows with it)
    max_window_s: float = 24.0
    #: a tail (within ``context_gap_s`` of the previous final) with less speech than this and
    #: no words of its own once decoded with context is dropped
    min_tail_speech_s: float = 1.0
    #: a final sharing less than this with what the caption's earlier pause decodes heard (in
    #: the audio they covered) is decoded again without prompt
    min_interim_overlap: float = 0.5
    #: the speaker's previous final (its last this-many characters) is given to Whisper as the
    #: text before the audio, as its own long-form decoding does. 0 disables.
    context_chars: int = 200
    #: ... when Whisper heard it with at least this probability per word (geometric mean):
    #: a misheard final ("mar, o mar, fara, e o ar.", 0.3) as the prompt leads the next
    #: decode astray. 0: always
    prompt_min_probability: float = 0.5
    #: ... unless it ended longer ago than this (another topic by then)
    context_max_gap_s: float = 30.0
