"""Why a second process misses the compile cache: the FX-graph cache key of one compiled block, per process, diffed.

Compiles the default engine's block (one pass, a few layers of the LTX-2 transformer built as first_call.py builds
it) in two fresh processes that share one compile-cache folder, and records in each, through wrappers around
Inductor's ``compiled_fx_graph_hash`` and AOTAutograd's ``autograd_cache_key`` (installed in that process only):

* every FX-graph and AOTAutograd cache key, with the hashed parts behind it (``FxGraphHashDetails``, one line
  each: graph code, inputs, inductor config, system info, ...), and whether that key's folder already held an
  entry when it was looked up;
* the cache counters (hits, misses, bypasses) and the caches' own log lines (a bypass says why);
* the folders: ``TORCHINDUCTOR_CACHE_DIR`` / ``TRITON_CACHE_DIR`` as the process found them and after the
  compile, Inductor's ``cache_dir()`` and where the FX-graph and AOTAutograd caches read and write;
* the attention backends the block was compiled with, and whether they were measured or kept from the cache.

Then it prints, per graph, whether the two keys agree and the first hashed part that differs (for the graph's
code, the first differing lines). A line starting with "# " sums it up. ``--unstored`` adds a second pair of
processes, in a folder of their own, whose attention choices are measured in each process as they were before
issue 23's fix (the suspected cause: timing noise flips a near tie, and the compiled graph holds the choice).

    python benchmarks/compile_cache_key.py --tiny --device cpu --check   # CPU self-check (~1 min): same keys, a hit
    python benchmarks/compile_cache_key.py --json key.json --unstored     # GPU: 4 layers at 512x768 (~60-90 s)
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENV_AT_START = {k: os.environ.get(k) for k in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")}  # before torch


# -- one process -----------------------------------------------------------------------------------------------------


def child(args: argparse.Namespace) -> None:
    import logging

    import torch

    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(HERE.parent / "src"))
    import torch._functorch._aot_autograd.autograd_cache as aot_cache
    import torch._inductor.codecache as codecache
    from torch._dynamo.utils import counters
    from torch._inductor.runtime.cache_dir_utils import cache_dir
    from transformer_step import Bench, build_model, context_widths, transformer_config

    from ltx_pipelines.acceleration.executor import accelerated_executor, compiled_engine, engine_stats
    from ltx_pipelines.acceleration.options import AccelerationOptions

    record: dict = {"pid": os.getpid(), "env_at_start": ENV_AT_START, "fx": [], "aot": [], "log": []}

    def entries(folder: str) -> list[str]:
        return sorted(os.listdir(folder)) if os.path.isdir(folder) else []

    fx_hash = codecache.compiled_fx_graph_hash

    def fx_hash_recorded(*a, **k):  # noqa: ANN002, ANN003, ANN202
        key, lines = fx_hash(*a, **k)
        folder = codecache.FxGraphCache._get_tmp_dir_for_key(key)
        record["fx"].append({"key": key, "folder": folder, "entries_before": entries(folder), "parts": lines})
        return key, lines

    aot_key = aot_cache.autograd_cache_key

    def aot_key_recorded(*a, **k):  # noqa: ANN002, ANN003, ANN202
        key, lines = aot_key(*a, **k)
        folder = aot_cache.AOTAutogradCache._get_tmp_dir_for_key(key)
        record["aot"].append({"key": key, "folder": folder, "entries_before": entries(folder), "parts": lines})
        return key, lines

    codecache.compiled_fx_graph_hash = fx_hash_recorded  # looked up as module globals at each compile
    aot_cache.autograd_cache_key = aot_key_recorded

    class Keep(logging.Handler):
        def emit(self, r: logging.LogRecord) -> None:
            text = r.getMessage()
            if re.search(r"cache (hit|miss)|[Bb]ypass", text):
                record["log"].append(f"{r.name}: {text[:300]}")

    for name in (codecache.__name__, aot_cache.__name__):
        logging.getLogger(name).addHandler(Keep())
        logging.getLogger(name).setLevel(logging.INFO)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)

    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    config = transformer_config(args.tiny)
    config["transformer"]["num_layers"] = args.layers
    args.caption, args.model_version = context_widths(config, "2"), "2"
    args.frames = args.frames or (17 if args.tiny else 121)
    model = build_model(config, device, dtype, seed=0)
    bench = Bench(model, args, device, dtype)
    options = AccelerationOptions(compile=True, compile_cache=args.cache_dir)
    executor = accelerated_executor(model, options)
    engine = compiled_engine(model, options=options)
    if args.no_attention_store:
        engine.attention.store = None  # measured in this process, as before the fix
    if args.unmarked:  # as before issue 23's fix: AOTAutograd's cache refuses sdpa_kernel's private functions
        import ltx_pipelines.acceleration.compiled_blocks as compiled_blocks

        compiled_blocks.SDPA_KERNEL_FUNCTIONS = {}
    if args.force_backend:  # a forced SDPA backend in the graph, as a GPU's measured choice puts one (e.g. CPU: math)
        engine.attention.backend = lambda shape: args.force_backend
    before = {f"{group}.{k}": v for group in ("inductor", "aot_autograd") for k, v in counters[group].items()}
    started = time.perf_counter()
    with torch.inference_mode():
        bench.pass_fn(args.size, executor)()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    record["first_call_s"] = round(time.perf_counter() - started, 2)
    after = {f"{group}.{k}": v for group in ("inductor", "aot_autograd") for k, v in counters[group].items()}
    record["counters"] = {k: after[k] - before.get(k, 0) for k in sorted(after)
                          if "cache" in k and after[k] != before.get(k, 0)}  # fmt: skip
    record["folders"] = {"env_after": {k: os.environ.get(k) for k in ENV_AT_START}, "cache_dir": cache_dir(),
                         "fxgraph": codecache.FxGraphCache._get_tmp_dir(),
                         "aotautograd": aot_cache.AOTAutogradCache._get_tmp_dir(),
                         "attention_store": str(engine.attention.store) if engine.attention.store else None}  # fmt: skip
    record["kernels"] = [repr(k) for k in engine._kernels.values()]
    record["attention"] = [{**row, "kept": shape in engine.attention.stored}
                           for row, shape in zip(engine.attention.table(), engine.attention.timings, strict=True)]  # fmt: skip
    stats = engine_stats(model)
    record["engine"] = {k: stats.get(k) for k in ("variants_from_cache", "variants_compiled", "variants",
                                                    "cache_bundles_loaded", "fallback")}  # fmt: skip
    record["device"] = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    record["torch"] = torch.__version__
    Path(args.record).write_text(json.dumps(record, indent=1, default=str))


# -- two processes and their difference ------------------------------------------------------------------------------


def spawn(args: argparse.Namespace, cache: Path, label: str, unstored: bool) -> dict:
    out = Path(tempfile.mkdtemp(prefix="cachekey-")) / f"{label}.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--record", str(out), "--cache-dir",
               str(cache), "--device", args.device, "--layers", str(args.layers), "--size", args.size]  # fmt: skip
    command += ["--tiny"] * args.tiny + ["--no-attention-store"] * unstored
    command += ["--frames", str(args.frames)] if args.frames else []
    command += ["--force-backend", args.force_backend] if args.force_backend else []
    command += ["--unmarked"] * args.unmarked
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    seconds = time.perf_counter() - started
    if done.returncode != 0 or not out.is_file():
        print(done.stdout[-3000:], done.stderr[-6000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"# {label}: the process failed (exit {done.returncode})")
    record = json.loads(out.read_text())
    record["label"], record["process_s"] = label, round(seconds, 1)
    return record


def parts(lines: list[str]) -> dict[str, tuple[str, str]]:
    """``[hash] name: value`` lines as name -> (hash, value)."""
    out = {}
    for line in lines:
        m = re.match(r"\[(\w+)\] ([^:]+): ?(.*)", line, re.S)
        if m:
            out[m.group(2)] = (m.group(1), m.group(3))
    return out


def first_difference(a: list[str], b: list[str]) -> list[str]:
    """The hashed parts that differ between two keys, the first one shown in detail."""
    pa, pb = parts(a), parts(b)
    names = [n for n in dict.fromkeys([*pa, *pb]) if pa.get(n, ("", ""))[0] != pb.get(n, ("", ""))[0]]
    if not names:
        return ["  (the parts agree: the key differs by something the debug lines do not show)"]
    lines = [f"  parts that differ: {', '.join(names)}"]
    va, vb = pa.get(names[0], ("", "<absent>"))[1], pb.get(names[0], ("", "<absent>"))[1]
    diff = list(difflib.unified_diff(va.splitlines(), vb.splitlines(), "first", "second", n=1, lineterm=""))
    lines += [f"  first: {names[0]}"] + ["    " + d[:200] for d in diff[:40]]
    if len(diff) > 40:
        lines.append(f"    ... {len(diff) - 40} more diff lines")
    return lines


def compare(first: dict, second: dict, title: str) -> tuple[bool, bool, list[str]]:
    """(keys equal, the second process read everything from the cache, report lines)."""
    lines = [f"## {title}", ""]
    for r in (first, second):
        lines.append(f"- {r['label']}: {r['device']}, torch {r['torch']}, first call {r['first_call_s']} s, process "
                     f"{r['process_s']} s, counters {r['counters']}, variants from cache "
                     f"{r['engine']['variants_from_cache']} / compiled {r['engine']['variants_compiled']}, bundles "
                     f"loaded {len(r['engine']['cache_bundles_loaded'] or [])}")  # fmt: skip
        lines.append(f"  folders {r['folders']}; env at start {r['env_at_start']}")
        lines += [f"  log: {x}" for x in r["log"]]
    same_folders = first["folders"] == second["folders"]
    lines.append(f"- folders {'the same' if same_folders else 'DIFFER'} in both processes")
    if first["kernels"] != second["kernels"]:
        lines.append(f"- attention kernels DIFFER: {first['kernels']} vs {second['kernels']}")
    else:
        kept = sum(row["kept"] for row in second["attention"])
        lines.append(f"- attention kernels the same ({kept} of {len(second['attention'])} shapes kept from the "
                     f"first process): {first['kernels']}")  # fmt: skip
    equal = True
    for kind in ("aot", "fx"):
        a, b = first[kind], second[kind]
        if len(a) != len(b):
            lines.append(f"- {kind}: {len(a)} keys in the first process, {len(b)} in the second")
        for i, (ka, kb) in enumerate(zip(a, b)):
            same = ka["key"] == kb["key"]
            equal &= same
            lines.append(f"- {kind} graph {i}: {'same key' if same else 'keys DIFFER'} ({ka['key'][:16]} / "
                         f"{kb['key'][:16]}); the second found {len(kb['entries_before'])} entries in {kb['folder']}")  # fmt: skip
            if not same:
                lines += first_difference(ka["parts"], kb["parts"])
    hit = (second["engine"]["variants_compiled"] == 0 and second["engine"]["variants_from_cache"] > 0)
    return equal and bool(first["fx"] or first["aot"]), hit, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None, help="cuda where there is one, else cpu")
    parser.add_argument("--tiny", action="store_true", help="the tiny transformer (CPU self-check)")
    parser.add_argument("--layers", type=int, default=None, help="blocks in the model (default 4; tiny 2)")
    parser.add_argument("--size", default=None, help="HxW of the pass (default 512x768; tiny 64x96)")
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--cache-dir", default=None, help="the shared compile cache (default: a fresh folder)")
    parser.add_argument("--unstored", action="store_true", help="also a pair measuring attention per process")
    parser.add_argument("--force-backend", default=None, help="every attention through this SDPA backend "
                        "(e.g. math on the CPU: the graph then holds sdpa_kernel, as on a GPU)")
    parser.add_argument("--unmarked", action="store_true", help="sdpa_kernel's functions not marked cacheable "
                        "(as before the fix: AOTAutograd's cache bypassed where a backend is forced)")
    parser.add_argument("--check", action="store_true", help="exit 1 unless the keys agree and the second hit")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per process")
    parser.add_argument("--json", default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--record", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-attention-store", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    args.layers = args.layers or (2 if args.tiny else 4)
    args.size = args.size or ("64x96" if args.tiny else "512x768")
    if args.child:
        child(args)
        return
    root = Path(args.cache_dir) if args.cache_dir else Path(tempfile.mkdtemp(prefix="ltx-cachekey-"))
    pairs = [("stored", root / "stored", False)] + [("unstored", root / "unstored", True)] * args.unstored
    result: dict = {"pairs": {}}
    summary = []
    ok = True
    for name, cache, unstored in pairs:
        first = spawn(args, cache, f"{name}-first", unstored)
        second = spawn(args, cache, f"{name}-second", unstored)
        equal, hit, lines = compare(first, second, f"{name}: attention choices "
                                    f"{'measured in each process' if unstored else 'kept in the cache folder'}")  # fmt: skip
        print("\n".join(lines), flush=True)
        result["pairs"][name] = {"keys_equal": equal, "second_from_cache": hit, "first": first, "second": second}
        summary.append(f"{name}: keys {'equal' if equal else 'differ'}, second process "
                       f"{'from the cache' if hit else 'compiled anew'} ({first['first_call_s']} s -> "
                       f"{second['first_call_s']} s)")  # fmt: skip
        ok &= equal and hit or unstored  # the unstored pair shows the old behaviour: it may differ
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    print(f"# cache key on {first['device']}, {args.layers} layers at {args.size}: " + "; ".join(summary))
    if args.check and not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
