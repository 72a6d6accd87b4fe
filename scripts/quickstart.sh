#!/usr/bin/env bash
# One command for a new machine: install, build the smoke model, generate a short clip with it.
# The smoke model has RANDOM weights: the clip is noise and only proves the install works.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
SMOKE=.smoke/bundle
.venv/bin/python -c "from ltx_pipelines.smoke_model import ensure_smoke_bundle; ensure_smoke_bundle('$SMOKE')"
mkdir -p outputs
OUT="${1:-outputs/smoke_two_stages.mp4}"
.venv/bin/python -m ltx_pipelines.ti2vid_two_stages \
  --checkpoint-path "$SMOKE/ltx-2-smoke-dev.safetensors" \
  --distilled-lora "$SMOKE/ltx-2-smoke-distilled-lora.safetensors" 0.8 \
  --spatial-upsampler-path "$SMOKE/ltx-2-smoke-spatial-upscaler-x2.safetensors" \
  --gemma-root "$SMOKE/gemma" \
  --prompt "A beautiful sunset over the ocean" \
  --height 256 --width 384 --num-frames 33 --num-inference-steps 8 \
  --output-path "$OUT" --overwrite
echo "Wrote $OUT (smoke model: random weights, so the video is noise; the install works)."
