"""Merge issue-12 caption runs (bench/interpret.py JSON files) into one table and plot.

    PYTHONPATH=. .venv/bin/python bench/captions_report.py \\
        bench/results/interpret-issue12-k1.json bench/results/interpret-issue12-k2.json \\
        --md bench/results/captions.md \\
        --png docs/benchmarks/captions-issue12.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.interpret import plot, summarize, table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("results", nargs="+", type=Path)
    ap.add_argument("--md", type=Path, required=True)
    ap.add_argument("--png", type=Path, required=True)
    args = ap.parse_args()
    merged: dict[str, Any] = {"runs": []}
    for path in args.results:
        data = json.loads(path.read_text())
        merged["model"], merged["threads"] = data["model"], data["threads"]
        merged["runs"] += data["runs"]
    offline = {
        (r["stream"], r["lang"]): (r["offline_wer"], r.get("offline_invented_runs"))
        for r in merged["runs"]
        if r.get("offline_wer") is not None
    }
    for r in merged["runs"]:  # runs with a second speaker: the same file's offline figures
        r["offline_wer"], r["offline_invented_runs"] = offline.get(
            (r["stream"], r["lang"]), (None, None)
        )
    merged["summary"] = sorted(
        summarize(merged["runs"]), key=lambda r: (r["stream"] != "hard", r["speakers"], r["lang"])
    )
    args.md.write_text(table(merged))
    plot(merged, args.png)
    print(table(merged))


if __name__ == "__main__":
    main()
