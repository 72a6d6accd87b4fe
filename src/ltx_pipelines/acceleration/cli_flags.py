"""The acceleration flags of every pipeline's command line: ``--compile`` and ``--step-cache``."""

from __future__ import annotations

import argparse

from ltx_pipelines.acceleration.options import COMPILE_BY_DEFAULT


def add_acceleration_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--compile/--no-compile`` and ``--step-cache THRESHOLD`` (what ``base_parser`` calls)."""
    on = [kind for kind, value in COMPILE_BY_DEFAULT.items() if value]
    default = f"on for {', '.join(on)}, off elsewhere" if on else "off"
    parser.add_argument(
        "--compile", action=argparse.BooleanOptionalAction, default=None,
        help="Compile the transformer block once (torch.compile, one graph for all blocks) with its norms, "
        "modulation, RoPE, gates and GELU fused, FP8 quantization fused too with --quantization fp8-scaled-mm, "
        "and the fastest attention kernel per shape. Faster steps after a one-time compilation per input size "
        "(tens of seconds on a GPU, about a minute on a CPU; kept in the on-disk compile cache for later runs). "
        f"Default: {default} (the first generation pays the compilation; benchmarks/RESULTS.md has the gain).",
    )  # fmt: skip
    parser.add_argument(
        "--step-cache", type=float, default=None, metavar="THRESHOLD",
        help="Skip most of the transformer on steps where its first block's output changed by less than "
        "THRESHOLD (relative) since the last fully computed step, reusing that step's residual (first-block "
        "cache). Faster, but the output drifts from the exact one; 0 or unset: off. Try 0.05.",
    )  # fmt: skip


def acceleration_kwargs(args: argparse.Namespace) -> dict[str, object]:
    """Pipeline constructor arguments from the parsed flags."""
    return {"compile": args.compile, "step_cache": args.step_cache}


__all__ = ["acceleration_kwargs", "add_acceleration_args"]
