"""How far do Whisper's words on the same utterances move with the edges of its window?

Issue 12's first acceptance point compares live captions with an offline decode of the same
file, stream by stream, within 1.5 WER points. This measures the floor under that comparison:
each utterance of a stream decoded on its own (what ``bench/interpret.py``'s offline figure
does), with the window starting ``lead`` s before the utterance's speech and ending ``tail`` s
after it, for a few leads and tails, and as the whole clip (the offline figure's window). No
streaming, no prompt, the product's recognizer settings: only the edges change.

    PYTHONPATH=. .venv/bin/python bench/window_edges.py --streams hard,plain \\
        --json bench/results/window-edges-dev.json
    PYTHONPATH=. .venv/bin/python bench/window_edges.py --streams hard-b,heldout,heldout-hard \\
        --json bench/results/window-edges-heldout.json

Writes JSON, a markdown table next to it (``.md``) and a plot (``.png``): per stream, the WER
of each window and the spread (largest minus smallest, in points).

It also scores choosing, per utterance, among the decodes of a few windows (tail 0.15 s, the
live pause decode's) the one Whisper is surest of (the highest mean word log-probability): is
a second decode of a final's audio with another lead-in worth its cost? (``SURE_OF``.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.interpret import EVALSET, FLEURS_KINDS, normalize, source  # noqa: E402

#: seconds of audio before the speech (the live segment's VAD padding is 0.2 s) and after it
#: (the live pause decode's tail pad is 0.15 s)
LEADS = (0.2, 0.5, 1.0)
TAILS = (0.15, 0.5)
LANGS = ("de", "en", "es", "fr", "pt", "it")
GOAL_POINTS = 1.5
#: per utterance, the decode Whisper is surest of among these leads (tail 0.15 s)
SURE_OF = ((0.2, 0.5), (0.2, 1.0), (0.2, 0.5, 1.0))


def window_name(lead: float, tail: float) -> str:
    return f"lead {lead} / tail {tail}"


def variants() -> list[tuple[str, float | None, float | None]]:
    out: list[tuple[str, float | None, float | None]] = [
        (window_name(lead, tail), lead, tail) for tail in TAILS for lead in LEADS
    ]
    return [*out, ("whole clip", None, None)]


def choices() -> list[tuple[str, tuple[float, ...]]]:
    return [(f"surest of {'/'.join(str(x) for x in leads)}", leads) for leads in SURE_OF]


def measure(recognizer: Any, kind: str, lang: str) -> dict[str, Any]:
    import jiwer

    from bench.interpret import offline_decodes
    from interpret.frames import ASR_SAMPLE_RATE, avg_logprob
    from interpret.transcribe import words_text

    audio, meta, _ = source(kind, lang)
    refs = [normalize(seg["reference"]) for seg in meta["segments"]]
    ref_words = sum(len(r.split()) for r in refs)
    wers: dict[str, float] = {}
    #: per variant, per utterance: (mean word log-probability, text)
    decoded: dict[str, list[tuple[float, str]]] = {}
    for name, lead, tail in variants():
        hyps = []
        for seg in meta["segments"]:
            if lead is None or tail is None:
                a, b = seg["start"], seg["end"]
            else:
                a = max(seg["start"], seg.get("speech_start", seg["start"]) - lead)
                b = min(seg["end"], seg.get("speech_end", seg["end"]) + tail)
            clip = audio[int(a * ASR_SAMPLE_RATE) : int(b * ASR_SAMPLE_RATE)]
            results = offline_decodes(recognizer, clip, lang)
            words = [w for r in results for w in r.words]
            sure = avg_logprob(words)
            text = normalize(" ".join(words_text(r.words) for r in results))
            hyps.append((-1e9 if sure is None else sure, text))
        decoded[name] = hyps
        wers[name] = round(100 * jiwer.wer(" ".join(refs), " ".join(h for _, h in hyps)), 2)
    for name, leads in choices():
        options = [decoded[window_name(lead, TAILS[0])] for lead in leads]
        picked = [max(each)[1] for each in zip(*options, strict=True)]
        wers[name] = round(100 * jiwer.wer(" ".join(refs), " ".join(picked)), 2)
    values = [wers[name] for name, _, _ in variants()]
    return {
        "stream": kind,
        "lang": lang,
        "ref_words": ref_words,
        "wer": wers,
        "spread_points": round(max(values) - min(values), 2),
        "errors": {k: round(v * ref_words / 100) for k, v in wers.items()},
    }


def markdown(result: dict[str, Any]) -> str:
    names = [name for name, _, _ in variants()] + [name for name, _ in choices()]
    lines = [
        f"Whisper {result['model']} ({result['compute_type']}, beam {result.get('beam', 1)}, "
        f"{result['threads']} "
        "threads): WER of each stream's utterances decoded one by one, by window (lead = audio "
        'before the speech, tail = after it, s); "surest of": per utterance, the decode of '
        f"those leads (tail {TAILS[0]}) with the highest mean word log-probability.",
        "",
        "| stream | words | " + " | ".join(names) + " | spread of the windows (points) |",
        "|---|---|" + "---|" * len(names) + "---|",
    ]
    for row in result["rows"]:
        cells = " | ".join(f"{row['wer'][n]:.2f}" for n in names)
        lines.append(
            f"| {row['stream']} {row['lang']} | {row['ref_words']} | {cells} "
            f"| {row['spread_points']:.2f} |"
        )
    totals = result["totals"]
    cells = " | ".join(str(totals["errors"][n]) for n in names)
    lines.append(f"| all (word errors) | {totals['ref_words']} | {cells} | |")
    lines += [
        "",
        f"Streams whose WER moves by more than {GOAL_POINTS} points with the window alone: "
        f"{totals['over_goal']} of {len(result['rows'])}.",
    ]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(rows) + 2), 4))
    for i, row in enumerate(rows):
        values = [row["wer"][name] for name, _, _ in variants()]
        base = row["wer"]["whole clip"]
        ax.plot([i, i], [min(values) - base, max(values) - base], color="tab:blue", lw=3)
        ax.scatter([i] * len(values), [v - base for v in values], color="tab:blue", s=10)
        pick = row["wer"][choices()[0][0]] - base
        ax.scatter(
            [i], [pick], color="tab:red", marker="x", s=30, label=None if i else choices()[0][0]
        )
    ax.axhspan(-GOAL_POINTS, GOAL_POINTS, color="tab:green", alpha=0.15, label="±1.5 points")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([f"{r['stream']} {r['lang']}" for r in rows], rotation=60, ha="right")
    ax.set_ylabel("WER − whole-clip WER (points)")
    ax.set_title("Same utterances, same model: WER by the window's edges only")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", default="hard,plain")
    parser.add_argument("--langs", default=",".join(LANGS))
    parser.add_argument("--model", default="base")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)

    from interpret.compose import PipelineConfig, load_models
    from interpret.transcribe import RecognizerSettings

    settings = RecognizerSettings(model=args.model, cpu_threads=args.threads)
    recognizer = load_models(PipelineConfig(recognizer=settings)).recognizer
    rows = []
    started = time.monotonic()
    for kind in args.streams.split(","):
        for lang in args.langs.split(","):
            fleurs = EVALSET / "longform" / f"{lang}_fleurs_concat.json"
            if kind in FLEURS_KINDS and not fleurs.exists():
                continue  # no FLEURS long-form of this language (it: held out only)
            row = measure(recognizer, kind, lang)
            rows.append(row)
            print(json.dumps(row), flush=True)
    names = [name for name, _, _ in variants()] + [name for name, _ in choices()]
    totals = {
        "ref_words": sum(r["ref_words"] for r in rows),
        "errors": {n: sum(r["errors"][n] for r in rows) for n in names},
        "over_goal": sum(1 for r in rows if r["spread_points"] > GOAL_POINTS),
    }
    result = {
        "model": args.model,
        "compute_type": settings.compute_type,
        "beam": settings.final_beam_size,
        "threads": args.threads,
        "wall_s": round(time.monotonic() - started, 1),
        "rows": rows,
        "totals": totals,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1, ensure_ascii=False))
    args.json.with_suffix(".md").write_text(markdown(result))
    plot(result, args.json.with_suffix(".png"))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
