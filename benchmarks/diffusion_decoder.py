"""LTX-2.5's diffusion video decoder on a GPU: ours (plain, compiled, under 16 and 6 GiB caps) against the reference
1.2.0's best Hopper mode, same random weights, same latents, one process.

Full size = the reference 1.2.0's ``DiffusionVideoDecoder`` class defaults, which the published file's config is
read over (channels 1024/512/256/256/128, depths 4/6/4/2 + 8 stage-5 blocks, windows 3x7x7 / 3x5x5 and 3x7x7 in
stage 5, head 64, 2 Euler steps); random bf16 weights. Videos: 1536x1024x121 (the default output) and
3840x2176x121 (4K). The reference is imported from ``--reference-path`` (a folder holding ltx_core 1.2.0; our
decoder does not import ltx_core, so both live in one process); its modes are tried in the order given by
``--reference-modes`` (combined_compile needs natten; chunked_compile falls back to Triton/eager without it, and
the reference then does not compile) with the tiling it recommends for the free memory.

    python benchmarks/diffusion_decoder.py --tiny              # CPU self-check (~1 min): tiny decoder, ours vs ref
    PYTHONPATH=src:/tmp/refcore python benchmarks/diffusion_decoder.py --reference-path /tmp/refcore \\
        --json out.json --budget 500                            # the GPU run (benchmarks/gpu_run_diffvae.sh)

Ours runs with the decoder's elementwise chains fused (the package's default on CUDA, ``decoder_kernels.py``); on a
GPU the first path and size is also timed with them eager (``--elementwise``), which is what fusing saves.

Every case is timed after one warm-up decode (compiled cases: the warm-up includes compilation, reported apart);
a case that runs out of memory or time is recorded with its error, and the run goes on while ``--budget`` lasts.

``--profile``: after ours' attention-path cases on the first size, two more decodes of the first path (flex on a
GPU), uncompiled, with the same tiles (:mod:`decoder_profile`, beside this file): one with cuda-synchronised wall
times per stage (noise, stages 1-4 with their upsampling, each stage-5 Euler step, blending; inside each stage
attention, MLP and the rest) beside the stage's matmul/attention FLOPs and TFLOP/s, and one under
``torch.profiler``: the top 30 kernels by self device time and the totals per category (CPU self time on the
CPU). Printed as ``{"profile": ...}`` JSON lines and written under ``"profile"`` in ``--json``; skipped with a
note when less than a minute of ``--budget`` is left.

    python benchmarks/diffusion_decoder.py --tiny --no-compile --profile   # CPU self-check of the profile (~2 min)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import decoder_profile  # noqa: E402 -- beside this file
from ltx_pipelines.models.ltx25 import decoder_kernels as kernels
from ltx_pipelines.models.ltx25.diffusion_decoder import DiffusionDecoderConfig, DiffusionVideoDecoder
from ltx_pipelines.models.ltx25.diffusion_tiling import plan_working_set_bytes, tiles_for_budget
from ltx_pipelines.models.ltx25.neighborhood_attention import force_backend, natten_usable

GIB = 1 << 30
GPU_RESERVE = int(0.75 * GIB)  # memory.budget.GPU_RESERVE (not imported: it pulls in ltx_core 1.0.0)
SIZES = ((1536, 1024, 121), (3840, 2176, 121))
TINY_CONFIG = DiffusionDecoderConfig(
    latent_channels=16, head_dim=16, t_emb_dim=32, stage_channels=(64, 32, 16, 16, 16), stage_depths=(1, 1, 1, 1, 2),
    upsamples=(((1, 2, 2), 2), ((2, 1, 1), 2), ((2, 2, 2), 1), ((2, 2, 2), 1)), stage5_channels=32,
)  # fmt: skip
TINY_SIZES = ((256, 224, 17),)
#: ``--profile`` starts with this much of ``--budget`` left, its profiler decode with half of it.
PROFILE_MIN_S = 60.0


def random_decoder(config: DiffusionDecoderConfig, device: torch.device, dtype: torch.dtype) -> DiffusionVideoDecoder:
    decoder = DiffusionVideoDecoder(config).to(device=device, dtype=dtype).eval().requires_grad_(False)
    generator = torch.Generator(device="cpu").manual_seed(0)
    for name, p in decoder.named_parameters():
        if p.ndim == 1:
            value = (1.0 if "norm" in name else 0.0) + 0.05 * torch.randn(p.shape, generator=generator)
        else:
            value = torch.randn(p.shape, generator=generator) / p.shape[-1] ** 0.5
        p.data.copy_(value.to(dtype))
    return decoder


def reference_state(ours: DiffusionVideoDecoder) -> dict[str, torch.Tensor]:
    """Our weights under the reference module's names."""
    out = {}
    for name, value in ours.state_dict().items():
        name = name.replace(".attn.to_", ".attn.qkv.to_").replace(
            "t_embedder.linear_", "t_embedder.timestep_embedder.linear_"
        )
        out[name] = value
    return out


def reference_decoder(ours: DiffusionVideoDecoder, mode: str, device: torch.device, dtype: torch.dtype):
    """The reference 1.2.0's decoder with our weights, ``mode`` installed (raises where the mode cannot run)."""
    from ltx_core.model.video_vae.diffusion_video_decoder import DiffusionVideoDecoder as Reference
    from ltx_core.model.video_vae.transformer import DiffVAEMode, apply_diffvae_mode

    c = ours.config
    ref = Reference(in_channels=c.latent_channels, head_dim=c.head_dim, stage_channels=c.stage_channels,
                    stage_depths=c.stage_depths, stage_kernels=c.stage_kernels, upsamples=c.upsamples,
                    stage5_kernel=c.stage5_kernel, stage5_channels=c.stage5_channels, t_emb_dim=c.t_emb_dim,
                    default_num_inference_steps=c.num_steps)  # fmt: skip
    ref.load_state_dict(reference_state(ours), strict=False)
    ref = ref.to(device=device, dtype=dtype).eval().requires_grad_(False)
    return apply_diffvae_mode(ref, DiffVAEMode(mode))


def reference_tiling(config: DiffusionDecoderConfig, mode: str, size: tuple[int, int, int], free: int, weights: int):
    """The tiling the reference's pipelines pick for ``free`` bytes (its ``ltx_pipelines`` helper's recipe: the
    geometry from the file's config, then ``recommended_decode_tiling_config``; the decoder's own
    ``recommended_tiling_config`` in 1.2.0 omits three required arguments and raises)."""
    from ltx_core.model.video_vae.diffusion_tiling import recommended_decode_tiling_config
    from ltx_core.model.video_vae.model_configurator import diffvae_tiling_geometry_from_vae_config
    from ltx_core.model.video_vae.transformer import DiffVAEMode

    c = config
    decoder_config = {"stage_kernels": c.stage_kernels, "stage_depths": c.stage_depths, "upsamples": c.upsamples,
                      "stage5_kernel": c.stage5_kernel, "patch_size": c.patch_size, "head_dim": c.head_dim,
                      "stage_channels": c.stage_channels, "out_channels": c.out_channels,
                      **({"stage5_channels": c.stage5_channels} if c.stage5_channels else {})}  # fmt: skip
    width, height, frames = size
    return recommended_decode_tiling_config(**diffvae_tiling_geometry_from_vae_config({"decoder": decoder_config}),
                                            height=height, width=width, num_frames=frames, mode=DiffVAEMode(mode),
                                            free_bytes=free, model_bytes=weights)  # fmt: skip


def latent_for(config: DiffusionDecoderConfig, width: int, height: int, frames: int, device, dtype) -> torch.Tensor:
    st, sh, sw = config.scale
    shape = (1, config.latent_channels, (frames - 1) // st + 1, height // sh, width // sw)
    return torch.randn(shape, generator=torch.Generator().manual_seed(1)).to(device=device, dtype=dtype)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


#: How decoded chunks reach the host: "uint8", converted on the device as both pipelines hand frames to the mp4
#: writer (ltx-core's ``decode_video``, in the chunk's own dtype; a quarter of float32's bytes), or "float32" (the
#: self-check compares those).
#: Runs 1-4 timed float32: 1.18 s of run 4's 7.96 s was that copy (the reference's case made the same one).
FRAMES_TO_HOST = {"uint8": lambda c: ((c + 1.0) / 2.0).clamp(0.0, 1.0).mul(255.0).to(torch.uint8).cpu(),
                  "float32": lambda c: c.float().cpu()}  # fmt: skip
frames_to_host = "float32"  # set by --frames


def to_host(chunk: torch.Tensor) -> torch.Tensor:
    return FRAMES_TO_HOST[frames_to_host](chunk)


def run_ours(decoder: DiffusionVideoDecoder, latent: torch.Tensor, tiles: object,
             receive: Callable[[torch.Tensor], torch.Tensor] = to_host) -> torch.Tensor:  # fmt: skip
    """The whole video on the host, each chunk taken by ``receive`` (the profile times it)."""
    generator = torch.Generator(device=latent.device).manual_seed(7)
    with torch.inference_mode():
        return torch.cat([receive(c) for c in decoder.decode_chunks(latent, tiles, generator)], dim=2)


def run_reference(decoder, latent: torch.Tensor, tiling) -> torch.Tensor:
    generator = torch.Generator(device=latent.device).manual_seed(7)
    with torch.inference_mode():
        if tiling is None:
            return to_host(decoder(latent, generator=generator))
        return torch.cat([to_host(c) for c in decoder.tiled_decode(latent, tiling, generator=generator)], dim=2)


def timed(fn, device: torch.device, repeats: int) -> tuple[float, float, torch.Tensor]:
    """(first call s, best of ``repeats`` s, output)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    first = time.perf_counter() - start
    best = first
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return first, best, out


class Run:
    def __init__(self, args: argparse.Namespace):
        self.args, self.started, self.results = args, time.perf_counter(), []

    def left(self) -> float:
        return self.args.budget - (time.perf_counter() - self.started)

    def case(self, name: str, size: tuple[int, int, int], fn, device: torch.device, extra: dict | None = None):
        record = {"case": name, "size": "x".join(map(str, size)), **(extra or {})}
        if self.left() < self.args.min_case_s:
            record["skipped"] = f"budget: {self.left():.0f} s left"
        else:
            try:
                first, best, out = timed(fn, device, self.args.repeats)
                record.update(first_s=round(first, 3), seconds=round(best, 3), frames=list(out.shape))
                if device.type == "cuda":
                    record["peak_gib"] = round(torch.cuda.max_memory_allocated(device) / GIB, 2)
                record["_out"] = out
            except Exception as error:  # noqa: BLE001 -- a case that fails (OOM, no natten) is recorded, not fatal
                record["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:800]}"
                if device.type == "cuda":  # what was held when it failed: the plan's calibration needs it
                    record["failed_at_gib"] = {"allocated": round(torch.cuda.memory_allocated(device) / GIB, 2),
                                               "reserved": round(torch.cuda.memory_reserved(device) / GIB, 2),
                                               "peak": round(torch.cuda.max_memory_allocated(device) / GIB, 2)}
            finally:
                if device.type == "cuda":
                    torch.cuda.empty_cache()
        print(json.dumps({k: v for k, v in record.items() if k != "_out"}), flush=True)
        self.results.append(record)
        return record


def attention_paths(args: argparse.Namespace, device: torch.device, first: bool) -> list[str]:
    """The attention paths to time: the fast one first; natten only where it imports; masked on the first size."""
    if args.attention:
        return [a for a in args.attention.split(",") if a]
    if device.type != "cuda":
        return ["blocked"]
    probe = torch.empty(1, device=device)
    return ["flex", *(["natten"] if natten_usable(probe) else []), *(["blocked"] if first else [])]


#: ``--elementwise`` modes -> ``decoder_kernels.FUSE_ELEMENTWISE``: the package's default (fused on CUDA), eager.
ELEMENTWISE = {"fused": "cuda", "eager": "never"}


def elementwise_modes(args: argparse.Namespace, device: torch.device, first: bool) -> list[str]:
    """Fused (the default) for every case; eager too for the first path and size on a GPU (what fusing saves)."""
    if args.elementwise:
        return [m for m in args.elementwise.split(",") if m]
    return ["fused", "eager"] if device.type == "cuda" and first else ["fused"]


def profile_ours(run: Run, decoder: DiffusionVideoDecoder, latent: torch.Tensor, tiles: object, backend: str,
                 size: tuple[int, int, int]) -> dict:  # fmt: skip
    """``--profile``: one decode with per-stage wall times, then one under ``torch.profiler``; after the timed case
    (``backend``, the same tiles), so nothing compiles here. A part that fails or finds no time is noted instead."""
    device = latent.device
    profile: dict = {"size": "x".join(map(str, size)), "tiles": str(tiles), "attention": backend}
    parts = {
        "stages": (PROFILE_MIN_S, lambda: decoder_profile.stage_times(
            decoder, lambda receive: run_ours(decoder, latent, tiles, receive), device, size, to_host)),
        "kernels": (PROFILE_MIN_S / 2, lambda: decoder_profile.profiled(
            lambda: run_ours(decoder, latent, tiles), device)),
    }  # fmt: skip
    for name, (needs, measure) in parts.items():
        if run.left() < needs:
            profile[name] = {"skipped": f"budget: {run.left():.0f} s left, {needs:.0f} s needed"}
            continue
        try:
            with force_backend(backend):
                profile[name] = measure()
        except Exception as error:  # noqa: BLE001 -- a profile that fails is noted; the run goes on
            first_line = str(error).splitlines()[0][:300] if str(error) else ""
            profile[name] = {"error": f"{type(error).__name__}: {first_line}"}
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
    print_profile(profile)
    return profile


def print_profile(profile: dict) -> None:
    """The profile as JSON lines: the case, each stage, the kernel categories, each top kernel."""
    lines = [{"profile": "case", **{k: v for k, v in profile.items() if k not in ("stages", "kernels")}}]
    stages, kernels = profile.get("stages", {}), profile.get("kernels", {})
    lines.append({"profile": "stages", **{k: v for k, v in stages.items() if k != "stages"}})
    lines += [{"profile": "stage", "stage": label, **entry} for label, entry in stages.get("stages", {}).items()]
    lines.append({"profile": "categories", **{k: v for k, v in kernels.items() if k != "top"}})
    lines += [{"profile": "kernel", "rank": i + 1, **row} for i, row in enumerate(kernels.get("top", []))]
    for line in lines:
        print(json.dumps(line), flush=True)


def estimated_bytes(config: DiffusionDecoderConfig, size: tuple[int, int, int], tiles) -> int:
    """The pre-flight's estimate of a decode beyond the weights (logged beside the measured peak: calibration)."""
    width, height, frames = size
    return plan_working_set_bytes(config, frames, height, width, tiles)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="CPU self-check: tiny decoder, small video")
    parser.add_argument("--reference-path", help="folder with ltx_core 1.2.0 (prepended to sys.path)")
    parser.add_argument("--reference-modes", default="combined_compile,chunked_compile")
    parser.add_argument("--caps", default="16,6", help="GiB caps for ours (torch.cuda.set_per_process_memory_fraction)")
    parser.add_argument("--sizes", help="WxHxF,... (default: 1536x1024x121,3840x2176x121)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--budget", type=float, default=500.0, help="seconds for the whole run")
    parser.add_argument("--min-case-s", type=float, default=20.0, help="do not start a case with less time left")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--attention", help="attention paths timed for ours, in order (default: flex,natten,blocked "
                        "on a GPU -- natten where it imports, blocked (masked) on the first size only --; blocked on "
                        "the CPU)")  # fmt: skip
    parser.add_argument("--elementwise", help="the decoder's elementwise chains (Q/K norm + RoPE, SwiGLU): fused "
                        "(the default, compiled on CUDA), eager; comma-separated, each timed (default: both for the "
                        "first attention path on a GPU)")  # fmt: skip
    parser.add_argument("--profile", action="store_true",
                        help="after ours' timed cases on the first size: stage wall times with FLOPs and a "
                        "torch.profiler summary (benchmarks/decoder_profile.py)")  # fmt: skip
    parser.add_argument("--frames", choices=sorted(FRAMES_TO_HOST), help="how decoded chunks reach the host "
                        "(default: uint8 on a GPU, as the pipelines hand them to the mp4 writer; float32 on the CPU)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    global frames_to_host
    frames_to_host = args.frames or ("float32" if args.tiny or not torch.cuda.is_available() else "uint8")
    if args.reference_path:
        sys.path.insert(0, args.reference_path)
    device = torch.device("cpu") if args.tiny or not torch.cuda.is_available() else torch.device("cuda", 0)
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    config = TINY_CONFIG if args.tiny else DiffusionDecoderConfig()
    sizes = TINY_SIZES if args.tiny else SIZES
    if args.sizes:
        sizes = tuple(tuple(int(v) for v in s.split("x")) for s in args.sizes.split(","))
    run = Run(args)
    profile: dict | None = None
    decoder = random_decoder(config, device, dtype)
    weights = sum(p.numel() * p.element_size() for p in decoder.parameters())
    info = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "torch": torch.__version__,
            "dtype": str(dtype), "config": "tiny" if args.tiny else "full (reference 1.2.0 class defaults)",
            "weights_gib": round(weights / GIB, 3), "frames_to_host": frames_to_host}  # fmt: skip
    try:
        import natten

        info["natten"] = natten.__version__
    except Exception:  # noqa: BLE001
        info["natten"] = None
    print(json.dumps(info), flush=True)
    total = torch.cuda.get_device_properties(device).total_memory if device.type == "cuda" else 0
    free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else 64 * GIB

    for width, height, frames in sizes:
        size = (width, height, frames)
        latent = latent_for(config, width, height, frames, device, dtype)
        own_tiles = tiles_for_budget(config, frames, height, width, int(free - weights - 2 * GIB))
        plain: dict = {}
        paths = attention_paths(args, device, first=size == sizes[0])
        for backend in paths:
            for mode in elementwise_modes(args, device, first=backend == paths[0] and size == sizes[0]):
                kernels.FUSE_ELEMENTWISE = ELEMENTWISE[mode]
                with force_backend(backend):
                    got = run.case(f"ours {backend}{'' if mode == 'fused' else ', elementwise eager'}", size,
                                   lambda lat=latent, t=own_tiles: run_ours(decoder, lat, t), device,
                                   {"tiles": str(own_tiles), "attention": backend, "elementwise": mode})  # fmt: skip
                plain = plain if "_out" in plain else got
            kernels.FUSE_ELEMENTWISE = ELEMENTWISE["fused"]
        if args.profile and size == sizes[0] and paths:
            profile = profile_ours(run, decoder, latent, own_tiles, paths[0], size)
        if not args.no_compile:
            compiled = random_decoder(config, device, dtype)
            compiled.compile_blocks()
            run.case("ours compiled", size, lambda c=compiled, lat=latent, t=own_tiles: run_ours(c, lat, t), device,
                     {"tiles": str(own_tiles)})  # fmt: skip
            compiled = None
        for cap in [float(c) for c in args.caps.split(",") if c] if device.type == "cuda" else []:
            torch.cuda.set_per_process_memory_fraction(min(1.0, cap * GIB / total), device)
            try:  # the pre-flight's choice: what the cap leaves after the reserve and the weights
                tiles = tiles_for_budget(config, frames, height, width, int(cap * GIB - GPU_RESERVE - weights))
            except ValueError as error:
                run.results.append({"case": f"ours {cap:g} GiB", "size": "x".join(map(str, size)), "error": str(error)})
                print(json.dumps(run.results[-1]), flush=True)
                continue
            estimate = weights + estimated_bytes(config, size, tiles)
            run.case(f"ours {cap:g} GiB", size, lambda lat=latent, t=tiles: run_ours(decoder, lat, t), device,
                     {"tiles": str(tiles), "estimated_gib": round(estimate / GIB, 2)})  # fmt: skip
            torch.cuda.set_per_process_memory_fraction(1.0, device)
        # the reference last: at 4K its Triton fallback hit an illegal memory access (H200), which ends the process
        for mode in [m for m in args.reference_modes.split(",") if m]:
            try:
                ref = reference_decoder(decoder, mode, device, dtype)
                tiling = None if args.tiny else reference_tiling(config, mode, size, free, weights)
            except Exception as error:  # noqa: BLE001
                run.results.append({"case": f"reference {mode}", "size": "x".join(map(str, size)),
                                    "error": f"{type(error).__name__}: {error}"[:300]})  # fmt: skip
                print(json.dumps(run.results[-1]), flush=True)
                continue
            got = run.case(f"reference {mode}", size, lambda r=ref, lat=latent, t=tiling: run_reference(r, lat, t), device,
                           {"tiling": str(tiling)})  # fmt: skip
            ref = None  # freed before the next case
            if "_out" in got and "_out" in plain and args.tiny:
                diff = float((got["_out"] - plain["_out"]).abs().max() / got["_out"].abs().max())
                print(json.dumps({"check": f"ours vs reference {mode}", "max_rel_diff": diff}), flush=True)
                got["max_rel_diff_vs_ours"] = diff
            if "seconds" in got:
                break  # the best mode that runs
    results = [{k: v for k, v in r.items() if k != "_out"} for r in run.results]
    if args.json:
        report = {"info": info, "results": results, **({"profile": profile} if profile is not None else {})}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.tiny:
        diffs = [r["max_rel_diff_vs_ours"] for r in run.results if "max_rel_diff_vs_ours" in r]
        ok = all(d <= 1e-5 for d in diffs) and any("seconds" in r for r in run.results)
        if args.profile:  # both halves of the profile ran
            ok = ok and profile is not None and "stages" in profile["stages"] and "top" in profile["kernels"]
        print(f"self-check: {'ok' if ok else 'FAILED'} (ours vs reference: {diffs or 'reference not importable'})")
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
