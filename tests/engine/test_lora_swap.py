"""LoRAs swapped into a resident transformer give the weights ltx-core fuses at build time, bit for bit."""

from __future__ import annotations

import pytest
import torch

from ltx_pipelines.engine.model_ledger import ModelLedger, comfy_lora

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_swapped_lora_equals_a_transformer_built_with_it(smoke_bundle, dtype) -> None:  # noqa: ANN001
    loras = (comfy_lora(smoke_bundle.distilled_lora, 0.8), comfy_lora(smoke_bundle.ic_lora, -0.3))
    resident = ModelLedger(smoke_bundle.checkpoint, smoke_bundle.gemma_root, device="cpu", dtype=dtype)
    swapped = resident.get("transformer", extra_loras=loras).state_dict()
    built = ModelLedger(
        smoke_bundle.checkpoint, smoke_bundle.gemma_root, loras=loras, device="cpu", dtype=dtype, memory_policy="low"
    ).get("transformer").state_dict()
    differing = [key for key, value in built.items() if not torch.equal(value, swapped[key])]
    assert not differing, differing[:5]
