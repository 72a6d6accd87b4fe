"""Tests for ltx_pipelines.models.checkpoints: telling weights files apart from their headers alone."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from ltx_pipelines.models.checkpoints import (
    check_lora_matches,
    inspect_ltx_checkpoint,
    inspect_upsampler,
    lora_target_keys,
    read_header,
)
from ltx_pipelines.utils.errors import InputError


def write(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> Path:
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)
    return path


def lora(a_shape: tuple[int, int], b_shape: tuple[int, int], module: str) -> dict[str, torch.Tensor]:
    return {
        f"diffusion_model.{module}.lora_A.weight": torch.zeros(a_shape, dtype=torch.bfloat16),
        f"diffusion_model.{module}.lora_B.weight": torch.zeros(b_shape, dtype=torch.bfloat16),
    }


# --------------------------------------------------------------------------- read_header


def test_read_header_of_bundle_checkpoint(smoke_bundle):
    header = read_header(smoke_bundle.checkpoint)
    assert header.path == smoke_bundle.checkpoint.resolve()
    assert "transformer" in header.config()
    dtype, shape = header.tensors["text_embedding_projection.aggregate_embed.weight"]
    assert dtype == "BF16" and len(shape) == 2
    assert "smoke_model" in header.metadata


def test_read_header_missing_file_and_folder(tmp_path):
    with pytest.raises(InputError, match=r"The LoRA .*missing\.safetensors does not exist\. Check the path\."):
        read_header(tmp_path / "missing.safetensors", "LoRA")
    with pytest.raises(InputError, match="is not a file"):
        read_header(tmp_path)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"tiny", "too short"),
        (struct.pack("<Q", 10**12) + b"{}", "bad header length"),
        (struct.pack("<Q", 0), "bad header length"),
        (struct.pack("<Q", 6) + b"not js", "unreadable header"),
        (struct.pack("<Q", 4) + b"\xff\xfe\xfd\xfc", "unreadable header"),
    ],
)
def test_read_header_refuses_files_that_are_not_safetensors(tmp_path, content, why):
    path = tmp_path / "weights.safetensors"
    path.write_bytes(content)
    with pytest.raises(InputError, match=f"is not a .safetensors file \\({why}\\)"):
        read_header(path)


def test_read_header_sees_a_rewritten_file(tmp_path):
    path = write(tmp_path / "w.safetensors", {"a": torch.zeros(2)})
    assert set(read_header(path).tensors) == {"a"}
    write(path, {"b": torch.zeros(3), "c": torch.zeros(1)})
    assert set(read_header(path).tensors) == {"b", "c"}


def test_invalid_config_json_is_an_input_error(tmp_path):
    path = write(tmp_path / "w.safetensors", {"a": torch.zeros(2)}, {"config": "{not json"})
    with pytest.raises(InputError, match="'config' metadata is not valid JSON"):
        read_header(path).config()
    assert read_header(write(tmp_path / "n.safetensors", {"a": torch.zeros(1)})).config() == {}


# --------------------------------------------------------------------------- LTX checkpoints


def test_inspect_dev_and_distilled_checkpoints(smoke_bundle):
    dev = inspect_ltx_checkpoint(smoke_bundle.checkpoint)
    assert dev.model_version == "2.0.0" and not dev.is_ltx_2_3
    assert dev.distilled is False
    assert set(dev.config) >= {"transformer", "vae", "audio_vae", "vocoder"}
    distilled = inspect_ltx_checkpoint(smoke_bundle.distilled_checkpoint)
    assert distilled.distilled is True


def test_ltx_2_3_detected_from_metadata(tmp_path):
    config = json.dumps({"transformer": {"num_layers": 2}})
    path = write(
        tmp_path / "ltx-2.3.safetensors",
        {"model.diffusion_model.proj_in.weight": torch.zeros(2, 2)},
        {"config": config, "model_version": "2.3.0"},
    )
    info = inspect_ltx_checkpoint(path)
    assert info.is_ltx_2_3 and info.model_version == "2.3.0" and info.distilled is False


def test_upsampler_as_checkpoint_is_named(smoke_bundle):
    with pytest.raises(InputError, match="not an LTX-2 model checkpoint.*looks like a spatial upsampler") as raised:
        inspect_ltx_checkpoint(smoke_bundle.spatial_upsampler)
    assert "--spatial-upsampler-path" in str(raised.value)


@pytest.mark.parametrize("which", ["distilled_lora", "ic_lora"])
def test_lora_as_checkpoint_is_named(smoke_bundle, which):
    with pytest.raises(InputError, match="looks like a LoRA: pass it with --lora or --distilled-lora"):
        inspect_ltx_checkpoint(getattr(smoke_bundle, which))


def test_gemma_weights_as_checkpoint_refused(smoke_bundle):
    with pytest.raises(InputError, match="no 'transformer' config"):
        inspect_ltx_checkpoint(smoke_bundle.gemma_root / "model.safetensors")


def test_config_without_transformer_weights_refused(tmp_path):
    path = write(
        tmp_path / "vae-only.safetensors",
        {"vae.encoder.conv_in.weight": torch.zeros(2)},
        {"config": json.dumps({"transformer": {}, "vae": {}})},
    )
    with pytest.raises(InputError, match=r"holds no transformer weights \('model\.diffusion_model\.\*'\)"):
        inspect_ltx_checkpoint(path)


# --------------------------------------------------------------------------- upsamplers


def test_inspect_upsampler(smoke_bundle):
    config = inspect_upsampler(smoke_bundle.spatial_upsampler)
    assert config["spatial_upsample"] is True and config["spatial_scale"] == 2.0


def test_checkpoint_as_upsampler_refused(smoke_bundle):
    expected = "is an LTX-2 model checkpoint, not an upsampler: pass it with --checkpoint-path"
    with pytest.raises(InputError, match=expected):
        inspect_upsampler(smoke_bundle.checkpoint)


def test_lora_as_upsampler_refused(smoke_bundle):
    with pytest.raises(InputError, match=r"does not hold latent-upsampler weights \('initial_conv\.\*'\)"):
        inspect_upsampler(smoke_bundle.distilled_lora)


def test_missing_upsampler_named_by_its_flag(tmp_path):
    with pytest.raises(InputError, match=r"spatial upsampler \(--spatial-upsampler-path\) .* does not exist"):
        inspect_upsampler(tmp_path / "nope.safetensors")


# --------------------------------------------------------------------------- LoRAs


def test_bundle_lora_targets_transformer_modules(smoke_bundle):
    targets = lora_target_keys(smoke_bundle.distilled_lora)
    assert targets and all(name.startswith("transformer_blocks.") for name in targets)
    (rank_a, _), (_, rank_b) = next(iter(targets.values()))
    assert rank_a == rank_b == 4
    check_lora_matches(smoke_bundle.distilled_lora, smoke_bundle.checkpoint)
    check_lora_matches(smoke_bundle.ic_lora, smoke_bundle.distilled_checkpoint)


def test_lora_matching_nothing_refused(smoke_bundle, tmp_path):
    path = write(tmp_path / "other.safetensors", lora((4, 8), (8, 4), "nonexistent"))
    expected = r"The LoRA \(--lora\) .* matches no module .*'nonexistent' has no counterpart"
    with pytest.raises(InputError, match=expected):
        check_lora_matches(path, smoke_bundle.checkpoint, "LoRA (--lora)")


def test_lora_of_wrong_shape_refused(smoke_bundle, tmp_path):
    module = next(iter(lora_target_keys(smoke_bundle.distilled_lora)))
    path = write(tmp_path / "bigger-model.safetensors", lora((4, 4096), (4096, 4), module))
    with pytest.raises(InputError, match=f"does not fit the model: '{module}'"):
        check_lora_matches(path, smoke_bundle.checkpoint)


def test_lora_with_mismatched_ranks_refused(smoke_bundle, tmp_path):
    module, ((_, in_features), (out_features, _)) = next(iter(lora_target_keys(smoke_bundle.distilled_lora).items()))
    path = write(tmp_path / "ranks.safetensors", lora((4, in_features), (out_features, 8), module))
    with pytest.raises(InputError, match="does not fit the model"):
        check_lora_matches(path, smoke_bundle.checkpoint)


def test_lora_without_b_half_refused(tmp_path):
    tensors = lora((4, 8), (8, 4), "transformer_blocks.0.attn1.to_q")
    del tensors["diffusion_model.transformer_blocks.0.attn1.to_q.lora_B.weight"]
    with pytest.raises(InputError, match="has .*lora_A.weight but no matching .*lora_B.weight"):
        lora_target_keys(write(tmp_path / "half.safetensors", tensors))


def test_file_without_lora_weights_refused(smoke_bundle):
    with pytest.raises(InputError, match="holds no LoRA weights"):
        lora_target_keys(smoke_bundle.spatial_upsampler, "distilled LoRA (--distilled-lora)")


def test_lora_keys_without_comfy_prefix_also_read(tmp_path):
    tensors = {
        "transformer_blocks.0.attn1.to_q.lora_A.weight": torch.zeros(2, 8),
        "transformer_blocks.0.attn1.to_q.lora_B.weight": torch.zeros(8, 2),
    }
    assert lora_target_keys(write(tmp_path / "plain.safetensors", tensors)) == {
        "transformer_blocks.0.attn1.to_q": ((2, 8), (8, 2))
    }
