"""Warm end-to-end time of the distilled pipeline at 512x768 output, with a breakdown.

No full-size checkpoint is needed (or could be downloaded): the pipeline is created on
small header-only files that carry the real LTX-2 config, and its model ledger is
filled with full-size random-weight components built on the GPU (19B transformer,
video VAE decoder/encoder, x2 upsampler, audio VAE decoder, vocoder). The prompt
embedding is pre-filled in the ledger's cache, so Gemma is not part of the timing
(a second generation with the same prompt never runs it either).

The first generation warms up (kernels, allocator); the second is the one reported:
text encoding, stage 1, upsample, stage 2, decode video, decode audio, write mp4.

    python benchmarks/distilled_e2e.py --out /tmp/e2e.mp4
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from transformer_step import build_model, transformer_config  # noqa: E402

# An LTX-2-like VAE decoder (4-3-3-4 residual layers around three 2x2x2 upsamplers,
# 128 base channels, timestep-conditioned); the encoder only serves its latent statistics here.
VAE_CONFIG = {
    "dims": 3, "in_channels": 3, "out_channels": 3, "latent_channels": 128, "patch_size": 4,
    "norm_layer": "pixel_norm", "latent_log_var": "uniform", "spatial_padding_mode": "reflect",
    "causal_decoder": False, "timestep_conditioning": True, "decoder_base_channels": 128,
    "encoder_blocks": [["res_x", {"num_layers": 1}], ["compress_all", {}], ["compress_all", {}], ["compress_all", {}]],
    "decoder_blocks": [
        ["res_x", {"num_layers": 4}], ["compress_all", {"multiplier": 2, "residual": False}],
        ["res_x", {"num_layers": 3}], ["compress_all", {"multiplier": 2, "residual": False}],
        ["res_x", {"num_layers": 3}], ["compress_all", {"multiplier": 2, "residual": False}],
        ["res_x", {"num_layers": 4}],
    ],
}  # fmt: skip
AUDIO_VAE_CONFIG = {
    "model": {"params": {"sampling_rate": 16000, "ddconfig": {
        "ch": 128, "out_ch": 2, "in_channels": 2, "ch_mult": [1, 2, 4], "num_res_blocks": 2,
        "attn_resolutions": [], "resolution": 256, "z_channels": 8, "double_z": True, "mel_bins": 64,
        "norm_type": "pixel", "causality_axis": "height", "mid_block_add_attention": False,
    }}},
    "preprocessing": {"stft": {"hop_length": 160, "filter_length": 1024, "causal": True}, "mel": {"n_mel_channels": 64}},
}  # fmt: skip
VOCODER_CONFIG = {"resblock": "1", "stereo": True, "output_sampling_rate": 24000}


def header_only_files(root: Path) -> tuple[Path, Path, Path]:
    """A checkpoint and an upsampler file with real configs and one token tensor each, and a Gemma folder."""
    config = {**transformer_config(tiny=False), "vae": VAE_CONFIG, "audio_vae": AUDIO_VAE_CONFIG, "vocoder": VOCODER_CONFIG}
    checkpoint = root / "ltx-2-19b-distilled-random.safetensors"
    save_file(
        {"model.diffusion_model.patchify_proj.bias": torch.zeros(4096)},
        str(checkpoint),
        metadata={"config": json.dumps(config), "model_version": "2.0.0", "distilled": "true"},
    )
    upsampler = root / "upsampler-random.safetensors"
    save_file({"initial_conv.weight": torch.zeros(1)}, str(upsampler), metadata={"config": json.dumps({"in_channels": 128})})
    gemma = root / "gemma"
    gemma.mkdir()
    (gemma / "config.json").write_text(json.dumps({"text_config": {"hidden_size": 3840, "num_hidden_layers": 48}}))
    for name in ("tokenizer.model", "preprocessor_config.json"):
        (gemma / name).write_text("{}")
    save_file({"unused": torch.zeros(1)}, str(gemma / "model.safetensors"))
    return checkpoint, upsampler, gemma


def on_device(factory: object, config: dict, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """Build a component with its own random init directly on the device; fix its latent statistics."""
    with torch.device(device):
        module = factory.from_config(config)
    for name, buffer in module.named_buffers():
        if name.endswith("std-of-means"):
            buffer.fill_(1.0)
        elif name.endswith("mean-of-means"):
            buffer.zero_()
    return module.to(dtype).eval().requires_grad_(False)


def fill_ledger(pipeline: object, config: dict, device: torch.device, dtype: torch.dtype, prompt: str) -> None:
    from ltx_core.model.audio_vae import AudioDecoderConfigurator, VocoderConfigurator
    from ltx_core.model.upsampler import LatentUpsamplerConfigurator
    from ltx_core.model.video_vae import VideoDecoderConfigurator, VideoEncoderConfigurator

    from ltx_pipelines.engine.guidance import PromptEmbeddings

    ledger = pipeline.ledger
    ledger._models[("transformer",)] = build_model(config, device, dtype, seed=0)
    ledger._models[("video_decoder",)] = on_device(VideoDecoderConfigurator, config, device, dtype)
    ledger._models[("video_encoder",)] = on_device(VideoEncoderConfigurator, config, device, dtype)
    ledger._models[("spatial_upsampler",)] = on_device(LatentUpsamplerConfigurator, {}, device, dtype)
    ledger._models[("audio_decoder",)] = on_device(AudioDecoderConfigurator, config, device, dtype)
    ledger._models[("vocoder",)] = on_device(VocoderConfigurator, config, device, torch.float32)
    g = torch.Generator(device=device).manual_seed(0)
    context = torch.randn(1, 1024, 3840, device=device, dtype=dtype, generator=g)
    ledger.prompt_cache[prompt] = PromptEmbeddings(context, context)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="Where to write the mp4 of each run.")
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--frames", type=int, default=121)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from ltx_core.model.video_vae import TilingConfig

    from ltx_pipelines import DistilledPipeline

    device, dtype = torch.device("cuda"), torch.bfloat16
    prompt = "A beautiful sunset over the ocean"
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint, upsampler, gemma = header_only_files(Path(tmp))
        pipeline = DistilledPipeline(
            checkpoint_path=checkpoint, gemma_root=gemma, spatial_upsampler_path=upsampler,
            device=device, dtype=dtype, memory_policy="keep",
        )  # fmt: skip
        started = time.perf_counter()
        fill_ledger(pipeline, pipeline.ledger.config, device, dtype, prompt)
        print(f"# built full-size random components in {time.perf_counter() - started:.1f} s", flush=True)
        runs = []
        for run in ("warm-up", "measured"):
            torch.cuda.reset_peak_memory_stats(device)
            started = time.perf_counter()
            result = pipeline(
                prompt=prompt, output_path=args.out, height=args.height, width=args.width, num_frames=args.frames,
                tiling_config=TilingConfig.default(), overwrite=True,
            )  # fmt: skip
            total = time.perf_counter() - started
            breakdown = {k: round(v, 3) for k, v in result.timings.items()}
            peak = torch.cuda.max_memory_allocated(device) / 2**30
            row = {"run": run, "total_s": round(total, 2), "peak_gib": round(peak, 1), "breakdown_s": breakdown}
            runs.append(row)
            print(json.dumps(row), flush=True)
        files_read = pipeline.ledger.files_loaded
    print(f"# files read by the ledger: {files_read}")
    print(f"# {torch.cuda.get_device_name(device)}, torch {torch.__version__}, {args.width}x{args.height}, {args.frames} frames")
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
