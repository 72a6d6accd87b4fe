"""The diffusion decoder's elementwise chains, and their fused forms on CUDA.

The decoder is bound by memory traffic, not arithmetic (run 4 on an H200: 17.8 TFLOP/s). Counted on fake tensors
(``memory.traced_peak``'s way, one stage-5 block over the 1536x1024x121 volume), a block moves 268 GB; two
elementwise chains move 122 GB of it in eager PyTorch (~49 GB fused):

* Q/K RMSNorm then the 3D RoPE in float32 (the reference's precision): the norm, a float32 copy, three in-place
  rotations, the copy back: ~6 passes per tensor;
* SwiGLU's ``silu(gate) * up``: two passes over the 4x-wide hidden activation.

On CUDA each chain runs as one Inductor kernel (read once, written once, float32 inside, one rounding), compiled
on first use: a static graph for the first shape, then one with dynamic sizes for the rest (about five small
graphs for a whole decode; ~10 s each with the C++ backend on a CI core), kept by Inductor's on-disk cache for
later processes. On an H200 (run 5, benchmarks/RESULTS.md) fusing took a whole 1536x1024x121 decode from 3.95 to
3.34 s; that process's first decode, these compiles and FlexAttention's together, took 31.2 s. A compile failure
warns once and the eager form runs from then on; on the CPU the eager form always runs (CI's golden tests are
eager).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

#: Where the chains run fused: "cuda" (the default: CUDA tensors, outside an enclosing compiled graph), "always"
#: (the CPU too: tests), or "never" (benchmarks time the eager form with it).
FUSE_ELEMENTWISE = "cuda"
_failed: set[str] = set()


def rotations(positions: torch.Tensor, inv: torch.Tensor, axis: int, scale: float) -> torch.Tensor:
    """``scale * (cos, sin)(position * frequency)`` for one grid ``axis`` (1, 2 or 3), shaped ``[..., share, 2]`` to
    broadcast over channel pairs ``[B, T, H, W, heads, share, 2]``."""
    angle = positions[:, None] * inv[None, :]
    shape = [1, 1, 1, 1, 1, inv.shape[0], 2]
    shape[axis] = positions.shape[0]
    return (torch.stack([angle.cos(), angle.sin()], dim=-1) * scale).view(shape)


def rotate_real(x: torch.Tensor, turns: list[torch.Tensor]) -> torch.Tensor:
    """The RoPE rotation as real arithmetic on (even, odd) channel pairs, in float32 (returned in float32)."""
    pairs = x.float().unflatten(-1, (-1, 2))
    shape = torch.broadcast_shapes(pairs.shape[:-2], *(r.shape[:-2] for r in turns))
    turn = torch.cat([r.expand(*shape, r.shape[-2], 2) for r in turns], dim=-2)
    even, odd, cos, sin = pairs[..., 0], pairs[..., 1], turn[..., 0], turn[..., 1]
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)


def norm_rope(x: torch.Tensor, weight: torch.Tensor, eps: float, turns: list[torch.Tensor]) -> torch.Tensor:
    """RMSNorm over the last axis, then the rotation, in float32, rounded once to ``x``'s dtype."""
    normed = F.rms_norm(x.float(), (x.shape[-1],), weight.float(), eps)
    return rotate_real(normed, turns).to(x.dtype)


def silu_mul(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """SwiGLU's hidden activation from its two projections."""
    return F.silu(gate) * up


@functools.cache
def _compiled(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    import torch._dynamo

    # one graph per shape family: the tile shapes of a decode, stage by stage, are a few dozen
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    return torch.compile(fn, fullgraph=True)


def fused(fn: Callable[..., torch.Tensor], *args: object) -> torch.Tensor | None:
    """``fn(*args)`` as one compiled kernel where :data:`FUSE_ELEMENTWISE` allows it, else None (the caller runs its
    eager form: for RoPE a cheaper in-place one than ``fn``'s). Inside a graph being compiled (``--compile``'s
    blocks) None too: the enclosing graph fuses the eager form itself."""
    first = args[0]
    wanted = FUSE_ELEMENTWISE == "always" or (FUSE_ELEMENTWISE == "cuda" and isinstance(first, torch.Tensor)
                                               and first.is_cuda)  # fmt: skip
    if not wanted or fn.__name__ in _failed or torch.compiler.is_compiling():
        return None
    try:
        return _compiled(fn)(*args)
    except torch.OutOfMemoryError:
        raise  # says nothing about the kernel: the eager form would need more
    except Exception as error:  # noqa: BLE001 -- any compile/lowering failure means "run it eager"
        _failed.add(fn.__name__)
        logger.warning("Diffusion decoder: the fused %s kernel failed (%s: %s); running it eager",
                       fn.__name__, type(error).__name__, str(error).splitlines()[0] if str(error) else "")  # fmt: skip
        return None


__all__ = ["FUSE_ELEMENTWISE", "fused", "norm_rope", "rotate_real", "rotations", "silu_mul"]
