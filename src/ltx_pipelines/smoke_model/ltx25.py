"""The LTX-2.5 smoke bundle: tiny random weights in LTX-2.5's one-file-per-component download layout.

``python -m ltx_pipelines.smoke_model --model-version 2.5 DIR`` writes, under ``DIR``, the folders and file kinds
of the real download (``diffusion_models/``, ``text_encoders/``, ``vae/``, ``latent_upscale_models/``,
``loras/``, ``model_patches/``) with each file's real key layout and metadata: a dev and a distilled transformer
(``model.diffusion_model.*`` with the text connectors and a non-zero keyframe embedding, no feed-forward
biases), a packed Gemma-4 text encoder, a convolutional video VAE with bare keys, the audio VAE with its
vocoder, the x2 upsampler, a distilled LoRA and an IC-LoRA, and a duration head.

THE WEIGHTS ARE RANDOM: every video made with this bundle is noise.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ltx_pipelines.smoke_model import (
    AUDIO_INNER_DIM,
    SMOKE_NOTICE,
    SMOKE_SIZES,
    VIDEO_INNER_DIM,
    SmokeSizes,
    _bf16,
    _meta_build,
    audio_vae_config,
    module_layout,
    random_tensors,
    save_file,
    video_vae_config,
    vocoder_config,
    write_lora,
    write_upsampler,
)
from ltx_pipelines.smoke_model.ltx23 import ltx23_transformer_config

logger = logging.getLogger(__name__)

MODEL_VERSION = "2.5.0"
#: The text encoder the smoke transformers declare (a real 2.5 transformer declares "gemma4-12b-ltx-v1").
GEMMA_VERSION = "gemma4-smoke-ltx-v1"


@dataclass(frozen=True)
class Ltx25SmokeBundle:
    """Paths of a written LTX-2.5 smoke bundle (the download's folder layout)."""

    root: Path
    transformer: Path
    distilled_transformer: Path
    text_encoder: Path
    video_vae: Path
    audio_vae: Path
    spatial_upsampler: Path
    distilled_lora: Path
    ic_lora: Path
    duration_head: Path

    @classmethod
    def at(cls, root: Path) -> Ltx25SmokeBundle:
        root = Path(root)
        return cls(
            root=root,
            transformer=root / "diffusion_models/ltx-2.5-smoke-dev-transformer.safetensors",
            distilled_transformer=root / "diffusion_models/ltx-2.5-smoke-distilled-transformer.safetensors",
            text_encoder=root / "text_encoders/gemma4-smoke-with-proj-ltx-2.5.safetensors",
            video_vae=root / "vae/ltx-2.5-smoke-video-vae-conv.safetensors",
            audio_vae=root / "vae/ltx-2.5-smoke-audio-vae.safetensors",
            spatial_upsampler=root / "latent_upscale_models/ltx-2.5-smoke-latent-spatial-upscaler-x2.safetensors",
            distilled_lora=root / "loras/ltx-2.5-smoke-distilled-lora.safetensors",
            ic_lora=root / "loras/ltx-2.5-smoke-ic-lora.safetensors",
            duration_head=root / "model_patches/ltx-2.5-smoke-duration-head.safetensors",
        )

    def files(self) -> tuple[Path, ...]:
        return tuple(value for name, value in vars(self).items() if name != "root")

    def exists(self) -> bool:
        return (self.root / "bundle.json").is_file() and all(path.is_file() for path in self.files())


def ltx25_transformer_config(sizes: SmokeSizes = SMOKE_SIZES) -> dict:
    """The ``transformer`` section: LTX-2.3's (``smoke_model.ltx23``) with LTX-2.5's own switches, miniature sizes.

    Feed-forwards have no biases and the keyframe embedding marks the first latent frame. Left as the golden
    fixtures were made: no ``caption_channels`` (unread on the V2 text path) and ungated connectors.
    """
    config = ltx23_transformer_config(sizes, gated_connectors=False)
    config.pop("caption_channels")
    config.update({"ff_bias": False, "use_keyframes_abs_pos_embedding": True})
    return config


def _transformer_tensors(config: dict, seed: int) -> dict[str, torch.Tensor]:
    from ltx_core.text_encoders.gemma.embeddings_connector import (
        AudioEmbeddings1DConnectorConfigurator,
        Embeddings1DConnectorConfigurator,
    )

    from ltx_pipelines.models.ltx25.transformer import LTX25ModelConfigurator

    prefix = "model.diffusion_model."
    layout = module_layout(_meta_build(LTX25ModelConfigurator, config), prefix)
    layout += module_layout(_meta_build(Embeddings1DConnectorConfigurator, config),
                            f"{prefix}video_embeddings_connector.")  # fmt: skip
    layout += module_layout(_meta_build(AudioEmbeddings1DConnectorConfigurator, config),
                            f"{prefix}audio_embeddings_connector.")  # fmt: skip
    return random_tensors(layout, seed)


def write_transformer(path: Path, seed: int, distilled: bool, sizes: SmokeSizes = SMOKE_SIZES) -> None:
    """A split transformer file: the transformer and its text connectors, with 2.5's metadata."""
    config = {"transformer": ltx25_transformer_config(sizes)}
    metadata = {
        "config": json.dumps(config, sort_keys=True),
        "model_version": MODEL_VERSION,
        "gemma_source_checkpoint": json.dumps({"ltx_version": MODEL_VERSION, "gemma_version": GEMMA_VERSION}),
        "distilled": "true" if distilled else "false",
        "smoke_model": SMOKE_NOTICE,
    }
    save_file(_bf16(_transformer_tensors({"transformer": config["transformer"]}, seed)), str(path), metadata)


def write_video_vae(path: Path, seed: int, sizes: SmokeSizes = SMOKE_SIZES) -> None:
    """The convolutional video VAE file: bare ``encoder.*`` / ``decoder.*`` / ``per_channel_statistics.*`` keys."""
    from ltx_core.model.video_vae import VideoDecoderConfigurator, VideoEncoderConfigurator

    vae = {**video_vae_config(sizes), "_class_name": "CausalVideoAutoencoder"}
    config = {"vae": vae}
    layout = module_layout(_meta_build(VideoEncoderConfigurator, config), "encoder.", "")
    layout += module_layout(_meta_build(VideoDecoderConfigurator, config), "decoder.", None)
    metadata = {"config": json.dumps(config, sort_keys=True), "model_version": MODEL_VERSION,
                "smoke_model": SMOKE_NOTICE}  # fmt: skip
    save_file(_bf16(random_tensors(layout, seed)), str(path), metadata)


#: The smoke diffusion decoder: every stage of the real one, tiny widths and one block each, 3x3x3 windows.
SMOKE_DIFFUSION_DECODER = {
    "head_dim": 16,
    "t_emb_dim": 32,
    "stage_channels": [64, 32, 16, 16, 16],
    "stage_depths": [1, 1, 1, 1, 1],
    "stage_kernels": [[3, 3, 3]] * 5,
    "upsamples": [[[1, 2, 2], 2], [[2, 1, 1], 2], [[2, 2, 2], 1], [[2, 2, 2], 1]],
    "stage5_kernel": [3, 3, 3],
    "default_num_inference_steps": 2,
}
DIFFUSION_VAE_NAME = "vae/ltx-2.5-smoke-video-vae.safetensors"


def diffusion_vae_config(sizes: SmokeSizes = SMOKE_SIZES) -> dict:
    """``config.vae`` of a diffusion-decoder file: the encoder's settings and the decoder's nested."""
    flat = video_vae_config(sizes)
    encoder = {"dims": 3, "in_channels": 3, "out_channels": sizes.video_latent_channels,
               "blocks": flat["encoder_blocks"], "patch_size": flat["patch_size"], "norm_layer": flat["norm_layer"],
               "latent_log_var": flat["latent_log_var"], "spatial_padding_mode": flat["spatial_padding_mode"]}  # fmt: skip
    decoder = {"in_channels": sizes.video_latent_channels, "out_channels": 3, "patch_size": 4,
               **SMOKE_DIFFUSION_DECODER}  # fmt: skip
    return {"_class_name": "CausalDiffusionVAE", "latent_channels": sizes.video_latent_channels, "encoder": encoder,
            "decoder": decoder}  # fmt: skip


def diffusion_decoder_file_tensors(module_state: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Our decoder's tensors in the published file's names: fused ``qkv``, ``t_embedder.mlp.*``, a static gate per
    stage-5 linear, ``coarse_*`` tensors (dropped on load) -- so loading the smoke file exercises all of it."""
    generator = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for name, value in module_state.items():
        if ".attn.to_k." in name or ".attn.to_v." in name:
            continue
        if ".attn.to_q." in name:
            leaf = name.rsplit(".", 1)[1]
            base = name.removesuffix(f".to_q.{leaf}")
            value = torch.cat([module_state[f"{base}.to_{p}.{leaf}"] for p in "qkv"])
            name = f"{base}.qkv.{leaf}"
        name = name.replace("t_embedder.linear_1.", "t_embedder.mlp.0.").replace(
            "t_embedder.linear_2.", "t_embedder.mlp.2."
        )
        out[name if name.startswith("per_channel_statistics.") else f"decoder.{name}"] = value
    blocks = sorted({n.split(".")[2] for n in out if n.startswith("decoder.diff_blocks.")})
    for block in blocks:
        width = out[f"decoder.diff_blocks.{block}.attn.proj.bias"].shape[0]
        for gate in ("gate_msa", "gate_mlp", "gate_ctx"):
            out[f"decoder.diff_blocks.{block}.{gate}"] = 0.5 + torch.rand(width, generator=generator)
    out["decoder.coarse_head.weight"] = torch.randn(12, 8, generator=generator)
    return out


def write_diffusion_video_vae(path: Path, seed: int, sizes: SmokeSizes = SMOKE_SIZES) -> None:
    """A diffusion-decoder video VAE file (``CausalDiffusionVAE``, like ``vae/ltx-2.5-video-vae-bf16.safetensors``):
    the convolutional encoder under ``encoder.*``, the diffusion decoder under ``decoder.*``."""
    from ltx_core.model.video_vae import VideoEncoderConfigurator

    from ltx_pipelines.models.ltx25.diffusion_decoder import DiffusionDecoderConfig, DiffusionVideoDecoder
    from ltx_pipelines.models.ltx25.diffusion_vae_file import flat_encoder_config

    vae = diffusion_vae_config(sizes)
    encoder = _meta_build(VideoEncoderConfigurator, {"vae": flat_encoder_config(vae)})
    with torch.device("meta"):
        decoder = DiffusionVideoDecoder(DiffusionDecoderConfig.from_vae_config(vae))
    layout = module_layout(encoder, "encoder.", "") + module_layout(decoder, "", None)
    tensors = random_tensors(layout, seed)
    decoder_state = {
        name: tensors.pop(name) for name in list(tensors) if not name.startswith(("encoder.", "per_channel"))
    }
    tensors.update(diffusion_decoder_file_tensors(decoder_state, seed + 1))
    metadata = {"config": json.dumps({"vae": vae}, sort_keys=True), "model_version": MODEL_VERSION,
                "smoke_model": SMOKE_NOTICE}  # fmt: skip
    save_file(_bf16(tensors), str(path), metadata)


def write_audio_vae(path: Path, seed: int, sizes: SmokeSizes = SMOKE_SIZES) -> None:
    """The audio VAE file: ``audio_vae.*`` and ``vocoder.*``, as in the monolithic checkpoints."""
    from ltx_core.model.audio_vae import AudioDecoderConfigurator, AudioEncoderConfigurator, VocoderConfigurator

    config = {"audio_vae": audio_vae_config(sizes), "vocoder": vocoder_config()}
    layout = module_layout(_meta_build(AudioEncoderConfigurator, config), "audio_vae.encoder.", "audio_vae.")
    layout += module_layout(_meta_build(AudioDecoderConfigurator, config), "audio_vae.decoder.", None)
    layout += module_layout(_meta_build(VocoderConfigurator, config), "vocoder.")
    metadata = {"config": json.dumps(config, sort_keys=True), "model_version": MODEL_VERSION,
                "smoke_model": SMOKE_NOTICE}  # fmt: skip
    save_file(_bf16(random_tensors(layout, seed)), str(path), metadata)


def write_duration_head(path: Path, seed: int) -> None:
    """The duration head, reading the connectors' widths (its own sizes kept small)."""
    from ltx_pipelines.models.ltx25.duration_head import DURATION_HEAD_PREFIX, DurationHeadConfigurator

    config = {"transformer": {"cross_attention_dim": VIDEO_INNER_DIM, "audio_cross_attention_dim": AUDIO_INNER_DIM},
              "duration_head": {"pooler_hidden_dim": 16, "num_queries": 1, "num_pooler_heads": 2, "mlp_hidden": 16}}
    layout = module_layout(_meta_build(DurationHeadConfigurator, config), DURATION_HEAD_PREFIX)
    metadata = {"config": json.dumps(config, sort_keys=True), "model_version": MODEL_VERSION,
                "smoke_model": SMOKE_NOTICE}  # fmt: skip
    save_file(_bf16(random_tensors(layout, seed)), str(path), metadata)


def build_ltx25_smoke_bundle(root: Path | str, seed: int = 0, sizes: SmokeSizes = SMOKE_SIZES) -> Ltx25SmokeBundle:
    """Write the whole LTX-2.5 bundle into ``root`` (written to a temporary folder and moved into place)."""
    from ltx_pipelines.smoke_model.ltx25_text_encoder import write_packed_text_encoder

    started = time.perf_counter()
    bundle = Ltx25SmokeBundle.at(Path(root))
    bundle.root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".smoke25-", dir=bundle.root.parent))
    staging.chmod(0o755)
    try:
        staged = Ltx25SmokeBundle.at(staging)
        for path in staged.files():
            path.parent.mkdir(parents=True, exist_ok=True)
        write_transformer(staged.transformer, seed, distilled=False, sizes=sizes)
        write_transformer(staged.distilled_transformer, seed + 1, distilled=True, sizes=sizes)
        write_packed_text_encoder(staged.text_encoder, seed + 2, VIDEO_INNER_DIM, AUDIO_INNER_DIM, GEMMA_VERSION)
        write_video_vae(staged.video_vae, seed + 3, sizes)
        write_audio_vae(staged.audio_vae, seed + 4, sizes)
        write_upsampler(staged.spatial_upsampler, seed + 5, sizes)
        write_lora(staged.distilled_lora, seed + 6, scale=0.05, sizes=sizes)
        write_lora(staged.ic_lora, seed + 7, scale=0.05, extra_metadata={"reference_downscale_factor": "1"},
                   sizes=sizes)  # fmt: skip
        write_duration_head(staged.duration_head, seed + 8)
        manifest = {"notice": SMOKE_NOTICE, "seed": seed, "model_version": MODEL_VERSION, "sizes": asdict(sizes),
                    **{name: str(path.relative_to(staging)) for name, path in vars(staged).items() if name != "root"}}
        (staging / "bundle.json").write_text(json.dumps(manifest, indent=2))
        if bundle.root.exists():
            shutil.rmtree(bundle.root)
        staging.rename(bundle.root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("LTX-2.5 smoke bundle written to %s in %.1f s", bundle.root, time.perf_counter() - started)
    return bundle


def ensure_ltx25_smoke_bundle(root: Path | str, seed: int = 0, sizes: SmokeSizes = SMOKE_SIZES) -> Ltx25SmokeBundle:
    """The LTX-2.5 bundle at ``root``, built first when missing, incomplete or of other seed or sizes."""
    bundle = Ltx25SmokeBundle.at(Path(root))
    if bundle.exists():
        written = json.loads((bundle.root / "bundle.json").read_text())
        if written.get("seed") == seed and written.get("sizes") == asdict(sizes):
            return bundle
    return build_ltx25_smoke_bundle(root, seed, sizes)


__all__ = ["DIFFUSION_VAE_NAME", "GEMMA_VERSION", "diffusion_vae_config", "write_diffusion_video_vae", "MODEL_VERSION", "Ltx25SmokeBundle", "build_ltx25_smoke_bundle",
           "ensure_ltx25_smoke_bundle", "ltx25_transformer_config"]  # fmt: skip
