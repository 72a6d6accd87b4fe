"""Fixtures of the acceleration tests: the smoke transformer, a fixed input, the passes of a guided step."""

from __future__ import annotations

import pytest
import torch
from ltx_core.guidance.perturbations import BatchedPerturbationConfig, Perturbation, PerturbationConfig, PerturbationType
from ltx_core.model.transformer import Modality
from transformer_probe import fixed_inputs

from ltx_pipelines.utils.guidance import ISOLATED_MODALITIES
from ltx_pipelines.utils.model_ledger import ModelLedger
from ltx_pipelines.utils.transformer_passes import batch_modality

STG = PerturbationConfig(
    [Perturbation(PerturbationType.SKIP_VIDEO_SELF_ATTN, [29]), Perturbation(PerturbationType.SKIP_AUDIO_SELF_ATTN, [29])]
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
        return batch_modality([video] * len(configs)), batch_modality([audio] * len(configs)), BatchedPerturbationConfig(configs)

    return make


def run_engine(engine, video: Modality, audio: Modality, perturbations: BatchedPerturbationConfig):  # noqa: ANN001, ANN201
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
