"""Issue 17, point 3: ``bench/gpu_capacity.sh`` (speakers per GPU, the worker batching its
speakers' decodes) runs its CPU path here on a short stream, as it runs in one call on a GPU
machine: the real pipeline, real speech at 1x, decodes batched, every utterance captioned.
Its latency is the benchmark's business (docs/benchmarks.md), not this test's."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.support.paths import REPO

pytestmark = pytest.mark.models


def test_gpu_capacity_script_cpu_path_batches_and_captions_every_utterance(
    tmp_path: Path,
) -> None:
    out = tmp_path / "capacity.json"
    env = {
        **os.environ,
        "PARLEY_CAPACITY_DEVICE": "cpu",
        "PARLEY_CAPACITY_JSON": str(out),
        "PARLEY_GPU_BATCH": "4",
    }
    done = subprocess.run(
        ["sh", "bench/gpu_capacity.sh"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["batch_size"] == 4 and report["device"] == "cpu"
    (run,) = report["runs"]
    assert run["speakers"] == 2
    # the two speakers' decodes went to Whisper together (fewer calls than decodes)
    assert 0 < run["recognizer_calls"] < run["decodes"], run
    for speaker, figures in run["per_speaker"].items():
        assert figures["utterances"] > 0 and figures["missing"] == 0, (speaker, figures)
