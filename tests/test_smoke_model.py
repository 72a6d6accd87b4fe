"""Tests for ltx_pipelines.smoke_model: the tiny random-weight bundle in the real LTX-2 format."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import pytest
from safetensors import safe_open

from ltx_pipelines.smoke_model import (
    REAL_CHANNEL_SIZES,
    SMOKE_NOTICE,
    SMOKE_SIZES,
    TRANSFORMER_LAYERS,
    SmokeBundle,
    SmokeSizes,
    build_smoke_bundle,
    bundle_sizes,
    ensure_smoke_bundle,
    ltx_config,
    write_gemma,
)

LTX_PREFIXES = (
    "model.diffusion_model.",
    "vae.encoder.",
    "vae.decoder.",
    "audio_vae.",
    "vocoder.",
    "text_embedding_projection.",
)
FILE_FIELDS = ("checkpoint", "distilled_checkpoint", "spatial_upsampler", "distilled_lora", "ic_lora")


def metadata_and_keys(path: Path) -> tuple[dict[str, str], list[str]]:
    with safe_open(str(path), framework="pt") as f:
        return f.metadata() or {}, list(f.keys())


def test_bundle_has_all_files(smoke_bundle):
    assert smoke_bundle.exists()
    for name in FILE_FIELDS:
        path = getattr(smoke_bundle, name)
        assert path.is_file() and path.suffix == ".safetensors", name
    for name in ("config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json"):
        assert (smoke_bundle.gemma_root / name).is_file(), name
    assert (smoke_bundle.gemma_root / "preprocessor_config.json").is_file()
    manifest = json.loads((smoke_bundle.root / "bundle.json").read_text())
    for name in (*FILE_FIELDS, "gemma_root"):
        assert manifest[name] == getattr(smoke_bundle, name).name
    assert manifest["notice"] == SMOKE_NOTICE


@pytest.mark.parametrize("which", ["checkpoint", "distilled_checkpoint"])
def test_checkpoint_metadata_and_key_prefixes(smoke_bundle, which):
    metadata, keys = metadata_and_keys(getattr(smoke_bundle, which))
    config = json.loads(metadata["config"])
    assert set(config) >= {"transformer", "vae", "audio_vae", "vocoder"}
    assert config["transformer"]["num_layers"] == TRANSFORMER_LAYERS > 29  # the default STG block exists
    assert metadata["model_version"] == "2.0.0"
    assert metadata["distilled"] == ("true" if which == "distilled_checkpoint" else "false")
    assert metadata["smoke_model"] == SMOKE_NOTICE
    for prefix in LTX_PREFIXES:
        assert any(k.startswith(prefix) for k in keys), prefix
    assert "vae.per_channel_statistics.std-of-means" in keys
    assert not [k for k in keys if not k.startswith((*LTX_PREFIXES, "vae.per_channel_statistics."))]


def test_upsampler_and_loras_in_real_format(smoke_bundle):
    metadata, keys = metadata_and_keys(smoke_bundle.spatial_upsampler)
    assert json.loads(metadata["config"])["spatial_scale"] == 2.0
    assert any(k.startswith("initial_conv.") for k in keys)
    for which in ("distilled_lora", "ic_lora"):
        metadata, keys = metadata_and_keys(getattr(smoke_bundle, which))
        assert keys and all(k.startswith("diffusion_model.transformer_blocks.") for k in keys)
        assert {k.rsplit(".", 2)[-2] for k in keys} == {"lora_A", "lora_B"}
    assert metadata["reference_downscale_factor"] == "1"


def test_gemma_config_is_a_gemma3_config(smoke_bundle):
    config = json.loads((smoke_bundle.gemma_root / "config.json").read_text())
    assert config["model_type"] == "gemma3" and "text_config" in config and "vision_config" in config


#: sha256 of the smoke Gemma's weights for seed 5 (the default bundle's), as transformers 4.57 wrote them.
GEMMA_WEIGHTS_SHA256 = "0b55fe45e32c82dbc2e3ff6c95d201a87e67828e922ad74d274cbec97189dbcb"
#: Ids and decoded text of the 4.57-converted tokenizer of that folder.
TOKENIZED = {
    "a street musician plays the violin in the rain": [
        2, 380, 327, 272, 281, 275, 387, 378, 381, 386, 381, 271, 292, 385, 380, 395, 378, 312, 392, 376, 299, 381,
        377, 385, 267, 309, 312, 392, 376, 375, 324,
    ],
    "  Héllo wörld! 日本語 🎻 <start_of_turn>user\nhi<end_of_turn>\n": [
        2, 375, 375, 81, 204, 178, 385, 269, 270, 204, 191, 382, 286, 42, 375, 239, 160, 174, 239, 165, 181, 241,
        179, 167, 375, 249, 168, 151, 196, 375, 4, 387, 378, 273, 19, 392, 381, 5, 19,
    ],
}  # fmt: skip


def test_gemma_folder_is_the_one_transformers_4_57_wrote(tmp_path):
    """Same weights and tokenization whatever transformers is installed (5.x initialises in another order)."""
    from transformers import AutoTokenizer

    write_gemma(tmp_path, seed=5)
    assert hashlib.sha256((tmp_path / "model.safetensors").read_bytes()).hexdigest() == GEMMA_WEIGHTS_SHA256
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path), local_files_only=True)
    for text, ids in TOKENIZED.items():
        assert tokenizer(text)["input_ids"] == ids
    assert tokenizer.decode(TOKENIZED[text], skip_special_tokens=True) == "  Héllo wörld! 日本語 🎻 user\nhi\n"
    assert len(tokenizer) == json.loads((tmp_path / "config.json").read_text())["text_config"]["vocab_size"]
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert isinstance(config["extra_special_tokens"], dict)  # a list (transformers 5's form) breaks 4.x


def test_bundle_is_small(smoke_bundle):
    size = sum(p.stat().st_size for p in smoke_bundle.root.rglob("*") if p.is_file())
    assert size < 50 * 1024 * 1024


def test_ensure_reuses_an_existing_bundle(smoke_bundle):
    before = {p: p.stat().st_mtime_ns for p in smoke_bundle.root.rglob("*") if p.is_file()}
    assert ensure_smoke_bundle(smoke_bundle.root) == smoke_bundle
    assert before == {p: p.stat().st_mtime_ns for p in smoke_bundle.root.rglob("*") if p.is_file()}


def test_same_seed_builds_byte_identical_weights(smoke_bundle, tmp_path):
    first = build_smoke_bundle(tmp_path / "a", seed=3)
    second = build_smoke_bundle(tmp_path / "b", seed=3)
    assert first == SmokeBundle.at(tmp_path / "a") and first.exists() and second.exists()
    for name in FILE_FIELDS:
        assert getattr(first, name).read_bytes() == getattr(second, name).read_bytes(), name
    for name in ("model.safetensors", "config.json"):
        assert (first.gemma_root / name).read_bytes() == (second.gemma_root / name).read_bytes(), name
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".smoke-")], "staging folder left behind"
    if json.loads((smoke_bundle.root / "bundle.json").read_text())["seed"] != 3:
        assert first.checkpoint.read_bytes() != smoke_bundle.checkpoint.read_bytes()


def test_real_channel_sizes_give_ltx2_latent_channels() -> None:
    config = ltx_config(REAL_CHANNEL_SIZES)
    assert config["vae"]["latent_channels"] == config["transformer"]["in_channels"] == 128
    assert config["audio_vae"]["model"]["params"]["ddconfig"]["z_channels"] == 8
    assert config["transformer"]["audio_in_channels"] == 8 * 16  # 8 z-channels x 16 latent mel bins
    assert config["vae"]["timestep_conditioning"]  # the decoder adds seeded noise, as LTX-2's does
    assert config["transformer"]["num_layers"] == REAL_CHANNEL_SIZES.transformer_layers < TRANSFORMER_LAYERS
    default = ltx_config()
    assert default["vae"]["latent_channels"] == 16 and not default["vae"]["timestep_conditioning"]


def test_attention_heads_keep_the_widths() -> None:
    """4 heads (4 ranks can split the tokens) of the same widths: 4 x 8 for video, 4 x 4 for audio."""
    default, four = ltx_config()["transformer"], ltx_config(SmokeSizes(attention_heads=4))["transformer"]
    assert (default["num_attention_heads"], default["audio_num_attention_heads"]) == (2, 2)
    assert (four["num_attention_heads"], four["audio_num_attention_heads"]) == (4, 4)
    for config in (default, four):
        assert config["num_attention_heads"] * config["attention_head_dim"] == 32
        assert config["audio_num_attention_heads"] * config["audio_attention_head_dim"] == 16


def test_ensure_rebuilds_a_bundle_of_other_sizes(tmp_path) -> None:  # noqa: ANN001
    bundle = build_smoke_bundle(tmp_path / "b", seed=1)
    assert bundle_sizes(bundle) == SMOKE_SIZES
    (bundle.root / "bundle.json").write_text(
        json.dumps({**json.loads((bundle.root / "bundle.json").read_text()), "sizes": asdict(REAL_CHANNEL_SIZES)})
    )
    assert bundle_sizes(bundle) == REAL_CHANNEL_SIZES
    rebuilt = ensure_smoke_bundle(bundle.root, seed=1)  # asked for the default sizes: built again
    assert bundle_sizes(rebuilt) == SMOKE_SIZES


# --------------------------------------------------------------------------- the LTX-2.3 layout (--model-version 2.3)


def test_ltx23_checkpoint_declares_2_3_and_its_switches(ltx23_bundle) -> None:  # noqa: ANN001
    from ltx_pipelines.models.checkpoints import inspect_ltx_checkpoint
    from ltx_pipelines.smoke_model.ltx23 import V2_TEXT_PATH

    metadata, keys = metadata_and_keys(ltx23_bundle.checkpoint)
    transformer = json.loads(metadata["config"])["transformer"]
    assert inspect_ltx_checkpoint(ltx23_bundle.checkpoint).is_ltx_2_3 and metadata["model_version"] == "2.3.0"
    assert V2_TEXT_PATH.items() <= transformer.items()
    assert transformer["apply_gated_attention"] and transformer["cross_attention_adaln"]
    assert transformer["connector_apply_gated_attention"]
    projection = sorted(k for k in keys if k.startswith("text_embedding_projection."))
    assert projection == [f"text_embedding_projection.{m}_aggregate_embed.{p}" for m in ("audio", "video")
                          for p in ("bias", "weight")]  # fmt: skip
    assert not [k for k in keys if ".caption_projection." in k]  # projected in the text encoder instead
    assert json.loads((ltx23_bundle.gemma_root / "config.json").read_text())["model_type"] == "gemma3"


def test_ltx23_checkpoint_is_what_ltx_core_builds_for_2_3(ltx23_bundle, monkeypatch) -> None:  # noqa: ANN001
    """Each transformer, connector and text-projection tensor lands, with its shape, on ltx-core 1.0.0's own 2.3
    build (its configurators and key maps; its Gemma-3-12B constant given the smoke Gemma's sizes), and each
    parameter of that build has its tensor."""
    import torch
    from ltx_core.model.transformer.model_configurator import LTXV_MODEL_COMFY_RENAMING_MAP, LTXModelConfigurator
    from ltx_core.text_encoders.gemma.encoders import encoder_configurator

    text = json.loads((ltx23_bundle.gemma_root / "config.json").read_text())["text_config"]
    sizes = SimpleNamespace(hidden_size=text["hidden_size"], num_hidden_layers=text["num_hidden_layers"])
    monkeypatch.setattr(encoder_configurator, "GEMMA3_CONFIG_FOR_LTX", SimpleNamespace(text_config=sizes))
    with safe_open(str(ltx23_bundle.checkpoint), framework="pt") as f:
        config = json.loads(f.metadata()["config"])
        shapes = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}  # noqa: SIM118
    with torch.device("meta"):
        transformer = LTXModelConfigurator.from_config(config)
        processor = encoder_configurator.EmbeddingsProcessorConfigurator.from_config(config)
    connectors = ("video_embeddings_connector.", "audio_embeddings_connector.")
    for module, ops in ((transformer, LTXV_MODEL_COMFY_RENAMING_MAP),
                        (processor, encoder_configurator.EMBEDDINGS_PROCESSOR_KEY_OPS)):  # fmt: skip
        loaded = {ops.apply_to_key(k): shape for k, shape in shapes.items() if ops.apply_to_key(k) is not None}
        if module is transformer:
            loaded = {k: shape for k, shape in loaded.items() if not k.startswith(connectors)}
        assert loaded == {k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_ltx23_vocoder_is_ltx_core_s_bandwidth_extension(ltx23_bundle, smoke_bundle) -> None:  # noqa: ANN001
    """ltx-core 1.0.0 builds the 2.3 checkpoint's vocoder as VocoderWithBWE (the LTX-2 one as a plain Vocoder), loads
    every ``vocoder.*`` tensor into it, and it turns a mel spectrogram into 48 kHz stereo; the filters and the STFT
    bases hold their true values, not random ones."""
    import torch
    from ltx_core.loader.single_gpu_model_builder import SingleGPUModelBuilder
    from ltx_core.model.audio_vae import VOCODER_COMFY_KEYS_FILTER, Vocoder, VocoderConfigurator
    from ltx_core.model.audio_vae.vocoder import VocoderWithBWE

    def build(path: Path) -> torch.nn.Module:
        builder = SingleGPUModelBuilder(
            model_class_configurator=VocoderConfigurator, model_path=str(path), model_sd_ops=VOCODER_COMFY_KEYS_FILTER
        )
        return builder.build(device=torch.device("cpu"), dtype=torch.float32)

    assert type(build(smoke_bundle.checkpoint)) is Vocoder
    vocoder = build(ltx23_bundle.checkpoint)
    assert isinstance(vocoder, VocoderWithBWE)
    assert (vocoder.input_sampling_rate, vocoder.output_sampling_rate) == (16000, 48000)
    _, keys = metadata_and_keys(ltx23_bundle.checkpoint)
    stored = {k.removeprefix("vocoder.") for k in keys if k.startswith("vocoder.")}
    assert stored == set(vocoder.state_dict())  # nothing missing, nothing left over
    stft = vocoder.mel_stft.stft_fn.forward_basis[:, 0]  # (2 x 129 frequencies, 256): Hann x cosine, Hann x sine
    assert torch.allclose(stft[0], torch.hann_window(256), atol=4e-3) and stft[129].abs().max() == 0
    assert (vocoder.mel_stft.mel_basis >= 0).all() and (vocoder.mel_stft.mel_basis.sum(1) > 0).all()
    with torch.no_grad():
        wave = vocoder(torch.randn(1, 2, 10, 64, generator=torch.Generator().manual_seed(0)) - 4)
    assert wave.shape == (1, 2, 10 * 480) and wave.abs().max() <= 1  # 10 mel frames: 0.1 s at 48 kHz


@pytest.mark.parametrize(("given", "written"), [("2.3", "2.3.0"), ("2.3.1", "2.3.1"), ("2.3-rc1", "2.3-rc1")])
def test_a_two_part_version_is_written_with_three_parts(given: str, written: str) -> None:
    from ltx_pipelines.smoke_model import full_version

    assert full_version(given) == written
