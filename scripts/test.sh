#!/usr/bin/env bash
# One command for the test suite: installs if needed, then runs pytest (CPU, a few minutes).
# Two pytest workers by default (PYTEST_WORKERS=N to change, 0 for one process); a test file's tests
# stay on one worker, so module-wide fixtures (servers, torchrun runs) are made once.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
workers="${PYTEST_WORKERS:-2}"
if [ "$workers" = "0" ]; then
  exec .venv/bin/python -m pytest "$@"
fi
exec .venv/bin/python -m pytest -n "$workers" --dist loadfile "$@"
