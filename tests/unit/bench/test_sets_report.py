"""bench/sets_report.py's per-set sums, from bench/interpret.py rows (no run)."""

from __future__ import annotations

from typing import Any

import pytest

from bench.sets_report import per_set, table


def _row(stream: str, wer: float, words: int, **extra: Any) -> dict[str, Any]:
    return {
        "stream": stream,
        "lang": "xx",
        "speakers": 1,
        "run": 0,
        "wer": wer,
        "ref_words": words,
        "invented_runs": 0,
        **extra,
    }


def test_streams_are_summed_per_set_and_only_one_speaker_run_0_counts() -> None:
    runs = [
        _row("hard", 10.0, 100, invented_runs=1, offline_wer=5.0, offline_invented_runs=0),
        _row("plain", 12.5, 80, offline_wer=2.5, offline_invented_runs=2),
        _row("heldout", 20.0, 50, offline_wer=10.0, offline_invented_runs=0),
        _row("hard", 50.0, 100, run=1),  # a second run: the same words on the virtual clock
        _row("hard", 50.0, 100, speakers=2),  # under load: another table
    ]
    live = per_set(runs)
    assert live == {
        "dev": {"errors": 20, "words": 180, "invented_runs": 1, "streams": 2},
        "held out": {"errors": 10, "words": 50, "invented_runs": 0, "streams": 1},
    }
    offline = per_set(runs[:3], offline=True)
    assert offline["dev"] == {"errors": 7, "words": 180, "invented_runs": 2, "streams": 2}


def test_an_offline_table_of_runs_without_the_offline_figure_is_an_error() -> None:
    with pytest.raises(SystemExit, match="hard xx: no offline figure"):
        per_set([_row("hard", 10.0, 100, offline_wer=None)], offline=True)


def test_the_total_sums_only_the_sets_every_configuration_has() -> None:
    # a configuration run without babble streams: "all" leaves babble out of every row
    with_babble = per_set([_row("hard", 10.0, 100), _row("babble", 50.0, 100)])
    without = per_set([_row("hard", 20.0, 100)])
    lines = table({"a": with_babble, "b": without})
    assert lines[0].endswith("| all (dev) |")
    assert lines[2] == "| a | 10 (0) | 50 (0) | 10 (0) |"
    assert lines[3] == "| b | 20 (0) | – | 20 (0) |"
