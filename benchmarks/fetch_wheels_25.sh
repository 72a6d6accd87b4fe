#!/usr/bin/env bash
# Wheels that benchmarks/gpu_run_25.sh installs on the GPU machine (Python 3.12, torch 2.11, no package index, its own
# transformers 5.17 / tokenizers 0.23.2, no PyAV, no OpenImageIO), into the ignored folder .whl25/ (carried: `carry`
# [".whl25"]; the device tool carries at most 64 MiB of working tree + carried paths).
#
#   .whl25/       ours:          ltx-core 1.0.0 (our pin), transformers 5.14.1 (our pin: <5.15) and tokenizers 0.22.2
#                                (transformers 5.14.1 refuses, at import, the machine's tokenizers 0.23.2);
#   .whl25/ref/   the reference: ltx-core and ltx-pipelines 1.2.0 built as wheels from the LTX-2 snapshot
#                                (`git archive` of packages/ltx-core and packages/ltx-pipelines at tag v1.2.0, then
#                                `pip wheel --no-deps`), av 18.1.0 and openimageio 3.2.2.0 (the reference venv's
#                                versions; ltx_pipelines.utils imports both at import time, through media_io, though
#                                the transformer step never uses them). gpu_run_25.sh installs .whl25/'s transformers
#                                and tokenizers there too (1.2.0 also wants <5.15): one copy carried, not two.
#
# Not downloaded: torch / torchaudio and the pure dependencies the machine's image already holds (accelerate, scipy,
# einops, cloudpickle, numpy, safetensors, tqdm, pillow, huggingface_hub 1.33, psutil, sentencepiece, protobuf:
# the device library's KINDS.md, "Python packages already there"); EXTRA="accelerate scipy ..." adds some to .whl25/.
# Checked here: each benchmark's imports with its environment minus av and openimageio (ours needs neither; the
# reference both), and the binary wheels (av, openimageio, tokenizers) imported under Python 3.12.1.
#
#   bash benchmarks/fetch_wheels_25.sh          # ~10 s; ~57 MiB (av 34 MiB, transformers 11, openimageio 8)
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${DEST:-.whl25}
REF_GIT=${REF_GIT:-/work/.mirror/Lightricks+LTX-2/repo}
REF_TAG=${REF_TAG:-v1.2.0}
PIP=${PIP:-python3 -m pip}
EXTRA=${EXTRA:-}
PLATFORM=(--python-version 3.12 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 --only-binary=:all:)
SHARED=(transformers==5.14.1 tokenizers==0.22.2)

rm -rf "$DEST"
mkdir -p "$DEST/ref"
# ours
$PIP download -q --no-deps -d "$DEST" "${PLATFORM[@]}" ltx-core==1.0.0 "${SHARED[@]}" $EXTRA
# the reference: its two packages from the snapshot, built here (pure Python: py3-none-any)
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
git --git-dir "$REF_GIT" archive "$REF_TAG" packages/ltx-core packages/ltx-pipelines | tar -x -C "$src"
$PIP wheel -q --no-deps -w "$DEST/ref" "$src/packages/ltx-core" "$src/packages/ltx-pipelines"
$PIP download -q --no-deps -d "$DEST/ref" "${PLATFORM[@]}" av==18.1.0 openimageio==3.2.2.0
ls -la "$DEST" "$DEST/ref"
du -sh "$DEST" "$DEST/ref"
