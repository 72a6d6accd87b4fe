"""The package's layering (utils -> models / memory / acceleration / parallel -> engine -> pipelines -> serve).

The team's checker lives in ``shared/tools/layers.py`` beside the checkout (CI has it); it parses every
module's imports and exits 1 when one runs up a layer.
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKER = ROOT.parent / "shared" / "tools" / "layers.py"


@pytest.mark.skipif(not CHECKER.is_file(), reason="the team's shared/tools is not beside this checkout")
def test_no_import_runs_up_a_layer() -> None:
    run = subprocess.run([sys.executable, str(CHECKER), str(ROOT / "src" / "ltx_pipelines")],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip().endswith("0 upward imports")
