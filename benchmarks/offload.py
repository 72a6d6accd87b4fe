"""Weight streaming and the memory pre-flight on the GPU (issue 9), in one run, full-size random weights.

1. ``bundle``: writes a full-size random LTX-2 bundle in the real on-disk format, each tensor drawn on
   the GPU and streamed to the file (no 40 GB copy in RAM): the checkpoint (19B transformer, VAEs,
   audio VAE, vocoder, connectors, text projection), the x2 upsampler, a distilled LoRA with the
   real key set (``--lora-rank``) and a Gemma-3 12B folder (``--gemma-dir``; /dev/shm keeps it off
   the disk).
2. ``step``: the stage-1 guided step at 512x768x121 (6 144 tokens, 4 passes) and the stage-2 pass at
   1024x1536x121 (24 576 tokens), resident against ``--offload cpu`` and ``disk`` (bf16), and cpu
   with FP8 host weights, under GPU caps (``torch.cuda.set_per_process_memory_fraction``); set-up
   time of each mode next to the resident load (cpu: the non-block weights, then until every block
   is pinned), peak GPU memory, host memory (private = RssAnon), max difference from resident.
3. ``e2e``: the default two-stage generation (1536x1024x121, 40 steps, Gemma included and never
   cached) from those files through ``TI2VidTwoStagesPipeline`` with ``--offload auto`` under
   ``--caps`` (e.g. 16 and 6 GiB), warm second run, the per-stage breakdown, the memory plan, the
   GPU and host peaks.

    python benchmarks/offload.py --workdir /tmp/offload --gemma-dir /dev/shm/gemma --json $OUT/offload.json
    python benchmarks/offload.py --tiny --device cpu            # CPU self-check on the smoke bundle

On the device's machine, with the carried wheels of benchmarks/gpu_run.sh installed to /tmp/site:
``PYTHONPATH=src:/tmp/site python3 benchmarks/offload.py ...``. ``--budget`` bounds the whole run:
parts that would start too late are skipped and say so.
"""

from __future__ import annotations

import argparse
import gc
import json
import struct
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gemma_streaming import gemma_config, write_gemma  # noqa: E402
from transformer_step import make_inputs, timed  # noqa: E402
from two_stage_e2e import lora_modules, model_config  # noqa: E402

from ltx_pipelines.memory.host import GIB, process_memory  # noqa: E402
from ltx_pipelines.smoke_model import REAL_CHANNEL_SIZES, checkpoint_layout, ensure_smoke_bundle  # noqa: E402

STARTED = time.perf_counter()
DTYPE_NAMES = {torch.bfloat16: "BF16", torch.float32: "F32"}


def log(message: str) -> None:
    print(f"[{time.perf_counter() - STARTED:6.1f} s] {message}", flush=True)


def left(budget: float) -> float:
    return budget - (time.perf_counter() - STARTED)


# -- a full-size bundle, streamed to disk ------------------------------------------------------------


def write_random_safetensors(path: Path, shapes: list[tuple[str, torch.Size]], metadata: dict, device: torch.device,
                             seed: int, fixed: dict[str, torch.Tensor] | None = None) -> None:  # fmt: skip
    """A bf16 safetensors file of random tensors, written tensor by tensor (header first); ``fixed``: stored as given."""
    fixed = fixed or {}
    header, offset = {"__metadata__": metadata}, 0
    for name, shape in shapes:
        size = 2 * int(torch.Size(shape).numel())
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    for name, tensor in fixed.items():
        size = tensor.numel() * tensor.element_size()
        header[name] = {"dtype": _SAFETENSORS_DTYPES[tensor.dtype], "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + size]}  # fmt: skip
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    g = torch.Generator(device=device).manual_seed(seed)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        for name, shape in shapes:
            f.write(_random(name, torch.Size(shape), g, device).reshape(-1).cpu().view(torch.uint8).numpy().tobytes())
        for tensor in fixed.values():
            f.write(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())


_SAFETENSORS_DTYPES = {torch.uint8: "U8", torch.bfloat16: "BF16", torch.float32: "F32", torch.int64: "I64"}


def _random(name: str, shape: torch.Size, g: torch.Generator, device: torch.device) -> torch.Tensor:
    """Values of a sensible scale by name and shape (statistics near 1/0, norms 1, matrices 1/sqrt(fan-in))."""
    if "std-of-means" in name:
        return torch.ones(shape, device=device, dtype=torch.bfloat16)
    if "mean-of-means" in name or name.endswith("bias") or len(shape) == 0:
        return torch.zeros(shape, device=device, dtype=torch.bfloat16)
    if len(shape) == 1:
        return torch.ones(shape, device=device, dtype=torch.bfloat16)
    scale = 0.1 if "scale_shift_table" in name else shape[1:].numel() ** -0.5
    return (torch.randn(shape, device=device, generator=g) * scale).to(torch.bfloat16)


def write_bundle(root: Path, gemma_dir: Path, lora_rank: int, device: torch.device) -> dict[str, Path]:
    from ltx_core.model.upsampler import LatentUpsamplerConfigurator

    root.mkdir(parents=True, exist_ok=True)
    config, up_config = model_config(tiny=False)
    gemma_cfg = gemma_config(False, None)
    hidden, layers = gemma_cfg["text_config"]["hidden_size"], gemma_cfg["text_config"]["num_hidden_layers"]
    files = {"checkpoint": root / "ltx-2-19b-dev-random.safetensors", "upsampler": root / "upsampler-random.safetensors",
             "lora": root / "distilled-lora-random.safetensors", "gemma": gemma_dir / "gemma-random"}  # fmt: skip
    if not files["checkpoint"].exists():
        shapes = [(n, s) for n, s, stored in checkpoint_layout(config, hidden, layers) if stored]
        meta = {"config": json.dumps(config), "model_version": "2.0.0", "distilled": "false"}
        write_random_safetensors(files["checkpoint"], shapes, meta, device, seed=0)
        with torch.device("meta"):
            upsampler = LatentUpsamplerConfigurator.from_config(up_config)
        up_shapes = [(k, v.shape) for k, v in sorted(upsampler.state_dict().items())]
        write_random_safetensors(files["upsampler"], up_shapes, {"config": json.dumps(up_config)}, device, seed=1)
        lora = [(f"diffusion_model.{m}.lora_{p}.weight", (lora_rank, i) if p == "A" else (o, lora_rank))
                for m, (o, i) in lora_modules(config).items() for p in "AB"]  # fmt: skip
        write_random_safetensors(files["lora"], lora, {}, device, seed=2)
    if not (files["gemma"] / "config.json").exists():
        gemma_dir.mkdir(parents=True, exist_ok=True)
        write_gemma(gemma_dir, gemma_cfg, ensure_smoke_bundle(root / "smoke").gemma_root, device)
    return files


def tiny_bundle(root: Path) -> dict[str, Path]:
    """The real-channel smoke bundle: the benchmark's inputs have LTX-2's latent channel counts."""
    smoke = ensure_smoke_bundle(root / "smoke-real-channels", sizes=REAL_CHANNEL_SIZES)
    return {"checkpoint": smoke.checkpoint, "upsampler": smoke.spatial_upsampler, "lora": smoke.distilled_lora,
            "gemma": smoke.gemma_root}  # fmt: skip


# -- measuring -----------------------------------------------------------------------------------------


def cap_gpu(device: torch.device, cap_gib: float | None) -> None:
    """Emulate a smaller card: the caching allocator refuses to grow past the cap."""
    if device.type != "cuda":
        return
    total = torch.cuda.get_device_properties(device).total_memory
    fraction = 1.0 if cap_gib is None else min(1.0, cap_gib * GIB / total)
    torch.cuda.set_per_process_memory_fraction(fraction, device.index or 0)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)


def gpu_peak(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / GIB if device.type == "cuda" else 0.0


def host() -> dict[str, float]:
    mem = process_memory()
    return {"host_rss_gib": round(mem["rss"] / GIB, 2), "host_private_gib": round(mem["rss_anon"] / GIB, 2)}


def vae_part(files: dict, args: argparse.Namespace, device: torch.device, dtype: torch.dtype, rows: list) -> None:
    """GPU bytes per output voxel of the VAE decoder, whole and tiled, against the pre-flight's estimate."""
    from ltx_core.model.video_vae import SpatialTilingConfig, TemporalTilingConfig, TilingConfig, decode_video

    from ltx_pipelines.engine.model_ledger import ModelLedger
    from ltx_pipelines.memory.budget import vae_decode_bytes

    cuda = device.type == "cuda"  # on the CPU (--tiny) the code runs, the memory figures read 0
    cap_gpu(device, None)
    ledger = ModelLedger(files["checkpoint"], files["gemma"], device=device, dtype=dtype, memory_policy="keep")
    height, width, _ = args.e2e_size
    # (frames, height, width, tile pixels or None for whole, tile frames)
    cases = [(17, 256, 256, None, None), (33, 512, 512, None, None), (args.frames, height, width, 384, 48),
             (args.frames, height, width, 512, 64)]  # fmt: skip
    g = torch.Generator(device=device)
    with torch.inference_mode(), ledger.use("video_decoder") as decoder:
        for frames, h, w, pixels, tile_frames in cases:
            latent = torch.randn(1, 128, (frames - 1) // 8 + 1, h // 32, w // 32, device=device, dtype=dtype)
            tiling = None if pixels is None else TilingConfig(SpatialTilingConfig(pixels, 64),
                                                              TemporalTilingConfig(tile_frames, 16))  # fmt: skip
            if cuda:
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device) if cuda else 0
            started = time.perf_counter()
            for chunk in decode_video(latent, decoder, tiling, generator=g.manual_seed(0)):
                chunk.cpu()
            seconds = time.perf_counter() - started
            used = torch.cuda.max_memory_allocated(device) - base if cuda else 0
            if pixels is None:
                estimate, voxels = vae_decode_bytes(frames, h, w), frames * h * w
            else:
                tf = min(tile_frames, frames)
                estimate = vae_decode_bytes(tf, min(pixels, h), min(pixels, w), h, w)
                voxels = tf * min(pixels, h) * min(pixels, w)
            row = {"size": f"{w}x{h}x{frames}", "tile": None if pixels is None else f"{pixels}px x {tile_frames}",
                   "decode_s": round(seconds, 2), "peak_above_weights_gib": round(used / GIB, 3),
                   "bytes_per_tile_voxel": round(used / voxels, 1), "estimate_gib": round(estimate / GIB, 3)}  # fmt: skip
            rows.append(row)
            log(json.dumps(row))
            args.save()
    ledger.release_all()
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()


def step_part(files: dict, args: argparse.Namespace, device: torch.device, dtype: torch.dtype, rows: list) -> None:
    """Guided step and stage-2 pass: resident vs streamed, under caps, with set-up times."""
    reference = {}
    variants = [("none", None, None), ("cpu", None, args.step_caps[0]), ("disk", None, args.step_caps[0]),
                ("cpu", "fp8", args.step_caps[0])] + [("cpu", None, cap) for cap in args.step_caps[1:]]  # fmt: skip
    for offload, quant, cap in variants:
        if left(args.budget) < args.e2e_reserve + 40:
            log(f"step {offload}/{quant or 'bf16'}/{cap}: skipped, out of time")
            continue
        row = measure_variant(files, args, device, dtype, offload, quant, cap, reference)
        gc.collect()  # the variant's model and inputs are gone with its frame: give the memory back
        if device.type == "cuda":
            torch.cuda.empty_cache()
        rows.append(row)
        log(json.dumps(row))
        args.save()
    cap_gpu(device, None)


def measure_variant(files: dict, args: argparse.Namespace, device: torch.device, dtype: torch.dtype, offload: str,
                    quant: str | None, cap: float | None, reference: dict) -> dict:  # fmt: skip
    from dataclasses import replace

    from ltx_core.components.guiders import create_multimodal_guider_factory

    from ltx_pipelines.engine.guidance import ConditionalDenoiser, MultiModalGuidedDenoiser
    from ltx_pipelines.engine.model_ledger import ModelLedger
    from ltx_pipelines.memory.chunking import chunk_feed_forwards
    from ltx_pipelines.models.fp8 import fp8_scaled_mm_policy
    from ltx_pipelines.models.transformer_blocks import EagerBlocks
    from ltx_pipelines.models.transformer_passes import TransformerPasses
    from ltx_pipelines.utils.constants import DEFAULT_AUDIO_GUIDER_PARAMS, DEFAULT_VIDEO_GUIDER_PARAMS

    (h1, w1), (h2, w2) = args.step_size, args.pass_size
    caption = 64 if args.tiny else 3840
    sigmas = torch.tensor([0.9, 0.0])
    video_params = replace(DEFAULT_VIDEO_GUIDER_PARAMS, stg_blocks=[args.stg_block])
    audio_params = replace(DEFAULT_AUDIO_GUIDER_PARAMS, stg_blocks=[args.stg_block])
    cap_gpu(device, None)
    started = time.perf_counter()
    ledger = ModelLedger(files["checkpoint"], files["gemma"], device=device, dtype=dtype, memory_policy="keep",
                         offload=offload, quantization=fp8_scaled_mm_policy() if quant else None)  # fmt: skip
    with torch.inference_mode():
        model = ledger.get("transformer")
    load_s = time.perf_counter() - started
    streamed = getattr(model, "ltx_streaming", None)
    pinned_s = None
    if streamed is not None and offload == "cpu":
        while not streamed.streamer.store.complete:
            time.sleep(0.05)
        pinned_s = time.perf_counter() - started
    cap_gpu(device, cap)
    small = cap is not None and cap <= 8
    compact = small and streamed is not None
    chunk_feed_forwards(model, 1024 if small else None)
    executor = TransformerPasses(model, engine=EagerBlocks(model, compact=compact), block_major=streamed is not None)
    row = {"offload": offload, "weights": quant or "bf16", "cap_gib": cap, "load_s": round(load_s, 2),
           "setup_until_pinned_s": round(pinned_s, 2) if pinned_s else None,
           "ff_chunk": 1024 if small else None, "compact_timesteps": compact}  # fmt: skip
    try:
        with torch.inference_mode():
            video, audio, positive, negative = make_inputs(h1, w1, args.frames, 24.0, caption, device, dtype, seed=1)
            denoiser = MultiModalGuidedDenoiser(
                model, positive, negative, create_multimodal_guider_factory(video_params),
                create_multimodal_guider_factory(audio_params), executor=executor,
            )  # fmt: skip
            row["step_s"], out = timed(lambda: denoiser(video, audio, sigmas, 0), args.repeats, 1, device)
            row["step_peak_gib"] = round(gpu_peak(device), 2)
            compare(row, reference, ("step", h1, w1), out[0], offload, quant, "step_max_abs_diff")
            if not small:
                video, audio, positive, _ = make_inputs(h2, w2, args.frames, 24.0, caption, device, dtype, seed=2)
                single = ConditionalDenoiser(model, positive, executor=executor)
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                row["pass_s"], out = timed(lambda: single(video, audio, sigmas, 0), args.repeats, 1, device)
                row["pass_peak_gib"] = round(gpu_peak(device), 2)
                compare(row, reference, ("pass", h2, w2), out[0], offload, quant, "pass_max_abs_diff")
    except torch.OutOfMemoryError as e:
        row["error"] = f"out of memory: {str(e).splitlines()[0][:160]}"
    row.update(host())
    ledger.release_all()
    return row


def compare(row: dict, reference: dict, key: tuple, out: torch.Tensor, offload: str, quant: str | None,
            name: str) -> None:  # fmt: skip
    """The resident bf16 output is the reference; streamed bf16 outputs record their largest difference."""
    if offload == "none":
        reference[key] = out.float().cpu()
    elif key in reference and quant is None:
        row[name] = float((out.float().cpu() - reference[key]).abs().max())


def e2e_part(files: dict, args: argparse.Namespace, device: torch.device, dtype: torch.dtype, rows: list) -> None:
    """The default two-stage generation from the files, --offload auto under each cap, warm second run."""
    from dataclasses import replace

    from ltx_pipelines import TI2VidTwoStagesPipeline
    from ltx_pipelines.engine.model_ledger import comfy_lora
    from ltx_pipelines.utils.constants import DEFAULT_AUDIO_GUIDER_PARAMS, DEFAULT_VIDEO_GUIDER_PARAMS

    guidance = {}
    if args.tiny:  # the real-channel smoke model has 4 blocks: STG on the last one
        guidance = {"video_guider_params": replace(DEFAULT_VIDEO_GUIDER_PARAMS, stg_blocks=[args.stg_block]),
                    "audio_guider_params": replace(DEFAULT_AUDIO_GUIDER_PARAMS, stg_blocks=[args.stg_block])}  # fmt: skip
    height, width, steps = args.e2e_size
    for cap in args.caps:
        if left(args.budget) < args.cold_estimate:
            log(f"e2e under {cap} GiB: skipped, out of time")
            continue
        cap_gpu(device, cap)
        pipeline = TI2VidTwoStagesPipeline(
            checkpoint_path=files["checkpoint"], distilled_lora=[comfy_lora(files["lora"], 0.8)],
            spatial_upsampler_path=files["upsampler"], gemma_root=files["gemma"], device=device, dtype=dtype,
            offload="auto", max_gpu_memory=cap,
        )  # fmt: skip
        timed_runs(pipeline, cap, args, device, rows, {"steps": steps}, num_inference_steps=steps, **guidance)
        release(pipeline, device)
        del pipeline
    cap_gpu(device, None)


def timed_runs(pipeline: object, cap: float | None, args: argparse.Namespace, device: torch.device, rows: list,
               row_extra: dict | None = None, **call: object) -> None:  # fmt: skip
    """A first and a warm generation (the warm one when time is left): total, per-stage breakdown, plan and peaks."""
    height, width = args.e2e_size[:2]
    for run in ("first", "warm"):
        if run == "warm" and (left(args.budget) < args.warm_estimate or getattr(args, "first_only", False)):
            log(f"e2e under {cap} GiB, warm run: skipped")
            continue
        pipeline.ledger.prompt_cache.clear()  # Gemma runs every time (a new prompt would too)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        started = time.perf_counter()
        row = {"cap_gib": cap, "run": run, "size": f"{width}x{height}x{args.frames}", **(row_extra or {})}
        try:
            result = pipeline(prompt=f"A red fox in the snow, {run} run", output_path=args.out / f"e2e_{cap}.mp4",
                              height=height, width=width, num_frames=args.frames, overwrite=True, **call)  # fmt: skip
            row["total_s"] = round(time.perf_counter() - started, 2)
            row["breakdown_s"] = {k: round(v, 2) for k, v in result.timings.items()}
            row["peaks_gib"] = {k: {m: round(x, 2) for m, x in v.items()} for k, v in pipeline.ledger.peaks.items()}
        except torch.OutOfMemoryError as e:
            row["error"] = f"out of memory: {str(e).splitlines()[0][:160]}"
        plan = pipeline.ledger.plan
        row["plan"] = plan.describe() if plan is not None else None
        row["gpu_peak_gib"] = round(gpu_peak(device), 2)
        row["host_peak_gib"] = round(process_memory()["peak"] / GIB, 2)
        row.update(host())
        rows.append(row)
        log(json.dumps(row))
        args.save()


def release(pipeline: object, device: torch.device) -> None:
    """Free every model of a pipeline before the next cap's (the caller drops its last name for it)."""
    pipeline.ledger.release_all()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="The smoke bundle, small sizes (CPU self-check).")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/offload"))
    parser.add_argument("--gemma-dir", type=Path, default=None, help="Folder to write Gemma in (default: --workdir).")
    parser.add_argument("--out", type=Path, default=Path("/tmp/offload-out"))
    parser.add_argument("--parts", default="vae,step,e2e", help="Comma-separated, run in this order.")
    parser.add_argument("--lora-rank", type=int, default=64)
    parser.add_argument("--frames", type=int, default=121)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--step-caps", default="16,6", help="GPU caps (GiB) for the streamed step; first = main one.")
    parser.add_argument("--caps", default="16,6", help="GPU caps (GiB) for the end-to-end runs ('none': uncapped).")
    parser.add_argument("--budget", type=float, default=540.0, help="Seconds for the whole run.")
    parser.add_argument("--e2e-reserve", type=float, default=300.0, help="Seconds the step part leaves to e2e.")
    parser.add_argument("--warm-estimate", type=float, default=110.0, help="Seconds a warm e2e run needs to start.")
    parser.add_argument("--cold-estimate", type=float, default=140.0, help="Seconds a first e2e run needs to start.")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    args.step_caps = [float(c) for c in args.step_caps.split(",")]
    args.caps = [None if c == "none" else float(c) for c in args.caps.split(",")]
    if args.tiny:
        args.step_size, args.pass_size, args.e2e_size, args.frames, args.stg_block = (64, 96), (128, 192), (128, 192, 3), 9, 3
    else:
        args.step_size, args.pass_size, args.e2e_size, args.stg_block = (512, 768), (1024, 1536), (1024, 1536, 40), 29
    args.out.mkdir(parents=True, exist_ok=True)
    if args.tiny:
        files = tiny_bundle(args.workdir)
    else:
        files = write_bundle(args.workdir, args.gemma_dir or args.workdir, args.lora_rank, device)
    log(f"bundle ready: {', '.join(f'{k}={v}' for k, v in files.items())}")
    result = {"gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "torch": torch.__version__}
    args.save = lambda: args.json.write_text(json.dumps(result, indent=2)) if args.json else None
    parts = {"vae": vae_part, "step": step_part, "e2e": e2e_part}
    for name in args.parts.split(","):
        result[name] = []  # filled row by row, saved after each (a run cut short keeps what finished)
        parts[name](files, args, device, dtype, result[name])
        args.save()
    log("done")


if __name__ == "__main__":
    main()
