#!/usr/bin/env bash
# Every speed benchmark of issue 10 in one GPU run (~8 minutes on an H200), logs and JSON under $OUT:
#   1. the reference's guided step (reference_step.py on the published 1.0.0 wheel),
#   2. our transformer step / pass (benchmarks/transformer_step.py: plain, optimised, compiled, FP8),
#   3. the two-stage pipeline end to end (benchmarks/two_stage_e2e.py),
# then benchmarks/summarize.py writes $OUT/summary.md (one table, all from this run).
#
# Needs, in the ignored folder .whl/ (carried to the GPU machine): the reference wheel ltx_pipelines-1.0.0,
# ltx_core-1.0.0, transformers-5.14.1 (the pyproject's pin) with the huggingface_hub (>=1.5) and tokenizers (0.22)
# it needs, and av (Python 3.12 manylinux wheels: the machine has another transformers and no PyAV), and a copy
# of reference_step.py.
# The reference wheel goes to /tmp/ref on its own (it is also named ltx_pipelines); the rest to /tmp/site.
#
# Knobs (environment): BUDGET_S (510), REF_SHAPES (512x768x121; add 1024x1536x121 for the reference's
# stage-2 pass, ~80 s more), STEP_ARGS, E2E_RUNS, E2E_ARGS, REF_LAYERS (full), PYTHON (python3). Each part
# gets a time limit from what is left, so a slow part cuts the tail (the end-to-end runs go in order of
# importance and keep what finished). CPU self-check of this script (tiny models, minutes):
#   PYTHON=.venv/bin/python BENCH_DEVICE=cpu REF_LAYERS=1 REF_SHAPES=64x96x9 STEP_ARGS="--tiny --device cpu --fp8" \
#   E2E_ARGS="--tiny --device cpu" E2E_RUNS=128x128x2:bf16,128x128x2:fp8-compiled OUT=/tmp/b bash benchmarks/gpu_run.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/ltx-bench}
mkdir -p "$OUT"
BUDGET_S=${BUDGET_S:-510}
REF_SHAPES=${REF_SHAPES:-512x768x121}
STEP_ARGS=${STEP_ARGS:---fp8 --sizes 512x768 --pass-sizes 1024x1536 --repeats 2 --warmup 1}
E2E_ARGS=${E2E_ARGS:-}
REF_LAYERS=${REF_LAYERS:-full}
PYTHON=${PYTHON:-python3}
DEFAULT_E2E=768x512x30:bf16-compiled,1536x1024x40:bf16-compiled,768x512x30:fp8-compiled,1536x1024x40:fp8-compiled
DEFAULT_E2E=$DEFAULT_E2E,768x512x30:bf16,768x512x30:bf16-compiled-cache0.05
E2E_RUNS=${E2E_RUNS:-$DEFAULT_E2E}
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1
started=$(date +%s)
left() { echo $((BUDGET_S - ($(date +%s) - started))); }
note() { echo "[$(($(date +%s) - started)) s] $*" | tee -a "$OUT/timeline.txt"; }

note "start: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1)"
pip_install() { "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$@"; }
pip_install /tmp/site $(ls .whl/*.whl | grep -v '/ltx_pipelines-') || { note "installing .whl/ failed"; exit 1; }
pip_install /tmp/ref .whl/ltx_pipelines-1.0.0-*.whl || { note "installing the reference wheel failed"; exit 1; }
note "installed the carried wheels"

limit=$(( $(left) < 120 ? $(left) : 120 ))
note "reference_step.py $REF_LAYERS $REF_SHAPES (limit ${limit} s)"
PYTHONPATH=/tmp/ref:/tmp/site timeout "$limit" "$PYTHON" .whl/reference_step.py "$REF_LAYERS" $REF_SHAPES 2>&1 \
  | tee "$OUT/reference.jsonl"
note "reference done (exit ${PIPESTATUS[0]})"

limit=$(( $(left) - 250 < 230 ? $(left) - 250 : 230 ))
note "transformer_step.py $STEP_ARGS (limit ${limit} s)"
PYTHONPATH=src:/tmp/site timeout "$limit" "$PYTHON" benchmarks/transformer_step.py $STEP_ARGS \
  --json "$OUT/transformer_step.json" 2>&1 | tee "$OUT/transformer_step.log"
note "transformer_step done (exit ${PIPESTATUS[0]})"

limit=$(( $(left) > 60 ? $(left) : 60 ))
note "two_stage_e2e.py --runs $E2E_RUNS (limit ${limit} s)"
PYTHONPATH=src:/tmp/site timeout "$limit" "$PYTHON" benchmarks/two_stage_e2e.py $E2E_ARGS --runs "$E2E_RUNS" \
  --json "$OUT/two_stage_e2e.json" 2>&1 | tee "$OUT/two_stage_e2e.log"
note "two_stage_e2e done (exit ${PIPESTATUS[0]})"

PYTHONPATH=src "$PYTHON" benchmarks/summarize.py "$OUT" > "$OUT/summary.md" 2>&1
note "summary written"
cat "$OUT/summary.md"
