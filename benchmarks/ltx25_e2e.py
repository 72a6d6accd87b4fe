"""LTX-2.5 end to end on one GPU (issue 20): the default two-stage generation from full-size random split files.

1. ``bundle``: writes LTX-2.5's download layout under ``--workdir`` with full-size random bf16 weights, each tensor
   drawn on the GPU and streamed to its file: ``diffusion_models/`` (the 22B transformer with its text connectors,
   sizes from ``transformer_step.transformer_config_25``), ``text_encoders/`` (Gemma 4 at 12B sizes, packed with
   the tokenizer and the text projection; written to ``--te-dir``, e.g. /dev/shm, and linked in), ``vae/`` (the
   convolutional video VAE with bare keys, the audio VAE and vocoder: LTX-2's full sizes),
   ``latent_upscale_models/`` (the x2 upsampler) and ``loras/`` (a rank-``--lora-rank`` distilled LoRA).
2. ``e2e``: ``TI2VidTwoStagesPipeline(model_dir=...)`` with nothing else but the prompt and the output: 2.5's
   defaults (30 steps, STG block 28), 1536x1024x121, ``--offload auto``, under each of ``--caps`` (GiB; ``none``:
   the whole card), a first and a warm run per cap; per-stage breakdown, memory plan, GPU and host peaks.

THE WEIGHTS ARE RANDOM: the videos are noise; only time and memory mean something.

Sizes ASSUMED where no 2.5 file was at hand (say so next to any figure): the transformer as in
``transformer_step.py`` (18.99B parameters); its connectors at the transformer's widths (32 heads of 128 and of
64; 2 layers, ltx-core's default); Gemma 4 "12B" with Gemma 3 12B's text sizes (48 layers, width 3840, 16 heads
of 256, 8 KV heads, MLP 15360, vocabulary 262 144, every sixth layer global) and the smoke model's tiny vision
and audio towers (the text path never runs them); the VAEs, vocoder and upsampler as LTX-2's.

    python benchmarks/ltx25_e2e.py --workdir /tmp/ltx25 --te-dir /dev/shm/ltx25 --caps none,24,16 --json $OUT/e2e.json
    python benchmarks/ltx25_e2e.py --tiny --device cpu --workdir /tmp/ltx25-tiny   # the same code, smoke sizes
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from offload import cap_gpu, left, log, release, timed_runs, write_random_safetensors  # noqa: E402
from transformer_step import transformer_config_25  # noqa: E402

from ltx_pipelines.memory.host import GIB  # noqa: E402

MODEL_VERSION = "2.5.0"
GEMMA_VERSION = "gemma4-12b-ltx-v1"
#: Gemma 4 "12B" text sizes, assumed (Gemma 3 12B's): see the module docstring.
GEMMA4_12B_TEXT = {
    "vocab_size": 262144, "hidden_size": 3840, "intermediate_size": 15360, "num_hidden_layers": 48,
    "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 256, "global_head_dim": 512,
    "num_global_key_value_heads": 4, "sliding_window": 1024, "max_position_embeddings": 131072,
}  # fmt: skip
FILES = {
    "transformer": "diffusion_models/ltx-2.5-22b-dev-transformer-random-bf16.safetensors",
    "text_encoder": "text_encoders/gemma4-12b-with-proj-ltx-2.5-random-bf16.safetensors",
    "video_vae": "vae/ltx-2.5-video-vae-conv-random-bf16.safetensors",
    "audio_vae": "vae/ltx-2.5-audio-vae-random-bf16.safetensors",
    "upsampler": "latent_upscale_models/ltx-2.5-latent-spatial-upscaler-x2-random-bf16.safetensors",
    "lora": "loras/ltx-2.5-22b-distilled-lora-random-bf16.safetensors",
}


# -- the full-size bundle --------------------------------------------------------------------------------


@dataclass(frozen=True)
class BundleConfig:
    """Every file's config: full size for the GPU, the real-channel smoke sizes for the CPU self-check."""

    transformer: dict  # the file's whole config ({"transformer": ...})
    gemma: dict  # the packed text encoder's gemma_config
    vae: dict
    audio_vae: dict
    vocoder: dict
    upsampler: dict

    @classmethod
    def full(cls) -> BundleConfig:
        from distilled_e2e import AUDIO_VAE_CONFIG, VAE_CONFIG, VOCODER_CONFIG

        return cls(full_transformer_config(), gemma4_12b_config(), VAE_CONFIG, AUDIO_VAE_CONFIG, VOCODER_CONFIG,
                   {"in_channels": 128})  # fmt: skip

    @classmethod
    def tiny(cls) -> BundleConfig:
        from ltx_pipelines.smoke_model import (
            REAL_CHANNEL_SIZES,
            audio_vae_config,
            upsampler_config,
            video_vae_config,
            vocoder_config,
        )
        from ltx_pipelines.smoke_model.ltx25 import ltx25_transformer_config
        from ltx_pipelines.smoke_model.ltx25_text_encoder import gemma4_config

        sizes = REAL_CHANNEL_SIZES
        return cls({"transformer": ltx25_transformer_config(sizes)}, gemma4_config(GEMMA_VERSION),
                   video_vae_config(sizes), audio_vae_config(sizes), vocoder_config(), upsampler_config(sizes))  # fmt: skip


def full_transformer_config() -> dict:
    """The 22B ``transformer`` section with its text connectors at the transformer's own widths."""
    transformer = transformer_config_25(tiny=False)["transformer"]
    transformer.update({
        # the V2 text path's full key set (files that project in the text encoder carry all four)
        "caption_projection_first_linear": False, "caption_proj_input_norm": False,
        "caption_projection_second_linear": False,
        "connector_num_attention_heads": transformer["num_attention_heads"],
        "connector_attention_head_dim": transformer["attention_head_dim"],
        "audio_connector_num_attention_heads": transformer["audio_num_attention_heads"],
        "audio_connector_attention_head_dim": transformer["audio_attention_head_dim"],
    })  # fmt: skip
    return {"transformer": transformer}


def gemma4_12b_config() -> dict:
    """The smoke Gemma 4's config with 12B text sizes (its tokenizer, media tokens and tiny towers kept)."""
    from ltx_pipelines.smoke_model.ltx25_text_encoder import gemma4_config

    config = copy.deepcopy(gemma4_config(GEMMA_VERSION))
    text = config["text_config"]
    text.update(GEMMA4_12B_TEXT)
    text["layer_types"] = ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention"
                           for i in range(text["num_hidden_layers"])]  # fmt: skip
    return config


def _layout(configurator: type, config: dict, prefix: str, statistics: str | None = None) -> list:
    """(name, shape) of what a component's file stores, in the real key layout (the smoke model's writer's)."""
    from ltx_pipelines.smoke_model import _meta_build, module_layout

    return [(name, shape) for name, shape, stored in module_layout(_meta_build(configurator, config), prefix, statistics)
            if stored]  # fmt: skip


def transformer_shapes(config: dict) -> list[tuple[str, torch.Size]]:
    """Every tensor of the split transformer file: the model and both text connectors."""
    from ltx_core.text_encoders.gemma.embeddings_connector import (
        AudioEmbeddings1DConnectorConfigurator,
        Embeddings1DConnectorConfigurator,
    )

    from ltx_pipelines.models.ltx25.transformer import LTX25ModelConfigurator

    prefix = "model.diffusion_model."
    return (_layout(LTX25ModelConfigurator, config, prefix)
            + _layout(Embeddings1DConnectorConfigurator, config, f"{prefix}video_embeddings_connector.")
            + _layout(AudioEmbeddings1DConnectorConfigurator, config, f"{prefix}audio_embeddings_connector."))  # fmt: skip


def text_encoder_tensors(config: dict, video_width: int, audio_width: int) -> tuple[list, dict[str, torch.Tensor]]:
    """(random tensors' names and shapes, the stored tokenizer files) of the packed Gemma 4 file."""
    from ltx_pipelines.smoke_model.ltx25_text_encoder import (
        _gemma_shapes,
        processor_config,
        tokenizer_config,
        tokenizer_json,
    )

    text = config["text_config"]
    flat = text["hidden_size"] * (text["num_hidden_layers"] + 1)  # every hidden state of a token, concatenated
    shapes = dict(_gemma_shapes(config))
    for modality, width in (("video", video_width), ("audio", audio_width)):
        shapes[f"text_embedding_projection.{modality}_aggregate_embed.weight"] = torch.Size([width, flat])
        shapes[f"text_embedding_projection.{modality}_aggregate_embed.bias"] = torch.Size([width])
    stored = {"tokenizer_json": tokenizer_json().encode()}
    for name, content in (("tokenizer_config.json", tokenizer_config()), ("processor_config.json", processor_config())):
        stored[f"hf_asset__{name}"] = json.dumps(content, indent=2, sort_keys=True).encode()
    fixed = {name: torch.frombuffer(bytearray(data), dtype=torch.uint8) for name, data in stored.items()}
    return sorted(shapes.items()), fixed


def lora_shapes(transformer_shapes_: list[tuple[str, torch.Size]], rank: int) -> list[tuple[str, tuple[int, int]]]:
    """A distilled LoRA on every block linear the smoke LoRA targets, in ComfyUI naming."""
    from ltx_pipelines.smoke_model import LORA_TARGETS

    prefix = "model.diffusion_model."
    shapes = []
    for name, shape in transformer_shapes_:
        module = name[len(prefix) : -len(".weight")]
        if name.endswith(".weight") and module.startswith("transformer_blocks.") and module.endswith(LORA_TARGETS):
            out_features, in_features = shape
            shapes += [(f"diffusion_model.{module}.lora_A.weight", (rank, in_features)),
                       (f"diffusion_model.{module}.lora_B.weight", (out_features, rank))]  # fmt: skip
    return shapes


def write_bundle(root: Path, te_dir: Path | None, lora_rank: int, device: torch.device, sizes: BundleConfig) -> Path:
    """The download's folders under ``root`` (each file written once; a rerun reuses what is there)."""
    from ltx_core.model.audio_vae import AudioDecoderConfigurator, AudioEncoderConfigurator, VocoderConfigurator
    from ltx_core.model.upsampler import LatentUpsamplerConfigurator
    from ltx_core.model.video_vae import VideoDecoderConfigurator, VideoEncoderConfigurator

    started = time.perf_counter()
    paths = {name: root / relative for name, relative in FILES.items()}
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    version = {"model_version": MODEL_VERSION}
    dit = transformer_shapes(sizes.transformer)
    if not paths["transformer"].exists():
        meta = {"config": json.dumps(sizes.transformer), **version, "distilled": "false",
                "gemma_source_checkpoint": json.dumps({"ltx_version": MODEL_VERSION, "gemma_version": GEMMA_VERSION})}
        _write(paths["transformer"], dit, meta, device, seed=0)
    if not paths["text_encoder"].exists():
        t = sizes.transformer["transformer"]
        shapes, fixed = text_encoder_tensors(sizes.gemma, t["cross_attention_dim"], t["audio_cross_attention_dim"])
        target = paths["text_encoder"] if te_dir is None else te_dir / paths["text_encoder"].name
        target.parent.mkdir(parents=True, exist_ok=True)
        meta = {"format": "pt", "gemma_config": json.dumps(sizes.gemma)}
        _write(target, shapes, meta, device, seed=1, fixed=fixed)
        if target != paths["text_encoder"]:
            paths["text_encoder"].unlink(missing_ok=True)
            paths["text_encoder"].symlink_to(target)
    if not paths["video_vae"].exists():
        vae = {"vae": {**sizes.vae, "_class_name": "CausalVideoAutoencoder"}}
        shapes = _layout(VideoEncoderConfigurator, vae, "encoder.", "") + _layout(VideoDecoderConfigurator, vae,
                                                                                   "decoder.")  # fmt: skip
        _write(paths["video_vae"], shapes, {"config": json.dumps(vae), **version}, device, seed=2)
    if not paths["audio_vae"].exists():
        audio = {"audio_vae": sizes.audio_vae, "vocoder": sizes.vocoder}
        shapes = (_layout(AudioEncoderConfigurator, audio, "audio_vae.encoder.", "audio_vae.")
                  + _layout(AudioDecoderConfigurator, audio, "audio_vae.decoder.")
                  + _layout(VocoderConfigurator, audio, "vocoder."))  # fmt: skip
        _write(paths["audio_vae"], shapes, {"config": json.dumps(audio), **version}, device, seed=3)
    if not paths["upsampler"].exists():
        up = sizes.upsampler
        _write(paths["upsampler"], _layout(LatentUpsamplerConfigurator, up, ""), {"config": json.dumps(up), **version},
               device, seed=4)  # fmt: skip
    if not paths["lora"].exists():
        _write(paths["lora"], lora_shapes(dit, lora_rank), version, device, seed=5)
    sizes_gib = {name: round(path.stat().st_size / GIB, 2) for name, path in paths.items()}
    log(f"bundle at {root} in {time.perf_counter() - started:.0f} s: {json.dumps(sizes_gib)} GiB")
    return root


def _write(path: Path, shapes: list, metadata: dict, device: torch.device, seed: int,
           fixed: dict[str, torch.Tensor] | None = None) -> None:  # fmt: skip
    """Write to a temporary name, then rename: a run cut short never leaves a truncated file behind."""
    partial = path.with_name(path.name + ".partial")
    write_random_safetensors(partial, shapes, metadata, device, seed, fixed=fixed)
    partial.rename(path)
    log(f"wrote {path.name}: {path.stat().st_size / GIB:.2f} GiB")


# -- the generation -------------------------------------------------------------------------------------


def e2e(model_dir: Path, args: argparse.Namespace, device: torch.device, dtype: torch.dtype, rows: list) -> None:
    """The default two-stage generation, ``--offload auto`` under each cap, a first and a warm run."""
    from dataclasses import replace

    from ltx_pipelines import TI2VidTwoStagesPipeline
    from ltx_pipelines.utils.constants import DEFAULT_AUDIO_GUIDER_PARAMS, DEFAULT_VIDEO_GUIDER_PARAMS

    extra: dict = {}
    if args.tiny:  # 4 blocks: STG on the last; a few steps
        extra = {"num_inference_steps": 3,
                 "video_guider_params": replace(DEFAULT_VIDEO_GUIDER_PARAMS, stg_blocks=[3]),
                 "audio_guider_params": replace(DEFAULT_AUDIO_GUIDER_PARAMS, stg_blocks=[3])}  # fmt: skip
    for cap in args.caps:
        if left(args.budget) < args.cold_estimate:
            log(f"e2e under {cap} GiB: skipped, out of time")
            continue
        cap_gpu(device, cap)
        loaded = time.perf_counter()
        pipeline = TI2VidTwoStagesPipeline(model_dir=model_dir, device=device, dtype=dtype, max_gpu_memory=cap)
        timed_runs(pipeline, cap, args, device, rows, {"construct_s": round(time.perf_counter() - loaded, 2)}, **extra)
        release(pipeline, device)
        del pipeline
    cap_gpu(device, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="The real-channel 2.5 smoke bundle (CPU self-check).")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ltx25"))
    parser.add_argument("--te-dir", type=Path, default=None, help="Folder for the text encoder, linked in (default: in place).")
    parser.add_argument("--out", type=Path, default=Path("/tmp/ltx25-out"))
    parser.add_argument("--lora-rank", type=int, default=64)
    parser.add_argument("--frames", type=int, default=121)
    parser.add_argument("--caps", default="none,24,16", help="GPU caps in GiB, in order ('none': the whole card).")
    parser.add_argument("--first-only", action="store_true", help="No warm second run.")
    parser.add_argument("--bundle-only", action="store_true", help="Write the bundle and stop.")
    parser.add_argument("--budget", type=float, default=560.0, help="Seconds for the whole run.")
    parser.add_argument("--warm-estimate", type=float, default=90.0, help="Seconds a warm run needs to start.")
    parser.add_argument("--cold-estimate", type=float, default=120.0, help="Seconds a first run needs to start.")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    args.caps = [None if c == "none" else float(c) for c in args.caps.split(",")]
    args.e2e_size = (128, 192) if args.tiny else (1024, 1536)
    if args.tiny:
        args.frames = 9
    args.out.mkdir(parents=True, exist_ok=True)
    sizes = BundleConfig.tiny() if args.tiny else BundleConfig.full()
    lora_rank = 4 if args.tiny else args.lora_rank
    model_dir = write_bundle(args.workdir, args.te_dir, lora_rank, device, sizes)
    result: dict = {"gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                    "torch": torch.__version__, "model_dir": str(model_dir), "e2e": []}  # fmt: skip
    args.save = lambda: args.json.write_text(json.dumps(result, indent=2)) if args.json else None
    args.save()
    if not args.bundle_only:
        e2e(model_dir, args, device, dtype, result["e2e"])
        args.save()
    log("done")


if __name__ == "__main__":
    main()
