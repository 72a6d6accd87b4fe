#!/usr/bin/env bash
# Issue 23: why the second process missed the compile cache on the H100, in one short GPU command (~2-3 min).
# benchmarks/compile_cache_key.py compiles one block variant (4 full-width layers, one pass at 512x768) in two fresh
# processes sharing one cache folder and diffs their FX-graph / AOTAutograd cache keys part by part:
#   1. "stored": as the package runs now (attention choices kept beside the compile cache);
#   2. "unstored": each process measures the SDPA backends itself, as before the fix (the suspected cause).
# Results under $OUT: cachekey.log (the report), cachekey.json (keys and every hashed part of both processes).
# Then, if BUDGET_S leaves room, gpu_run_fast.sh's first-call pair (cold / warm, full model) with FAST=1.
# Knobs: SITE (a folder of installed wheels, e.g. ltx-core, added to PYTHONPATH), PYTHON (python3), BUDGET_S (540), KEY_ARGS (extra arguments), FAST=1 (also benchmarks/gpu_run_fast.sh).
# CPU self-check (ran here, ~1 min): KEY_ARGS="--tiny --device cpu --check" PYTHON=/work/main/.venv/bin/python \
#   OUT=/tmp/ck/out bash benchmarks/gpu_run_cachekey.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/ltx-bench-cachekey}
mkdir -p "$OUT"
PYTHON=${PYTHON:-python3}
BUDGET_S=${BUDGET_S:-540}
KEY_ARGS=${KEY_ARGS:---unstored}
unset TORCHINDUCTOR_CACHE_DIR TRITON_CACHE_DIR  # as gpu_run_fast.sh: everything under the tool's own folder
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1
started=$(date +%s)
echo "start: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1 | head -1)" | tee "$OUT/timeline.txt"
CACHE=$(mktemp -d /tmp/ltx-cachekey.XXXXXX)
PYTHONPATH=src${SITE:+:$SITE} timeout 300 "$PYTHON" benchmarks/compile_cache_key.py $KEY_ARGS --cache-dir "$CACHE" \
  --json "$OUT/cachekey.json" > "$OUT/cachekey.log" 2> "$OUT/cachekey.stderr"
echo "compile_cache_key exit $? after $(($(date +%s) - started)) s: $(grep -E '^# ' "$OUT/cachekey.log" | tail -1)" \
  | tee -a "$OUT/timeline.txt"
grep -E "^- |^  (parts|first)" "$OUT/cachekey.log" | head -40
rm -rf "$CACHE"
left=$((BUDGET_S - ($(date +%s) - started)))
if [ -n "${FAST:-}" ] && [ "$left" -gt 200 ]; then
  OUT="$OUT/fast" BUDGET_S=$left bash benchmarks/gpu_run_fast.sh > "$OUT/fast.log" 2>&1
  tail -5 "$OUT/fast.log"
fi
