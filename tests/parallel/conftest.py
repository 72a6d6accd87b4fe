"""Running several ranks on the CPU (gloo): torchrun subprocesses and spawned worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ltx_pipelines.smoke_model import SmokeBundle, SmokeSizes, ensure_smoke_bundle

REPO = Path(__file__).resolve().parents[2]


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    src = str(REPO / "src")
    tests = str(REPO / "tests")
    path = os.pathsep.join([src, tests, os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path, **(extra or {})}


def run_torchrun(nproc: int, *args: object, timeout: float = 240, env: dict[str, str] | None = None):
    """``torchrun --standalone --nproc-per-node nproc ARGS...``; returns the finished process."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    return subprocess.run(
        [*command, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=_env(env), cwd=REPO
    )


def run_python(*args: object, timeout: float = 240, env: dict[str, str] | None = None):
    """``python ARGS...`` in one process (the single-process reference of a torchrun run)."""
    return subprocess.run(
        [sys.executable, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=_env(env), cwd=REPO
    )


@pytest.fixture(scope="session")
def torchrun():
    """Run a command under torchrun on the CPU: ``torchrun(2, "-m", "ltx_pipelines.distilled", ...)``."""
    return run_torchrun


@pytest.fixture(scope="session")
def python():
    """Run ``python ARGS...`` as a subprocess with the repository on the path."""
    return run_python


@pytest.fixture(scope="session")
def four_head_bundle(tmp_path_factory) -> SmokeBundle:  # noqa: ANN001
    """The smoke model with 4 attention heads: 4 ranks can shard its tokens (next to LTX_SMOKE_BUNDLE if set)."""
    root = os.environ.get("LTX_SMOKE_BUNDLE")
    path = Path(f"{root}-4-heads") if root else tmp_path_factory.mktemp("smoke_4_heads") / "bundle"
    return ensure_smoke_bundle(path, sizes=SmokeSizes(attention_heads=4))


@pytest.fixture(scope="session")
def transformer_report(smoke_bundle, tmp_path_factory):  # noqa: ANN001, ANN201
    """``transformer_report(n)``: the report of ``transformer_check.py`` on ``n`` ranks (run once per n)."""
    import json

    reports: dict[int, dict] = {}

    def get(nproc: int) -> dict:
        if nproc not in reports:
            out = tmp_path_factory.mktemp(f"transformer_check_{nproc}") / "report.json"
            done = run_torchrun(nproc, REPO / "tests/parallel/transformer_check.py", smoke_bundle.root, out)
            assert done.returncode == 0, done.stderr[-4000:]
            reports[nproc] = json.loads(out.read_text())
        return reports[nproc]

    return get
