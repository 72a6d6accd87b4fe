"""3D neighborhood attention with NATTEN's windows: through ``natten``, FlexAttention, or plain PyTorch.

Each query attends to the ``kt x kh x kw`` box around it. Near a border the box is shifted inward rather than
clipped (NATTEN's rule: along each axis the window starts at ``clamp(i - k // 2, 0, L - k)``), so every query
sees exactly ``kt * kh * kw`` keys. LTX-2.5's diffusion decoder was trained with those windows, which is why
the decoder pads the last latent frame before its neighbourhood stages (the shifted windows of the last frames
would otherwise look at fewer real frames).

Three implementations, the same numbers (float32: within 1e-6 of each other):

* ``natten``: ``natten.na3d``, when the package imports and the tensors are on a CUDA device;
* ``flex``: FlexAttention with a block-sparse mask of the windows
  (:mod:`~ltx_pipelines.models.ltx25.flex_neighborhood`), compiled; the fast path on CUDA without natten;
* ``blocked``: query blocks against the union of their windows under a mask, one SDPA call for many blocks.
  Needs no compiler, so it is the CPU's (CI, golden tests) and the fallback when FlexAttention cannot compile.

``auto`` picks natten, then flex on CUDA, then blocked; :func:`force_backend` pins one (tests, benchmarks).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from ltx_pipelines.models.ltx25.flex_neighborhood import build_block_mask, flex_neighborhood_attention, window_starts

logger = logging.getLogger(__name__)

Kernel = tuple[int, int, int]

#: Gathered key/value elements (per tensor) one SDPA call may hold; bounds the PyTorch path's working set.
GATHER_BUDGET = 1 << 26


@functools.cache
def _natten():
    try:
        import natten
    except Exception:  # noqa: BLE001 -- any import failure (no package, ABI mismatch) means "not usable"
        return None
    logger.info("Neighborhood attention: natten %s", getattr(natten, "__version__", "?"))
    return natten


BACKENDS = ("auto", "natten", "flex", "blocked")
_forced: str = "auto"
#: FlexAttention failed to compile once in this process: auto stops trying it.
_flex_broken: bool = False


def natten_usable(q: torch.Tensor) -> bool:
    """natten is importable and the tensors are on CUDA (natten has no CPU kernels worth using)."""
    return q.is_cuda and _natten() is not None


@contextlib.contextmanager
def force_backend(name: str) -> Iterator[None]:
    """Use one implementation inside the block (``auto``: the automatic choice); for tests and benchmarks."""
    global _forced
    if name not in BACKENDS:
        raise ValueError(f"neighborhood attention backend {name!r}: choose one of {', '.join(BACKENDS)}")
    previous, _forced = _forced, name
    try:
        yield
    finally:
        _forced = previous


def choose_backend(q: torch.Tensor) -> str:
    """The forced backend, else natten -> flex (CUDA) -> blocked."""
    if _forced != "auto":
        return _forced
    if natten_usable(q):
        return "natten"
    if q.is_cuda and not _flex_broken:
        return "flex"
    return "blocked"


def neighborhood_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel: Kernel) -> torch.Tensor:
    """``[B, T, H, W, heads, head_dim]`` q/k/v (q already scaled) -> ``[B, T, H, W, heads * head_dim]``."""
    batch, t, h, w, heads, head_dim = q.shape
    kernel = _fit_kernel(kernel, (t, h, w))
    backend = choose_backend(q)
    if backend == "natten":
        out = _natten().na3d(q.contiguous(), k.contiguous(), v.contiguous(), kernel_size=kernel, scale=1.0)
    elif backend == "flex":
        out = _flex_or_blocked(q, k, v, kernel)
    else:
        out = blocked_neighborhood_attention(q, k, v, kernel)
    return out.reshape(batch, t, h, w, heads * head_dim)


def forget_block_masks() -> None:
    """Drop the FlexAttention block masks cached for earlier volumes: a decode calls it as it starts, so that the
    tables of an earlier decode's shapes (about 24 bytes a token: ~290 MB for a whole 1536x1024x121 stage-5 volume)
    do not sit in the memory a tighter plan counted on."""
    build_block_mask.cache_clear()


@torch.compiler.disable
def _flex_or_blocked(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel: Kernel) -> torch.Tensor:
    """FlexAttention; if it cannot compile here (no Triton, no compiler), warn once and use the blocked path.

    Kept out of a compiled block's graph (a graph break): FlexAttention compiles itself, its block mask is built
    once per volume (a cache dynamo would trace through, rebuilding it every call), and inductor on torch 2.11
    fails lowering the window mask inside a larger graph (H100, 1536x1024x121)."""
    global _flex_broken
    if _flex_broken and _forced != "flex":
        return blocked_neighborhood_attention(q, k, v, kernel)
    try:
        return flex_neighborhood_attention(q, k, v, kernel)
    except Exception as error:  # noqa: BLE001 -- any compile/lowering failure means "use the other path"
        if _forced == "flex" or isinstance(error, torch.OutOfMemoryError):
            raise  # out of memory says nothing about FlexAttention: the blocked path would not fit either
        _flex_broken = True
        logger.warning("Neighborhood attention: FlexAttention failed (%s: %s); using the blocked PyTorch path",
                       type(error).__name__, str(error).splitlines()[0] if str(error) else "")  # fmt: skip
        return blocked_neighborhood_attention(q, k, v, kernel)


def _fit_kernel(kernel: Kernel, dims: tuple[int, int, int]) -> Kernel:
    """A window never larger than the volume (then every query sees the whole axis)."""
    return tuple(min(size, length) for size, length in zip(kernel, dims, strict=True))  # type: ignore[return-value]


class _AxisBlocks:
    """How one axis is cut into query blocks, and the key span and mask of each block."""

    def __init__(self, length: int, kernel: int, block: int, device: torch.device):
        self.length, self.block = length, block
        self.count = math.ceil(length / block)
        self.span = min(length, block + kernel - 1)
        starts = window_starts(length, kernel, device)
        queries = (torch.arange(self.count * block, device=device)).clamp(max=length - 1).view(self.count, block)
        first = starts[queries[:, 0]]
        #: First key of each block's span: covers every window of the block and stays inside the axis.
        self.key_start = first.clamp(max=length - self.span)
        keys = self.key_start[:, None] + torch.arange(self.span, device=device)[None, :]
        self.key_index = keys  # [count, span]
        q_start = starts[queries]  # [count, block]
        self.mask = (keys[:, None, :] >= q_start[:, :, None]) & (keys[:, None, :] < q_start[:, :, None] + kernel)


def _block_sizes(dims: tuple[int, int, int], kernel: Kernel) -> tuple[int, int, int]:
    """Query blocks about twice the window: keys gathered per query stay a small multiple of the window."""
    return tuple(max(1, min(length, 2 * size)) for length, size in zip(dims, kernel, strict=True))  # type: ignore[return-value]


def blocked_neighborhood_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel: Kernel) -> torch.Tensor:
    """The PyTorch path: ``[B, T, H, W, heads, head_dim]`` in and out."""
    batch, t, h, w, heads, head_dim = q.shape
    device = q.device
    bt, bh, bw = _block_sizes((t, h, w), kernel)
    axes = [_AxisBlocks(n, size, block, device) for n, size, block in zip((t, h, w), kernel, (bt, bh, bw), strict=True)]
    at, ah, aw = axes
    q = _pad_to_blocks(q, axes)
    out = torch.empty_like(q)
    # Blocks per spatial plane and keys per block: how many temporal blocks one call may take.
    plane = ah.count * aw.count * at.span * ah.span * aw.span * heads * head_dim * batch
    step = max(1, min(at.count, GATHER_BUDGET // max(1, plane)))
    for first in range(0, at.count, step):
        last = min(at.count, first + step)
        out[:, first * bt : last * bt] = _attend_blocks(q[:, first * bt : last * bt], k, v, axes, first, last)
    return out[:, :t, :h, :w]


def _pad_to_blocks(x: torch.Tensor, axes: list[_AxisBlocks]) -> torch.Tensor:
    """Zero queries past the end so every axis is a whole number of blocks (their rows are dropped after)."""
    pads = [a.count * a.block - a.length for a in axes]
    if not any(pads):
        return x
    return F.pad(x, (0, 0, 0, 0, 0, pads[2], 0, pads[1], 0, pads[0]))


def _gather_keys(x: torch.Tensor, axes: list[_AxisBlocks], first: int, last: int) -> torch.Tensor:
    """``[B, T, H, W, heads, d]`` -> ``[B, nt, nh, nw, heads, span_t * span_h * span_w, d]`` for blocks first..last."""
    at, ah, aw = axes
    batch, heads, head_dim = x.shape[0], x.shape[4], x.shape[5]
    x = x[:, at.key_index[first:last]]  # [B, nt, st, H, W, ...]
    x = x[:, :, :, ah.key_index]  # [B, nt, st, nh, sh, W, ...]
    x = x[:, :, :, :, :, aw.key_index]  # [B, nt, st, nh, sh, nw, sw, heads, d]
    x = x.permute(0, 1, 3, 5, 7, 2, 4, 6, 8)
    return x.reshape(batch, last - first, ah.count, aw.count, heads, at.span * ah.span * aw.span, head_dim)


def _attend_blocks(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, axes: list[_AxisBlocks], first: int,
                   last: int) -> torch.Tensor:  # fmt: skip
    at, ah, aw = axes
    batch, _, _, _, heads, head_dim = q.shape
    nt = last - first
    queries = q.view(batch, nt, at.block, ah.count, ah.block, aw.count, aw.block, heads, head_dim)
    queries = queries.permute(0, 1, 3, 5, 7, 2, 4, 6, 8).reshape(batch, nt, ah.count, aw.count, heads, -1, head_dim)
    keys, values = _gather_keys(k, axes, first, last), _gather_keys(v, axes, first, last)
    mask = (
        at.mask[first:last, None, None, :, None, None, :, None, None]
        & ah.mask[None, :, None, None, :, None, None, :, None]
        & aw.mask[None, None, :, None, None, :, None, None, :]
    )  # [nt, nh, nw, bt, bh, bw, st, sh, sw]
    mask = mask.reshape(1, nt, ah.count, aw.count, 1, queries.shape[-2], keys.shape[-2])
    blocks = batch * nt * ah.count * aw.count
    out = F.scaled_dot_product_attention(
        queries.reshape(blocks, heads, -1, head_dim),
        keys.reshape(blocks, heads, -1, head_dim),
        values.reshape(blocks, heads, -1, head_dim),
        attn_mask=mask.expand(batch, -1, -1, -1, -1, -1, -1).reshape(blocks, 1, queries.shape[-2], keys.shape[-2]),
        scale=1.0,
    )
    out = out.view(batch, nt, ah.count, aw.count, heads, at.block, ah.block, aw.block, head_dim)
    out = out.permute(0, 1, 5, 2, 6, 3, 7, 4, 8)
    return out.reshape(batch, nt * at.block, ah.count * ah.block, aw.count * aw.block, heads, head_dim)


def reference_neighborhood_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel: Kernel) -> torch.Tensor:
    """Dense attention under the full neighbourhood mask: slow and memory-hungry, for tests only."""
    batch, t, h, w, heads, head_dim = q.shape
    kernel = _fit_kernel(kernel, (t, h, w))
    masks = []
    for length, size in zip((t, h, w), kernel, strict=True):
        starts = window_starts(length, size, q.device)
        keys = torch.arange(length, device=q.device)
        masks.append((keys[None, :] >= starts[:, None]) & (keys[None, :] < starts[:, None] + size))
    mask = (masks[0][:, None, None, :, None, None] & masks[1][None, :, None, None, :, None]
            & masks[2][None, None, :, None, None, :]).reshape(t * h * w, t * h * w)  # fmt: skip
    flat = [x.reshape(batch, t * h * w, heads, head_dim).transpose(1, 2) for x in (q, k, v)]
    out = F.scaled_dot_product_attention(*flat, attn_mask=mask, scale=1.0)
    return out.transpose(1, 2).reshape(batch, t, h, w, heads * head_dim)


__all__ = ["BACKENDS", "Kernel", "blocked_neighborhood_attention", "choose_backend", "forget_block_masks",
           "force_backend", "natten_usable", "neighborhood_attention", "reference_neighborhood_attention", "window_starts"]  # fmt: skip
