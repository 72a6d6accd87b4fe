"""The acceleration flags of every pipeline's command line: ``--compile``, ``--compile-cache``, ``--attention`` and
``--step-cache``."""

from __future__ import annotations

import argparse

from ltx_pipelines.acceleration.compile_cache import CACHE_ENV, OFF
from ltx_pipelines.acceleration.options import ATTENTION_CHOICES, COMPILE_MIN_VIDEO_TOKENS


def add_acceleration_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--compile/--no-compile``, ``--compile-cache DIR``, ``--attention`` and ``--step-cache THRESHOLD``."""
    add_compile_args(parser)
    parser.add_argument(
        "--step-cache", type=float, default=None, metavar="THRESHOLD",
        help="Skip most of the transformer on steps where its first block's output changed by less than "
        "THRESHOLD (relative) since the last fully computed step, reusing that step's residual (first-block "
        "cache). Faster, but the output drifts from the exact one; 0 or unset: off. Try 0.05.",
    )  # fmt: skip


def add_compile_args(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--compile/--no-compile``, ``--compile-cache DIR`` and ``--attention`` (the pipelines' and the server's)."""
    parser.add_argument(
        "--compile", action=argparse.BooleanOptionalAction, default=None,
        help="Compile the transformer block once (torch.compile, one graph for all blocks) with its norms, "
        "modulation, RoPE, gates and GELU fused, FP8 quantization fused too with --quantization fp8-scaled-mm, "
        "and the fastest attention kernel per shape. Default: on for NVIDIA GPUs at stages of at least "
        f"{COMPILE_MIN_VIDEO_TOKENS} video tokens (stage 1 of 768x512x121 and larger), where it was measured to "
        "pay; off on the CPU and for smaller stages (benchmarks/RESULTS.md). --compile compiles every stage, "
        "--no-compile none. The first run on a machine pays the compilation (tens of seconds per size); later "
        "runs read it from --compile-cache. A compilation that fails warns and runs the plain path.",
    )  # fmt: skip
    parser.add_argument(
        "--compile-cache", default=None, metavar="DIR",
        help=f"Folder of compiled artefacts kept across runs (PyTorch's Inductor caches and portable cache "
        f"bundles). Default: ${CACHE_ENV}, else ~/.cache/ltx_pipelines/compile; '{OFF}': PyTorch's own "
        "temporary folder.",
    )  # fmt: skip
    parser.add_argument(
        "--attention", choices=ATTENTION_CHOICES, default="auto",
        help="auto: bf16 attention, the fastest PyTorch kernel per shape; 8bit: the video and audio "
        "self-attentions through an 8-bit attention kernel (needs an NVIDIA GPU and `pip install sageattention`; "
        "refused before any model loads otherwise). Faster at large sizes, slightly less exact.",
    )  # fmt: skip


def acceleration_kwargs(args: argparse.Namespace) -> dict[str, object]:
    """Pipeline constructor arguments from the parsed flags."""
    return {"compile": args.compile, "step_cache": args.step_cache,
            "compile_cache": getattr(args, "compile_cache", None), "attention": getattr(args, "attention", "auto")}  # fmt: skip


__all__ = ["acceleration_kwargs", "add_acceleration_args", "add_compile_args"]
