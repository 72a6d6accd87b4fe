"""Fixtures of the acceleration tests: the smoke transformer, a fixed input, the passes of a guided step."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from ltx_core.components.noisers import GaussianNoiser
from ltx_core.guidance.perturbations import (
    BatchedPerturbationConfig,
    Perturbation,
    PerturbationConfig,
    PerturbationType,
)
from ltx_core.model.transformer import Modality
from transformer_probe import fixed_inputs

from ltx_pipelines.engine.guidance import ISOLATED_MODALITIES
from ltx_pipelines.engine.model_ledger import ModelLedger
from ltx_pipelines.engine.stages import VideoGeometry, audio_latent_tools, prepare_state, video_latent_tools
from ltx_pipelines.models.transformer_blocks import EagerBlocks
from ltx_pipelines.models.transformer_passes import GuidancePass, PromptEmbeddings, batch_modality, run_passes

STG = PerturbationConfig(
    [
        Perturbation(PerturbationType.SKIP_VIDEO_SELF_ATTN, [29]),
        Perturbation(PerturbationType.SKIP_AUDIO_SELF_ATTN, [29]),
    ]
)
#: The perturbation sets of one guided step's passes, alone and stacked in one batch.
CASES = {
    "plain": [PerturbationConfig.empty()],
    "stg": [STG],
    "isolated": [ISOLATED_MODALITIES],
    "mixed": [PerturbationConfig.empty(), STG, ISOLATED_MODALITIES],
}


@pytest.fixture(scope="package")
def cases() -> dict[str, list[PerturbationConfig]]:
    return CASES


@pytest.fixture(scope="package")
def ledger(smoke_bundle) -> ModelLedger:  # noqa: ANN001
    return ModelLedger(smoke_bundle.checkpoint, smoke_bundle.gemma_root)


@pytest.fixture(scope="package")
def transformer(ledger):  # noqa: ANN001, ANN201
    return ledger.get("transformer")


@pytest.fixture(scope="package")
def inputs(ledger) -> tuple[Modality, Modality]:  # noqa: ANN001
    return fixed_inputs(ledger)


@pytest.fixture(scope="package")
def batch_for(inputs):  # noqa: ANN001, ANN201
    """case -> the fixed input repeated once per pass of that case, and the case's perturbations."""

    def make(case: str) -> tuple[Modality, Modality, BatchedPerturbationConfig]:
        configs = CASES[case]
        video, audio = inputs
        count = len(configs)
        return batch_modality([video] * count), batch_modality([audio] * count), BatchedPerturbationConfig(configs)

    return make


def run_engine(
    engine, video: Modality, audio: Modality, perturbations: BatchedPerturbationConfig  # noqa: ANN001
) -> tuple[torch.Tensor, torch.Tensor]:
    """prepare -> all blocks -> finish through a block engine, as the pass scheduler runs one group."""
    with torch.inference_mode():
        v_args, a_args = engine.prepare(video, audio)
        v_out, a_out = engine.blocks(v_args, a_args, perturbations)
        return engine.finish(video, audio, v_out, a_out)


@pytest.fixture(scope="package")
def run():  # noqa: ANN201
    """run(engine, video, audio, perturbations) -> (video x0, audio x0)."""
    return run_engine


@pytest.fixture(scope="package")
def reference(transformer, batch_for):  # noqa: ANN001, ANN201
    """case -> ltx-core's own X0Model forward on that case's batch."""
    cache = {}

    def forward(case: str) -> tuple[torch.Tensor, torch.Tensor]:
        if case not in cache:
            video, audio, perturbations = batch_for(case)
            with torch.inference_mode():
                cache[case] = transformer(video, audio, perturbations)
        return cache[case]

    return forward


SIGMAS = [0.9, 0.85, 0.8]


@pytest.fixture(scope="package")
def step_inputs(ledger, cases):  # noqa: ANN001, ANN201
    """Latent states of a small video, and the four passes of a guided step with random prompts."""
    geometry, fmt = VideoGeometry(64, 96, 9, 24.0), ledger.latent_format
    noiser = GaussianNoiser(torch.Generator().manual_seed(0))
    video = prepare_state(video_latent_tools(geometry, fmt), [], noiser, 1.0, ledger.device, ledger.dtype)
    audio = prepare_state(audio_latent_tools(geometry, fmt), [], noiser, 1.0, ledger.device, ledger.dtype)
    g = torch.Generator().manual_seed(1)
    width = int(ledger.config["transformer"]["caption_channels"])
    positive, negative = (PromptEmbeddings(torch.randn(1, 8, width, generator=g), torch.randn(1, 8, width, generator=g))
                          for _ in range(2))  # fmt: skip
    passes = [
        GuidancePass("cond", positive, PerturbationConfig.empty()),
        GuidancePass("uncond", negative, PerturbationConfig.empty()),
        GuidancePass("perturbed", positive, cases["stg"][0]),
        GuidancePass("isolated", positive, ISOLATED_MODALITIES),
    ]
    return video, audio, passes


def run_steps(executor, video, audio, passes):  # noqa: ANN001, ANN201
    """Three denoising-like steps: the latent moves a little towards each step's estimate."""
    results = []
    with torch.inference_mode():
        for sigma in SIGMAS:
            out = executor(video, audio, torch.tensor(sigma), passes)
            results.append(out)
            video = replace(video, latent=0.9 * video.latent + 0.1 * out["cond"][0])
            audio = replace(audio, latent=0.9 * audio.latent + 0.1 * out["cond"][1])
    return results


@pytest.fixture(scope="package")
def steps(step_inputs):  # noqa: ANN001, ANN201
    """steps(executor) -> each step's results by pass name, on ``step_inputs``."""
    return lambda executor: run_steps(executor, *step_inputs)


@pytest.fixture(scope="package")
def plain_passes(transformer):  # noqa: ANN001, ANN201
    """The plain schedule (eager blocks, one pass after another) as an executor: what the others must match."""
    engine = EagerBlocks(transformer)
    return lambda video, audio, sigma, passes: run_passes(engine, video, audio, sigma, passes)
