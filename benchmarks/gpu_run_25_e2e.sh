#!/usr/bin/env bash
# LTX-2.5 end to end on one GPU (issue 20), in one device command: the default two-stage generation
# (1536x1024x121, 2.5's 30 steps) from a full-size random split bundle, under each GPU cap of CAPS.
#   0. install the carried wheels (ours: ltx-core 1.0.0, transformers 5.14.1, tokenizers 0.22.2, av 18.1.0);
#   1. benchmarks/ltx25_e2e.py writes the bundle (39 GiB transformer on /tmp, 24 GiB Gemma 4 on /dev/shm; a rerun on
#      the same warm machine reuses it) and runs each cap, a first and a warm run (skipped when time runs short).
# Logs and JSON under $OUT: timeline.txt, install.log, ltx25_e2e_$TAG.log (every step), ltx25_e2e_$TAG.json.
#
# Carried wheels: .whl25e2e/ (hard links to .whl25/'s ltx-core, transformers, tokenizers and .whl25/ref/'s av:
# `bash benchmarks/fetch_wheels_25.sh`, then `mkdir -p .whl25e2e && ln -f .whl25/*.whl .whl25/ref/av-*.whl .whl25e2e/`;
# carry [".whl25e2e"], 49 MiB).
#   OUT="$OUT" CAPS=none,24,16 TAG=a bash benchmarks/gpu_run_25_e2e.sh
# CPU self-check (the same script on the real-channel 2.5 sizes):
#   PYTHON=/work/main/.venv/bin/python EXTRA="--tiny --device cpu" SITE=/tmp/e2e25/site OUT=/tmp/e2e25/out \
#   WORK=/tmp/e2e25/work SHM=/tmp/e2e25/shm bash benchmarks/gpu_run_25_e2e.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/ltx25-e2e}
mkdir -p "$OUT"
BUDGET_S=${BUDGET_S:-570}
CAPS=${CAPS:-none,24,16}
TAG=${TAG:-run}
PYTHON=${PYTHON:-python3}
SITE=${SITE:-/tmp/site25}
WHEELS=${WHEELS:-.whl25e2e}
WORK=${WORK:-/tmp/ltx25}
SHM=${SHM:-/dev/shm/ltx25}
EXTRA=${EXTRA:-}
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1
started=$(date +%s)
note() { echo "[$(($(date +%s) - started)) s] $*" | tee -a "$OUT/timeline.txt"; }

note "start: $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>&1 | head -1); disk $(df -h /tmp | tail -1 | awk '{print $4}') free, shm $(df -h /dev/shm | tail -1 | awk '{print $4}') free"
if [ ! -f "$SITE/.installed" ]; then
  mkdir -p "$SITE"
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
    "$WHEELS"/*.whl >>"$OUT/install.log" 2>&1 && touch "$SITE/.installed" || note "installing $WHEELS failed (install.log)"
fi
note "wheels in $SITE; caps $CAPS"
left=$((BUDGET_S - ($(date +%s) - started)))
PYTHONPATH=src:$SITE timeout "$left" "$PYTHON" benchmarks/ltx25_e2e.py --workdir "$WORK" --te-dir "$SHM" \
  --out "$WORK-out" --caps "$CAPS" --budget "$((left - 10))" --json "$OUT/ltx25_e2e_$TAG.json" $EXTRA \
  >"$OUT/ltx25_e2e_$TAG.log" 2>&1
note "ltx25_e2e.py exit $?"
grep -E '^\[ *[0-9.]+ s\]|memory plan|Memory plan|s/step\)$|out of memory|Error|error' "$OUT/ltx25_e2e_$TAG.log" \
  | grep -vE 'step [0-9]+/[0-9]+ ' | cut -c1-600 | tail -40
grep -E 'stage [12] done' "$OUT/ltx25_e2e_$TAG.log" | tail -12
