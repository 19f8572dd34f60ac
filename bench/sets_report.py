"""Word errors per set of streams for several configurations (issue 12): each configuration is
one or more bench/interpret.py JSON files (usually ``--feed virtual``, whose words are the 1x
runs'). Writes JSON, a markdown table and a bar plot.

    PYTHONPATH=. .venv/bin/python bench/sets_report.py \\
        "no gain=bench/results/a-dev.json,bench/results/a-ho.json" \\
        "gain=bench/results/b-dev.json,bench/results/b-ho.json" \\
        --json bench/results/sets.json --png docs/benchmarks/sets.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

#: the set each stream kind belongs to
SETS = {
    "plain": "dev",
    "hard": "dev",
    "hard-b": "held out",
    "heldout": "held out",
    "heldout-hard": "held out",
    "noisy": "noisy",
    "slow": "slow",
    "babble": "babble",
}
ORDER = ("dev", "held out", "noisy", "slow", "babble")


def per_set(runs: list[dict[str, Any]], *, offline: bool = False) -> dict[str, dict[str, int]]:
    """Errors, reference words, invented ≥ 3-word runs and streams per set (run 0 of each
    1-speaker stream: the virtual clock's words do not change from run to run); ``offline``:
    of the offline figure (each utterance's clip decoded alone) instead."""
    out: dict[str, dict[str, int]] = {}
    for r in runs:
        if r.get("speakers", 1) != 1 or r.get("run", 0) != 0:
            continue
        if offline and r.get("offline_wer") is None:
            raise SystemExit(f"{r['stream']} {r['lang']}: no offline figure (--no-offline?)")
        row = out.setdefault(
            SETS.get(r["stream"], r["stream"]),
            {"errors": 0, "words": 0, "invented_runs": 0, "streams": 0},
        )
        wer = r["offline_wer"] if offline else r["wer"]
        row["errors"] += round(wer * r["ref_words"] / 100)
        row["words"] += r["ref_words"]
        row["invented_runs"] += r.get("offline_invented_runs" if offline else "invented_runs") or 0
        row["streams"] += 1
    return out


def present(results: dict[str, dict[str, dict[str, int]]]) -> list[str]:
    """The sets any configuration has, in :data:`ORDER`."""
    return [s for s in ORDER if any(s in r for r in results.values())]


def table(results: dict[str, dict[str, dict[str, int]]]) -> list[str]:
    """The markdown table of :func:`per_set`'s results per configuration; "all" sums the sets
    every configuration has, so that the totals compare."""
    sets = present(results)
    # "all": the sets every configuration has, so that the totals compare
    common = [s for s in sets if all(s in r for r in results.values())]
    lines = [
        "| configuration | "
        + " | ".join(f"{s}: errors (invented runs)" for s in sets)
        + f" | all ({' + '.join(common)}) |",
        "|---" * (len(sets) + 2) + "|",
    ]
    for label, rows in results.items():
        cells = [
            f"{rows[s]['errors']} ({rows[s]['invented_runs']})" if s in rows else "–" for s in sets
        ]
        total = sum(rows[s]["errors"] for s in common)
        invented = sum(rows[s]["invented_runs"] for s in common)
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {total} ({invented}) |")
    words = {s: next(r[s]["words"] for r in results.values() if s in r) for s in sets}
    lines.append("")
    lines.append("Reference words: " + ", ".join(f"{s} {w:,}" for s, w in words.items()) + ".")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "configs",
        nargs="+",
        help='"label=a.json,b.json"; "offline:label=…" for those runs\' offline figure',
    )
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--png", type=Path, required=True)
    args = ap.parse_args()
    results: dict[str, Any] = {}
    for config in args.configs:
        label, _, paths = config.partition("=")
        runs: list[dict[str, Any]] = []
        for path in paths.split(","):
            runs += json.loads(Path(path).read_text())["runs"]
        offline = label.startswith("offline:")
        results[label.removeprefix("offline:")] = per_set(runs, offline=offline)
    args.json.write_text(json.dumps(results, indent=1))
    lines = table(results)
    args.json.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    sets = present(results)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(results)
    for i, (label, rows) in enumerate(results.items()):
        xs = [j + i * width for j in range(len(sets))]
        ys = [100 * rows[s]["errors"] / rows[s]["words"] if s in rows else 0 for s in sets]
        ax.bar(xs, ys, width, label=label)
    ax.set_xticks([j + width * (len(results) - 1) / 2 for j in range(len(sets))], sets)
    ax.set_ylabel("word error rate, % (all streams of the set)")
    ax.legend(fontsize=8)
    ax.set_title("Live captions' word errors per set of streams")
    fig.tight_layout()
    fig.savefig(args.png, dpi=100)


if __name__ == "__main__":
    main()
