"""Harder long-form streams for live captions (issue 12): the evalset's long-forms with the
pauses *inside* each utterance stretched to 0.6-2.5 s, as a speaker who hesitates mid-sentence
makes them. The sentence runs across the pauses; its reference is unchanged.

Built at run time from ``../shared/evalset/longform/LANG_fleurs_concat.*`` into a cache
directory (never into the repository: the evalset is for evaluation only). Pauses are found
with Silero VAD (the one Parley uses) at word boundaries: silences of ≥ 80 ms between stretches
of speech inside ``speech_start``..``speech_end``. Deterministic: the same seed gives the same
stream.

    PYTHONPATH=. .venv/bin/python bench/hard_streams.py --langs en,de   # prints the paths
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
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


def internal_pauses(clip: np.ndarray, speech_start: float, speech_end: float) -> list[float]:
    """Mid-points (s, relative to ``clip``) of silences between words inside the speech."""
    from interpret.vad import SileroVad, SpeechEnded, SpeechStarted, VadSettings

    settings = VadSettings(min_silence_ms=80, min_speech_ms=100, speech_pad_ms=0)
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


def build(lang: str, *, seed: int = 12, cache: Path = CACHE) -> tuple[Path, Path]:
    """The hard stream of ``lang``: (audio .npy of float32 16 kHz, reference .json)."""
    from server.file_captions import load_audio

    cache.mkdir(parents=True, exist_ok=True)
    audio_path = cache / f"{lang}_hard_v{VERSION}_s{seed}.npy"
    meta_path = audio_path.with_suffix(".json")
    if audio_path.exists() and meta_path.exists():
        return audio_path, meta_path
    source = json.loads((EVALSET / "longform" / f"{lang}_fleurs_concat.json").read_text())
    audio = load_audio(EVALSET / "longform" / f"{lang}_fleurs_concat.flac")
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
        points = internal_pauses(clip, rel_start, rel_end)
        chosen = sorted(rng.sample(points, min(PAUSES_PER_UTTERANCE, len(points))))
        new_seg = dict(seg)
        new_seg["start"] = round(seg["start"] + shift, 3)
        added = 0.0
        pauses = []
        at = 0
        for point in chosen:
            cut = int(point * RATE)
            pieces.append(clip[at:cut])
            length = rng.uniform(*PAUSE_RANGE_S)
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
        "source": f"longform/{lang}_fleurs_concat",
        "seed": seed,
        "pause_range_s": PAUSE_RANGE_S,
        "segments": segments,
    }
    meta_path.write_text(json.dumps(meta, ensure_ascii=False, indent=1))
    return audio_path, meta_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--langs", default="en,es,de,fr,pt")
    ap.add_argument("--seed", type=int, default=12)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    for lang in args.langs.split(","):
        audio_path, meta_path = build(lang, seed=args.seed)
        meta = json.loads(meta_path.read_text())
        n = sum(len(s["stretched_pauses"]) for s in meta["segments"])
        print(f"{lang}: {meta['duration_s']} s, {n} pauses stretched -> {audio_path}")


if __name__ == "__main__":
    main()
