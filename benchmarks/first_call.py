"""First-call overhead of the default (compiled-by-token-count) path: one process, cold or warm compile cache.

Run it twice with the same ``--cache-dir`` (benchmarks/gpu_run_fast.sh does): the first process compiles with an
empty cache and saves its artefacts; the second reads them. Per size it reports the first call (compilation or
cache reads, CUDA-graph capture, attention timing), the median of the later calls, their difference (the
overhead a user waits for), and what the engine says it compiled and read from the cache. The guided step at
512x768 is stage 1 of the default two-stage generation, the pass at 1024x1536 its stage 2.

    python benchmarks/first_call.py --cache-dir /tmp/cc --label cold --json cold.json   # GPU, full size
    python benchmarks/first_call.py --cache-dir /tmp/cc --label warm --json warm.json   # the second process
    python benchmarks/first_call.py --tiny --cache-dir /tmp/cc --label cold             # CPU self-check
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

STARTED = time.perf_counter()

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from transformer_step import Bench, build_model, context_widths, transformer_config  # noqa: E402

from ltx_pipelines.acceleration.executor import accelerated_executor, engine_stats  # noqa: E402
from ltx_pipelines.acceleration.options import AccelerationOptions  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def first_and_steady(fn, device: torch.device, repeats: int) -> dict:  # noqa: ANN001
    sync(device)
    started = time.perf_counter()
    with torch.inference_mode():
        fn()
        sync(device)
        first = time.perf_counter() - started
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            fn()
            sync(device)
            times.append(time.perf_counter() - started)
    steady = statistics.median(times)
    return {"first_s": round(first, 3), "steady_s": round(steady, 4), "overhead_s": round(first - steady, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="Small model on the CPU, compiled (--compile).")
    parser.add_argument("--cache-dir", required=True, help="The compile cache folder (--compile-cache).")
    parser.add_argument("--label", default="run")
    parser.add_argument("--step-sizes", default=None, help="HxW of guided steps (default 512x768; tiny 64x96).")
    parser.add_argument("--pass-sizes", default=None, help="HxW of single passes (default 1024x1536; tiny 128x192).")
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")  # the compile log lines
    device = torch.device(args.device)
    step_sizes = [s for s in (args.step_sizes or ("64x96" if args.tiny else "512x768")).split(",") if s]
    pass_sizes = [s for s in (args.pass_sizes or ("128x192" if args.tiny else "1024x1536")).split(",") if s]
    args.frames = args.frames or (17 if args.tiny else 121)
    args.model_version = "2"
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    config = transformer_config(args.tiny)
    args.caption = context_widths(config, "2")
    built = time.perf_counter()
    model = build_model(config, device, dtype, seed=0)
    built = time.perf_counter() - built
    bench = Bench(model, args, device, dtype)
    # the CPU does not compile by default: the self-check asks for it, as --compile would
    options = AccelerationOptions(compile=True if device.type == "cpu" else None, compile_cache=args.cache_dir)
    executor = accelerated_executor(model, options)
    result: dict = {"label": args.label, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                    "torch": torch.__version__, "model_build_s": round(built, 1), "rows": []}  # fmt: skip
    for kind, sizes in (("step", step_sizes), ("pass", pass_sizes)):
        for size in sizes:
            fn = bench.step_fn(size, executor) if kind == "step" else bench.pass_fn(size, executor)
            row = {"size": size, "kind": kind, **first_and_steady(fn, device, args.repeats)}
            result["rows"].append(row)
            print(json.dumps({"label": args.label, **row}), flush=True)
    stats = engine_stats(model)
    result["engine"] = {k: v for k, v in stats.items() if k != "attention"}
    result["process_s"] = round(time.perf_counter() - STARTED, 1)
    print(json.dumps({"label": args.label, "engine": result["engine"], "process_s": result["process_s"]}), flush=True)
    print(f"# {args.label}: " + ", ".join(f"{r['kind']} {r['size']} first {r['first_s']:.2f} s (overhead "
                                           f"{r['overhead_s']:.2f} s)" for r in result["rows"])
          + f"; variants compiled {stats.get('variants_compiled')}, from cache {stats.get('variants_from_cache')}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
