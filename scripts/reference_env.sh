#!/usr/bin/env bash
# reference_env.sh -- build a stand-alone Python environment holding the upstream LTX-2
# reference code (ltx-core + ltx-pipelines), for producing golden outputs to compare against.
#
# Usage: bash scripts/reference_env.sh SNAPSHOT_GIT_DIR ENV_DIR
#
#   SNAPSHOT_GIT_DIR  a (bare) git repository of the upstream LTX-2 sources; its HEAD is used.
#   ENV_DIR           where everything goes; created if missing. Apart from pip's download cache,
#                     nothing outside it is written.
#
# What it does:
#   1. Exports packages/ltx-core and packages/ltx-pipelines from the snapshot's HEAD into
#      ENV_DIR/src (re-exported only when the snapshot's HEAD commit changed).
#   2. Creates ENV_DIR/venv with python3.11 (override with PYTHON=...), separate from the
#      project's own .venv, which this script never touches.
#   3. Installs, in one resolver run: torch 2.11.0 and torchaudio 2.11.0 (the registry's default
#      Linux wheels, the same ones the project's .venv uses; they also run on CPU-only machines),
#      torchvision 0.26.0 (torch 2.11's partner; not declared by the reference, but transformers'
#      Gemma 4 processor classes import it, and the reference builds that processor whenever it
#      loads a Gemma 4 text encoder), transformers 5.14.1 (the newest release the reference's
#      "<5.15" bound allows), and the two exported packages as ordinary (non-editable) installs.
#      Their build backend, uv_build, is a plain wheel that pip fetches into its isolated build
#      environment by itself.
#   4. Writes `pip freeze` of the environment, headed by the snapshot commit and the pins above,
#      to ENV_DIR/versions.txt.
#
# Re-running is safe: when versions.txt already names the same snapshot commit and pins and the
# reference packages still import, it stops early; otherwise it redoes only what is missing.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: bash $0 SNAPSHOT_GIT_DIR ENV_DIR" >&2
  exit 2
fi
SNAPSHOT="$1"
ENV_DIR="$2"
PYTHON="${PYTHON:-python3.11}"

PINS=(torch==2.11.0 torchaudio==2.11.0 torchvision==0.26.0 transformers==5.14.1)

COMMIT="$(git -C "$SNAPSHOT" rev-parse HEAD)"
mkdir -p "$ENV_DIR"
ENV_DIR="$(cd "$ENV_DIR" && pwd)"
SRC="$ENV_DIR/src"
VENV="$ENV_DIR/venv"
VPY="$VENV/bin/python"

# Fast path: already built from this very commit and still importable.
if [ -f "$ENV_DIR/versions.txt" ] && [ -x "$VPY" ] \
  && grep -qx "# snapshot $COMMIT" "$ENV_DIR/versions.txt" \
  && grep -qx "# pins ${PINS[*]}" "$ENV_DIR/versions.txt" \
  && "$VPY" -c "import ltx_core, ltx_pipelines, torch, transformers" >/dev/null 2>&1; then
  echo "reference env at $ENV_DIR is up to date (snapshot $COMMIT)"
  exit 0
fi

# 1. Sources.
if [ ! -f "$SRC/.commit" ] || [ "$(cat "$SRC/.commit")" != "$COMMIT" ]; then
  echo "exporting ltx-core and ltx-pipelines at $COMMIT into $SRC"
  rm -rf "$SRC"
  mkdir -p "$SRC"
  git -C "$SNAPSHOT" archive "$COMMIT" packages/ltx-core packages/ltx-pipelines | tar -x -C "$SRC"
  echo "$COMMIT" > "$SRC/.commit"
fi

# 2. Virtual environment.
if [ ! -x "$VPY" ]; then
  echo "creating $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi

# 3. Packages (pip rebuilds local directories on every run, so a changed snapshot is picked up).
echo "installing ${PINS[*]} and the reference packages"
"$VPY" -m pip install --quiet \
  "${PINS[@]}" \
  "$SRC/packages/ltx-core" \
  "$SRC/packages/ltx-pipelines"
"$VPY" -c "import ltx_core, ltx_pipelines, torch, torchvision, transformers"

# 4. Record what is installed.
{
  echo "# snapshot $COMMIT"
  echo "# pins ${PINS[*]}"
  echo "# python $("$VPY" -c 'import sys; print(sys.version.split()[0])')"
  "$VPY" -m pip freeze
} > "$ENV_DIR/versions.txt"
echo "reference env ready at $ENV_DIR; versions in $ENV_DIR/versions.txt"
