"""The model ledger: components from the files' own config, and residency under `keep`."""

from __future__ import annotations

import pytest
import torch

from ltx_pipelines import TI2VidTwoStagesPipeline
from ltx_pipelines.engine.model_ledger import LatentFormat, ModelLedger, comfy_lora
from ltx_pipelines.engine.prompts import encode_prompts


def test_latent_format_comes_from_the_checkpoint_config(smoke_bundle) -> None:  # noqa: ANN001
    ledger = ModelLedger(smoke_bundle.checkpoint, smoke_bundle.gemma_root)
    assert ledger.latent_format == LatentFormat(16, 2, 16, 16000, 160)
    assert ledger.device.type == "cpu" and ledger.dtype == torch.float32


def test_every_component_builds_from_the_bundle(smoke_bundle) -> None:  # noqa: ANN001
    ledger = ModelLedger(smoke_bundle.checkpoint, smoke_bundle.gemma_root, smoke_bundle.spatial_upsampler)
    for name in ("transformer", "video_encoder", "video_decoder", "audio_encoder", "audio_decoder", "vocoder",
                 "spatial_upsampler", "text_encoder", "embeddings_processor"):  # fmt: skip
        model = ledger.get(name)
        assert not any(p.device.type == "meta" for p in model.parameters()), name


def test_prompt_embeddings_are_cached(smoke_bundle) -> None:  # noqa: ANN001
    ledger = ModelLedger(smoke_bundle.checkpoint, smoke_bundle.gemma_root)
    first = encode_prompts(ledger, ["a cat"])[0]
    reads = list(ledger.files_loaded)
    again = encode_prompts(ledger, ["a cat", "a cat"])
    assert ledger.files_loaded == reads and again[0] is first and again[1] is first


@pytest.mark.parametrize("policy", ["keep", "low"])
def test_second_generation(smoke_bundle, policy: str) -> None:  # noqa: ANN001
    pipeline = TI2VidTwoStagesPipeline(
        checkpoint_path=smoke_bundle.checkpoint,
        distilled_lora=[comfy_lora(smoke_bundle.distilled_lora, 0.8)],
        spatial_upsampler_path=smoke_bundle.spatial_upsampler,
        gemma_root=smoke_bundle.gemma_root,
        memory_policy=policy,
    )
    request = {"prompt": "a cat", "height": 128, "width": 128, "num_frames": 9, "num_inference_steps": 2}
    first = pipeline(**request)
    reads = list(pipeline.ledger.files_loaded)
    second = pipeline(**request)
    assert torch.equal(first.frames, second.frames)
    if policy == "keep":  # weights stayed resident; the stage-2 LoRA was swapped in memory
        assert pipeline.ledger.files_loaded == reads
        transformer = pipeline.ledger.get("transformer")
        assert pipeline.ledger._lora_swapper.active == ()  # back to the base weights after stage 2
        assert transformer is pipeline.ledger.get("transformer", extra_loras=pipeline.distilled_lora)
    else:  # rebuilt from the files each time
        assert len(pipeline.ledger.files_loaded) > len(reads)
    assert set(first.timings) >= {"text encoding", "stage 1", "upsample", "stage 2", "decode video", "decode audio"}


def test_in_memory_lora_swap_restores_weights_exactly(smoke_bundle) -> None:  # noqa: ANN001
    ledger = ModelLedger(smoke_bundle.checkpoint, smoke_bundle.gemma_root, memory_policy="keep")
    base = ledger.get("transformer")
    before = {k: v.clone() for k, v in base.state_dict().items()}
    lora = (comfy_lora(smoke_bundle.distilled_lora, 0.8),)
    with_lora = ledger.get("transformer", extra_loras=lora)
    assert with_lora is base
    changed = [k for k, v in base.state_dict().items() if not torch.equal(v, before[k])]
    assert changed and all(any(t in k for t in (".to_q.", ".to_k.", ".to_v.", ".to_out.0.", "ff.net.")) for k in changed)
    ledger.get("transformer")
    assert all(torch.equal(v, before[k]) for k, v in base.state_dict().items())
