"""The reference 1.2.0's guided step and single pass on the LTX-2.5 (22B) transformer, with its own --compile.

Runs, the way the reference LTX-2 release 1.2.0 (ltx-core + ltx-pipelines 1.2.0) runs stage 1 and stage 2 of its
two-stage pipeline, on the full-size LTX-2.5 transformer with random bfloat16 weights (no checkpoint needed):

* the guided step: ``FactoryGuidedDenoiser`` (ltx_pipelines/utils/denoisers.py) -- the four guidance passes
  (conditional, negative prompt, STG at block 28, modality-isolated) stacked into one batch and handed to the
  transformer through ``BatchSplitAdapter(max_batch_size=1)``, as ``DiffusionStage.__call__`` does with the CLI's
  default ``--max-batch-size 1``: four batch-1 forwards in a row; the guiders then combine them;
* one conditional pass: ``SimpleDenoiser`` (what stage 2 runs);

both with the reference's ``--compile`` as the CLI gives it when passed alone: ``CompilationConfig()`` (inductor,
default mode, per-block ``torch.compile``, sequence dims dynamic, a separate graph for a perturbed block), applied
by ``compile_transformer`` -- the module op ``DiffusionStage`` adds to the builder (blocks.py ``_apply_compile_ops``).
The guider parameters are the reference's for a 2.5 checkpoint (``_PARAMS_SINCE_VERSION``: the 2.4 row, i.e.
cfg 3 / 7, STG 1 at block 28, modality 3, rescale 0.7). Attention: ltx-core's AUTOMATIC pick (FlashAttention 3
when ``flash_attn_interface`` is installed on Hopper, else PyTorch SDPA with its full backend priority).

The model: ``LTXModelConfigurator.from_metadata`` with the configurator's own defaults for every size (48 layers,
32 heads x 128 = 4096 video, 32 x 64 = 2048 audio, cross-attention 4096 / 2048) plus LTX-2.5's switches:
caption_proj_before_connector (the V2 text path: contexts arrive 4096 / 2048 wide, no caption projection in the
transformer), ff_bias false, use_keyframes_abs_pos_embedding true (the first latent frame is marked by
``VideoLatentTools`` itself), av_ca_timestep_scale_multiplier 1000 and -- ASSUMED, the reference ships no 2.5
config -- apply_gated_attention true and cross_attention_adaln true. 1024 text tokens, 121 frames at 24 fps.
These defaults give 18.99B transformer parameters (the 19B LTX-2's sizes plus gates and cross-attention AdaLN): the
"22B" of the model's name is not reached by the configurator's defaults; a shipped 2.5 config may differ.

Prints JSON lines: a header (params, GPU, torch, config, compile config, attention), then one line per shape with
``upstream_seq_step_s`` (the guided step), ``single_pass_s``, the first calls' times (compilation included),
graphs compiled, recompiles while timing, TFLOP/s of a pass, peak memory (the keys of shared/bench/reference_step.py
where they mean the same, so benchmarks/summarize.py can read them).

Uses only the reference's packages (ours is also named ``ltx_pipelines``): on the GPU machine,
``pip install --no-index --no-deps --target /tmp/ref .whl25/ref/*.whl`` (see benchmarks/fetch_wheels_25.sh), then

    PYTHONPATH=/tmp/ref python benchmarks/reference_step_1_2.py                       # GPU, full size
    python benchmarks/reference_step_1_2.py --tiny --device cpu                        # CPU self-check
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import statistics
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
from ltx_core.batch_split import BatchSplitAdapter
from ltx_core.components.guiders import create_multimodal_guider_factory
from ltx_core.components.noisers import GaussianNoiser
from ltx_core.components.patchifiers import AudioPatchifier, VideoLatentPatchifier
from ltx_core.model.transformer import X0Model
from ltx_core.model.transformer.attention import attention_label, automatic_attention
from ltx_core.model.transformer.compiling import CompilationConfig, compile_transformer
from ltx_core.model.transformer.model_configurator import LTXModelConfigurator
from ltx_core.tools import AudioLatentTools, VideoLatentTools
from ltx_core.types import AudioLatentShape, VideoLatentShape, VideoPixelShape
from ltx_pipelines.utils import constants
from ltx_pipelines.utils.denoisers import FactoryGuidedDenoiser, SimpleDenoiser
from ltx_pipelines.utils.helpers import create_noised_state

MODEL_VERSION = (2, 5)
TEXT_TOKENS = 1024
FPS = 24.0
#: The fixed values the reference's configurator checks, the 22B sizes and LTX-2.5's switches (why each: its
#: "about"), read by path from our package's data file (our package is not importable in the reference's env).
CONFIG_FILE = Path(__file__).resolve().parents[1] / "src/ltx_pipelines/models/ltx25/transformer_config.json"
SIZES_TINY = {
    "num_layers": 2, "num_attention_heads": 2, "attention_head_dim": 16, "cross_attention_dim": 32,
    "audio_num_attention_heads": 2, "audio_attention_head_dim": 8, "audio_cross_attention_dim": 16,
}  # fmt: skip


def transformer_config(tiny: bool, layers: int | None) -> dict:
    data = json.loads(CONFIG_FILE.read_text())
    sizes = dict(SIZES_TINY if tiny else data["sizes_22b"])
    if layers is not None:
        sizes["num_layers"] = layers
    return {**data["fixed_values"], **sizes, **data["ltx25_switches"]}


def guider_params(num_layers: int) -> tuple:
    """The reference's stage-1 guider parameters for a 2.5 checkpoint (what ``detect_params`` picks)."""
    params = constants.LTX_2_PARAMS
    for since, candidate in getattr(constants, "_PARAMS_SINCE_VERSION", ()):
        if since <= MODEL_VERSION:
            params = candidate
            break
    video, audio = params.video_guider_params, params.audio_guider_params
    if any(b >= num_layers for b in (*video.stg_blocks, *audio.stg_blocks)):  # a tiny model: its last block
        video = replace(video, stg_blocks=[num_layers - 1])
        audio = replace(audio, stg_blocks=[num_layers - 1])
    return video, audio


def build_model(config: dict, device: torch.device, dtype: torch.dtype, seed: int) -> X0Model:
    """The reference's own model from its configurator, on the meta device, materialised with random weights."""
    with torch.device("meta"):
        model = LTXModelConfigurator.from_metadata({"config": {"transformer": config}})
    model = model.to_empty(device=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "scale_shift_table" in name:
                param.normal_(0.0, 0.1, generator=generator)
            elif param.ndim >= 2:
                param.normal_(0.0, 1.0 / math.sqrt(param.shape[1]), generator=generator)
            elif name.endswith("weight"):
                param.fill_(1.0)
            else:
                param.normal_(0.0, 0.01, generator=generator)
        for name, buffer in model.named_buffers():  # none expected; keep any defined
            if buffer.is_floating_point():
                buffer.zero_()
    return X0Model(model.to(dtype)).to(device).eval().requires_grad_(False)


def states(height: int, width: int, frames: int, device: torch.device, dtype: torch.dtype, seed: int):  # noqa: ANN201
    """Noised video and audio states as ``DiffusionStage.__call__`` builds them (no conditioning)."""
    pixel = VideoPixelShape(batch=1, frames=frames, height=height, width=width, fps=FPS)
    scale = constants.VIDEO_SCALE_FACTORS
    video_tools = VideoLatentTools(VideoLatentPatchifier(patch_size=1),
                                   VideoLatentShape.from_pixel_shape(pixel, scale_factors=scale), FPS,
                                   scale_factors=scale)  # fmt: skip
    audio_tools = AudioLatentTools(AudioPatchifier(patch_size=1), AudioLatentShape.from_video_pixel_shape(pixel))
    noiser = GaussianNoiser(generator=torch.Generator(device=device).manual_seed(seed))
    video = create_noised_state(video_tools, [], noiser, dtype, device)
    audio = create_noised_state(audio_tools, [], noiser, dtype, device)
    return video, audio


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def graph_count() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def first_and_timed(fn, repeats: int, warmup: int, device: torch.device) -> dict:  # noqa: ANN001
    """The first call alone (compilation), ``warmup`` more untimed, then the median of ``repeats`` calls."""
    graphs = graph_count()
    sync(device)
    started = time.perf_counter()
    fn()
    sync(device)
    first = time.perf_counter() - started
    warm = graph_count()
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - started)
    return {"s": statistics.median(times), "first_s": first, "graphs": warm - graphs,
            "recompiles_while_timing": graph_count() - warm}  # fmt: skip


def count_flops(fn) -> float:  # noqa: ANN001
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def parse_shapes(text: str) -> list[tuple[int, int, int]]:
    return [tuple(int(x) for x in s.split("x")) for s in text.split(",") if s]


def main() -> None:  # noqa: PLR0915
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=os.environ.get("BENCH_DEVICE", "cuda" if torch.cuda.is_available() else "cpu"))
    parser.add_argument("--tiny", action="store_true", help="2 layers, small widths: a CPU self-check.")
    parser.add_argument("--layers", type=int, default=None, help="Override the number of layers (a quick try).")
    parser.add_argument("--step-shapes", default=None, help="HxWxF: guided step and pass (default 512x768x121).")
    parser.add_argument("--pass-shapes", default=None, help="HxWxF: one pass only (default 1024x1536x121).")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=0, help="Untimed calls after the first (compiling) one.")
    parser.add_argument("--no-compile", action="store_true", help="Eager only (the reference without --compile).")
    parser.add_argument("--eager-too", action="store_true", help="Also time eager, before compiling.")
    parser.add_argument("--compile-backend", default="inductor", help="CompilationConfig.backend (aot_eager: CPU check).")
    parser.add_argument("--max-batch-size", type=int, default=1,
                        help="The CLI's --max-batch-size (1: the four passes one after another).")  # fmt: skip
    parser.add_argument("--batched-too", action="store_true", help="Also time the step with --max-batch-size 4.")
    parser.add_argument("--no-flops", action="store_true", help="Skip the (eager) FLOP count of a pass.")
    args = parser.parse_args()
    step_shapes = parse_shapes(args.step_shapes if args.step_shapes is not None else
                               ("64x96x17" if args.tiny else "512x768x121"))  # fmt: skip
    pass_shapes = parse_shapes(args.pass_shapes if args.pass_shapes is not None else
                               ("128x192x17" if args.tiny else "1024x1536x121"))  # fmt: skip

    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    config = transformer_config(args.tiny, args.layers)
    started = time.perf_counter()
    model = build_model(config, device, dtype, seed=0)
    built = time.perf_counter() - started
    video_params, audio_params = guider_params(config["num_layers"])
    compile_config = None if args.no_compile else CompilationConfig(backend=args.compile_backend)
    print(json.dumps({
        "reference": "LTX-2 release 1.2.0", "ltx_core": importlib.metadata.version("ltx-core"),
        "ltx_pipelines": importlib.metadata.version("ltx-pipelines"),
        "params": sum(p.numel() for p in model.parameters()),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "torch": torch.__version__,
        "dtype": str(dtype), "built_s": round(built, 1), "config": config,
        "compile": asdict(compile_config) if compile_config else None, "max_batch_size": args.max_batch_size,
        "attention": attention_label(automatic_attention()),
        "video_guider": asdict(video_params), "audio_guider": asdict(audio_params),
    }, default=str), flush=True)  # fmt: skip

    cases = {}
    g = torch.Generator(device=device).manual_seed(2)
    width_v, width_a = config["cross_attention_dim"], config["audio_cross_attention_dim"]
    contexts = [torch.randn(1, TEXT_TOKENS, w, device=device, dtype=dtype, generator=g)
                for w in (width_v, width_a, width_v, width_a)]  # fmt: skip
    v_pos, a_pos, v_neg, a_neg = contexts
    sigmas = torch.tensor([0.9, 0.0], device=device, dtype=torch.float32)

    def step_fn(video, audio, max_batch_size: int):  # noqa: ANN001, ANN202
        denoiser = FactoryGuidedDenoiser(
            v_context=v_pos, a_context=a_pos,
            video_guider_factory=create_multimodal_guider_factory(params=video_params, negative_context=v_neg),
            audio_guider_factory=create_multimodal_guider_factory(params=audio_params, negative_context=a_neg),
        )  # fmt: skip
        wrapped = BatchSplitAdapter(model, max_batch_size=max_batch_size)
        return lambda: denoiser(wrapped, video, audio, sigmas, 0)

    def pass_fn(video, audio):  # noqa: ANN001, ANN202
        denoiser = SimpleDenoiser(v_context=v_pos, a_context=a_pos)
        wrapped = BatchSplitAdapter(model, max_batch_size=1)
        return lambda: denoiser(wrapped, video, audio, sigmas, 0)

    shapes = [(s, True) for s in step_shapes] + [(s, False) for s in pass_shapes if s not in step_shapes]
    for (h, w, f), _ in shapes:
        cases[(h, w, f)] = states(h, w, f, device, dtype, seed=1)

    def run_all(label: str, flops: dict) -> None:
        for (h, w, f), stepped in shapes:
            video, audio = cases[(h, w, f)]
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            row = {"shape": f"{h}x{w}x{f}", "variant": label, "video_tokens": video.latent.shape[1],
                   "audio_tokens": audio.latent.shape[1]}  # fmt: skip
            try:
                with torch.inference_mode():
                    if stepped:
                        t = first_and_timed(step_fn(video, audio, args.max_batch_size), args.repeats, args.warmup, device)
                        row.update(upstream_seq_step_s=round(t["s"], 4), step_first_s=round(t["first_s"], 2),
                                   step_graphs=t["graphs"], step_recompiles_while_timing=t["recompiles_while_timing"])
                    t = first_and_timed(pass_fn(video, audio), args.repeats, args.warmup, device)
                    row.update(single_pass_s=round(t["s"], 4), pass_first_s=round(t["first_s"], 2),
                               pass_graphs=t["graphs"], pass_recompiles_while_timing=t["recompiles_while_timing"])
                    if stepped and args.batched_too:
                        t = first_and_timed(step_fn(video, audio, 4), args.repeats, args.warmup, device)
                        row.update(batched4_step_s=round(t["s"], 4), batched4_first_s=round(t["first_s"], 2),
                                   speedup_batched=round(row["upstream_seq_step_s"] / t["s"], 3))
            except Exception as e:  # noqa: BLE001 - keep the other shapes
                row["error"] = repr(e)[:400]
            if (h, w, f) in flops and "single_pass_s" in row:
                row["pass_tflop"] = round(flops[(h, w, f)] / 1e12, 2)
                row["tflop_per_s"] = round(flops[(h, w, f)] / row["single_pass_s"] / 1e12, 1)
            row["peak_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else 0.0
            print(json.dumps(row), flush=True)

    flops: dict = {}
    if not args.no_flops:  # eager, before compiling
        with torch.inference_mode():
            for key, _ in shapes:
                flops[key] = count_flops(pass_fn(*cases[key]))
    if args.eager_too or compile_config is None:
        run_all("reference 1.2.0 eager", flops)
    if compile_config is not None:
        compile_transformer(model.velocity_model, compile_config)
        run_all("reference 1.2.0 --compile", flops)


if __name__ == "__main__":
    main()
