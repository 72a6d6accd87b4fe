"""The pass scheduler: every order, batching and STG-prefix choice gives the plain passes' results."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
import torch
from ltx_core.components.guiders import create_multimodal_guider_factory
from ltx_core.guidance.perturbations import BatchedPerturbationConfig

from ltx_pipelines.engine.guidance import MultiModalGuidedDenoiser
from ltx_pipelines.engine.model_ledger import ModelLedger
from ltx_pipelines.engine.prompts import encode_prompts
from ltx_pipelines.engine.stages import VideoGeometry, audio_latent_tools, prepare_state, video_latent_tools
from ltx_pipelines.models.transformer_blocks import EagerBlocks, args_tensors, compact_timesteps
from ltx_pipelines.models.transformer_passes import make_modality, run_passes
from ltx_pipelines.utils.constants import DEFAULT_AUDIO_GUIDER_PARAMS, DEFAULT_VIDEO_GUIDER_PARAMS

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup(smoke_bundle):  # noqa: ANN001, ANN201
    ledger = ModelLedger(smoke_bundle.checkpoint, smoke_bundle.gemma_root)
    positive, negative = encode_prompts(ledger, ["a red car", "blurry"])
    geometry = VideoGeometry(64, 96, 17, 24.0)
    noiser = torch.Generator().manual_seed(0)
    from ltx_core.components.noisers import GaussianNoiser

    fmt = ledger.latent_format
    video = prepare_state(video_latent_tools(geometry, fmt), [], GaussianNoiser(noiser), 1.0, ledger.device, ledger.dtype)
    audio = prepare_state(audio_latent_tools(geometry, fmt), [], GaussianNoiser(noiser), 1.0, ledger.device, ledger.dtype)
    transformer = ledger.get("transformer")
    denoiser = MultiModalGuidedDenoiser(
        transformer, positive, negative,
        create_multimodal_guider_factory(DEFAULT_VIDEO_GUIDER_PARAMS),
        create_multimodal_guider_factory(DEFAULT_AUDIO_GUIDER_PARAMS),
    )  # fmt: skip
    sigma = torch.tensor(0.8)
    passes = denoiser.passes_for(denoiser.video_guider.build_from_sigma(sigma), denoiser.audio_guider.build_from_sigma(sigma), 0)
    assert [p.name for p in passes] == ["cond", "uncond", "perturbed", "isolated"]
    return transformer, video, audio, sigma, passes


def plain_forward(setup) -> dict:  # noqa: ANN001
    """ltx-core's own X0Model forward, one pass at a time: what every schedule must reproduce."""
    transformer, video, audio, sigma, passes = setup
    out = {}
    with torch.inference_mode():
        for p in passes:
            v, a = make_modality(video, sigma, p.prompt.video), make_modality(audio, sigma, p.prompt.audio)
            out[p.name] = transformer(video=v, audio=a, perturbations=BatchedPerturbationConfig([p.perturbations]))
    return out


@pytest.mark.parametrize("fork,block_major", list(itertools.product([None, 29], [False, True])))
def test_unbatched_schedules_are_bit_exact(setup, fork, block_major) -> None:  # noqa: ANN001
    transformer, video, audio, sigma, passes = setup
    with torch.inference_mode():
        got = run_passes(EagerBlocks(transformer), video, audio, sigma, passes, fork_block=fork, block_major=block_major)
    want = plain_forward(setup)
    assert got.keys() == want.keys()
    for name in want:
        for g, w in zip(got[name], want[name], strict=True):
            assert torch.equal(g, w), name


@pytest.mark.parametrize("block_major", [False, True])
def test_batched_schedules_match_plain(setup, block_major) -> None:  # noqa: ANN001
    transformer, video, audio, sigma, passes = setup
    with torch.inference_mode():
        got = run_passes(EagerBlocks(transformer), video, audio, sigma, passes, batched=True, fork_block=29,
                         block_major=block_major)  # fmt: skip
    want = plain_forward(setup)
    for name in want:
        for g, w in zip(got[name], want[name], strict=True):
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4)


class CountingBlocks(EagerBlocks):
    """Records the block ranges it is asked to run, in order."""

    def __init__(self, transformer):  # noqa: ANN001
        super().__init__(transformer)
        self.calls: list[tuple[int, int]] = []

    def blocks(self, video, audio, perturbations, start=0, stop=None):  # noqa: ANN001, ANN201
        self.calls.append((start, stop))
        return super().blocks(video, audio, perturbations, start, stop)


def test_block_major_visits_each_block_once_for_all_passes(setup) -> None:  # noqa: ANN001
    transformer, video, audio, sigma, passes = setup
    engine = CountingBlocks(transformer)
    with torch.inference_mode():
        run_passes(engine, video, audio, sigma, passes, fork_block=29, block_major=True)
    blocks = [start for start, _ in engine.calls]
    assert blocks == sorted(blocks)  # never back to an earlier block: weights cross once per step
    assert blocks.count(0) == 3 and blocks.count(29) == 4  # STG joins at its first perturbed block
    assert engine.calls[-1] == (engine.num_blocks - 1, engine.num_blocks)


def test_compact_timesteps_keep_one_row_per_sample_only_when_all_tokens_share_it(setup) -> None:  # noqa: ANN001
    transformer, video, audio, sigma, passes = setup
    modality = make_modality(video, sigma, passes[0].prompt.video)
    assert modality.timesteps.shape[1] > 1  # one timestep per token, as the pipelines build it
    compact = compact_timesteps(modality)
    assert compact.timesteps.shape == (modality.timesteps.shape[0], 1, *modality.timesteps.shape[2:])
    conditioned = modality.timesteps.clone()
    conditioned[:, 0] = 0.0  # a conditioning frame at noise level 0: the tokens differ
    assert compact_timesteps(replace(modality, timesteps=conditioned)).timesteps.shape == conditioned.shape


def test_compact_engine_matches_and_keeps_a_smaller_state(setup) -> None:  # noqa: ANN001
    """One AdaLN row per sample instead of one per token: the same values, far less state between blocks."""
    transformer, video, audio, sigma, passes = setup
    with torch.inference_mode():
        got = run_passes(EagerBlocks(transformer, compact=True), video, audio, sigma, passes, block_major=True)
        v, a = make_modality(video, sigma, passes[0].prompt.video), make_modality(audio, sigma, passes[0].prompt.audio)
        per_token = EagerBlocks(transformer).prepare(v, a)
        compact = EagerBlocks(transformer, compact=True).prepare(v, a)
    want = plain_forward(setup)
    for name in want:
        for g, w in zip(got[name], want[name], strict=True):
            torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)

    def state(args) -> int:  # noqa: ANN001
        return sum(t.numel() for pair in args for t in args_tensors(pair))

    assert state(compact) < state(per_token)
    assert compact[0].timesteps.shape[1] == 1 and per_token[0].timesteps.shape[1] == v.latent.shape[1]
