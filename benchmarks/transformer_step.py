"""Seconds per guided denoising step of the full-size LTX-2 transformer, plain vs optimised.

Builds the 19B audio-video transformer from ltx-core's default config on the meta
device, materialises it on the GPU in bfloat16 with random weights (no checkpoint
needed), and times, side by side in one run:

* plain: the four guidance passes one after another (conditional, negative prompt,
  STG-perturbed, modality-isolated), eager PyTorch;
* optimised: our guided denoiser: at small token counts on a GPU the passes are stacked
  in one batch and the transformer blocks replayed from CUDA graphs; at larger ones the
  STG pass shares the prefix before its first perturbed block; plus the fastest SDPA
  backend found for the run, and FP8 matmuls when --fp8 is given.

Reports s/step, s/pass, achieved TFLOP/s, peak GPU memory and the max abs difference
between the plain and optimised outputs. 121 frames at 24 fps, 1024 text tokens.

    python benchmarks/transformer_step.py                 # GPU, full size
    python benchmarks/transformer_step.py --tiny --device cpu --sizes 64x96   # self-check
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ltx_core.components.guiders import create_multimodal_guider_factory  # noqa: E402
from ltx_core.components.noisers import GaussianNoiser  # noqa: E402
from ltx_core.model.transformer import LTXModelConfigurator, X0Model  # noqa: E402

from ltx_pipelines.utils.constants import DEFAULT_AUDIO_GUIDER_PARAMS, DEFAULT_VIDEO_GUIDER_PARAMS  # noqa: E402
from ltx_pipelines.utils.guidance import (  # noqa: E402
    ConditionalDenoiser,
    MultiModalGuidedDenoiser,
    PromptEmbeddings,
)
from ltx_pipelines.utils.model_ledger import LatentFormat  # noqa: E402
from ltx_pipelines.utils.stages import VideoGeometry, audio_latent_tools, prepare_state, video_latent_tools  # noqa: E402

REQUIRED = {
    "dropout": 0.0, "attention_bias": True, "num_vector_embeds": None, "activation_fn": "gelu-approximate",
    "num_embeds_ada_norm": 1000, "use_linear_projection": False, "only_cross_attention": False,
    "cross_attention_norm": True, "double_self_attention": False, "upcast_attention": False,
    "standardization_norm": "rms_norm", "norm_elementwise_affine": False, "qk_norm": "rms_norm",
    "positional_embedding_type": "rope", "use_audio_video_cross_attention": True, "share_ff": False,
    "av_cross_ada_norm": True, "use_middle_indices_grid": True,
}  # fmt: skip


def transformer_config(tiny: bool) -> dict:
    sizes = {  # LTX-2 19B: 48 layers, 32x128 video heads, 32x64 audio heads
        "num_layers": 48, "num_attention_heads": 32, "attention_head_dim": 128, "cross_attention_dim": 4096,
        "audio_num_attention_heads": 32, "audio_attention_head_dim": 64, "audio_cross_attention_dim": 2048,
        "caption_channels": 3840,
    }  # fmt: skip
    if tiny:
        sizes = {
            "num_layers": 30, "num_attention_heads": 2, "attention_head_dim": 16, "cross_attention_dim": 32,
            "audio_num_attention_heads": 2, "audio_attention_head_dim": 8, "audio_cross_attention_dim": 16,
            "caption_channels": 64,
        }  # fmt: skip
    return {"transformer": {**REQUIRED, **sizes}}


def build_model(config: dict, device: torch.device, dtype: torch.dtype, seed: int) -> X0Model:
    """Full-size model with random weights, materialised directly on the device."""
    with torch.device("meta"):
        model = LTXModelConfigurator.from_config(config)
    model = model.to_empty(device=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim >= 2 and "scale_shift_table" not in name:
                param.normal_(0.0, 1.0 / math.sqrt(param.shape[1]), generator=generator)
            elif "scale_shift_table" in name:
                param.normal_(0.0, 0.1, generator=generator)
            elif name.endswith("weight"):
                param.fill_(1.0)
            else:
                param.normal_(0.0, 0.01, generator=generator)
    return X0Model(model.to(dtype)).eval().requires_grad_(False)


def make_inputs(height: int, width: int, frames: int, fps: float, caption: int, device, dtype, seed: int):  # noqa: ANN001, ANN201
    geometry = VideoGeometry(height, width, frames, fps)
    fmt = LatentFormat(video_channels=128, audio_channels=8, audio_mel_bins=16, audio_sample_rate=16000, audio_hop_length=160)
    noiser = GaussianNoiser(torch.Generator(device=device).manual_seed(seed))
    video = prepare_state(video_latent_tools(geometry, fmt), [], noiser, 1.0, device, dtype)
    audio = prepare_state(audio_latent_tools(geometry, fmt), [], noiser, 1.0, device, dtype)
    g = torch.Generator(device=device).manual_seed(seed + 1)
    positive = torch.randn(1, 1024, caption, device=device, dtype=dtype, generator=g)
    negative = torch.randn(1, 1024, caption, device=device, dtype=dtype, generator=g)
    return video, audio, PromptEmbeddings(positive, positive), PromptEmbeddings(negative, negative)


def timed(fn, repeats: int, warmup: int, device: torch.device) -> tuple[float, object]:  # noqa: ANN001
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    out = None
    for _ in range(warmup):
        out = fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def count_flops(fn) -> float:  # noqa: ANN001
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def sdpa_backend_context(name: str):  # noqa: ANN201
    if name == "default":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION}[name]
    return sdpa_kernel([backend])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="Small model for a CPU self-check.")
    parser.add_argument("--sizes", default="256x384,512x768,544x960", help="Stage-1 HxW sizes.")
    parser.add_argument("--frames", type=int, default=121)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch-max-tokens", type=int, default=2048, help="Stack passes in one batch up to this many video tokens.")
    parser.add_argument("--backends", default="default,flash,cudnn,efficient", help="SDPA backends to try (GPU).")
    parser.add_argument("--json", default=None, help="Also write the results as JSON here.")
    parser.add_argument("--fp8", action="store_true", help="Then convert the model to fp8-scaled-mm and time the optimised step again.")
    args = parser.parse_args()

    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    config = transformer_config(args.tiny)
    started = time.perf_counter()
    model = build_model(config, device, dtype, seed=0)
    caption = config["transformer"]["caption_channels"]
    params = sum(p.numel() for p in model.parameters())
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"# {gpu}, torch {torch.__version__}, {params / 1e9:.2f}B params, built in {time.perf_counter() - started:.1f} s")
    video_params = DEFAULT_VIDEO_GUIDER_PARAMS
    audio_params = DEFAULT_AUDIO_GUIDER_PARAMS
    if args.tiny:
        from dataclasses import replace

        video_params, audio_params = replace(video_params, stg_blocks=[29]), replace(audio_params, stg_blocks=[29])
    results = []
    sigmas = torch.tensor([0.9, 0.0])
    backends = args.backends.split(",") if device.type == "cuda" else ["default"]
    for size in args.sizes.split(","):
        height, width = map(int, size.split("x"))
        video, audio, positive, negative = make_inputs(height, width, args.frames, 24.0, caption, device, dtype, seed=1)
        tokens = video.latent.shape[1]

        def guided(optimised: bool):  # noqa: ANN202
            denoiser = MultiModalGuidedDenoiser(
                model, positive, negative,
                create_multimodal_guider_factory(video_params), create_multimodal_guider_factory(audio_params),
                batch_passes=optimised and tokens <= args.batch_max_tokens, share_stg_prefix=optimised,
                cuda_graphs=None if optimised else False,
            )  # fmt: skip
            return lambda: denoiser(video, audio, sigmas, 0)

        plain_single = ConditionalDenoiser(model, positive, cuda_graphs=False)
        opt_single = ConditionalDenoiser(model, positive)

        def one_pass():  # noqa: ANN202
            return plain_single(video, audio, sigmas, 0)

        def one_opt_pass():  # noqa: ANN202
            return opt_single(video, audio, sigmas, 0)

        with torch.inference_mode():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            flops = count_flops(one_pass)
            pass_s, _ = timed(one_pass, args.repeats, args.warmup, device)
            plain_s, plain_out = timed(guided(False), args.repeats, args.warmup, device)
            plain_peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
            best = ("default", None, None)
            backend_times = {}
            for backend in backends:
                try:
                    with sdpa_backend_context(backend):
                        t, out = timed(guided(True), args.repeats, args.warmup, device)
                    backend_times[backend] = round(t, 4)
                    if best[1] is None or t < best[1]:
                        best = (backend, t, out)
                except RuntimeError as e:  # a backend may not support these shapes
                    backend_times[backend] = f"unavailable: {str(e).splitlines()[0][:80]}"
            with sdpa_backend_context(best[0]):
                opt_pass_s, _ = timed(one_opt_pass, args.repeats, args.warmup, device)
            opt_peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
        diff_v = (best[2][0].float() - plain_out[0].float()).abs().max().item()
        diff_a = (best[2][1].float() - plain_out[1].float()).abs().max().item()
        row = {
            "size": size, "video_tokens": tokens, "audio_tokens": audio.latent.shape[1],
            "plain_step_s": round(plain_s, 4), "plain_pass_s": round(pass_s, 4),
            "opt_step_s": round(best[1], 4), "opt_pass_s": round(opt_pass_s, 4), "sdpa_backend": best[0],
            "backend_step_s": backend_times, "pass_tflops": round(flops / 1e12, 2),
            "plain_tflop_per_s": round(flops / pass_s / 1e12, 1), "opt_tflop_per_s": round(flops / opt_pass_s / 1e12, 1),
            "peak_gib_plain": round(plain_peak, 2), "peak_gib_opt": round(opt_peak, 2),
            "max_abs_diff_video": diff_v, "max_abs_diff_audio": diff_a,
        }  # fmt: skip
        results.append(row)
        print(json.dumps(row), flush=True)

    if args.fp8:
        from ltx_pipelines.utils.fp8 import convert_to_fp8_scaled_mm

        convert_to_fp8_scaled_mm(model.velocity_model)
        for row, size in zip(results, args.sizes.split(","), strict=True):
            height, width = map(int, size.split("x"))
            video, audio, positive, negative = make_inputs(height, width, args.frames, 24.0, caption, device, dtype, seed=1)
            denoiser = MultiModalGuidedDenoiser(
                model, positive, negative,
                create_multimodal_guider_factory(video_params), create_multimodal_guider_factory(audio_params),
                batch_passes=video.latent.shape[1] <= args.batch_max_tokens,
            )  # fmt: skip
            single = ConditionalDenoiser(model, positive)
            with torch.inference_mode(), sdpa_backend_context(row["sdpa_backend"]):
                step_s, fp8_out = timed(lambda: denoiser(video, audio, sigmas, 0), args.repeats, args.warmup, device)  # noqa: B023
                pass_s, _ = timed(lambda: single(video, audio, sigmas, 0), args.repeats, args.warmup, device)  # noqa: B023
            row["fp8_step_s"], row["fp8_pass_s"] = round(step_s, 4), round(pass_s, 4)
            print(json.dumps({"size": size, "fp8_step_s": row["fp8_step_s"], "fp8_pass_s": row["fp8_pass_s"]}), flush=True)

    print("\n| stage-1 size | video tokens | plain step (s) | optimised step (s) | plain pass (s) | opt pass (s) | TFLOP/s plain/opt | peak GiB | max abs diff |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['size']} | {r['video_tokens']} | {r['plain_step_s']:.3f} | {r['opt_step_s']:.3f} ({r['sdpa_backend']}) | "
            f"{r['plain_pass_s']:.3f} | {r['opt_pass_s']:.3f} | {r['plain_tflop_per_s']}/{r['opt_tflop_per_s']} | "
            f"{r['peak_gib_opt']} | {max(r['max_abs_diff_video'], r['max_abs_diff_audio']):.3g} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"gpu": gpu, "torch": torch.__version__, "results": results}, indent=2))


if __name__ == "__main__":
    main()
