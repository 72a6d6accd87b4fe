"""Distributed VAE decode: tiles on different ranks, blended on rank 0, equal to the single-process tiled decode."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def report(smoke_bundle, torchrun, tmp_path_factory) -> dict:  # noqa: ANN001
    out = tmp_path_factory.mktemp("decode") / "report.json"
    done = torchrun(2, "tests/parallel/decode_check.py", smoke_bundle.root, out)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(out.read_text())


def test_every_decoder_and_tiling_gives_the_single_process_frames(report) -> None:  # noqa: ANN001
    assert len(report) == 9
    for case, result in report.items():
        assert result["exact"], case  # bit for bit, on both ranks
        assert result["frames"] == [17, 128, 128, 3], case
        assert result["generator_state"][0], case  # rank 0's generator ends where one process leaves it


def test_tiles_are_split_when_every_rank_can_replay_the_noise(report) -> None:  # noqa: ANN001
    assert report["smoke / spatial+temporal"]["tiles"] == 18
    for decoder in ("smoke", "timestep noise"):
        for tiling in ("spatial+temporal", "temporal"):
            case = report[f"{decoder} / {tiling}"]
            assert case["split"] and all(case["generator_state"]), (decoder, tiling)
        assert not report[f"{decoder} / none"]["split"]  # one tile: rank 0 decodes
    assert report["timestep noise / spatial+temporal"]["seed_matters"]  # the replayed noise is real
    assert not report["smoke / spatial+temporal"]["seed_matters"]
    # Noise injected inside the blocks cannot be replayed tile by tile: rank 0 decodes alone.
    assert not any(report[f"block noise / {tiling}"]["split"] for tiling in ("spatial+temporal", "temporal"))
    assert report["block noise / temporal"]["seed_matters"]


@pytest.fixture(scope="module")
def diffusion_report(torchrun, tmp_path_factory) -> dict:  # noqa: ANN001
    out = tmp_path_factory.mktemp("diffusion_decode") / "report.json"
    done = torchrun(2, "tests/parallel/diffusion_decode_check.py", out, timeout=400)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(out.read_text())


def test_the_diffusion_decoder_splits_its_tiles_and_gives_the_single_process_frames(diffusion_report) -> None:  # noqa: ANN001
    """LTX-2.5's diffusion decoder on 2 ranks: float chunks and uint8 frames equal to one process's, bit for bit."""
    assert len(diffusion_report) == 5
    for case, result in diffusion_report.items():
        assert result["exact"], case
        assert result["shape"][-2:] == [128, 160] or result["shape"][-3:-1] == [128, 160], case
        assert result["generator_state"][0], case  # rank 0's generator ends where one process leaves it
        if case != "uint8 / no tiling":
            assert result["split"] and all(result["generator_state"]), case  # every rank drew the same noise
    assert [r["tiles"] for r in diffusion_report.values()] == [8, 3, 5, 3, 1]
    assert not diffusion_report["uint8 / no tiling"]["split"]  # one tile: rank 0 decodes alone
