#!/usr/bin/env bash
# LTX-2.5's diffusion video decoder on one GPU in one command (BUDGET_S caps it; default 520 s, inside the device's
# 600 s per command and the 9-minute target), logs and JSON under $OUT (timeline.txt, install.log, diffvae.log,
# diffvae.json): ours per attention path (flex = FlexAttention, natten where it imports, blocked = the masked PyTorch
# path, on the first size only), ours compiled, the reference 1.2.0's best Hopper mode (combined_compile where natten
# imports, else chunked_compile, which then runs the reference's Triton/eager fallback uncompiled), ours under 16
# and 6 GiB caps with the pre-flight's tile choice (estimated_gib beside peak_gib: the calibration of
# diffusion_tiling's constants); 1536x1024x121 first, then 3840x2176x121 while time lasts.
#
# The reference needs only its ltx_core 1.2.0 (pure Python); it goes to $REF_SITE alone. Our decoder imports no
# ltx_core, so both run in one process with PYTHONPATH=src:$REF_SITE. Carry that one wheel (all of .whl25 with the
# tree is over the device's 64 MiB): bash benchmarks/fetch_wheels_25.sh && mkdir -p .whldiff/ref &&
# ln -f .whl25/ref/ltx_core-1.2.0-*.whl .whldiff/ref/   then carry [".whldiff"]. Runs so far: benchmarks/RESULTS.md.
# CPU self-check of the benchmark itself (tiny decoder; ours vs the reference's decode to 2e-6; ~9 min on 2 busy
# cores, most of it compiling): /work/refenv/venv/bin/python benchmarks/diffusion_decoder.py --tiny
#
# Where our time goes: BENCH_ARGS="--sizes 1536x1024x121 --attention flex --no-compile --caps= --profile" times
# ours (flex) and the reference at the default size only, and after ours' case profiles one decode per stage
# (cuda-synchronised wall times and TFLOP/s per stage) and one under torch.profiler (top 30 kernels, time per
# category): {"profile": ...} lines in diffvae.log, "profile" in diffvae.json (benchmarks/decoder_profile.py).
#
# Knobs (environment): BUDGET_S, BENCH_ARGS, PYTHON (python3), REF_SITE (/tmp/refcore), WHEELS (.whldiff),
# LAYOUT_ARGS (set: benchmarks/na_layouts.py runs first with them, e.g. "--layouts 2 --no-compiled-block", ~60 s;
# its two files join the four of this script under $OUT, within the 8 a device call returns).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/ltx-bench-diffvae}
mkdir -p "$OUT"
BUDGET_S=${BUDGET_S:-520}
PYTHON=${PYTHON:-python3}
REF_SITE=${REF_SITE:-/tmp/refcore}
WHEELS=${WHEELS:-.whldiff}
BENCH_ARGS=${BENCH_ARGS:-}
LAYOUT_ARGS=${LAYOUT_ARGS:-}
export PYTHONUNBUFFERED=1
started=$(date +%s)
note() { echo "[$(($(date +%s) - started)) s] $*" | tee -a "$OUT/timeline.txt"; }

note "start: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -1)"
wheel=$(ls "$WHEELS"/ref/ltx_core-1.2.0-*.whl 2>/dev/null | head -1)
if [ -n "$wheel" ]; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$REF_SITE" \
    "$wheel" >>"$OUT/install.log" 2>&1 && note "installed $wheel" || note "not installed (see install.log): $wheel"
else
  note "no $WHEELS/ref/ltx_core-1.2.0 wheel: the reference is skipped (bash benchmarks/fetch_wheels_25.sh)"
fi
if [ -n "$LAYOUT_ARGS" ]; then  # first, at most 150 s: the attention layouts and a stage-5 block's split
  note "na_layouts.py (limit 150 s) $LAYOUT_ARGS"
  PYTHONPATH=src timeout 150 "$PYTHON" benchmarks/na_layouts.py --json "$OUT/na_layouts.json" $LAYOUT_ARGS \
    > "$OUT/na_layouts.log" 2>&1
  note "na_layouts done (exit $?): $(tail -1 "$OUT/na_layouts.log")"
fi
limit=$(( BUDGET_S - ($(date +%s) - started) - 10 ))
note "diffusion_decoder.py (limit ${limit} s) $BENCH_ARGS"
PYTHONPATH=src:$REF_SITE timeout "$limit" "$PYTHON" benchmarks/diffusion_decoder.py --reference-path "$REF_SITE" \
  --budget $(( limit - 30 )) --json "$OUT/diffvae.json" $BENCH_ARGS 2>&1 | tee "$OUT/diffvae.log"
note "done (exit ${PIPESTATUS[0]})"
