#!/bin/sh
# Speakers per GPU: the most simultaneous speakers whose final captions arrive at p95 <= 2.5 s
# after speech end, Whisper small float16 on CUDA (bench/capacity.py's search, one call).
#
# Runs offline on a machine with this repository, its .venv and ../shared/evalset (or
# PARLEY_EVALSET). Whisper small must already be on that machine: a model directory in
# PARLEY_GPU_MODEL, or `parley models install small --allow-download` done beforehand (the
# cache travels with $HOME/.cache/parley). Without it the script measures Whisper base instead
# and says so in the JSON ("model") and on stderr, rather than downloading anything.
#
# The worker batches its speakers' decodes (PARLEY_GPU_BATCH, default 8: one encoder and one
# decoder call for up to 8 speakers' windows, interpret/transcribe.py recognize_batch).
#
#   bash bench/gpu_capacity.sh            # ~6 min on one H100; writes bench/results/capacity-gpu.*
#
# PARLEY_CAPACITY_DEVICE=cpu runs the same search on this CPU, Whisper base int8, on a short
# stream (2 speakers, 20 s): the path CI runs (tests/acceptance/test_gpu_capacity_script.py).
set -eu
cd "$(dirname "$0")/.."
export PYTHONPATH=. HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
PY=.venv/bin/python
mkdir -p bench/results
BATCH="${PARLEY_GPU_BATCH:-8}"
if [ "${PARLEY_CAPACITY_DEVICE:-cuda}" = cpu ]; then
    exec $PY bench/capacity.py --model base --device cpu --compute-type int8 --threads 2 \
        --encoder-window full --batch "$BATCH" --p95-goal-s 2.5 --speakers "${PARLEY_GPU_SPEAKERS:-2}" \
        --stream-s "${PARLEY_CAPACITY_STREAM_S:-20}" \
        --json "${PARLEY_CAPACITY_JSON:-bench/results/capacity-cpu-batched.json}"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
MODEL="${PARLEY_GPU_MODEL:-small}"
if ! $PY -c "
import sys
from interpret.models import resolve_model
resolve_model(sys.argv[1])
" "$MODEL" 2>/dev/null; then
    echo "gpu_capacity: Whisper '$MODEL' is not installed here (offline); measuring base instead" >&2
    MODEL=base
fi
exec $PY bench/capacity.py --model "$MODEL" --device cuda --compute-type float16 --threads 4 \
    --encoder-window full --batch "$BATCH" --p95-goal-s 2.5 --speakers "${PARLEY_GPU_SPEAKERS:-1,4,8,12,16,24,32,48}" --stream-s 30 \
    --json bench/results/capacity-gpu.json
