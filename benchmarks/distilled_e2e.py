"""Warm end-to-end time of the distilled pipeline at 512x768 output, with a breakdown.

No full-size checkpoint is needed (or could be downloaded): the pipeline is created on
small header-only files that carry the real LTX-2 config, and its model ledger is
filled with full-size random-weight components built on the GPU (19B transformer,
video VAE decoder/encoder, x2 upsampler, audio VAE decoder, vocoder). The prompt
embedding is pre-filled in the ledger's cache, so Gemma is not part of the timing
(a second generation with the same prompt never runs it either).

The first generation warms up (kernels, allocator, and what the default compiles); the second is
the one reported: text encoding, stage 1, upsample, stage 2, decode video, decode audio, write mp4,
and which path each stage's passes took (by video token count; ``--compile`` left unset on CUDA,
the package's default, compiles the passes of at least ``COMPILE_MIN_VIDEO_TOKENS`` tokens: at 768x512
both stages, 1 536 and 6 144 tokens). ``--compile on|off`` forces it; ``--fp8`` quantizes the transformer in place
(fp8-scaled-mm, what ``--quantization fp8-scaled-mm`` loads). ``two_stage_e2e.py`` runs this pipeline
too (``768x512:distilled-bf16-default``), sharing one built model with the two-stage runs.

    python benchmarks/distilled_e2e.py --out /tmp/e2e.mp4               # the default path, bf16
    python benchmarks/distilled_e2e.py --out /tmp/e2e.mp4 --fp8         # the default path, FP8
    python benchmarks/distilled_e2e.py --tiny --device cpu --fp8          # CPU self-check
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


def header_only_files(root: Path, config: dict | None = None,
                      upsampler_config: dict | None = None) -> tuple[Path, Path, Path]:  # fmt: skip
    """A checkpoint and an upsampler file with real configs (default: LTX-2's) and one token tensor each, and a
    Gemma folder."""
    if config is None:
        config = {**transformer_config(tiny=False), "vae": VAE_CONFIG, "audio_vae": AUDIO_VAE_CONFIG,
                  "vocoder": VOCODER_CONFIG}  # fmt: skip
    t = config["transformer"]
    checkpoint = root / "ltx-2-19b-distilled-random.safetensors"
    save_file(
        {"model.diffusion_model.patchify_proj.bias": torch.zeros(t["num_attention_heads"] * t["attention_head_dim"])},
        str(checkpoint),
        metadata={"config": json.dumps(config), "model_version": "2.0.0", "distilled": "true"},
    )
    upsampler = root / "upsampler-random.safetensors"
    save_file({"initial_conv.weight": torch.zeros(1)}, str(upsampler),
              metadata={"config": json.dumps(upsampler_config or {"in_channels": 128})})  # fmt: skip
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


class RecordedPasses:
    """A pass executor that notes the video token counts it ran (this benchmark's "which passes compiled")."""

    def __init__(self, inner: object) -> None:
        self.inner, self.tokens = inner, []

    def __call__(self, video_state: object, audio_state: object, sigma: torch.Tensor, passes: list) -> dict:
        tokens = int(video_state.latent.shape[1])
        if tokens not in self.tokens:
            self.tokens.append(tokens)
        return self.inner(video_state, audio_state, sigma, passes)

    def describe(self) -> str:
        """``6144 compiled`` (one entry per token count this stage ran)."""
        return ", ".join(f"{tokens} {pass_path(self.inner, tokens)}" for tokens in self.tokens)


def pass_path(executor: object, tokens: int) -> str:
    """How a pass of ``tokens`` video tokens ran under ``executor``: compiled, plain, fused eager or step-cached."""
    from ltx_pipelines.acceleration.executor import CompiledPasses, TokenCountPasses
    from ltx_pipelines.acceleration.step_cache import StepCachedPasses

    if isinstance(executor, TokenCountPasses):  # the default: by token count
        return pass_path(executor.compiled if tokens >= executor.min_tokens else executor.plain, tokens)
    if isinstance(executor, StepCachedPasses):
        return "step-cached " + ("compiled" if getattr(executor.engine, "compiled", False) else "eager")
    if isinstance(executor, CompiledPasses):
        return "compiled" if executor.engine.compiled else "fused eager"
    return "plain"


def record_passes(pipeline: object) -> list[RecordedPasses]:
    """Wrap each stage's pass executor (this benchmark's pipeline object only); the list fills stage by stage."""
    pipeline.bench_executors = []
    make_executor = pipeline.pass_executor

    def recording(transformer: torch.nn.Module) -> RecordedPasses:
        executor = RecordedPasses(make_executor(transformer))
        pipeline.bench_executors.append(executor)
        return executor

    pipeline.pass_executor = recording
    return pipeline.bench_executors


def describe_passes(executors: list[RecordedPasses]) -> str:
    """``s1 1536 plain; s2 6144 compiled``: each stage's passes, in the order the stages ran."""
    return "; ".join(f"s{i} {e.describe()}" for i, e in enumerate(executors, start=1))


def compile_seconds(pipeline: object) -> float:
    """Compile time spent so far on the transformers the pipeline's ledger holds (engine statistics)."""
    from ltx_pipelines.acceleration.executor import engine_stats

    models = {id(m): m for key, m in pipeline.ledger._models.items() if key[0] == "transformer"}
    return sum(engine_stats(m).get("compile_s", 0.0) for m in models.values())


COMPILE_CHOICES = {"default": None, "on": True, "off": False}


def fill_ledger(pipeline: object, config: dict, device: torch.device, dtype: torch.dtype, prompt: str,
                fp8: bool = False, upsampler_config: dict | None = None) -> None:  # fmt: skip
    from ltx_core.model.audio_vae import AudioDecoderConfigurator, VocoderConfigurator
    from ltx_core.model.upsampler import LatentUpsamplerConfigurator
    from ltx_core.model.video_vae import VideoDecoderConfigurator, VideoEncoderConfigurator

    from ltx_pipelines.engine.guidance import PromptEmbeddings

    ledger = pipeline.ledger
    transformer = build_model(config, device, dtype, seed=0)
    if fp8:  # in place (each float weight freed as it goes); a quantizing ledger looks it up with its LoRA set
        from ltx_pipelines.models.fp8 import convert_to_fp8_scaled_mm

        convert_to_fp8_scaled_mm(transformer.velocity_model)
        ledger._models[("transformer", ("extra_loras", ()))] = transformer
    else:
        ledger._models[("transformer",)] = transformer
    ledger._models[("video_decoder",)] = on_device(VideoDecoderConfigurator, config, device, dtype)
    ledger._models[("video_encoder",)] = on_device(VideoEncoderConfigurator, config, device, dtype)
    ledger._models[("spatial_upsampler",)] = on_device(LatentUpsamplerConfigurator, upsampler_config or {}, device,
                                                        dtype)  # fmt: skip
    ledger._models[("audio_decoder",)] = on_device(AudioDecoderConfigurator, config, device, dtype)
    ledger._models[("vocoder",)] = on_device(VocoderConfigurator, config, device, torch.float32)
    g = torch.Generator(device=device).manual_seed(0)
    context = torch.randn(1, 1024, int(config["transformer"]["caption_channels"]), device=device, dtype=dtype,
                          generator=g)  # fmt: skip
    ledger.prompt_cache[prompt] = PromptEmbeddings(context, context)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None, help="Where to write the mp4 of each run (default: a temporary file).")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="The smoke model's sizes, 128x128x9: a CPU self-check.")
    parser.add_argument("--height", type=int, default=None, help="Default 512 (tiny 128).")
    parser.add_argument("--width", type=int, default=None, help="Default 768 (tiny 128).")
    parser.add_argument("--frames", type=int, default=None, help="Default 121 (tiny 9).")
    parser.add_argument("--compile", choices=sorted(COMPILE_CHOICES), default="default",
                        help="default: --compile left unset (the package's default, by token count); on / off: forced.")
    parser.add_argument("--fp8", action="store_true", help="fp8-scaled-mm transformer (--quantization fp8-scaled-mm).")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from ltx_core.model.video_vae import TilingConfig

    from ltx_pipelines import DistilledPipeline
    from ltx_pipelines.models.fp8 import fp8_scaled_mm_policy

    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    cuda = device.type == "cuda"
    height, width, frames = args.height or (128 if args.tiny else 512), args.width or (128 if args.tiny else 768), \
        args.frames or (9 if args.tiny else 121)  # fmt: skip
    config = upsampler_config = None
    if args.tiny:
        from ltx_pipelines.smoke_model import ltx_config
        from ltx_pipelines.smoke_model import upsampler_config as smoke_upsampler_config

        config, upsampler_config = ltx_config(), smoke_upsampler_config()
    prompt = "A beautiful sunset over the ocean"
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint, upsampler, gemma = header_only_files(Path(tmp), config, upsampler_config)
        pipeline = DistilledPipeline(
            checkpoint_path=checkpoint, gemma_root=gemma, spatial_upsampler_path=upsampler,
            device=device, dtype=dtype, memory_policy="keep", compile=COMPILE_CHOICES[args.compile],
            quantization=fp8_scaled_mm_policy() if args.fp8 else None,
        )  # fmt: skip
        executors = record_passes(pipeline)
        started = time.perf_counter()
        fill_ledger(pipeline, pipeline.ledger.config, device, dtype, prompt, fp8=args.fp8,
                    upsampler_config=upsampler_config)  # fmt: skip
        print(f"# built full-size random components in {time.perf_counter() - started:.1f} s", flush=True)
        runs = []
        for run in ("warm-up", "measured"):
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            executors.clear()
            compiled_before = compile_seconds(pipeline)
            started = time.perf_counter()
            result = pipeline(
                prompt=prompt, output_path=args.out or str(Path(tmp) / "distilled.mp4"), height=height, width=width,
                num_frames=frames, tiling_config=TilingConfig.default(), overwrite=True,
            )  # fmt: skip
            total = time.perf_counter() - started
            breakdown = {k: round(v, 3) for k, v in result.timings.items()}
            peak = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else 0.0
            row = {"run": run, "fp8": args.fp8, "compile": args.compile, "total_s": round(total, 2),
                   "peak_gib": round(peak, 1), "breakdown_s": breakdown, "passes": describe_passes(executors),
                   "compile_s": round(compile_seconds(pipeline) - compiled_before, 1)}  # fmt: skip
            runs.append(row)
            print(json.dumps(row), flush=True)
        files_read = pipeline.ledger.files_loaded
    print(f"# files read by the ledger: {files_read}")
    gpu = torch.cuda.get_device_name(device) if cuda else "cpu"
    print(f"# {gpu}, torch {torch.__version__}, {width}x{height}, {frames} frames")
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
