"""Why the compiled path's X0 differs from the plain path's, measured against a float32 reference.

The compiled guided step's X0 was 5.5-11.8 % (relative) away from the plain bf16 step's on the full-size random
transformer (benchmarks/RESULTS.md), the compiled pass 1.5 %. A distance between two bf16 paths says nothing by
itself: both round. So every path is compared with the same model run in float32 (the best estimate of the
exact numbers), and with each other:

* ``plain fp32``: ltx-core's forward, float32 weights and inputs (the reference);
* ``plain bf16``: ltx-core's forward in bf16, the passes one after another;
* ``optimised bf16``: the default executor over the same blocks (on a GPU at <= 2 048 video tokens: the passes
  stacked in one batch and replayed from CUDA graphs, so a graph reusing a buffer wrongly would show here);
* ``fused bf16``: our restated block (``CompiledBlocks(compile=False)``), eager, compact timesteps;
* ``compiled bf16``: the same block through ``torch.compile`` (inductor: C++ on a CPU, Triton on a GPU).

For each: one conditional pass and one guided step (CFG, STG, modality CFG, rescale: the two-stage pipeline's
stage-1 defaults), the relative L2 distance to fp32 and to plain bf16; then block by block, from identical
inputs (the fp32 hidden states cast to bf16), each block's own error, so that an op that rounds worse in one path
shows up where it happens rather than amplified by the 48 blocks after it.

    python benchmarks/compile_drift.py --tiny --device cpu       # CPU: small random model, inductor's C++ backend
    python benchmarks/compile_drift.py --json drift.json         # GPU: the full-size 19B random transformer

Prints one JSON line per measurement and a summary table.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from transformer_step import Bench, build_model, context_widths, transformer_config  # noqa: E402

from ltx_pipelines.acceleration.compiled_blocks import CompiledBlocks  # noqa: E402
from ltx_pipelines.acceleration.executor import CompiledPasses  # noqa: E402
from ltx_pipelines.models.transformer_blocks import EagerBlocks  # noqa: E402
from ltx_pipelines.models.transformer_passes import TransformerPasses  # noqa: E402


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().cpu(), b.double().cpu()
    return float((a - b).norm() / b.norm().clamp(min=1e-30))


def executors(model: torch.nn.Module, backend: str) -> dict[str, object]:
    """The bf16 paths by name (the fp32 model runs the plain one)."""
    fused = CompiledBlocks(model, compile=False, compact=True)
    compiled = CompiledBlocks(model, backend=backend)
    compiled_full_t = CompiledBlocks(model, backend=backend, compact=False)
    return {
        "plain": None,
        "optimised": "optimised",  # the default executor: passes stacked and CUDA graphs at <= 2 048 tokens (GPU)
        "fused eager": CompiledPasses(model, fused, cuda_graphs=False),
        "compiled": CompiledPasses(model, compiled),
        "compiled, per-token timesteps": CompiledPasses(model, compiled_full_t),
    }


class Runs:
    """One Bench per precision (same seed: same weights and inputs up to the dtype cast)."""

    def __init__(self, args: argparse.Namespace, device: torch.device):
        config = transformer_config(args.tiny)
        if args.layers:
            config["transformer"]["num_layers"] = args.layers
        args.caption = context_widths(config, "2")
        args.model_version = "2"
        self.model32 = build_model(config, device, torch.float32, seed=0)
        self.model16 = copy.deepcopy(self.model32).to(torch.bfloat16)
        self.bench32 = Bench(self.model32, args, device, torch.float32)
        self.bench16 = Bench(self.model16, args, device, torch.bfloat16)
        # the same inputs: bf16 ones are the fp32 ones cast (not drawn again in bf16)
        self.args = args

    def inputs16(self, size: str) -> None:
        video, audio, positive, negative = self.bench32.case(size)
        cast = lambda t: t.to(torch.bfloat16)  # noqa: E731
        from dataclasses import replace

        from ltx_pipelines.engine.guidance import PromptEmbeddings

        self.bench16.inputs[size] = (
            replace(video, latent=cast(video.latent)), replace(audio, latent=cast(audio.latent)),
            PromptEmbeddings(cast(positive.video), cast(positive.audio)),
            PromptEmbeddings(cast(negative.video), cast(negative.audio)),
        )  # fmt: skip


def run(fn) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: ANN001
    with torch.inference_mode():
        return fn()


def end_to_end(runs: Runs, size: str, backend: str) -> list[dict]:
    """Pass and step of every path, against fp32 and against plain bf16."""
    runs.inputs16(size)
    rows = []
    ref = {"pass": run(runs.bench32.pass_fn(size, None, plain=True)),
           "step": run(runs.bench32.step_fn(size, None, plain=True))}  # fmt: skip
    plain16: dict[str, tuple] = {}
    for name, executor in executors(runs.model16, backend).items():
        for kind in ("pass", "step"):
            make = runs.bench16.pass_fn if kind == "pass" else runs.bench16.step_fn
            fn = make(size, None, plain=False) if executor == "optimised" else make(size, executor, plain=executor is None)
            started = time.perf_counter()
            out = run(fn)
            seconds = time.perf_counter() - started
            if name == "plain":
                plain16[kind] = out
            row = {"size": size, "path": f"{name} bf16", "kind": kind, "first_call_s": round(seconds, 2),
                   "vs_fp32_video": rel(out[0], ref[kind][0]), "vs_fp32_audio": rel(out[1], ref[kind][1]),
                   "vs_plain_bf16_video": rel(out[0], plain16[kind][0]),
                   "vs_plain_bf16_audio": rel(out[1], plain16[kind][1])}  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def per_block(runs: Runs, size: str, backend: str) -> list[dict]:
    """Each block's own error (from the fp32 stream's input cast to bf16), plain vs compiled, against fp32."""
    from ltx_core.guidance.perturbations import BatchedPerturbationConfig, PerturbationConfig

    from ltx_pipelines.models.transformer_passes import make_modality

    video32, audio32, positive32, _ = runs.bench32.case(size)
    sigma = torch.tensor(0.9)
    modality = lambda state, context: make_modality(state, sigma, context)  # noqa: E731
    v32, a32 = modality(video32, positive32.video), modality(audio32, positive32.audio)
    perturbations = BatchedPerturbationConfig([PerturbationConfig.empty()])
    engines = {"plain": EagerBlocks(runs.model16), "compiled": CompiledBlocks(runs.model16, backend=backend),
               "fused eager": CompiledBlocks(runs.model16, compile=False)}  # fmt: skip
    ref_engine = EagerBlocks(runs.model32)
    rows = []
    with torch.inference_mode():
        va, aa = ref_engine.prepare(v32, a32)
        prepared16 = {}
        for name, engine in engines.items():
            v16, a16 = runs.bench16.inputs[size][0], runs.bench16.inputs[size][1]
            prepared16[name] = engine.prepare(modality(v16, positive32.video.bfloat16()),
                                              modality(a16, positive32.audio.bfloat16()))  # fmt: skip
        for index in range(ref_engine.num_blocks):
            out32 = ref_engine.blocks(va, aa, perturbations, index, index + 1)
            row = {"size": size, "block": index}
            for name, engine in engines.items():
                v16, a16 = prepared16[name]
                from dataclasses import replace

                v_in = replace(v16, x=va.x.to(torch.bfloat16))
                a_in = replace(a16, x=aa.x.to(torch.bfloat16))
                ov, oa = engine.blocks(v_in, a_in, perturbations, index, index + 1)
                # the block's own contribution: its output minus its input, whose error is what the block adds
                row[f"{name}_video"] = rel(ov.x.float() - va.x, out32[0].x - va.x)
                row[f"{name}_audio"] = rel(oa.x.float() - aa.x, out32[1].x - aa.x)
            rows.append(row)
            print(json.dumps(row), flush=True)
            va, aa = out32
    return rows


def summary(rows: list[dict]) -> None:
    print("\n| size | path | kind | vs fp32 video / audio | vs plain bf16 video / audio |")
    print("|---|---|---|---|---|")
    for r in rows:
        if "path" in r:
            print(f"| {r['size']} | {r['path']} | {r['kind']} | {100 * r['vs_fp32_video']:.2f} / "
                  f"{100 * r['vs_fp32_audio']:.2f} % | {100 * r['vs_plain_bf16_video']:.2f} / "
                  f"{100 * r['vs_plain_bf16_audio']:.2f} % |")  # fmt: skip
    blocks = [r for r in rows if "block" in r]
    if blocks:
        names = [k.removesuffix("_video") for k in blocks[0] if k.endswith("_video")]
        mean = {n: sum(r[f"{n}_video"] for r in blocks) / len(blocks) for n in names}
        worst = {n: max(r[f"{n}_video"] for r in blocks) for n in names}
        print("\nper-block own error vs fp32 (video residual update), mean / worst over blocks: "
              + ", ".join(f"{n} {100 * mean[n]:.3f} / {100 * worst[n]:.3f} %" for n in names))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="Small random model (CPU).")
    parser.add_argument("--layers", type=int, default=None, help="Override the layer count (tiny: 30).")
    parser.add_argument("--sizes", default=None, help="HxW sizes (default 512x768; tiny 128x192).")
    parser.add_argument("--frames", type=int, default=None, help="Frames (default 121; tiny 17).")
    parser.add_argument("--backend", default="inductor", help="torch.compile backend of the compiled path.")
    parser.add_argument("--no-blocks", action="store_true", help="Skip the block-by-block comparison.")
    parser.add_argument("--guidance-in-float32", action="store_true",
                        help="Combine the guided step's passes in float32 (the reference 1.2.0's rule) everywhere.")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    args.sizes = args.sizes or ("128x192" if args.tiny else "512x768")
    args.frames = args.frames or (17 if args.tiny else 121)
    args.repeats, args.warmup = 1, 0
    device = torch.device(args.device)
    torch.manual_seed(0)
    runs = Runs(args, device)
    runs.bench16.guidance_in_float32 = args.guidance_in_float32
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"# {name}, torch {torch.__version__}, "
          f"{sum(p.numel() for p in runs.model32.parameters()) / 1e6:.1f}M params", flush=True)  # fmt: skip
    rows: list[dict] = []
    for size in args.sizes.split(","):
        rows += end_to_end(runs, size, args.backend)
        if not args.no_blocks:
            rows += per_block(runs, size, args.backend)
    summary(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
