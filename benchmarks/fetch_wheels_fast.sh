#!/usr/bin/env bash
# Wheels that benchmarks/gpu_run_fast.sh installs on the GPU machine (Python 3.12, torch 2.11.0+cu130, no package
# index), into the ignored folder .whlfast/ (carried: `carry` [".whlfast"]; at most 64 MiB of working tree + carried
# paths go to the device):
#   ltx-core 1.0.0 (our pin), transformers 5.14.1 and tokenizers 0.22.2 (our pins: the machine's transformers 5.17 /
#   tokenizers 0.23.2 do not fit them) and sageattention 1.0.6 (the 8-bit attention of --attention 8bit: Triton
#   kernels only, 20 KB).
# Not carried, and why (checked with `pip download --no-deps` for Python 3.12 / manylinux_2_28_x86_64):
#   flashinfer-python 0.7.4: a 101 MB wheel (over the 64 MiB the device call carries; its kernels also compile
#     with nvcc on first use, and flashinfer-cubin, the prebuilt kernels, is 458 MB);
#   flash-attn-4 4.0.0b40 (0.6 MB, pre-release) runs FP8 on compute capability 10.x only ("FP8 is only supported on
#     SM100"): on an H100 it would be bf16 FlashAttention again, and it needs nvidia-cutlass-dsl's libraries.
#
#   bash benchmarks/fetch_wheels_fast.sh          # a few seconds; ~15 MiB
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${DEST:-.whlfast}
PIP=${PIP:-python3 -m pip}
PLATFORM=(--python-version 3.12 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 --only-binary=:all:)
rm -rf "$DEST"
mkdir -p "$DEST"
$PIP download -q --no-deps -d "$DEST" "${PLATFORM[@]}" ltx-core==1.0.0 transformers==5.14.1 tokenizers==0.22.2 \
  sageattention==1.0.6
ls -la "$DEST"
du -sh "$DEST"
