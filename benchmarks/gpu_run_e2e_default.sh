#!/usr/bin/env bash
# Issue 23 ("fast by default"): the package's DEFAULT path end to end (no flags: compile=None, which on CUDA
# compiles the passes of >= COMPILE_MIN_VIDEO_TOKENS video tokens) on one GPU, in one device command (BUDGET_S,
# default 560 s inside the device's 600 s per command). Results under $OUT: timeline.txt, install.log,
# e2e_defaultN.log / e2e_defaultN.json (one per two_stage_e2e.py process, the JSON rewritten after every run) and
# summary.md (benchmarks/summarize_e2e_default.py: each row against its target).
#   0. install the carried wheels ($WHEELS, default .whl25e2e/) into $SITE (skipped when a rerun on the same warm
#      machine finds them there);
#   1. one benchmarks/two_stage_e2e.py process for every run (one random 19B model built once, shared by all), in
#      order of importance, so that the budget cuts the tail:
#        768x512:distilled-bf16-default   distilled 768x512x121, no flags          target <= 3.0 s
#        768x512:distilled-fp8-default    the same, --quantization fp8-scaled-mm   target <= 2.5 s
#        1536x1024x40:bf16-default        two-stage 1536x1024x121, 40 steps        target <= 55 s
#        768x512x30:fp8-default           two-stage 768x512x121, 30 steps, FP8     target <= 6 s
#        1536x1024x40:fp8-default         two-stage 1536x1024x121, 40 steps, FP8   target <= 38 s
#      Each run: a warm-up generation (2 steps; the distilled one in full), which compiles what the default compiles,
#      then the measured one. Memory on an 80 GB card: bf16 model ~35 GiB, + the FP8 model without LoRA (~18 GiB,
#      made for the distilled FP8 run, kept through the bf16 two-stage run), then the LoRA-fused FP8 model made in
#      place of the bf16 one (the bf16 runs are over by then). A run that raises (out of memory, say) gets a row with
#      its error and the next runs go on (--keep-going); if the process dies (not a time-out), a second one goes on
#      with the runs after the one it died in, while time is left (it builds the model again, ~1 min).
#
# Estimated on an H100 (~350-400 s of the 560): install ~15 s; imports + random 19B model, rank-384 LoRA file, VAEs
#   ~45-60 s;
#   distilled bf16: warm-up ~35-40 s (a full run ~5 s + compiling stage 2, 6 144 tokens, ~30 s), measured ~3-4 s;
#   distilled FP8: FP8 model beside the bf16 one ~5 s, warm-up ~30-35 s (compiles the FP8 block), measured ~3 s;
#   two-stage 1536x1024x40 bf16: warm-up ~35-55 s (first LoRA swap backs the touched weights up in pinned memory;
#     stage 1's 6 144-token passes may reuse the distilled run's compiled block, stage 2's 24 576 compile ~10 s),
#     measured ~55-60 s;
#   two-stage 768x512x30 FP8: LoRA-fused FP8 in place ~5-10 s, warm-up ~10 s (stage 2, 6 144 tokens, reuses the FP8
#     code compiled for the distilled run: same shapes; on the CPU it compiled nothing), measured ~10 s (its stage 1,
#     1 536 tokens, compiled by default since 2026-12-07: 6.1 s of an 8.1 s run on an H100);
#   two-stage 1536x1024x40 FP8: warm-up ~25 s (stage 2's FP8 24 576-token compile ~11 s), measured ~40 s;
#   summary ~1 s.

# The device machine has torch 2.11 but neither ltx-core nor PyAV (mp4 writing), and transformers 5.17 /
# tokenizers 0.23 (outside our pins). Carry .whl25e2e/ (49 MiB: ltx-core 1.0.0, transformers 5.14.1, tokenizers
# 0.22.2, av 18.1.0; made by `bash benchmarks/fetch_wheels_25.sh`, then
# `mkdir -p .whl25e2e && ln -f .whl25/*.whl .whl25/ref/av-*.whl .whl25e2e/`); with the ~9 MiB tree that is ~58 of
# the 64 MiB a device call carries (.whlfast/ lacks av; .whl25/ is 58 MiB alone):
#   device run, carry [".whl25e2e"], timeout_s 600:  OUT="$OUT" bash benchmarks/gpu_run_e2e_default.sh
#
# Knobs (environment): BUDGET_S (560), PYTHON (python3), SITE (/tmp/site-e2e), WHEELS (.whl25e2e), CACHE (the
# compile cache folder, LTX_PIPELINES_COMPILE_CACHE: /tmp/ltx-compile-cache-e2e, NOT under $OUT; CLEAN_CACHE=1
# empties it first), RUNS (the run list above), E2E_ARGS (two_stage_e2e.py's other arguments), TINY=1 (CPU
# self-check: tiny models on the CPU, the same run structure at 128x128 / 256x128, the default made to compile from
# 16 video tokens so that it takes the same compiled / plain split as on the GPU). CPU self-check (ran here: 2 min
# 24 s on 2 busy cores with an empty compile cache, 46 s again with it filled):
#   TINY=1 PYTHON=/work/main/.venv/bin/python BUDGET_S=1200 SITE=/tmp/e2ed/site OUT=/tmp/e2ed/out \
#   CACHE=/tmp/e2ed/cache bash benchmarks/gpu_run_e2e_default.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/ltx-e2e-default}
mkdir -p "$OUT"
BUDGET_S=${BUDGET_S:-560}
PYTHON=${PYTHON:-python3}
SITE=${SITE:-/tmp/site-e2e}
WHEELS=${WHEELS:-.whl25e2e}
CACHE=${CACHE:-/tmp/ltx-compile-cache-e2e}
TINY=${TINY:-}
if [ -n "$TINY" ]; then
  RUNS=${RUNS:-128x128:distilled-bf16-default,128x128:distilled-fp8-default,256x128x3:bf16-default,128x128x3:fp8-default,256x128x3:fp8-default}
  E2E_ARGS=${E2E_ARGS:---tiny --device cpu --default-compiles-from 16}
else
  RUNS=${RUNS:-768x512:distilled-bf16-default,768x512:distilled-fp8-default,1536x1024x40:bf16-default,768x512x30:fp8-default,1536x1024x40:fp8-default}
  E2E_ARGS=${E2E_ARGS:-}
fi
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 LTX_PIPELINES_COMPILE_CACHE=$CACHE
unset TORCHINDUCTOR_CACHE_DIR TRITON_CACHE_DIR  # everything compiled goes to $CACHE
started=$(date +%s)
left() { echo $((BUDGET_S - ($(date +%s) - started))); }
note() { echo "[$(($(date +%s) - started)) s] $*" | tee -a "$OUT/timeline.txt"; }

note "start: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -1)"
note "python $("$PYTHON" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__)' 2>&1)"
if [ ! -f "$SITE/.installed" ]; then
  mkdir -p "$SITE"
  ok=1
  for wheel in "$WHEELS"/*.whl; do
    [ -e "$wheel" ] || { note "no wheels in $WHEELS (see this script's header)"; ok=; break; }
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
      "$wheel" >>"$OUT/install.log" 2>&1 || { note "not installed (see install.log): $wheel"; ok=; }
  done
  [ -n "$ok" ] && touch "$SITE/.installed"
fi
note "installed: $(ls "$SITE" 2>/dev/null | grep -c dist-info) packages in $SITE"
[ -n "${CLEAN_CACHE:-}" ] && rm -rf "$CACHE"
note "compile cache $CACHE: $(du -sh "$CACHE" 2>/dev/null | cut -f1) before"

remaining=$RUNS
for attempt in 1 2; do  # at most 2 processes: $OUT then holds 7 files (the device returns 8)
  [ -n "$remaining" ] || break
  limit=$(( $(left) - 10 ))
  if [ "$limit" -lt 60 ]; then note "not run (${limit} s left): $remaining"; break; fi
  name=e2e_default$attempt
  note "two_stage_e2e.py, process $attempt (limit ${limit} s): $remaining"
  rm -f "$OUT/$name.json"
  PYTHONPATH=src:$SITE timeout "$limit" "$PYTHON" benchmarks/two_stage_e2e.py $E2E_ARGS --keep-going \
    --runs "$remaining" --json "$OUT/$name.json" > "$OUT/$name.log" 2>&1
  rc=$?
  grep -E '^# (built|FP8)' "$OUT/$name.log" | while read -r line; do note "  $line"; done
  # one line per finished run, then what is left (REMAINING=): after a crash, not a time-out, the first unfinished
  # run is the one that broke the process, and is left out
  report=$("$PYTHON" - "$remaining" "$OUT/$name.json" "$rc" <<'EOF'
import json, sys
runs, path, rc = sys.argv[1].split(","), sys.argv[2], int(sys.argv[3])
try:
    rows = json.load(open(path))["rows"]
except (OSError, ValueError):
    rows = []
for r in rows:
    if "error" in r:
        print(f"  {r['run']}: failed: {r['error'][:200]}")
    else:
        print(f"  {r['run']}: {r['total_s']} s (warm-up {r['warmup_run_s']} s, compiled {r['compile_s']} s; "
              f"{r.get('passes')})")
todo = [run for run in runs if run not in {r["run"] for r in rows}]
if todo and rc not in (0, 124):
    print(f"  {todo[0]}: broke the process (exit {rc}), left out")
    todo = todo[1:]
print("REMAINING=" + (",".join(todo) if rc != 124 else ""))
EOF
  )
  printf '%s\n' "$report" | grep -v '^REMAINING=' | while read -r line; do note "$line"; done
  note "process $attempt exit $rc"
  if [ "$rc" -ne 0 ]; then tail -5 "$OUT/$name.log" | cut -c1-300 | while read -r line; do note "  | $line"; done; fi
  [ "$rc" -eq 124 ] && { note "time limit: the remaining runs are cut"; break; }
  remaining=$(printf '%s\n' "$report" | sed -n 's/^REMAINING=//p' | tail -1)
done
note "compile cache $CACHE: $(du -sh "$CACHE" 2>/dev/null | cut -f1) after"

"$PYTHON" benchmarks/summarize_e2e_default.py "$OUT" > "$OUT/summary.md" 2>&1
note "summary written"
cat "$OUT/summary.md"
