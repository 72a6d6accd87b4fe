"""Seconds per guided step and per pass of the full-size LTX-2 transformer: plain, optimised, compiled, FP8.

Builds the 19B audio-video transformer from ltx-core's default config (or, with --model-version 2.5, the
LTX-2.5 22B transformer, see ``transformer_config_25``) on the meta device, materialises it on the GPU in
bfloat16 with random weights (no checkpoint needed), and times, side by side in one run:

* plain: the four guidance passes one after another (conditional, negative prompt,
  STG-perturbed, modality-isolated), eager PyTorch, ltx-core's own block forward;
* optimised: our default executor (STG prefix sharing; at small token counts on a GPU the passes
  stacked in one batch and replayed from CUDA graphs);
* compiled: the same schedule over ``acceleration.CompiledBlocks``: one compiled graph of the
  fused block for all 48 blocks, SDPA backend chosen per attention shape, CUDA graphs capturing
  the compiled blocks where passes are small;
* with --fp8: the model converted to fp8-scaled-mm (first the video linears only, for the error
  split, then all), timed through the optimised (FP8 layers' own Triton quantizer) and compiled
  (quantization fused into the graph) paths.

Guided steps at --sizes (stage 1 of the two-stage pipeline), single passes at --sizes and
--pass-sizes (1024x1536: stage 2). Per row: s/step, s/pass, TFLOP/s of a pass and its share of the
dense peaks (989 bf16 / 1979 FP8 TFLOP/s, H100/H200 SXM), peak memory, the first call's time and
the compile time it holds, graphs compiled and recompiles while timing (must be 0), and the
difference from the plain bf16 outputs. 121 frames at 24 fps, 1024 text tokens.

    python benchmarks/transformer_step.py --fp8 --json /tmp/step.json        # GPU, full size
    python benchmarks/transformer_step.py --tiny --device cpu --fp8            # CPU self-check
    python benchmarks/transformer_step.py --model-version 2.5 --fp8            # LTX-2.5 22B, GPU
    python benchmarks/transformer_step.py --model-version 2.5 --tiny --device cpu --fp8

LTX-2.5 differs here in: the model (``LTX25ModelConfigurator``: bias-free video feed-forwards, the keyframe
embedding, gated attention, text cross-attention AdaLN, own-timestep audio<->video AdaLN), the text contexts
(4096 / 2048 wide, already projected: no caption projection inside the transformer), the video state
(``StreamState`` marking the first latent frame, as ``engine/stages.py:with_stream_rules`` does) and STG at
block 28 (the reference 1.2.0's 2.3+ default).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ltx_core.components.guiders import create_multimodal_guider_factory  # noqa: E402
from ltx_core.components.noisers import GaussianNoiser  # noqa: E402
from ltx_core.model.transformer import LTXModelConfigurator, X0Model  # noqa: E402

from ltx_pipelines.engine.guidance import (  # noqa: E402
    ConditionalDenoiser,
    MultiModalGuidedDenoiser,
    PromptEmbeddings,
)
from ltx_pipelines.engine.model_ledger import LatentFormat  # noqa: E402
from ltx_pipelines.engine.stages import VideoGeometry, audio_latent_tools, prepare_state, video_latent_tools  # noqa: E402
from ltx_pipelines.models.ltx25.transformer import CONFIG_FILE  # noqa: E402
from ltx_pipelines.models.transformer_passes import StreamState  # noqa: E402
from ltx_pipelines.utils.constants import (  # noqa: E402
    DEFAULT_AUDIO_GUIDER_PARAMS,
    DEFAULT_VIDEO_GUIDER_PARAMS,
    LTX_2_3_STG_BLOCK,
)


def config_data() -> dict:
    """The transformer config values that never change, the 22B sizes and LTX-2.5's switches (why each: "about")."""
    return json.loads(CONFIG_FILE.read_text())


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
    return {"transformer": {**config_data()["fixed_values"], **sizes}}


def transformer_config_25(tiny: bool) -> dict:
    data = config_data()
    sizes = dict(data["sizes_22b"])
    if tiny:  # 30 layers so that STG's block 28 exists; video and audio head counts must be equal in 2.5
        sizes = {
            "num_layers": 30, "num_attention_heads": 2, "attention_head_dim": 16, "cross_attention_dim": 32,
            "audio_num_attention_heads": 2, "audio_attention_head_dim": 8, "audio_cross_attention_dim": 16,
        }  # fmt: skip
    return {"transformer": {**data["fixed_values"], **sizes, **data["ltx25_switches"]}}


def context_widths(config: dict, model_version: str) -> tuple[int, int]:
    """Widths of the video and audio text contexts the transformer takes."""
    t = config["transformer"]
    if model_version == "2.5":  # projected by the text encoder (V2 text path)
        return t["cross_attention_dim"], t["audio_cross_attention_dim"]
    return t["caption_channels"], t["caption_channels"]


def build_model(config: dict, device: torch.device, dtype: torch.dtype, seed: int,
                model_version: str = "2") -> X0Model:  # fmt: skip
    """Full-size model with random weights, materialised directly on the device."""
    configurator = LTXModelConfigurator
    if model_version == "2.5":
        from ltx_pipelines.models.ltx25.transformer import LTX25ModelConfigurator

        configurator = LTX25ModelConfigurator
    with torch.device("meta"):
        model = configurator.from_config(config)
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


def make_inputs(height: int, width: int, frames: int, fps: float, caption: int | tuple[int, int], device, dtype,  # noqa: ANN001, ANN201
                seed: int, mark_first_frame: bool = False):  # fmt: skip
    """Noised states and random prompts. ``caption``: the context width, or (video, audio) widths.

    ``mark_first_frame`` (LTX-2.5): the video state as ``with_stream_rules`` hands it to the denoiser, its first
    latent frame marked for the keyframe embedding.
    """
    geometry = VideoGeometry(height, width, frames, fps)
    fmt = LatentFormat(video_channels=128, audio_channels=8, audio_mel_bins=16, audio_sample_rate=16000, audio_hop_length=160)
    noiser = GaussianNoiser(torch.Generator(device=device).manual_seed(seed))
    video_tools = video_latent_tools(geometry, fmt)
    video = prepare_state(video_tools, [], noiser, 1.0, device, dtype)
    audio = prepare_state(audio_latent_tools(geometry, fmt), [], noiser, 1.0, device, dtype)
    if mark_first_frame:
        shape = video_tools.target_shape
        video = StreamState.of(video, keyframe_tokens=shape.height * shape.width)
    video_width, audio_width = caption if isinstance(caption, tuple) else (caption, caption)
    g = torch.Generator(device=device).manual_seed(seed + 1)
    prompts = []
    for _ in range(2):  # positive, negative
        video_context = torch.randn(1, 1024, video_width, device=device, dtype=dtype, generator=g)
        audio_context = video_context if audio_width == video_width else \
            torch.randn(1, 1024, audio_width, device=device, dtype=dtype, generator=g)  # fmt: skip
        prompts.append(PromptEmbeddings(video_context, audio_context))
    return video, audio, prompts[0], prompts[1]


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


PEAK_TFLOPS = {"bf16": 989.0, "fp8": 1979.0}  # dense tensor-core peaks, H100 / H200 SXM


def is_video_linear(name: str) -> bool:
    """The video stream's own linears (self-attention, prompt attention, feed-forward) of a block."""
    parts = name.split(".")
    return len(parts) > 2 and parts[2] in ("attn1", "attn2", "ff")


def convert_fp8(model: X0Model, keep: callable) -> int:
    """Quantize the fp8-scaled-mm target linears whose name passes ``keep``; returns how many were converted."""
    from ltx_pipelines.models.fp8 import FP8ScaledLinear, is_fp8_target

    count = 0
    velocity = model.velocity_model
    for name, module in list(velocity.named_modules()):
        if isinstance(module, torch.nn.Linear) and is_fp8_target(name) and keep(name):
            parent, _, attr = name.rpartition(".")
            setattr(velocity.get_submodule(parent), attr, FP8ScaledLinear.from_linear(module))
            count += 1
    return count


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.float().cpu(), b.float().cpu()
    return float((a - b).norm() / b.norm().clamp(min=1e-12))


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float().cpu() - b.float().cpu()).abs().max())


class Bench:
    """Inputs per size, the plain bf16 reference outputs, and one row per (size, variant)."""

    def __init__(self, model: X0Model, args: argparse.Namespace, device: torch.device, dtype: torch.dtype):
        self.model, self.args, self.device, self.dtype = model, args, device, dtype
        self.caption = args.caption
        self.video_params, self.audio_params = DEFAULT_VIDEO_GUIDER_PARAMS, DEFAULT_AUDIO_GUIDER_PARAMS
        if args.model_version == "2.5":  # the reference 1.2.0's 2.3+ defaults: STG at block 28
            blocks = [LTX_2_3_STG_BLOCK]
            self.video_params = replace(self.video_params, stg_blocks=blocks)
            self.audio_params = replace(self.audio_params, stg_blocks=blocks)
        self.sigmas = torch.tensor([0.9, 0.0])
        self.inputs: dict[str, tuple] = {}
        self.flops: dict[str, float] = {}
        self.reference: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self.rows: list[dict] = []
        self.guidance_in_float32 = False  # combine the passes in float32 (the 1.2.0 rule; 1.0.0: in their dtype)

    def case(self, size: str) -> tuple:
        if size not in self.inputs:
            height, width = map(int, size.split("x"))
            self.inputs[size] = make_inputs(height, width, self.args.frames, 24.0, self.caption, self.device,
                                            self.dtype, seed=1, mark_first_frame=self.args.model_version == "2.5")  # fmt: skip
        return self.inputs[size]

    # -- what is timed ---------------------------------------------------------------------

    def step_fn(self, size: str, executor: object | None, plain: bool = False):  # noqa: ANN201
        video, audio, positive, negative = self.case(size)
        kwargs = {"batch_passes": False, "share_stg_prefix": False, "cuda_graphs": False} if plain else {}
        denoiser = MultiModalGuidedDenoiser(
            self.model, positive, negative, create_multimodal_guider_factory(self.video_params),
            create_multimodal_guider_factory(self.audio_params), executor=executor,
            in_float32=self.guidance_in_float32, **kwargs,
        )  # fmt: skip
        return lambda: denoiser(video, audio, self.sigmas, 0)

    def pass_fn(self, size: str, executor: object | None, plain: bool = False):  # noqa: ANN201
        video, audio, positive, _ = self.case(size)
        denoiser = ConditionalDenoiser(self.model, positive, cuda_graphs=False if plain else None, executor=executor)
        return lambda: denoiser(video, audio, self.sigmas, 0)

    # -- measuring ---------------------------------------------------------------------------

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def peak_gib(self) -> float:
        return torch.cuda.max_memory_allocated(self.device) / 2**30 if self.device.type == "cuda" else 0.0

    def first_and_timed(self, fn, engine) -> dict:  # noqa: ANN001
        """The first call (compilation, graph capture) alone, then the median of the timed calls."""
        graphs, seconds = (engine.stats.graphs, engine.stats.seconds) if engine else (0, 0.0)
        self.sync()
        started = time.perf_counter()
        fn()
        self.sync()
        first = time.perf_counter() - started
        warm_graphs = engine.stats.graphs if engine else 0
        median, out = timed(fn, self.args.repeats, max(self.args.warmup - 1, 0), self.device)
        result = {"s": median, "out": out, "first_s": first}
        if engine is not None:
            result.update(compile_s=engine.stats.seconds - seconds, graphs=warm_graphs - graphs,
                          recompiles_while_timing=engine.stats.graphs - warm_graphs)  # fmt: skip
        return result

    def measure(self, size: str, variant: str, step: object | None, single: object, engine=None,  # noqa: ANN001
                precision: str = "bf16") -> dict:  # fmt: skip
        """Time a variant's step (if any) and pass at ``size``; compare with the plain bf16 outputs."""
        video, audio, _, _ = self.case(size)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        row: dict = {"size": size, "variant": variant, "video_tokens": video.latent.shape[1],
                     "audio_tokens": audio.latent.shape[1]}  # fmt: skip
        with torch.inference_mode():
            if size not in self.flops:
                self.flops[size] = count_flops(single)
            for kind, fn in (("step", step), ("pass", single)):
                if fn is None:
                    continue
                timing = self.first_and_timed(fn, engine)
                out = timing.pop("out")
                row[f"{kind}_s"] = round(timing.pop("s"), 4)
                row.update({f"{kind}_{k}": round(v, 3) if isinstance(v, float) else v for k, v in timing.items()})
                key = (size, kind)
                if variant == "plain":
                    self.reference[key] = tuple(t.float().cpu() for t in out)
                elif key in self.reference:
                    ref = self.reference[key]
                    row[f"{kind}_max_abs_diff"] = max(max_abs(o, r) for o, r in zip(out, ref, strict=True))
                    row[f"{kind}_rel_err_video"], row[f"{kind}_rel_err_audio"] = (rel(o, r) for o, r in zip(out, ref))
        tflops = self.flops[size] / row["pass_s"] / 1e12
        row["pass_tflop"] = round(self.flops[size] / 1e12, 2)
        row["tflop_per_s"] = round(tflops, 1)
        row["pct_of_peak"] = round(100 * tflops / PEAK_TFLOPS[precision], 1)
        row["peak_gib"] = round(self.peak_gib(), 2)
        self.rows.append(row)
        print(json.dumps(row), flush=True)
        return row

    def fp8_error(self, size: str, label: str) -> dict:
        """X0 error of one FP8 pass (eager fused block, quantization as in the graph) against bf16."""
        from ltx_pipelines.acceleration.compiled_blocks import CompiledBlocks
        from ltx_pipelines.acceleration.executor import CompiledPasses

        engine = CompiledBlocks(self.model, compile=False, fp8_in_graph=True)
        with torch.inference_mode():
            out = self.pass_fn(size, CompiledPasses(self.model, engine, cuda_graphs=False))()
        ref = self.reference[(size, "pass")]
        row = {"size": size, "variant": label, "pass_rel_err_video": rel(out[0], ref[0]),
               "pass_rel_err_audio": rel(out[1], ref[1])}  # fmt: skip
        self.rows.append(row)
        print(json.dumps(row), flush=True)
        return row


def compiled_executor(model: X0Model, args: argparse.Namespace, mode: str, eight_bit: bool = False):  # noqa: ANN201
    """A fresh compiled engine (its own attention choices; ``eight_bit``: 8-bit self-attention) and its executor."""
    from ltx_pipelines.acceleration.attention_choice import AttentionChooser
    from ltx_pipelines.acceleration.compiled_blocks import CompiledBlocks
    from ltx_pipelines.acceleration.executor import CompiledPasses

    engine = CompiledBlocks(model, mode=None if mode == "default" else mode, backend=args.compile_backend,
                            attention=AttentionChooser(eight_bit=eight_bit))  # fmt: skip
    # compile's own CUDA graphs cannot be captured inside ours
    return engine, CompiledPasses(model, engine, cuda_graphs=False if mode == "reduce-overhead" else None)


def run_variants(bench: Bench, args: argparse.Namespace, precision: str) -> dict:
    """Every variant at every size; returns the compiled engines by mode (for their attention tables)."""
    step_sizes = [s for s in args.sizes.split(",") if s]
    pass_sizes = [s for s in args.pass_sizes.split(",") if s]
    engines = {}
    prefix = "" if precision == "bf16" else "fp8 "
    variants = ["plain", "optimised"] if precision == "bf16" else ["optimised"]
    modes = args.compile_modes.split(",") + (["8bit-attn"] if args.attention_8bit else [])
    for size in [*step_sizes, *pass_sizes]:
        stepped = size in step_sizes
        for variant in variants:
            if variant == "optimised" and precision == "bf16" and not stepped:
                continue  # one large pass: the default executor runs exactly the plain path
            plain = variant == "plain"
            step = bench.step_fn(size, None, plain=plain) if stepped else None
            bench.measure(size, prefix + variant, step, bench.pass_fn(size, None, plain=plain), precision=precision)
        if args.default_variant:
            default_variant(bench, size, stepped, prefix, precision)
        for mode in modes:
            if mode not in engines:
                eight_bit = mode == "8bit-attn"
                engines[mode] = compiled_executor(bench.model, args, "default" if eight_bit else mode, eight_bit)
            engine, executor = engines[mode]
            step = bench.step_fn(size, executor) if stepped else None
            label = f"{prefix}compiled" + ("" if mode == "default" else f" ({mode})")
            try:
                bench.measure(size, label, step, bench.pass_fn(size, executor), engine, precision)
            except Exception as e:  # noqa: BLE001 - one failing lever must not lose the rest of the run
                print(json.dumps({"size": size, "variant": label, "error": repr(e)[:400]}), flush=True)
    return {mode: engine for mode, (engine, _) in engines.items()}


def default_variant(bench: Bench, size: str, stepped: bool, prefix: str, precision: str) -> None:
    """What a pipeline runs with no flags: ``accelerated_executor`` with default options (by token count on CUDA),
    through the model's own engine (the compile cache folder: $LTX_PIPELINES_COMPILE_CACHE or the default)."""
    from ltx_pipelines.acceleration.executor import _engines, accelerated_executor
    from ltx_pipelines.acceleration.options import AccelerationOptions

    options = AccelerationOptions()
    if not options.enabled(bench.device.type):
        return
    executor = accelerated_executor(bench.model, options)
    step = bench.step_fn(size, executor) if stepped else None
    try:
        bench.measure(size, f"{prefix}default", step, bench.pass_fn(size, executor),
                      _engines(bench.model).get("compiled"), precision)  # fmt: skip
    except Exception as e:  # noqa: BLE001 - one failing lever must not lose the rest of the run
        print(json.dumps({"size": size, "variant": f"{prefix}default", "error": repr(e)[:400]}), flush=True)


def attention_tables(engines: dict) -> dict:
    return {mode: engine.attention.table() for mode, engine in engines.items() if engine.attention is not None}


def print_table(rows: list[dict]) -> None:
    print("\n| size | video tokens | variant | step (s) | pass (s) | TFLOP/s (% of peak) | peak GiB | first call s "
          "(compile s) | graphs / recompiles while timing | max abs diff / rel err vs plain |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "pass_s" not in r:
            continue
        first = r.get("step_first_s", r.get("pass_first_s"))
        compile_s = r.get("step_compile_s", 0) + r.get("pass_compile_s", 0) if "pass_compile_s" in r else None
        graphs = f"{r.get('step_graphs', 0) + r.get('pass_graphs', 0)} / " \
                 f"{r.get('step_recompiles_while_timing', 0) + r.get('pass_recompiles_while_timing', 0)}" \
            if "pass_graphs" in r else "-"  # fmt: skip
        kind = "step" if "step_max_abs_diff" in r else "pass"
        diff = f"{r[f'{kind}_max_abs_diff']:.3g} / {max(r[f'{kind}_rel_err_video'], r[f'{kind}_rel_err_audio']):.3g}" \
            if f"{kind}_max_abs_diff" in r else "-"  # fmt: skip
        step = f"{r['step_s']:.3f}" if "step_s" in r else "-"
        print(f"| {r['size']} | {r['video_tokens']} | {r['variant']} | {step} | {r['pass_s']:.3f} | "
              f"{r['tflop_per_s']} ({r['pct_of_peak']} %) | {r['peak_gib']} | {first:.1f}"
              f"{f' ({compile_s:.1f})' if compile_s is not None else ''} | {graphs} | {diff} |")  # fmt: skip
    for r in rows:
        if "pass_s" not in r and "pass_rel_err_video" in r:
            print(f"# {r['variant']} at {r['size']}: X0 rel. error vs bf16 video {r['pass_rel_err_video']:.4f} "
                  f"audio {r['pass_rel_err_audio']:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="Small model for a CPU self-check.")
    parser.add_argument("--model-version", choices=("2", "2.5"), default="2",
                        help="2: the LTX-2 19B transformer (default); 2.5: the LTX-2.5 22B one.")  # fmt: skip
    parser.add_argument("--sizes", default=None, help="Stage-1 HxW sizes: guided step and pass (default 512x768).")
    parser.add_argument("--pass-sizes", default=None, help="HxW sizes timed for one pass only (default 1024x1536).")
    parser.add_argument("--frames", type=int, default=None, help="Video frames (default 121; tiny 17).")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="Untimed calls, the first (compiling) one included.")
    parser.add_argument("--compile-modes", default="default",
                        help="torch.compile modes of the compiled variant, comma-separated (default, "
                        "max-autotune-no-cudagraphs, reduce-overhead).")  # fmt: skip
    parser.add_argument("--compile-backend", default="inductor",
                        help="aot_eager: graph capture only (quick CPU check).")  # fmt: skip
    parser.add_argument("--fp8", action="store_true", help="Then convert to fp8-scaled-mm and time FP8 as well.")
    parser.add_argument("--default-variant", action="store_true",
                        help="Also time the executor a pipeline runs with no flags (compiled by token count on CUDA).")
    parser.add_argument("--attention-8bit", action="store_true",
                        help="Also time the compiled block with 8-bit self-attention (--attention 8bit; needs "
                        "sageattention).")  # fmt: skip
    parser.add_argument("--json", default=None, help="Also write the results as JSON here.")
    args = parser.parse_args()
    args.sizes = args.sizes if args.sizes is not None else ("64x96" if args.tiny else "512x768")
    args.pass_sizes = args.pass_sizes if args.pass_sizes is not None else ("128x192" if args.tiny else "1024x1536")
    args.frames = args.frames or (17 if args.tiny else 121)

    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    config = transformer_config_25(args.tiny) if args.model_version == "2.5" else transformer_config(args.tiny)
    args.caption = context_widths(config, args.model_version)
    started = time.perf_counter()
    model = build_model(config, device, dtype, seed=0, model_version=args.model_version)
    params = sum(p.numel() for p in model.parameters())
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    built = time.perf_counter() - started
    print(f"# {gpu}, torch {torch.__version__}, LTX-{args.model_version} transformer, {params / 1e9:.2f}B params, "
          f"built in {built:.1f} s", flush=True)
    if args.model_version == "2.5":
        fixed = config_data()["fixed_values"]
        print("# config: " + json.dumps({k: v for k, v in config["transformer"].items() if k not in fixed}), flush=True)
    bench = Bench(model, args, device, dtype)
    engines = run_variants(bench, args, "bf16")
    results = {"gpu": gpu, "torch": torch.__version__, "model_version": args.model_version,
               "config": config["transformer"], "params_b": params / 1e9, "peak_tflops": PEAK_TFLOPS,
               "attention": attention_tables(engines)}  # fmt: skip
    if args.fp8:
        sizes = [s for s in (*args.sizes.split(","), *args.pass_sizes.split(",")) if s]
        biggest = max(sizes, key=lambda s: math.prod(map(int, s.split("x"))))
        converted = convert_fp8(model, is_video_linear)
        bench.fp8_error(biggest, f"fp8 error split: video linears only ({converted} layers)")
        converted += convert_fp8(model, lambda name: True)
        from ltx_pipelines.acceleration.executor import forget_engines

        forget_engines(model)  # the default variant's engine saw bf16 linears; FP8 ones get a fresh one
        bench.fp8_error(biggest, f"fp8 error split: all large linears ({converted} layers)")
        if device.type == "cuda":
            torch.cuda.empty_cache()
        fp8_engines = run_variants(bench, args, "fp8")
        results["attention_fp8"] = attention_tables(fp8_engines)
    results["rows"] = bench.rows
    print_table(bench.rows)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
