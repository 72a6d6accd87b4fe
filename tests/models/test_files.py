"""Which file holds which component: classification from headers, split and monolithic sets, --model-dir.

The files here are tiny stand-ins with the real key layouts and metadata of each kind (one small tensor
per key); nothing is loaded, so that is all the checks read.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from ltx_pipelines.models import discovery
from ltx_pipelines.models.files import Kind, inspect_file, resolve_model_files
from ltx_pipelines.utils.errors import InputError

TRANSFORMER_CONFIG = {"transformer": {"num_layers": 2}}
GEMMA_25 = {"gemma_version": "gemma4-12b-ltx-v1", "model_type": "gemma4_unified"}

#: kind -> (tensor names, metadata builder taking the model version)
LAYOUTS = {
    "checkpoint": (["model.diffusion_model.proj_out.weight", "vae.decoder.conv_in.weight", "audio_vae.decoder.x"],
                   lambda v: {"config": json.dumps({**TRANSFORMER_CONFIG, "vae": {}, "audio_vae": {}}),
                              "model_version": v}),
    "transformer": (["model.diffusion_model.proj_out.weight"],
                    lambda v: {"config": json.dumps(TRANSFORMER_CONFIG), "model_version": v,
                               "gemma_source_checkpoint": json.dumps({"gemma_version": GEMMA_25["gemma_version"]})}),
    "text_encoder": (["model.layers.0.mlp.down_proj.weight", "tokenizer_json"],
                     lambda v: {"gemma_config": json.dumps(GEMMA_25)}),
    "video_vae": (["decoder.conv_in.weight", "encoder.conv_in.weight", "per_channel_statistics.std-of-means"],
                  lambda v: {"config": json.dumps({"vae": {"_class_name": "CausalVideoAutoencoder"}}),
                             "model_version": v}),
    "diffusion_vae": (["decoder.blocks.0.qkv.weight", "encoder.conv_in.weight"],
                      lambda v: {"config": json.dumps({"vae": {"_class_name": "CausalDiffusionVAE"}}),
                                 "model_version": v}),
    "audio_vae": (["audio_vae.decoder.conv_in.weight", "vocoder.conv_pre.weight"],
                  lambda v: {"config": json.dumps({"audio_vae": {}, "vocoder": {}}), "model_version": v}),
    "upsampler": (["initial_conv.weight"], lambda v: {"config": json.dumps({"spatial_upsample": True})}),
    "lora": (["diffusion_model.proj_out.lora_A.weight", "diffusion_model.proj_out.lora_B.weight"], lambda v: {}),
    "duration_head": (["duration_head.mlp_out.weight"], lambda v: {"config": json.dumps(TRANSFORMER_CONFIG)}),
}


def write(path: Path, layout: str, version: str = "2.5.0", **metadata: str) -> Path:
    names, meta = LAYOUTS[layout]
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({name: torch.zeros(1) for name in names}, str(path), metadata={**meta(version), **metadata})
    return path


def ltx25_download(root: Path) -> dict[str, Path]:
    """The LTX-2.5 download's layout (one file per component), as the published names."""
    return {
        "dev": write(root / "diffusion_models/ltx-2.5-22b-dev-transformer-bf16.safetensors", "transformer"),
        "distilled": write(root / "diffusion_models/ltx-2.5-22b-distilled-transformer-bf16.safetensors", "transformer"),
        "text_encoder": write(root / "text_encoders/gemma4-12b-with-proj-ltx-2.5-bf16.safetensors", "text_encoder"),
        "diffusion_vae": write(root / "vae/ltx-2.5-video-vae-bf16.safetensors", "diffusion_vae"),
        "video_vae": write(root / "vae/ltx-2.5-video-vae-conv-bf16.safetensors", "video_vae"),
        "audio_vae": write(root / "vae/ltx-2.5-audio-vae-bf16.safetensors", "audio_vae"),
        "upsampler": write(root / "latent_upscale_models/ltx-2.5-latent-spatial-upscaler-x2-bf16-1.0.safetensors",
                           "upsampler"),
        "lora": write(root / "loras/ltx-2.5-22b-distilled-lora-450-bf16.safetensors", "lora"),
        "duration_head": write(root / "model_patches/ltx-2.5-duration-head-bf16.safetensors", "duration_head"),
    }


@pytest.mark.parametrize(
    ("layout", "kind"),
    [("checkpoint", Kind.CHECKPOINT), ("transformer", Kind.TRANSFORMER), ("text_encoder", Kind.TEXT_ENCODER),
     ("video_vae", Kind.VIDEO_VAE), ("diffusion_vae", Kind.VIDEO_VAE), ("audio_vae", Kind.AUDIO_VAE),
     ("upsampler", Kind.UPSAMPLER), ("lora", Kind.LORA), ("duration_head", Kind.DURATION_HEAD)],
)  # fmt: skip
def test_each_kind_is_recognised_from_its_header(tmp_path: Path, layout: str, kind: Kind) -> None:
    assert inspect_file(write(tmp_path / "renamed.safetensors", layout), "file").kind is kind


def test_split_files_resolve_with_their_version_and_decoder(tmp_path: Path) -> None:
    f = ltx25_download(tmp_path)
    files = resolve_model_files(transformer_path=f["dev"], text_encoder_path=f["text_encoder"],
                                video_vae_path=f["video_vae"], audio_vae_path=f["audio_vae"],
                                duration_head_path=f["duration_head"])  # fmt: skip
    assert files.split and files.generation.name == "LTX-2.5" and files.generation.image_crf == 18
    assert files.text_encoder == f["text_encoder"] and files.duration_head.path == f["duration_head"]
    assert "LTX-2.5 (2.5.0): transformer ltx-2.5-22b-dev-transformer-bf16.safetensors" in files.describe()


def test_monolithic_checkpoint_resolves_as_before(tmp_path: Path) -> None:
    checkpoint = write(tmp_path / "ltx-2.3.safetensors", "checkpoint", "2.3.0")
    files = resolve_model_files(checkpoint_path=checkpoint, gemma_root=tmp_path / "gemma")
    assert not files.split and files.video_vae is files.transformer is files.audio_vae
    assert files.generation.name == "LTX-2.3" and files.generation.num_inference_steps == 30


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"checkpoint_path": "dev", "transformer_path": "dev"}, "Give one or the other"),
        ({"transformer_path": "dev", "text_encoder_path": "text_encoder"},
         "also give --video-vae-path, --audio-vae-path"),
        ({"checkpoint_path": "dev"}, "holds only the transformer"),
        ({"transformer_path": "video_vae", "text_encoder_path": "text_encoder", "video_vae_path": "video_vae",
          "audio_vae_path": "audio_vae"}, "--transformer-path expects a transformer"),
        ({"transformer_path": "dev", "text_encoder_path": "text_encoder", "video_vae_path": "audio_vae",
          "audio_vae_path": "audio_vae"}, "It looks like an audio VAE: pass it with --audio-vae-path"),
        ({}, "No model given"),
    ],
)  # fmt: skip
def test_wrong_files_are_refused_with_the_flag_to_use(tmp_path: Path, given: dict, message: str) -> None:
    f = ltx25_download(tmp_path)
    with pytest.raises(InputError, match=message):
        resolve_model_files(**{flag: f[name] for flag, name in given.items()})


def test_vae_decoder_takes_or_refuses_the_video_vae_file(tmp_path: Path) -> None:
    f = ltx25_download(tmp_path)
    rest = {"transformer_path": f["dev"], "text_encoder_path": f["text_encoder"], "audio_vae_path": f["audio_vae"]}
    assert resolve_model_files(**rest, video_vae_path=f["diffusion_vae"]).video_vae.diffusion_decoder
    with pytest.raises(InputError, match="--vae-decoder conv: .* holds the diffusion video decoder"):
        resolve_model_files(**rest, video_vae_path=f["diffusion_vae"], vae_decoder="conv")
    with pytest.raises(InputError, match="--vae-decoder diffusion: .* holds the convolutional video decoder"):
        resolve_model_files(**rest, video_vae_path=f["video_vae"], vae_decoder="diffusion")
    with pytest.raises(InputError, match="--vae-decoder 'fast'"):
        resolve_model_files(**rest, video_vae_path=f["video_vae"], vae_decoder="fast")


def test_files_of_two_versions_are_refused_naming_both(tmp_path: Path) -> None:
    f = ltx25_download(tmp_path)
    old_vae = write(tmp_path / "ltx-2.3-vae.safetensors", "video_vae", "2.3.0")
    mixed = r"transformer, model version 2.5.0\) and .*ltx-2.3-vae.safetensors \(video VAE, model version 2.3.0\)"
    with pytest.raises(InputError, match=mixed):
        resolve_model_files(transformer_path=f["dev"], text_encoder_path=f["text_encoder"], video_vae_path=old_vae,
                            audio_vae_path=f["audio_vae"])  # fmt: skip


def test_a_stock_gemma_is_refused(tmp_path: Path) -> None:
    f = ltx25_download(tmp_path)
    stock = tmp_path / "gemma-4-stock.safetensors"
    save_file({"tokenizer_json": torch.zeros(1)}, str(stock),
              metadata={"gemma_config": json.dumps({"model_type": "gemma4_unified"})})  # fmt: skip
    with pytest.raises(InputError, match="trained with the text encoder 'gemma4-12b-ltx-v1'.*a stock Gemma"):
        resolve_model_files(transformer_path=f["dev"], text_encoder_path=stock, video_vae_path=f["video_vae"],
                            audio_vae_path=f["audio_vae"])  # fmt: skip


@pytest.mark.parametrize("distilled", [False, True])
def test_model_dir_finds_the_ltx25_download(tmp_path: Path, distilled: bool) -> None:
    f = ltx25_download(tmp_path / "ltx-2.5")
    picked = discovery.pick(discovery.scan(tmp_path), distilled=distilled)
    assert picked.transformer_path == f["distilled" if distilled else "dev"]
    assert (picked.text_encoder_path, picked.audio_vae_path) == (f["text_encoder"], f["audio_vae"])
    assert picked.video_vae_path == f["diffusion_vae"]  # the diffusion decoder where both are there
    conv = discovery.pick(discovery.scan(tmp_path), distilled=distilled, vae_decoder="conv")
    assert conv.video_vae_path == f["video_vae"]
    assert (picked.spatial_upsampler_path, picked.distilled_lora_path) == (f["upsampler"], f["lora"])
    assert picked.duration_head_path == f["duration_head"] and picked.checkpoint_path is None


def test_model_dir_with_a_monolithic_checkpoint_and_gemma_folder(tmp_path: Path) -> None:
    checkpoint = write(tmp_path / "checkpoints/ltx-2.3-22b-dev.safetensors", "checkpoint", "2.3.0")
    gemma = tmp_path / "text_encoders/gemma-3-12b-it"
    gemma.mkdir(parents=True)
    (gemma / "config.json").write_text(json.dumps({"model_type": "gemma3", "text_config": {}}))
    picked = discovery.pick(discovery.scan(tmp_path), distilled=False)
    assert (picked.checkpoint_path, picked.gemma_root) == (checkpoint, gemma)


def test_model_dir_prefers_the_newest_version_and_refuses_ambiguity(tmp_path: Path) -> None:
    write(tmp_path / "checkpoints/ltx-2.3-22b-dev.safetensors", "checkpoint", "2.3.0")
    f = ltx25_download(tmp_path)
    assert discovery.pick(discovery.scan(tmp_path), distilled=False).transformer_path == f["dev"]
    write(tmp_path / "vae/another-conv-vae.safetensors", "video_vae")
    with pytest.raises(InputError, match="several convolutional video VAE files"):
        discovery.pick(discovery.scan(tmp_path), distilled=False, vae_decoder="conv")


def test_model_dir_says_what_is_missing(tmp_path: Path) -> None:
    f = ltx25_download(tmp_path)
    f["audio_vae"].unlink()
    with pytest.raises(InputError, match="no audio VAE file of the same model version"):
        discovery.pick(discovery.scan(tmp_path), distilled=False)
    f["video_vae"].unlink()
    with pytest.raises(InputError, match="no convolutional video VAE file"):
        discovery.pick(discovery.scan(tmp_path), distilled=False, vae_decoder="conv")
    with pytest.raises(InputError, match="does not exist"):
        discovery.scan(tmp_path / "nowhere")


def test_gemma_version_rules_without_a_source_checkpoint(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The 1.2.0 rule where the transformer names no Gemma: from 2.4 on only an unversioned encoder (warned
    about); before 2.4 no Gemma 4 at all."""
    f = ltx25_download(tmp_path)
    rest = {"video_vae_path": f["video_vae"], "audio_vae_path": f["audio_vae"]}
    unnamed = write(tmp_path / "unnamed.safetensors", "transformer", gemma_source_checkpoint="")
    with pytest.raises(InputError, match="does not say which text encoder it was trained with"):
        resolve_model_files(transformer_path=unnamed, text_encoder_path=f["text_encoder"], **rest)
    stock = tmp_path / "stock.safetensors"
    save_file({"tokenizer_json": torch.zeros(1)}, str(stock),
              metadata={"gemma_config": json.dumps({"model_type": "gemma4_unified"})})  # fmt: skip
    with caplog.at_level("WARNING", logger="ltx_pipelines.models.files"):
        resolve_model_files(transformer_path=unnamed, text_encoder_path=stock, **rest)
    assert "names a Gemma version" in caplog.text
    old = write(tmp_path / "old.safetensors", "transformer", version="2.3.0", gemma_source_checkpoint="")
    old_rest = {"video_vae_path": write(tmp_path / "vae23.safetensors", "video_vae", version="2.3.0"),
                "audio_vae_path": write(tmp_path / "audio23.safetensors", "audio_vae", version="2.3.0")}  # fmt: skip
    with pytest.raises(InputError, match="predates Gemma 4 text encoders.*gemma4_unified"):
        resolve_model_files(transformer_path=old, text_encoder_path=stock, **old_rest)
