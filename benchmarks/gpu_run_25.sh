#!/usr/bin/env bash
# The LTX-2.5 transformer benchmark in one GPU command (~8 minutes on an H100/H200; BUDGET_S caps it at 560 s), logs
# and JSON under $OUT (7 files: timeline.txt, install.log, reference.log, reference.jsonl, transformer_step.log,
# transformer_step.json, summary.md):
#   0. install the carried wheels (~15 s);
#   1. the reference 1.2.0 with its own --compile (benchmarks/reference_step_1_2.py): guided step at 512x768x121,
#      one pass at 512x768x121 and 1024x1536x121 (expected ~3-4 min: four block graphs compiled at ~20-40 s each --
#      clean, STG block, modality-isolated, single pass -- then a few seconds of timing; limit REF_LIMIT_S);
#   2. ours (benchmarks/transformer_step.py --model-version 2.5 --fp8): plain, optimised, compiled, FP8 optimised,
#      FP8 compiled; guided step at 512x768, passes at 512x768 and 1024x1536 (expected ~3.5-4 min, as the 19B's
#      ~3 min on an H200 plus the 2.5 block; gets all the time the reference leaves);
# then benchmarks/summarize_25.py writes $OUT/summary.md (one table, reference vs ours, all from this run).
# Full-size LTX-2.5 transformer (the reference configurator's default sizes + 2.5's switches), random bf16 weights.
#
# Needs the carried wheels in .whl25/ (bash benchmarks/fetch_wheels_25.sh; carry [".whl25"]): ours go to $SITE
# (/tmp/site), the reference's (also named ltx_pipelines) to $REF_SITE (/tmp/ref) with .whl25/'s transformers and
# tokenizers; each side runs with only its own folder on PYTHONPATH.
#
# Knobs (environment): BUDGET_S (560: the whole script, inside the device's 600 s per command), REF_ARGS, STEP_ARGS,
# REF_LIMIT_S (260: the reference's most), PYTHON (python3), REF_PYTHON ($PYTHON), SITE, REF_SITE, WHEELS (.whl25),
# BENCH_DEVICE (cuda). Each part's time limit comes from what is left; ours gets whatever the reference leaves.
# CPU self-check of this script (tiny models; ran here: 3.5 minutes on 2 busy cores with a warm inductor cache, ~10
# cold; the openimageio wheel is cp312 only, so on Python 3.11 it does not install and the reference venv's is used):
#   PYTHON=/work/main/.venv/bin/python REF_PYTHON=/work/refenv/venv/bin/python BENCH_DEVICE=cpu BUDGET_S=3600 \
#   REF_LIMIT_S=1500 REF_ARGS="--tiny --device cpu" STEP_ARGS="--tiny --device cpu --fp8 --compile-backend aot_eager" \
#   SITE=/tmp/b25/site REF_SITE=/tmp/b25/ref OUT=/tmp/b25/out bash benchmarks/gpu_run_25.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/ltx-bench-25}
mkdir -p "$OUT"
BUDGET_S=${BUDGET_S:-560}
REF_LIMIT_S=${REF_LIMIT_S:-260}
REF_ARGS=${REF_ARGS:---step-shapes 512x768x121 --pass-shapes 1024x1536x121 --repeats 3}
STEP_ARGS=${STEP_ARGS:---fp8 --sizes 512x768 --pass-sizes 1024x1536 --repeats 2 --warmup 1}
PYTHON=${PYTHON:-python3}
REF_PYTHON=${REF_PYTHON:-$PYTHON}
SITE=${SITE:-/tmp/site}
REF_SITE=${REF_SITE:-/tmp/ref}
WHEELS=${WHEELS:-.whl25}
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 BENCH_DEVICE=${BENCH_DEVICE:-cuda}
started=$(date +%s)
left() { echo $((BUDGET_S - ($(date +%s) - started))); }
note() { echo "[$(($(date +%s) - started)) s] $*" | tee -a "$OUT/timeline.txt"; }

note "start: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -1)"
note "python $("$PYTHON" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__)' 2>&1)"
# one wheel at a time: a wheel this Python cannot take (a cp312 one on a 3.11 self-check) is named and skipped,
# and the environment's own copy, if any, is used
install() {
  local python=$1 target=$2; shift 2
  mkdir -p "$target"
  for wheel in "$@"; do
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$target" \
      "$wheel" >>"$OUT/install.log" 2>&1 || note "not installed (see install.log): $wheel"
  done
}
ls "$WHEELS"/*.whl "$WHEELS"/ref/*.whl >/dev/null || { note "no wheels in $WHEELS (bash benchmarks/fetch_wheels_25.sh)"; exit 1; }
install "$PYTHON" "$SITE" "$WHEELS"/*.whl
install "$REF_PYTHON" "$REF_SITE" "$WHEELS"/ref/*.whl $(ls "$WHEELS"/*.whl | grep -E '/(transformers|tokenizers)-')
note "installed the carried wheels ($(du -sh "$SITE" "$REF_SITE" | awk '{print $1}' | paste -sd/))"

limit=$(( $(left) - 200 < REF_LIMIT_S ? $(left) - 200 : REF_LIMIT_S ))
note "reference_step_1_2.py $REF_ARGS (limit ${limit} s)"
PYTHONPATH=$REF_SITE timeout "$limit" "$REF_PYTHON" benchmarks/reference_step_1_2.py $REF_ARGS 2>&1 \
  | tee "$OUT/reference.log"
note "reference done (exit ${PIPESTATUS[0]})"
grep -E '^\{.*\}$' "$OUT/reference.log" > "$OUT/reference.jsonl"

limit=$(( $(left) - 10 ))
note "transformer_step.py --model-version 2.5 $STEP_ARGS (limit ${limit} s)"
PYTHONPATH=src:$SITE timeout "$limit" "$PYTHON" benchmarks/transformer_step.py --model-version 2.5 $STEP_ARGS \
  --json "$OUT/transformer_step.json" 2>&1 | tee "$OUT/transformer_step.log"
note "transformer_step done (exit ${PIPESTATUS[0]})"

"$PYTHON" benchmarks/summarize_25.py "$OUT" > "$OUT/summary.md" 2>&1
note "summary written"
cat "$OUT/summary.md"
