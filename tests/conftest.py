"""Shared fixtures: the smoke bundles (built once per session) and small helpers.

Set LTX_SMOKE_BUNDLE=/some/dir (LTX-2), LTX23_SMOKE_BUNDLE=/some/dir (LTX-2.3), LTX25_SMOKE_BUNDLE=/some/dir
(LTX-2.5) or LTX25_REAL_SMOKE_BUNDLE=/some/dir (LTX-2.5 with the real channel counts) to reuse a bundle between runs.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

# Before torch loads MKL: float32 matmuls whose last bit does not depend on the buffers' memory alignment (MKL's
# default picks kernels by alignment), so golden comparisons can be exact (tests/golden/make_ltx25_pipeline_goldens.py
# runs the reference under the same setting).
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

import numpy as np
import pytest
import torch
from ltx_core.loader import SingleGPUModelBuilder
from PIL import Image

from ltx_pipelines.smoke_model import REAL_CHANNEL_SIZES, SmokeBundle, ensure_smoke_bundle
from ltx_pipelines.smoke_model.ltx25 import Ltx25SmokeBundle, ensure_ltx25_smoke_bundle

REPO = Path(__file__).resolve().parents[1]

# The smoke model's tensors are tiny: thread start-up costs more than it saves (measured up to
# 20x slower per step with two threads on a loaded 2-core machine).
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def compile_cache_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tests that compile keep their artefacts in a temporary folder, not the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("compile-cache")
    previous = os.environ.get("LTX_PIPELINES_COMPILE_CACHE")
    os.environ["LTX_PIPELINES_COMPILE_CACHE"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("LTX_PIPELINES_COMPILE_CACHE", None)
    else:
        os.environ["LTX_PIPELINES_COMPILE_CACHE"] = previous


@pytest.fixture(scope="session")
def smoke_bundle(tmp_path_factory: pytest.TempPathFactory) -> SmokeBundle:
    root = os.environ.get("LTX_SMOKE_BUNDLE")
    return ensure_smoke_bundle(Path(root) if root else tmp_path_factory.mktemp("smoke") / "bundle")


@pytest.fixture(scope="session")
def ltx23_bundle(tmp_path_factory: pytest.TempPathFactory) -> SmokeBundle:
    """The smoke bundle in LTX-2.3's layout (monolithic checkpoint with 2.3's switches, Gemma-3 folder)."""
    root = os.environ.get("LTX23_SMOKE_BUNDLE")
    folder = Path(root) if root else tmp_path_factory.mktemp("smoke23") / "ltx-2.3"
    return ensure_smoke_bundle(folder, model_version="2.3.0")


@pytest.fixture(scope="session")
def ltx25_bundle(tmp_path_factory: pytest.TempPathFactory) -> Ltx25SmokeBundle:
    """The LTX-2.5 smoke bundle: one file per component, in the download's folders."""
    root = os.environ.get("LTX25_SMOKE_BUNDLE")
    return ensure_ltx25_smoke_bundle(Path(root) if root else tmp_path_factory.mktemp("smoke25") / "ltx-2.5")


@pytest.fixture(scope="session")
def ltx25_real_bundle(tmp_path_factory: pytest.TempPathFactory) -> Ltx25SmokeBundle:
    """The LTX-2.5 bundle with the real latent channel counts (4 blocks): the reference's pipelines need them."""
    root = os.environ.get("LTX25_REAL_SMOKE_BUNDLE")
    folder = Path(root) if root else tmp_path_factory.mktemp("smoke25-real") / "ltx-2.5-real"
    return ensure_ltx25_smoke_bundle(folder, sizes=REAL_CHANNEL_SIZES)


@pytest.fixture(scope="session")
def dense_gemma4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random dense Gemma 4 instruct folder (a prompt enhancer; see helpers.write_dense_gemma4)."""
    from helpers import write_dense_gemma4

    return write_dense_gemma4(tmp_path_factory.mktemp("gemma4") / "gemma-4-tiny-it")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one thread is fastest, and avoids OpenMP spin-waits when other jobs share the cores.

    Modules use it for all their tests with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def cli_env(monkeypatch):
    """The same for `python -m` subprocesses (run_module passes os.environ on)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.fixture
def no_model_builds(monkeypatch, caplog):
    """Fail the test if any model is built; capture the log to check no 'Loaded' line appears."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was built before the input was checked")

    monkeypatch.setattr(SingleGPUModelBuilder, "build", refuse)
    caplog.set_level(logging.INFO)
    yield caplog
    assert not [r for r in caplog.records if r.getMessage().startswith("Loaded")]


@pytest.fixture
def make_image(tmp_path: Path):
    """Write a test picture (a colour gradient with a bright square) and return its path."""

    def make(name: str = "image.png", size: tuple[int, int] = (96, 80), seed: int = 0) -> Path:
        rng = np.random.default_rng(seed)
        w, h = size
        pixels = np.zeros((h, w, 3), dtype=np.uint8)
        pixels[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
        pixels[..., 1] = np.linspace(255, 0, h, dtype=np.uint8)[:, None]
        pixels[..., 2] = rng.integers(0, 255)
        pixels[h // 4 : h // 2, w // 4 : w // 2] = 255
        path = tmp_path / name
        Image.fromarray(pixels).save(path)
        return path

    return make


def run_module(module: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m module args...` the way a user would; returns the finished process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO,
    )
