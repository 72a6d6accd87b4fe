"""Gemma 3 on transformers 5 (models/gemma3.py): key names, buffers of the meta build, processor, positions."""

from __future__ import annotations

import json

import pytest
import torch
from ltx_core.text_encoders.gemma import GemmaTextEncoder
from safetensors import safe_open

from ltx_pipelines.models.gemma import find_gemma_files, gemma_text_encoder_ops
from ltx_pipelines.models.gemma3 import (
    build_gemma3,
    fill_gemma3_buffers,
    gemma3_config,
    gemma3_key_ops,
    generation_positions_from_mask,
    load_image_processor,
)


@pytest.fixture(scope="module")
def config(smoke_bundle) -> dict:  # noqa: ANN001
    return json.loads((smoke_bundle.gemma_root / "config.json").read_text())


def meta_encoder(config: dict) -> GemmaTextEncoder:
    with torch.device("meta"):
        return GemmaTextEncoder(model=build_gemma3(config))


def test_released_key_names_cover_the_model(smoke_bundle, config) -> None:  # noqa: ANN001
    ops = gemma3_key_ops()
    assert ops.apply_to_key("vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight") == (
        "model.model.vision_tower.encoder.layers.0.mlp.fc1.weight"
    )
    assert ops.apply_to_key("language_model.model.layers.1.self_attn.q_proj.weight") == (
        "model.model.language_model.layers.1.self_attn.q_proj.weight"
    )
    assert ops.apply_to_key("multi_modal_projector.mm_input_projection_weight") == (
        "model.model.multi_modal_projector.mm_input_projection_weight"
    )
    embed = torch.zeros(1)
    tied = ops.apply_to_key_value("model.model.language_model.embed_tokens.weight", embed)
    assert [key for key, _ in tied] == ["model.model.language_model.embed_tokens.weight", "model.lm_head.weight"]
    with safe_open(str(smoke_bundle.gemma_root / "model.safetensors"), framework="pt") as f:
        loaded = {ops.apply_to_key(key) for key in f.keys()} | {"model.lm_head.weight"}
    assert set(meta_encoder(config).state_dict()) == loaded


def test_buffers_are_the_ones_transformers_computes(config) -> None:  # noqa: ANN001
    filled = fill_gemma3_buffers(meta_encoder(config))
    built = GemmaTextEncoder(model=build_gemma3(config))  # on the CPU: transformers computes every buffer
    ours, theirs = dict(filled.named_buffers()), dict(built.named_buffers())
    assert ours.keys() == theirs.keys() and not any(b.is_meta for b in ours.values())
    assert any("sliding_attention_inv_freq" in name for name in ours)  # one rotary module, per layer type
    for name, buffer in theirs.items():
        assert ours[name].dtype == buffer.dtype and torch.equal(ours[name], buffer), name
    rotary = filled.model.model.language_model.rotary_emb
    assert rotary.full_attention_attention_scaling == rotary.sliding_attention_attention_scaling == 1.0


def test_old_rope_keys_become_per_layer_type_parameters(config) -> None:  # noqa: ANN001
    text = gemma3_config(config).text_config
    assert text.rope_parameters["full_attention"] == {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6}
    assert text.rope_parameters["sliding_attention"] == {"rope_type": "default", "rope_theta": 1e4}


def test_a_buffer_left_on_meta_is_refused(config) -> None:  # noqa: ANN001
    encoder = meta_encoder(config)
    with torch.device("meta"):
        encoder.model.model.multi_modal_projector.register_buffer("unknown", torch.zeros(2), persistent=False)
    with pytest.raises(RuntimeError, match="unknown"):
        fill_gemma3_buffers(encoder)


def test_module_ops_attach_tokenizer_and_a_pil_processor(smoke_bundle, config) -> None:  # noqa: ANN001
    _, module_ops = gemma_text_encoder_ops(find_gemma_files(smoke_bundle.gemma_root))
    encoder = meta_encoder(config)
    for op in module_ops:
        if op.matcher(encoder):
            encoder = op.mutator(encoder)
    assert encoder.tokenizer.max_length == 1024
    assert type(encoder.processor.image_processor).__name__.endswith("Pil")
    assert type(load_image_processor(str(smoke_bundle.gemma_root))) is type(encoder.processor.image_processor)


def test_generated_tokens_continue_the_prompt_positions() -> None:
    """After a trailing pad (mask 0), new tokens count on from the unmasked ones; the pad itself sits at 1."""
    seen = []
    model = torch.nn.Module()
    model.forward = lambda **kwargs: seen.append(kwargs["position_ids"])  # type: ignore[method-assign]
    with generation_positions_from_mask(model):
        model(input_ids=torch.zeros(1, 5, dtype=torch.long), attention_mask=torch.tensor([[1, 1, 1, 1, 0]]))
        model(input_ids=torch.zeros(1, 1, dtype=torch.long), attention_mask=torch.tensor([[1, 1, 1, 1, 0, 1]]))
    model(input_ids=torch.zeros(1, 1, dtype=torch.long), attention_mask=torch.tensor([[1, 0]]), position_ids=None)
    assert seen[0].tolist() == [[0, 1, 2, 3, 1]]
    assert seen[1].tolist() == [[4]]
    assert seen[2] is None  # the hook is gone after the block
