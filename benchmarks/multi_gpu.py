"""One generation on N GPUs against the same generation on one, in one torchrun run.

For each size, rank 0 first generates alone (the pipeline's process group switched off, the other
ranks waiting), then all N ranks generate together; each mode runs twice and the warm second run
is reported: seconds end to end and per stage (text encoding, stage 1, upsample, stage 2, decode,
write), seconds spent in collectives (per stage and in all; the device is synchronised around each
collective while measuring, so overlap is not credited), peak GPU memory per rank, and whether the
N-rank frames equal the 1-rank frames (same seed).

The default two-stage generation (``TI2VidTwoStagesPipeline``: 40 guided steps at half size, x2
upsample, 3 distilled-LoRA steps) at 1536x1024 and at 768x512 with 30 steps, 121 frames. No
checkpoint is needed: as in ``distilled_e2e.py`` the pipeline is created on header-only files that
carry the real LTX-2 config and its ledger is filled with full-size random-weight components built
on each rank's GPU (19B transformer, VAE, upsampler, audio decoder, vocoder); the prompts are
pre-filled in the prompt cache, so Gemma is not timed. The distilled LoRA is a small real file (one
module) so the stage-2 LoRA swap runs as in a real generation.

GPU (the measuring issue), one command per machine size; each prints one JSON line per run:

    torchrun --standalone --nproc-per-node 2 benchmarks/multi_gpu.py --out /tmp/mg --json /tmp/multi_gpu_2.json
    torchrun --standalone --nproc-per-node 4 benchmarks/multi_gpu.py --out /tmp/mg --json /tmp/multi_gpu_4.json
    torchrun --standalone --nproc-per-node 8 benchmarks/multi_gpu.py --out /tmp/mg --json /tmp/multi_gpu_8.json

(``--sizes 768x512x121x30`` runs one size; ``--no-single`` skips the 1-rank baseline.)

CPU self-check with the smoke model (gloo, random weights: the video is noise), in seconds:

    torchrun --standalone --nproc-per-node 2 benchmarks/multi_gpu.py --tiny --bundle /tmp/smoke-shared --out /tmp/mg
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ltx_pipelines.parallel import collectives  # noqa: E402
from ltx_pipelines.parallel.process_group import init_from_env  # noqa: E402
from ltx_pipelines.utils import progress  # noqa: E402
from ltx_pipelines.utils.constants import DEFAULT_NEGATIVE_PROMPT  # noqa: E402

PROMPT = "A beautiful sunset over the ocean"
FULL_SIZES = ["1536x1024x121x40", "768x512x121x30"]  # width x height x frames x steps
TINY_SIZES = ["128x128x9x2"]


def parse_size(text: str) -> dict:
    width, height, frames, steps = (int(v) for v in text.split("x"))
    return {"width": width, "height": height, "num_frames": frames, "num_inference_steps": steps}


# --------------------------------------------------------------------------- the pipeline


def full_size_files(root: Path) -> tuple[Path, Path, Path, Path]:
    """distilled_e2e's header-only files, plus a one-module distilled LoRA that fits the checkpoint."""
    from distilled_e2e import header_only_files

    checkpoint, upsampler, gemma = header_only_files(root)
    from safetensors import safe_open

    with safe_open(str(checkpoint), framework="pt") as f:
        metadata = f.metadata()
    weight = torch.zeros(4096, 128, dtype=torch.bfloat16)  # patchify_proj: the module the LoRA targets
    tensors = {"model.diffusion_model.patchify_proj.bias": torch.zeros(4096),
               "model.diffusion_model.patchify_proj.weight": weight}  # fmt: skip
    save_file(tensors, str(checkpoint), metadata=metadata)
    lora = root / "distilled-lora-random.safetensors"
    generator = torch.Generator().manual_seed(0)
    factors = {"lora_A": torch.randn(8, 128, generator=generator), "lora_B": torch.randn(4096, 8, generator=generator)}
    factors["lora_B"] /= 100
    tensors = {f"diffusion_model.patchify_proj.{k}.weight": v.to(torch.bfloat16) for k, v in factors.items()}
    save_file(tensors, str(lora))
    return checkpoint, lora, upsampler, gemma


def build_pipeline(args: argparse.Namespace, root: Path):  # noqa: ANN201
    from ltx_pipelines.engine.model_ledger import comfy_lora
    from ltx_pipelines.ti2vid_two_stages import TI2VidTwoStagesPipeline

    if args.tiny:
        from ltx_pipelines.smoke_model import ensure_smoke_bundle

        bundle = ensure_smoke_bundle(Path(args.bundle) if args.bundle else root / "smoke")
        return TI2VidTwoStagesPipeline(
            checkpoint_path=bundle.checkpoint, distilled_lora=comfy_lora(bundle.distilled_lora, 0.8),
            spatial_upsampler_path=bundle.spatial_upsampler, gemma_root=bundle.gemma_root, memory_policy="keep",
        )  # fmt: skip
    from distilled_e2e import fill_ledger

    checkpoint, lora, upsampler, gemma = full_size_files(root)
    pipeline = TI2VidTwoStagesPipeline(
        checkpoint_path=checkpoint, distilled_lora=comfy_lora(lora, 0.8), spatial_upsampler_path=upsampler,
        gemma_root=gemma, dtype=torch.bfloat16, memory_policy="keep",
    )  # fmt: skip
    fill_ledger(pipeline, pipeline.ledger.config, pipeline.device, pipeline.dtype, PROMPT)
    pipeline.ledger.prompt_cache[DEFAULT_NEGATIVE_PROMPT] = pipeline.ledger.prompt_cache[PROMPT]
    return pipeline


# --------------------------------------------------------------------------- one measured run


class StageComm:
    """Seconds in collectives per stage, read from the collective timers at stage boundaries."""

    def __init__(self) -> None:
        self.per_stage: dict[str, float] = {}
        self._at_start: dict[str, float] = {}

    def __call__(self, event: progress.ProgressEvent) -> None:
        if event.kind == "stage_start":
            self._at_start[event.stage] = collectives.STATS.seconds
        elif event.kind == "stage_end":
            spent = collectives.STATS.seconds - self._at_start.pop(event.stage, collectives.STATS.seconds)
            self.per_stage[event.stage] = round(self.per_stage.get(event.stage, 0.0) + spent, 4)


def peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # host RSS (whole process so far)


def generate(pipeline, size: dict, output: Path, tiling) -> tuple[dict, torch.Tensor]:  # noqa: ANN001
    """One generation with comm timing; (row, frames)."""
    device = pipeline.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        torch.cuda.synchronize(device)
    comm = StageComm()
    started = time.perf_counter()
    with collectives.measured() as stats, progress.listen(comm):
        result = pipeline(prompt=PROMPT, output_path=output, overwrite=True, seed=42, tiling_config=tiling, **size)
    total = time.perf_counter() - started
    row = {
        "total_s": round(total, 3),
        "breakdown_s": {k: round(v, 3) for k, v in result.timings.items()},
        "comm_s": round(stats.seconds, 4),
        "comm_calls": stats.calls,
        "comm_gib": round(stats.bytes / 2**30, 3),
        "comm_per_stage_s": comm.per_stage,
        "peak_gib": round(peak_memory_gib(device), 2),
    }
    return row, result.frames


def gather(obj: object) -> list:
    everyone: list = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, obj)
    return everyone


def compare(single: torch.Tensor, parallel: torch.Tensor) -> dict:
    moved = (single.int() - parallel.int()).abs()
    return {"frames_equal": torch.equal(single, parallel), "max_level_diff": int(moved.max()),
            "fraction_differing": float((moved > 0).float().mean())}  # fmt: skip


def run_size(pipeline, ctx, text: str, out: Path, tiling, single: bool) -> list[dict]:  # noqa: ANN001
    """1 rank (rank 0 alone), then N ranks; warm-up + measured run each."""
    size = parse_size(text)
    rows, frames = [], {}
    world = ctx.world_size if ctx is not None else 1
    modes = (["1 rank"] if single or ctx is None else []) + ([f"{world} ranks"] if ctx is not None else [])
    for mode in modes:
        alone = mode == "1 rank"
        if ctx is None or not alone or ctx.rank == 0:
            pipeline.parallel = None if alone else ctx  # rank 0 alone: the group is switched off for this run
            for run in ("warm-up", "measured"):
                row, got = generate(pipeline, size, out / f"{text}_{mode.replace(' ', '_')}.mp4", tiling)
                row = {"size": text, "mode": mode, "run": run, **row}
                if not alone:
                    row["per_rank"] = gather({"peak_gib": row["peak_gib"], "comm_s": row["comm_s"]})
                if ctx is None or ctx.rank == 0:
                    print(json.dumps(row), flush=True)
                rows.append(row)
            frames[mode] = got
            pipeline.parallel = ctx
        if ctx is not None:
            dist.barrier()  # the others wait while rank 0 runs alone
    if len(frames) == 2 and (ctx is None or ctx.rank == 0):
        check = {"size": text, "check": f"{world} ranks vs 1 rank, same seed", **compare(*frames.values())}
        print(json.dumps(check), flush=True)
        rows.append(check)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="Folder for the mp4 of each run (rank 0 writes).")
    parser.add_argument("--sizes", nargs="+", default=None, help="WIDTHxHEIGHTxFRAMESxSTEPS (default: both sizes).")
    parser.add_argument("--no-single", action="store_true", help="Skip the 1-rank baseline.")
    parser.add_argument("--tiny", action="store_true", help="Smoke model on the CPU (gloo): a self-check.")
    parser.add_argument("--bundle", default=None, help="Smoke bundle to reuse with --tiny (built if missing).")
    parser.add_argument("--json", default=None, help="Also write every row to this file (rank 0).")
    args = parser.parse_args()

    from ltx_core.model.video_vae import SpatialTilingConfig, TemporalTilingConfig, TilingConfig

    ctx = init_from_env("cpu" if args.tiny else None)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    small_tiles = TilingConfig(SpatialTilingConfig(64, 32), TemporalTilingConfig(16, 8))  # several tiles at 128x128
    tiling = small_tiles if args.tiny else TilingConfig.default()
    if args.tiny:
        torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        pipeline = build_pipeline(args, Path(tmp))
        if ctx is None or ctx.rank == 0:
            print(f"# built the pipeline's components in {time.perf_counter() - started:.1f} s", flush=True)
        rows = []
        for text in args.sizes or (TINY_SIZES if args.tiny else FULL_SIZES):
            rows += run_size(pipeline, ctx, text, out, tiling, single=not args.no_single)
    if ctx is None or ctx.rank == 0:
        device = pipeline.device
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        world = ctx.world_size if ctx else 1
        print(f"# {world} x {name}, backend {ctx.backend if ctx else 'none'}, torch {torch.__version__}", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
    if ctx is not None:
        from ltx_pipelines.parallel.process_group import destroy

        destroy()


if __name__ == "__main__":
    main()
