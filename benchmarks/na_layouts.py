"""Where a stage-5 block of LTX-2.5's diffusion decoder spends its time, and which FlexAttention layout is fastest.

Times, on one GPU, at the decoder's stage-5 shape (1536x1024 output: 121 x 256 x 384 tokens of width 128, 2 heads of
64, window 3x7x7) and its stage-4 shape (72 x 128 x 192, width 256, 4 heads, window 3x5x5):

- neighborhood attention alone (FlexAttention, tile-order copies included) for each layout: query tile x key
  block (``flex_neighborhood.TILES`` / ``KEY_BLOCK``), checked against the default layout's output;
- one whole stage-5 block (``DiffusionBlock``) eager, the same block with the attention replaced by its input (what
  the linears, norms, RoPE and MLP cost), and the block compiled (attention left out of the graph as in the decoder).

Random weights and inputs; bf16; the second of two calls (the first compiles). CPU self-check (tiny shapes):
``PYTHONPATH=src python benchmarks/na_layouts.py --tiny``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from diffusion_decoder import timed  # beside this file: (first call s, best s, output)

from ltx_pipelines.models.ltx25 import diffusion_decoder as decoder_module
from ltx_pipelines.models.ltx25 import flex_neighborhood as flex
from ltx_pipelines.models.ltx25.diffusion_decoder import AdaLN, DiffusionBlock

#: (name, (frames, rows, columns), width, heads' dim, window)
SHAPES = (("stage5", (121, 256, 384), 128, 64, (3, 7, 7)), ("stage4", (72, 128, 192), 256, 64, (3, 5, 5)))
TINY_SHAPES = (("stage5", (5, 24, 40), 32, 16, (3, 7, 7)),)
#: (query tile, key block) layouts to time, the package default first.
LAYOUTS = (((1, 8, 8), 32), ((2, 8, 8), 128), ((2, 8, 8), 64), ((2, 8, 8), 32), ((1, 8, 16), 32), ((1, 8, 8), 64))


def attention_cases(dims: tuple, heads: int, head_dim: int, window: tuple, device: torch.device, dtype: torch.dtype,
                    repeats: int, layouts: int) -> list[dict]:  # fmt: skip
    generator = torch.Generator(device=device).manual_seed(0)
    q, k, v = (torch.randn(1, *dims, heads, head_dim, device=device, dtype=dtype, generator=generator)
               for _ in range(3))  # fmt: skip
    q = q * head_dim**-0.5
    rows, baseline = [], None
    for tile, key_block in LAYOUTS[:layouts]:
        row: dict = {"tile": list(tile), "key_block": key_block}
        try:
            first, best, out = timed(lambda t=tile, kb=key_block: flex.flex_neighborhood_attention(
                q, k, v, window, tile=t, key_block=kb), device, repeats)  # fmt: skip
            row.update(first_s=round(first, 3), seconds=round(best, 4))
            if baseline is None:
                baseline = out
            else:
                row["max_rel_diff"] = float((out.float() - baseline.float()).abs().max() / baseline.float().abs().max())
        except Exception as error:  # noqa: BLE001 -- a layout the kernel refuses is reported, not fatal
            row["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def block_cases(dims: tuple, width: int, head_dim: int, window: tuple, device: torch.device, dtype: torch.dtype,
                repeats: int, compiled_too: bool) -> list[dict]:  # fmt: skip
    torch.manual_seed(0)
    block = DiffusionBlock(width, window, head_dim, width).to(device=device, dtype=dtype)
    adaln = AdaLN(width, 64).to(device=device, dtype=dtype)
    for p in [*block.parameters(), *adaln.parameters()]:
        p.data.normal_(0, 0.02)
    x = torch.randn(1, *dims, width, device=device, dtype=dtype)
    context = torch.randn_like(x)
    modulation = adaln(torch.randn(1, 64, device=device, dtype=dtype))
    compiled = torch.compile(block, dynamic=False) if compiled_too else None
    rows = []
    real_attention = decoder_module.neighborhood_attention
    cases = [("block eager", block, False), ("block eager, attention left out", block, True)]
    for name, fn, stub in cases + ([("block compiled", compiled, False)] if compiled_too else []):
        decoder_module.neighborhood_attention = (lambda q, k, v, kernel: v.flatten(-2)) if stub else real_attention
        try:
            with torch.inference_mode():
                first, best, _ = timed(lambda f=fn: f(x.clone(), context, modulation), device, repeats)
            row = {"case": name, "first_s": round(first, 3), "seconds": round(best, 4)}
        except Exception as error:  # noqa: BLE001
            row = {"case": name, "error": f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"}
        finally:
            decoder_module.neighborhood_attention = real_attention
        if device.type == "cuda":
            row["peak_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
            torch.cuda.reset_peak_memory_stats(device)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="CPU self-check on tiny shapes")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--layouts", type=int, default=len(LAYOUTS), help="time the first N layouts only")
    parser.add_argument("--no-compiled-block", action="store_true", help="leave out the compiled block (~110 s)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    device = torch.device("cpu") if args.tiny or not torch.cuda.is_available() else torch.device("cuda", 0)
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    results = []
    for name, dims, width, head_dim, window in TINY_SHAPES if args.tiny else SHAPES:
        print(json.dumps({"shape": name, "dims": dims, "width": width}), flush=True)
        entry = {"shape": name, "dims": dims, "width": width,
                 "attention": attention_cases(dims, width // head_dim, head_dim, window, device, dtype, args.repeats,
                                               args.layouts)}
        if name == "stage5":
            entry["block"] = block_cases(dims, width, head_dim, window, device, dtype, args.repeats,
                                         not args.no_compiled_block)
        results.append(entry)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    diffs = [r.get("max_rel_diff", 0.0) for e in results for r in e["attention"]] or [0.0]
    ok = all(d <= (1e-5 if dtype == torch.float32 else 2e-2) for d in diffs)
    print(f"layouts agree with the default: {'yes' if ok else 'NO'} (largest difference {max(diffs):.2e})")


if __name__ == "__main__":
    main()
