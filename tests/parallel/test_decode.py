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


def test_the_diffusion_decoder_decodes_on_rank_0_alone() -> None:
    """LTX-2.5's diffusion decoder has no ltx-core tile list: not split across ranks (yet), never an error."""
    import torch
    from ltx_core.model.video_vae import TilingConfig

    from ltx_pipelines.models.ltx25.diffusion_decoder import DiffusionDecoderConfig, DiffusionVideoDecoder
    from ltx_pipelines.parallel.decode import splits_across_ranks

    decoder = DiffusionVideoDecoder(DiffusionDecoderConfig(stage_depths=(0, 0, 0, 0, 0)))
    assert not splits_across_ranks(decoder, torch.zeros(1, 128, 3, 8, 8), TilingConfig.default())
