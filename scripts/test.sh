#!/usr/bin/env bash
# One command for the test suite: installs if needed, then runs pytest (CPU, a few minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
