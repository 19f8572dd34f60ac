"""Harder long-form streams for live captions (issue 12): the evalset's long-forms with the
pauses *inside* each utterance stretched to 0.6-2.5 s, as a speaker who hesitates mid-sentence
makes them. The sentence runs across the pauses; its reference is unchanged.

Built at run time from ``../shared/evalset/longform/LANG_fleurs_concat.*`` into a cache
directory (never into the repository: the evalset is for evaluation only). Pauses are found
with Silero VAD (the one Parley uses) at word boundaries: silences of ≥ 80 ms between stretches
of speech inside ``speech_start``..``speech_end``. Deterministic: the same seed gives the same
stream.

Held out (the streaming policy's thresholds were tuned on the FLEURS long-forms): ``heldout``
joins the evalset's *other* clips of a language (LibriSpeech, JFK, Picovoice SDK test sentences;
Italian is a language the policy was never run on) with 1 s of silence, as the long-forms are
made, ``speech_start``/``speech_end`` by Silero VAD (300 ms, no padding); ``heldout-hard``
stretches its pauses with another pattern (seed 7, silences ≥ 100 ms, 0.5-2.2 s, ≤ 2 a clip),
and ``hard-b`` the FLEURS long-form's with that pattern. Two more conditions the policy was
never tuned on, both from the hard stream: ``noisy`` (pink noise 10 dB below each utterance's
speech, through the pauses too) and ``slow`` (the speaker at 0.8 times the speed, pitch kept).

    PYTHONPATH=. .venv/bin/python bench/hard_streams.py --langs en,de   # prints the paths
    PYTHONPATH=. .venv/bin/python bench/hard_streams.py --langs it --kind heldout-hard
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
EVALSET = Path(os.environ.get("PARLEY_EVALSET", REPO.parent / "shared" / "evalset"))
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "parley" / "hard-streams"
RATE = 16_000
#: the stretched pauses' lengths (s) and how many per utterance at most
PAUSE_RANGE_S = (0.6, 2.5)
PAUSES_PER_UTTERANCE = 3
VERSION = 1


@dataclass(frozen=True)
class Pattern:
    """How a hard stream stretches pauses: seed, shortest silence taken for a pause (a shorter
    one may be a plosive inside a word), the stretched lengths, how many per utterance."""

    seed: int = 12
    min_silence_ms: int = 80
    pause_range_s: tuple[float, float] = PAUSE_RANGE_S
    per_utterance: int = PAUSES_PER_UTTERANCE


HELDOUT_PATTERN = Pattern(seed=7, min_silence_ms=100, pause_range_s=(0.5, 2.2), per_utterance=2)
#: the evalset's clips other than FLEURS that read one speaker's sentence (no stereo dialogue,
#: no clip without a reference)
HELDOUT_SOURCES = ("leopard", "cheetah", "wenet", "wlk", "fw_jfk")


def internal_pauses(
    clip: np.ndarray, speech_start: float, speech_end: float, min_silence_ms: int = 80
) -> list[float]:
    """Mid-points (s, relative to ``clip``) of silences between words inside the speech."""
    from interpret.vad import SileroVad, SpeechEnded, SpeechStarted, VadSettings

    # the streams stay as built: no input gain (VadSettings.level_target_dbfs came later)
    settings = VadSettings(
        min_silence_ms=min_silence_ms, min_speech_ms=100, speech_pad_ms=0, level_target_dbfs=None
    )
    stream = SileroVad().stream(settings)
    events = stream.push(clip)
    points: list[float] = []
    end: float | None = None
    for event in events:
        if isinstance(event, SpeechEnded):
            end = event.end_s
        elif isinstance(event, SpeechStarted) and end is not None:
            onset = event.start_s if event.onset_s is None else event.onset_s
            middle = (end + onset) / 2
            # inside the sentence, not at its edges
            if speech_start + 0.8 < middle < speech_end - 0.8:
                points.append(middle)
            end = None
    return points


def speech_bounds(clip: np.ndarray) -> tuple[float, float]:
    """Where the speech of a clip starts and ends (s), as the long-forms' JSON gives them:
    Silero VAD, 300 ms minimum silence, no padding."""
    from interpret.frames import ASR_SAMPLE_RATE
    from interpret.vad import SileroVad, SpeechEnded, SpeechStarted, VadSettings

    settings = VadSettings(
        min_silence_ms=300, speech_pad_ms=0, onset_backtrack_ms=0, level_target_dbfs=None
    )
    events = SileroVad().stream(settings).push(np.concatenate([clip, np.zeros(8000, np.float32)]))
    starts = [
        e.start_s if e.onset_s is None else e.onset_s
        for e in events
        if isinstance(e, SpeechStarted)
    ]
    ends = [e.end_s for e in events if isinstance(e, SpeechEnded)]
    duration = len(clip) / ASR_SAMPLE_RATE
    return (starts[0], min(ends[-1], duration)) if starts and ends else (0.0, duration)


def heldout_longform(lang: str, *, cache: Path = CACHE) -> tuple[Path, Path]:
    """The evalset's clips of ``lang`` other than FLEURS joined with 1 s of silence, in
    manifest order: (audio .npy, reference .json in the long-forms' format)."""
    from server.file_captions import load_audio

    cache.mkdir(parents=True, exist_ok=True)
    audio_path = cache / f"{lang}_heldout_v{VERSION}.npy"
    meta_path = audio_path.with_suffix(".json")
    if audio_path.exists() and meta_path.exists():
        return audio_path, meta_path
    manifest = [json.loads(line) for line in (EVALSET / "manifest.jsonl").read_text().splitlines()]
    clips = [
        c
        for c in manifest
        if c["lang"] == lang and any(f"/{s}" in c["audio"] for s in HELDOUT_SOURCES)
    ]
    gap = np.zeros(RATE, np.float32)
    pieces: list[np.ndarray] = []
    segments: list[dict[str, Any]] = []
    at = 0.0
    for c in clips:
        clip = load_audio(EVALSET / c["audio"])
        start_s, end_s = speech_bounds(clip)
        segments.append(
            {
                "id": c["id"],
                "start": round(at, 3),
                "end": round(at + len(clip) / RATE, 3),
                "reference": c["reference"],
                "speech_start": round(at + start_s, 3),
                "speech_end": round(at + end_s, 3),
            }
        )
        pieces += [clip, gap]
        at += (len(clip) + len(gap)) / RATE
    out = np.concatenate(pieces).astype(np.float32)
    np.save(audio_path, out)
    meta = {"lang": lang, "duration_s": round(len(out) / RATE, 2), "segments": segments}
    meta_path.write_text(json.dumps(meta, ensure_ascii=False, indent=1))
    return audio_path, meta_path


def build(
    lang: str,
    *,
    seed: int = 12,
    cache: Path = CACHE,
    base: str = "fleurs",
    pattern: Pattern | None = None,
) -> tuple[Path, Path]:
    """The hard stream of ``lang``: (audio .npy of float32 16 kHz, reference .json), from the
    FLEURS long-form (``base="fleurs"``) or the held-out one (``"heldout"``)."""
    from server.file_captions import load_audio

    pattern = pattern or Pattern(seed=seed)
    seed = pattern.seed
    cache.mkdir(parents=True, exist_ok=True)
    name = "hard" if pattern == Pattern(seed=seed) else f"hard{pattern.min_silence_ms}ms"
    prefix = lang if base == "fleurs" else f"{lang}_{base}"
    audio_path = cache / f"{prefix}_{name}_v{VERSION}_s{seed}.npy"
    meta_path = audio_path.with_suffix(".json")
    if audio_path.exists() and meta_path.exists():
        return audio_path, meta_path
    if base == "fleurs":
        source = json.loads((EVALSET / "longform" / f"{lang}_fleurs_concat.json").read_text())
        audio = load_audio(EVALSET / "longform" / f"{lang}_fleurs_concat.flac")
    else:
        base_audio, base_meta = heldout_longform(lang, cache=cache)
        source, audio = json.loads(base_meta.read_text()), np.load(base_audio)
    rng = random.Random(f"{seed}-{lang}")
    pieces: list[np.ndarray] = []
    segments: list[dict[str, Any]] = []
    cursor = 0  # samples of the source consumed
    shift = 0.0  # seconds added so far
    for seg in source["segments"]:
        a, b = int(seg["start"] * RATE), int(seg["end"] * RATE)
        pieces.append(audio[cursor:a])
        clip = audio[a:b]
        rel_start, rel_end = seg["speech_start"] - seg["start"], seg["speech_end"] - seg["start"]
        points = internal_pauses(clip, rel_start, rel_end, pattern.min_silence_ms)
        chosen = sorted(rng.sample(points, min(pattern.per_utterance, len(points))))
        new_seg = dict(seg)
        new_seg["start"] = round(seg["start"] + shift, 3)
        added = 0.0
        pauses = []
        at = 0
        for point in chosen:
            cut = int(point * RATE)
            pieces.append(clip[at:cut])
            length = rng.uniform(*pattern.pause_range_s)
            # the gap's own quiet, not digital silence: low noise at the clip's floor
            floor = float(np.percentile(np.abs(clip), 5)) or 1e-4
            noise = np.random.default_rng(cut).normal(0, floor, int(length * RATE))
            pieces.append(noise.astype(np.float32))
            pauses.append(
                {
                    "at_s": round(seg["start"] + shift + point + added, 3),
                    "added_s": round(length, 3),
                }
            )
            added += len(noise) / RATE
            at = cut
        pieces.append(clip[at:])
        cursor = b
        new_seg["end"] = round(seg["end"] + shift + added, 3)
        new_seg["speech_start"] = round(seg["speech_start"] + shift, 3)
        new_seg["speech_end"] = round(seg["speech_end"] + shift + added, 3)
        new_seg["stretched_pauses"] = pauses
        segments.append(new_seg)
        shift += added
    pieces.append(audio[cursor:])
    out = np.concatenate(pieces).astype(np.float32)
    np.save(audio_path, out)
    meta = {
        "lang": lang,
        "duration_s": round(len(out) / RATE, 2),
        "source": f"longform/{lang}_fleurs_concat" if base == "fleurs" else base,
        "seed": seed,
        "pause_range_s": pattern.pause_range_s,
        "min_silence_ms": pattern.min_silence_ms,
        "segments": segments,
    }
    meta_path.write_text(json.dumps(meta, ensure_ascii=False, indent=1))
    return audio_path, meta_path


#: the noisy stream's background: pink noise this many dB below each utterance's speech (a
#: fan, a room's air handling; 10 dB is a loud room), and the slow stream's tempo (pitch kept)
NOISE_SNR_DB = 10.0
SLOW_TEMPO = 0.8
#: the babble stream's background talker: this many dB below each utterance's speech (someone
#: talking across the room, the floor's audio leaking into a microphone)
BABBLE_SNR_DB = 15.0
#: whose long-form talks in the background of each language's stream (another language, so
#: that its words never match the reference)
BABBLE_FROM = {"de": "fr", "en": "de", "es": "en", "fr": "pt", "pt": "es"}


def speech_rms(audio: np.ndarray, seg: dict[str, Any]) -> float:
    """RMS of an utterance's speech (its stretched pauses count too: they are near silent and
    a few percent of it)."""
    part = audio[int(seg["speech_start"] * RATE) : int(seg["speech_end"] * RATE)]
    return float(np.sqrt(np.mean(part.astype(np.float64) ** 2)))


def pink_noise(samples: int, seed: str) -> np.ndarray:
    """Unit-RMS pink (1/f power) noise, deterministic for ``seed``."""
    rng = np.random.default_rng(hash_seed(seed))
    spectrum = np.fft.rfft(rng.normal(0.0, 1.0, samples))
    freqs = np.fft.rfftfreq(samples, 1 / RATE)
    spectrum[1:] /= np.sqrt(freqs[1:] / freqs[1])
    spectrum[0] = 0.0
    noise = np.fft.irfft(spectrum, samples)
    return noise / float(np.sqrt(np.mean(noise**2)))


def hash_seed(text: str) -> int:
    """A stable integer for ``text`` (``hash()`` of a str changes per process)."""
    import hashlib

    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def noise_level(meta: dict[str, Any], audio: np.ndarray, snr_db: float) -> np.ndarray:
    """Per sample, the noise's RMS: ``snr_db`` below each utterance's speech over the
    utterance, moving from one level to the next (in dB) across the gap between two."""
    segments = meta["segments"]
    levels = [speech_rms(audio, seg) / 10 ** (snr_db / 20) for seg in segments]
    knots_s = [t for seg in segments for t in (seg["start"], seg["end"])]
    knots_db = [20 * np.log10(level) for level in levels for _ in (0, 1)]
    times = np.arange(len(audio)) / RATE
    return np.asarray(10 ** (np.interp(times, knots_s, knots_db) / 20))


def derived(
    lang: str, suffix: str, make: Callable[[np.ndarray, dict[str, Any]], np.ndarray], cache: Path
) -> tuple[Path, Path]:
    """A stream made from the hard stream of ``lang`` by ``make`` (its audio and reference ->
    the new audio; it may change the reference in place), cached as ``<hard stream>_suffix``."""
    base_audio, base_meta = build(lang, cache=cache)
    audio_path = base_audio.with_name(f"{base_audio.stem}_{suffix}.npy")
    meta_path = audio_path.with_suffix(".json")
    if audio_path.exists() and meta_path.exists():
        return audio_path, meta_path
    meta = json.loads(base_meta.read_text())
    out = make(np.load(base_audio), meta)
    meta["duration_s"] = round(len(out) / RATE, 2)
    np.save(audio_path, out.astype(np.float32))
    meta_path.write_text(json.dumps(meta, ensure_ascii=False, indent=1))
    return audio_path, meta_path


def noisy(lang: str, *, snr_db: float = NOISE_SNR_DB, cache: Path = CACHE) -> tuple[Path, Path]:
    """The hard stream of ``lang`` in a noisy room: pink noise ``snr_db`` below each
    utterance's speech, all through it (its pauses are noise, not near-silence: where Whisper
    invents text). Per utterance because the long-forms' clips differ by up to 45 dB in level
    (one noise level would drown the quiet readers and leave the loud ones clean); a browser's
    automatic gain control evens them out the same way."""

    def make(audio: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
        noise = noise_level(meta, audio, snr_db) * pink_noise(len(audio), f"pink-{lang}")
        meta["noise"] = {"kind": "pink", "snr_db_per_utterance": snr_db}
        return np.asarray(np.clip(audio + noise, -1.0, 1.0))

    return derived(lang, f"pink{snr_db:g}db", make, cache)


def slow(lang: str, *, tempo: float = SLOW_TEMPO, cache: Path = CACHE) -> tuple[Path, Path]:
    """The hard stream of ``lang`` spoken slower: ``tempo`` times the speed, pitch kept
    (ffmpeg's atempo), every time in the reference scaled to match; its pauses grow too."""
    import subprocess

    def make(audio: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
        pcm = subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "f32le", "-ar", str(RATE)]
            + ["-ac", "1", "-i", "pipe:0", "-filter:a", f"atempo={tempo}", "-f", "f32le"]
            + ["pipe:1"],
            input=audio.astype(np.float32).tobytes(),
            capture_output=True,
            check=True,
        ).stdout
        out = np.frombuffer(pcm, np.float32)
        scale = len(out) / len(audio)  # ≈ 1 / tempo
        for seg in meta["segments"]:
            for key in ("start", "end", "speech_start", "speech_end"):
                seg[key] = round(seg[key] * scale, 3)
            for pause in seg.get("stretched_pauses", []):
                pause["at_s"] = round(pause["at_s"] * scale, 3)
                pause["added_s"] = round(pause["added_s"] * scale, 3)
        meta["tempo"] = tempo
        return out

    return derived(lang, f"tempo{tempo:g}", make, cache)


def babble(lang: str, *, snr_db: float = BABBLE_SNR_DB, cache: Path = CACHE) -> tuple[Path, Path]:
    """The hard stream of ``lang`` with another talker in the background: the evalset's
    long-form of :data:`BABBLE_FROM` (another language), each of its clips brought to one
    level, ``snr_db`` below each utterance's speech, looped over the whole stream. The
    reference is the foreground's alone: a caption of the background talker is invented text.
    The background talks through the foreground's pauses, where a VAD that hears it keeps
    the segment open and Whisper may caption it."""
    other = BABBLE_FROM[lang]

    def make(audio: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
        from server.file_captions import load_audio

        # only when the stream is not cached yet: each of the talker's clips at one level
        background = load_audio(EVALSET / "longform" / f"{other}_fleurs_concat.flac")
        other_meta = json.loads((EVALSET / "longform" / f"{other}_fleurs_concat.json").read_text())
        even = np.zeros(len(background), np.float64)
        for seg in other_meta["segments"]:
            a, b = int(seg["start"] * RATE), int(seg["end"] * RATE)
            level = speech_rms(background, seg)
            if level > 0:
                even[a:b] = background[a:b] / level
        loops = np.resize(even, len(audio))
        meta["noise"] = {"kind": "talker", "language": other, "snr_db_per_utterance": snr_db}
        return np.asarray(np.clip(audio + noise_level(meta, audio, snr_db) * loops, -1.0, 1.0))

    return derived(lang, f"babble-{other}{snr_db:g}db", make, cache)


KINDS = ("hard", "hard-b", "heldout", "heldout-hard", "noisy", "slow", "babble")


def stream(kind: str, lang: str, *, seed: int = 12) -> tuple[Path, Path]:
    """A built stream's (audio .npy, reference .json), ``kind`` one of :data:`KINDS`."""
    if kind == "heldout":
        return heldout_longform(lang)
    if kind == "heldout-hard":
        return build(lang, base="heldout", pattern=HELDOUT_PATTERN)
    if kind == "hard-b":
        return build(lang, pattern=HELDOUT_PATTERN)
    if kind == "noisy":
        return noisy(lang)
    if kind == "slow":
        return slow(lang)
    if kind == "babble":
        return babble(lang)
    return build(lang, seed=seed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--langs", default="en,es,de,fr,pt")
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--kind", choices=KINDS, default="hard")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    for lang in args.langs.split(","):
        audio_path, meta_path = stream(args.kind, lang, seed=args.seed)
        meta = json.loads(meta_path.read_text())
        n = sum(len(s.get("stretched_pauses", [])) for s in meta["segments"])
        print(f"{lang}: {meta['duration_s']} s, {n} pauses stretched -> {audio_path}")


if __name__ == "__main__":
    main()
