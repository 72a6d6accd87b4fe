"""3D neighborhood attention through FlexAttention: block-sparse, no dense mask, NATTEN's windows.

Tokens are reordered into small 3D tiles (one tile = one FlexAttention block of ``BLOCK`` tokens), so the keys a
tile of queries needs lie in a few key tiles: the block mask lists, per query tile, the key tiles that meet the
union of its queries' windows (computed per axis, never per token pair), and the element mask inside those
blocks tests each key against the query's window (``start <= key < start + kernel`` per axis, the start with
NATTEN's border shift, looked up from per-token tables). Memory: the reordered q/k/v/out (a few copies of the
input) and the block table (query tiles x key tiles per query tile); the kernel itself holds one block's scores.

FlexAttention's fused kernel needs ``torch.compile`` (Triton on CUDA, C++ on the CPU); uncompiled, PyTorch runs it
densely (every pair, ignoring the block table), which is fine only for tiny test shapes.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

Kernel = tuple[int, int, int]

#: Tokens per query block of FlexAttention, and so per 3D tile.
BLOCK = 64
#: Tile shapes (frames, rows, columns) of ``BLOCK`` tokens, best first; the first whose frames fit the volume is
#: taken. Small query tiles keep the union of their queries' windows small, which is what every query of the tile
#: is scored against: measured on an H200 at stage 5 of a 1536x1024x121 decode (11.9M tokens, 2 heads of 64, window
#: 3x7x7; benchmarks/na_layouts.py), one attention took 0.186 s with (2, 8, 8) tiles and 128-token key blocks,
#: 0.085 s with (2, 8, 8) and 32, 0.099 s with (1, 8, 16) and 32, 0.081 s with (1, 8, 8) and 64, **0.058 s** with
#: (1, 8, 8) and 32 (stage 4: 0.052 -> 0.0175 s).
TILES: tuple[Kernel, ...] = ((1, 8, 8),)
#: Tokens per key block: whole rows of a tile (a (1, 8, 8) tile cut into 32-token key blocks gives (1, 4, 8) boxes).
#: Finer key blocks fit the union of a query tile's windows closer (for a 3x7x7 window a (2, 8, 8) tile lists at
#: most 27 x 128 keys with 128-token blocks, a (1, 8, 8) tile 36 x 32 with 32) at the price of shorter inner loops.
KEY_BLOCK = 32
#: Coordinate of padding keys: outside every window.
_FAR = -(1 << 20)


def window_starts(length: int, kernel: int, device: torch.device | None = None) -> torch.Tensor:
    """First key of each query's window along one axis (NATTEN's border shift)."""
    positions = torch.arange(length, device=device)
    return (positions - kernel // 2).clamp(0, length - kernel)


@dataclass(frozen=True)
class _Axis:
    """One axis cut into tiles: per-token tables in tile order, and the key tiles each query tile needs."""

    length: int
    tile: int
    kernel: int
    unit: int  # positions of one key block along this axis (divides ``tile``)

    @property
    def tiles(self) -> int:
        return math.ceil(self.length / self.tile)

    def query_starts(self, device: torch.device) -> torch.Tensor:
        """Window start of each padded position (padding queries copy the last real one; their rows are dropped)."""
        positions = torch.arange(self.tiles * self.tile, device=device).clamp(max=self.length - 1)
        return window_starts(self.length, self.kernel, device)[positions]

    def key_positions(self, device: torch.device) -> torch.Tensor:
        """Coordinate of each padded position as a key (padding: far outside every window)."""
        positions = torch.arange(self.tiles * self.tile, device=device)
        return torch.where(positions < self.length, positions, torch.full_like(positions, _FAR))

    def key_tiles(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``[tiles, reach]`` key units (of ``unit`` positions) per query tile along this axis, and which of them
        are real."""
        unit = self.unit
        starts = window_starts(self.length, self.kernel, device)
        first = torch.arange(self.tiles, device=device) * self.tile
        last = (first + self.tile - 1).clamp(max=self.length - 1)
        lo, hi = starts[first] // unit, (starts[last] + self.kernel - 1) // unit
        reach = int((hi - lo).max()) + 1
        index = lo[:, None] + torch.arange(reach, device=device)[None, :]
        return index.clamp(max=self.tiles * self.tile // unit - 1), index <= hi[:, None]


def choose_tile(dims: tuple[int, int, int]) -> Kernel:
    """The first tile of :data:`TILES` whose frames fit the volume."""
    return next((tile for tile in TILES if tile[0] <= dims[0]), TILES[-1])


def key_units(tile: Kernel, key_block: int) -> Kernel:
    """The box (frames, rows, columns) of one key block: ``key_block`` consecutive tokens of a tile in tile order
    (row-major inside the tile), which are a box only when they are whole rows of whole frames or part of one."""
    tt, th, tw = tile
    rows = key_block // tw
    if key_block % tw or not rows or (rows <= th and th % rows) or (rows > th and (rows % th or tt % (rows // th))):
        raise ValueError(f"a key block of {key_block} tokens is not a box of the tile {tile}")
    return (1, rows, tw) if rows <= th else (rows // th, th, tw)


def _block_ids(unit_t: torch.Tensor, unit_h: torch.Tensor, unit_w: torch.Tensor, axes: tuple[_Axis, _Axis, _Axis]
               ) -> torch.Tensor:  # fmt: skip
    """Key block index of key units (broadcast): the tile's index times the blocks per tile, plus the sub-box's."""
    per = [a.tile // a.unit for a in axes]  # key units per tile, per axis
    nh, nw = axes[1].tiles, axes[2].tiles
    tile = ((unit_t // per[0]) * nh + unit_h // per[1]) * nw + unit_w // per[2]
    sub = ((unit_t % per[0]) * per[1] + unit_h % per[1]) * per[2] + unit_w % per[2]
    return tile * math.prod(per) + sub


def block_table(axes: tuple[_Axis, _Axis, _Axis], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(counts [n_q], indices [n_q, most])``: the key blocks each query tile needs, real ones first."""
    (it, vt), (ih, vh), (iw, vw) = (a.key_tiles(device) for a in axes)
    index = _block_ids(it[:, None, None, :, None, None], ih[None, :, None, None, :, None],
                       iw[None, None, :, None, None, :], axes)  # fmt: skip
    valid = vt[:, None, None, :, None, None] & vh[None, :, None, None, :, None] & vw[None, None, :, None, None, :]
    queries = math.prod(a.tiles for a in axes)
    index, valid = index.reshape(queries, -1), valid.reshape(queries, -1)
    order = torch.argsort((~valid).to(torch.int8), dim=1, stable=True)
    return valid.sum(dim=1).to(torch.int32), index.gather(1, order).to(torch.int32)


def _tile_order(table: torch.Tensor, axis: int, tiles: tuple[int, int, int], sizes: Kernel) -> torch.Tensor:
    """A per-position table of one axis spread over all tokens in tile order (``[N]``)."""
    shape = [1] * 6
    shape[axis], shape[3 + axis] = tiles[axis], sizes[axis]
    grid = table.view(tiles[axis], sizes[axis]).view(shape)
    return grid.expand(*tiles, *sizes).reshape(-1)


def _window_mask(table: torch.Tensor, kernel: Kernel) -> Callable:
    """FlexAttention's element mask: the key lies in the query's window along every axis.

    ``table`` ``[6, N]``: the queries' window starts (t, h, w), then the keys' positions; one tensor, because
    inductor's CPU lowering of a mask reading several captured tensors failed on some shapes (torch 2.11).
    """
    st, sh, sw = kernel

    def inside(b: torch.Tensor, h: torch.Tensor, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        dt, dh, dw = table[3, k] - table[0, q], table[4, k] - table[1, q], table[5, k] - table[2, q]
        return (dt >= 0) & (dt < st) & (dh >= 0) & (dh < sh) & (dw >= 0) & (dw < sw)

    return inside


def to_tiles(x: torch.Tensor, tile: Kernel) -> torch.Tensor:
    """``[B, T, H, W, heads, d]`` -> ``[B, heads, N, d]`` in tile order (zero padding to whole tiles)."""
    b, t, h, w, heads, d = x.shape
    tt, th, tw = tile
    pads = (-t % tt, -h % th, -w % tw)
    if any(pads):
        x = F.pad(x, (0, 0, 0, 0, 0, pads[2], 0, pads[1], 0, pads[0]))
    nt, nh, nw = (t + pads[0]) // tt, (h + pads[1]) // th, (w + pads[2]) // tw
    x = x.view(b, nt, tt, nh, th, nw, tw, heads, d).permute(0, 7, 1, 3, 5, 2, 4, 6, 8)
    return x.reshape(b, heads, -1, d)


def from_tiles(x: torch.Tensor, dims: tuple[int, int, int], tile: Kernel) -> torch.Tensor:
    """Inverse of :func:`to_tiles`: ``[B, heads, N, d]`` -> ``[B, T, H, W, heads, d]`` (padding dropped)."""
    b, heads, _, d = x.shape
    tiles = tuple(math.ceil(n / s) for n, s in zip(dims, tile, strict=True))
    x = x.view(b, heads, *tiles, *tile, d).permute(0, 2, 5, 3, 6, 4, 7, 1, 8)
    x = x.reshape(b, tiles[0] * tile[0], tiles[1] * tile[1], tiles[2] * tile[2], heads, d)
    return x[:, : dims[0], : dims[1], : dims[2]]


@functools.lru_cache(maxsize=4)
def build_block_mask(dims: tuple[int, int, int], kernel: Kernel, device: torch.device, tile: Kernel | None = None,
                     key_block: int = KEY_BLOCK):  # fmt: skip
    """The ``BlockMask`` of NATTEN's windows over a volume (``tile``: token tile, one query block; ``key_block``:
    tokens per key block, whole rows of a tile).

    Cached: every block of a stage attends over the same volume (the tables are ~24 bytes per token). Only the
    key side is built (``compute_q_blocks=False``): the query side serves the backward pass, and FlexAttention
    builds it through a dense query-tile x key-tile table, quadratic in the tokens."""
    from torch.nn.attention.flex_attention import BlockMask

    tile = tile or choose_tile(dims)
    key_block = min(key_block, math.prod(tile))
    units = key_units(tile, key_block)
    axes = tuple(_Axis(n, s, k, u) for n, s, k, u in zip(dims, tile, kernel, units, strict=True))
    tiles = tuple(a.tiles for a in axes)
    counts, indices = block_table(axes, device)  # type: ignore[arg-type]
    table = torch.stack([_tile_order(a.query_starts(device), i, tiles, tile) for i, a in enumerate(axes)]  # type: ignore[arg-type]
                        + [_tile_order(a.key_positions(device), i, tiles, tile) for i, a in enumerate(axes)])  # type: ignore[arg-type]
    tokens = math.prod(tiles) * math.prod(tile)
    if device.type != "cuda":  # inductor's CPU lowering wants a row per key block (quadratic: small volumes only)
        indices = F.pad(indices, (0, tokens // key_block - indices.shape[1]))
    return BlockMask.from_kv_blocks(counts[None, None], indices[None, None], BLOCK_SIZE=(math.prod(tile), key_block),
                                    mask_mod=_window_mask(table.to(torch.int32), kernel),
                                    seq_lengths=(tokens, tokens), compute_q_blocks=False)  # fmt: skip


@functools.cache
def _compiled_flex() -> Callable:
    from torch.nn.attention.flex_attention import flex_attention

    import torch._dynamo

    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    return torch.compile(flex_attention, dynamic=False, fullgraph=True)


def _kernel_options(query_block: int, key_block: int) -> dict[str, int] | None:
    """Triton tile sizes no larger than the mask's blocks (FlexAttention refuses blocks its tiles do not divide);
    None where the 128-token defaults fit, leaving FlexAttention its own choice."""
    options = {**({"BLOCK_M": query_block} if query_block < 128 else {}),
               **({"BLOCK_N": key_block} if key_block < 128 else {})}  # fmt: skip
    return options or None


def flex_neighborhood_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel: Kernel, *,
                                compiled: bool = True, tile: Kernel | None = None,
                                key_block: int | None = None) -> torch.Tensor:  # fmt: skip
    """``[B, T, H, W, heads, head_dim]`` q/k/v (q already scaled) -> the same shape.

    ``compiled=False`` runs FlexAttention's dense fallback (every pair; tiny test shapes only). ``tile`` and
    ``key_block`` override :data:`TILES` and :data:`KEY_BLOCK` (benchmarks compare layouts with them).
    """
    from torch.nn.attention.flex_attention import flex_attention

    dims = tuple(q.shape[1:4])
    tile = tile or choose_tile(dims)  # type: ignore[arg-type]
    key_block = min(key_block or KEY_BLOCK, math.prod(tile))
    mask = build_block_mask(dims, kernel, q.device, tile, key_block)  # type: ignore[arg-type]
    attend = _compiled_flex() if compiled else flex_attention
    options = _kernel_options(math.prod(tile), key_block) if q.is_cuda and compiled else None
    out = attend(to_tiles(q, tile), to_tiles(k, tile), to_tiles(v, tile), block_mask=mask, scale=1.0,
                 kernel_options=options)
    return from_tiles(out, dims, tile)  # type: ignore[arg-type]


__all__ = ["BLOCK", "KEY_BLOCK", "TILES", "block_table", "key_units", "build_block_mask", "choose_tile", "flex_neighborhood_attention",
           "from_tiles", "to_tiles", "window_starts"]  # fmt: skip
