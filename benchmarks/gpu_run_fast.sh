#!/usr/bin/env bash
# Issue 23 ("the fastest path is the default") in one GPU command (~9 minutes on an H100/H200; BUDGET_S caps it,
# default 540 s inside the device's 600 s per command). Results under $OUT (timeline.txt, install.log, one log and
# one JSON per part, summary.md):
#   0. install the carried wheels (.whlfast/: bash benchmarks/fetch_wheels_fast.sh; carry [".whlfast"]) into $SITE;
#   1. first-call overhead of the default path, cold compile cache (a fresh folder) then warm (a second process,
#      same folder): guided step at 512x768 (stage 1) and pass at 1024x1536 (stage 2), full-size 19B random
#      transformer (benchmarks/first_call.py; expected ~100 s cold, ~50 s warm, model build included);
#   2. 8-bit attention against bf16 SDPA at 6 144 / 24 576 tokens, head dims 128 / 64 (benchmarks/fp8_attention.py;
#      ~30 s);
#   3. step and pass: ours plain / optimised / default (no flags) / compiled / compiled + 8-bit attention, and the
#      same in FP8 (benchmarks/transformer_step.py --fp8 --default-variant --attention-8bit; ~4-5 min; the
#      compile cache of part 1 is warm, so its first-call column is a warm one);
#   4. the compiled path's drift against float32 (benchmarks/compile_drift.py, 8 full-width blocks: an fp32 model
#      of 48 would not fit beside its bf16 copy; at 256x384, where the passes are stacked and replayed from CUDA
#      graphs, and at 512x768; ~1.5 min);
#   5. if time is left: a third process with Inductor's cache folder removed and only the portable bundles kept.
# Then benchmarks/summarize_fast.py writes $OUT/summary.md.
#
# Knobs (environment): SKIP_ATTN=1 (part 2 left out: measured already), BUDGET_S (540), PYTHON (python3), SITE (/tmp/site), WHEELS (.whlfast), CACHE (the compile
# cache folder, /tmp/ltx-compile-cache: NOT under $OUT, it holds hundreds of MB), TINY=1 (CPU self-check: tiny
# models, part 3 with aot_eager), FIRST_ARGS / ATTN_ARGS / STEP_ARGS / DRIFT_ARGS (each part's arguments; e.g.
# STEP_ARGS="--sizes 256x384,384x512 --pass-sizes= --default-variant" times compiling at 1 536 / 3 072 tokens, where
# the default threshold has no measurement yet). Each part's time limit comes from what is left, keeping room for the later parts.
# CPU self-check (ran here; ~10 min on 2 busy cores):
#   TINY=1 PYTHON=/work/main/.venv/bin/python BUDGET_S=3000 SITE=/tmp/fast/site OUT=/tmp/fast/out \
#   CACHE=/tmp/fast/cache bash benchmarks/gpu_run_fast.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/ltx-bench-fast}
mkdir -p "$OUT"
BUDGET_S=${BUDGET_S:-540}
PYTHON=${PYTHON:-python3}
SITE=${SITE:-/tmp/site}
WHEELS=${WHEELS:-.whlfast}
CACHE=${CACHE:-/tmp/ltx-compile-cache}
TINY=${TINY:-}
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 LTX_PIPELINES_COMPILE_CACHE=$CACHE
unset TORCHINDUCTOR_CACHE_DIR TRITON_CACHE_DIR  # everything compiled goes to $CACHE (cold really is cold)
if [ -n "$TINY" ]; then
  FIRST_ARGS=${FIRST_ARGS:---tiny --device cpu}; ATTN_ARGS=${ATTN_ARGS:---tiny}
  STEP_ARGS=${STEP_ARGS:---tiny --device cpu --fp8 --compile-backend aot_eager --default-variant --attention-8bit --repeats 1}
  DRIFT_ARGS=${DRIFT_ARGS:---tiny --device cpu --no-blocks}
else
  FIRST_ARGS=${FIRST_ARGS:-}; ATTN_ARGS=${ATTN_ARGS:---repeats 10}
  STEP_ARGS=${STEP_ARGS:---fp8 --default-variant --attention-8bit --sizes 512x768 --pass-sizes 1024x1536 --repeats 2 --warmup 1}
  DRIFT_ARGS=${DRIFT_ARGS:---layers 8 --sizes 256x384,512x768}
fi
started=$(date +%s)
left() { echo $((BUDGET_S - ($(date +%s) - started))); }
note() { echo "[$(($(date +%s) - started)) s] $*" | tee -a "$OUT/timeline.txt"; }
# run LABEL MAX_S RESERVE_S CMD...: at most MAX_S, leaving RESERVE_S for the parts after it; skipped if < 20 s
run() {
  local label=$1 most=$2 reserve=$3; shift 3
  local limit=$(( $(left) - reserve ))
  [ "$limit" -gt "$most" ] && limit=$most
  if [ "$limit" -lt 20 ]; then note "$label: skipped (${limit} s left for it)"; return; fi
  note "$label (limit ${limit} s): $*"
  PYTHONPATH=src:$SITE timeout "$limit" "$PYTHON" "$@" > "$OUT/$label.log" 2>&1
  local rc=$?
  note "$label done (exit $rc): $(grep -E '^# ' "$OUT/$label.log" | tail -1)"
}

note "start: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -1)"
note "python $("$PYTHON" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__)' 2>&1)"
mkdir -p "$SITE"
for wheel in "$WHEELS"/*.whl; do
  [ -e "$wheel" ] || { note "no wheels in $WHEELS (bash benchmarks/fetch_wheels_fast.sh)"; break; }
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$wheel" \
    >>"$OUT/install.log" 2>&1 || note "not installed (see install.log): $wheel"
done
note "installed: $(ls "$SITE" 2>/dev/null | grep -c dist-info) packages in $SITE"
rm -rf "$CACHE"

if [ -n "$TINY" ]; then scale=10; else scale=1; fi  # a part's longest time; the reserves for later parts stay
run first_call_cold $((220 * scale)) 320 benchmarks/first_call.py $FIRST_ARGS --cache-dir "$CACHE" \
  --label cold --json "$OUT/first_call_cold.json"
run first_call_warm $((120 * scale)) 290 benchmarks/first_call.py $FIRST_ARGS --cache-dir "$CACHE" \
  --label warm --json "$OUT/first_call_warm.json"
[ -n "${SKIP_ATTN:-}" ] || run fp8_attention 60 240 benchmarks/fp8_attention.py $ATTN_ARGS --json "$OUT/fp8_attention.json"
run transformer_step $((330 * scale)) 60 benchmarks/transformer_step.py $STEP_ARGS \
  --json "$OUT/transformer_step.json"
run compile_drift $((120 * scale)) 5 benchmarks/compile_drift.py $DRIFT_ARGS --json "$OUT/compile_drift.json"
if [ "$(left)" -gt 60 ]; then
  rm -rf "$CACHE/inductor"
  run first_call_bundles $((120 * scale)) 5 benchmarks/first_call.py $FIRST_ARGS --cache-dir "$CACHE" \
    --label bundles-only --json "$OUT/first_call_bundles.json"
fi
du -sh "$CACHE" 2>/dev/null | tee -a "$OUT/timeline.txt"

"$PYTHON" benchmarks/summarize_fast.py "$OUT" > "$OUT/summary.md" 2>&1
note "summary written"
cat "$OUT/summary.md"
