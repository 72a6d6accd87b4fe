"""The optimised guided step (shared STG prefix, stacked passes) equals the plain one."""

from __future__ import annotations

import pytest
import torch
from ltx_core.components.guiders import MultiModalGuiderParams, create_multimodal_guider_factory
from ltx_core.components.noisers import GaussianNoiser

from ltx_pipelines.engine.guidance import MultiModalGuidedDenoiser
from ltx_pipelines.engine.model_ledger import ModelLedger
from ltx_pipelines.engine.prompts import encode_prompts
from ltx_pipelines.engine.stages import VideoGeometry, audio_latent_tools, prepare_state, video_latent_tools
from ltx_pipelines.utils.constants import DEFAULT_AUDIO_GUIDER_PARAMS, DEFAULT_VIDEO_GUIDER_PARAMS


@pytest.fixture(scope="module")
def setup(smoke_bundle):  # noqa: ANN001, ANN201
    ledger = ModelLedger(smoke_bundle.checkpoint, smoke_bundle.gemma_root)
    positive, negative = encode_prompts(ledger, ["a red car", "blurry"])
    geometry = VideoGeometry(64, 96, 17, 24.0)
    noiser = GaussianNoiser(torch.Generator().manual_seed(0))
    fmt = ledger.latent_format
    video = prepare_state(video_latent_tools(geometry, fmt), [], noiser, 1.0, ledger.device, ledger.dtype)
    audio = prepare_state(audio_latent_tools(geometry, fmt), [], noiser, 1.0, ledger.device, ledger.dtype)
    return ledger.get("transformer"), positive, negative, video, audio


def _step(setup, video_params, audio_params, step=0, **options):  # noqa: ANN001, ANN003, ANN202
    transformer, positive, negative, video, audio = setup
    denoiser = MultiModalGuidedDenoiser(
        transformer, positive, negative,
        create_multimodal_guider_factory(video_params), create_multimodal_guider_factory(audio_params), **options,
    )  # fmt: skip
    with torch.inference_mode():
        return denoiser(video, audio, torch.tensor([0.8, 0.4, 0.0]), step)


def test_shared_stg_prefix_is_bit_exact(setup) -> None:  # noqa: ANN001
    plain = _step(setup, DEFAULT_VIDEO_GUIDER_PARAMS, DEFAULT_AUDIO_GUIDER_PARAMS, batch_passes=False, share_stg_prefix=False)
    shared = _step(setup, DEFAULT_VIDEO_GUIDER_PARAMS, DEFAULT_AUDIO_GUIDER_PARAMS, batch_passes=False, share_stg_prefix=True)
    assert torch.equal(plain[0], shared[0]) and torch.equal(plain[1], shared[1])


def test_stacked_passes_match_sequential_ones(setup) -> None:  # noqa: ANN001
    plain = _step(setup, DEFAULT_VIDEO_GUIDER_PARAMS, DEFAULT_AUDIO_GUIDER_PARAMS, batch_passes=False, share_stg_prefix=False)
    batched = _step(setup, DEFAULT_VIDEO_GUIDER_PARAMS, DEFAULT_AUDIO_GUIDER_PARAMS, batch_passes=True, share_stg_prefix=True)
    for a, b in zip(plain, batched, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_each_guidance_term_changes_the_prediction(setup) -> None:  # noqa: ANN001
    none = MultiModalGuiderParams(cfg_scale=1.0, stg_scale=0.0, modality_scale=1.0, rescale_scale=0.0, stg_blocks=[])
    base = _step(setup, none, none)
    for term in ({"cfg_scale": 3.0}, {"stg_scale": 1.0, "stg_blocks": [29]}, {"modality_scale": 3.0}):
        params = MultiModalGuiderParams(**{**none.__dict__, **term})
        guided = _step(setup, params, none)
        assert not torch.equal(guided[0], base[0]), term
        torch.testing.assert_close(guided[1], base[1])  # the audio guider asked for nothing


def test_skip_step_leaves_the_conditional_prediction(setup) -> None:  # noqa: ANN001
    from dataclasses import replace

    none = MultiModalGuiderParams(cfg_scale=1.0, stg_scale=0.0, modality_scale=1.0, rescale_scale=0.0, stg_blocks=[])
    skipping = replace(DEFAULT_VIDEO_GUIDER_PARAMS, skip_step=1)
    guided_step = _step(setup, skipping, none, step=0)
    skipped_step = _step(setup, skipping, none, step=1)
    unguided_step = _step(setup, none, none, step=1)
    assert not torch.equal(guided_step[0], _step(setup, none, none, step=0)[0])
    torch.testing.assert_close(skipped_step[0], unguided_step[0])
