"""Where the diffusion decoder's tiles are, and how their pixels are padded, cropped and blended.

Tiles are cut on the stage-4 input grid (stages 1-3 run once on the whole latent): one stage-4 cell is 2 frames
and 8 x 8 pixels of the published decoder. Consecutive tiles overlap; each tile's pixels are weighted by
linear ramps over the overlap (the weights of neighbouring tiles add up to one) and summed. The geometry -- the
smallest tile, and the overlap below which the blend would mix in the tiles' border artefacts -- follows from
the decoder's kernels and depths, so it is read from the checkpoint's config, as the reference 1.2.0 does.

Tile sizes may be given in any of three forms: :class:`TileSizes` (ours; per axis ``(size, overlap)`` in
frames / pixels, as the reference's ``TileSizeConfig``), ltx-core's ``TilingConfig`` (what the memory plan and
the pipelines' ``tiling_config`` use; one spatial size for both axes), or the reference's ``TileSizeConfig``.
Sizes are rounded to the decoder's grid and overlaps raised to the minimum the geometry needs.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ltx_pipelines.models.ltx25.diffusion_config import ATTENTION_SLAB_ELEMENTS, MLP_CHUNK_TOKENS, slab_frames

if TYPE_CHECKING:
    from ltx_pipelines.models.ltx25.diffusion_config import DiffusionDecoderConfig

logger = logging.getLogger(__name__)

Axis = tuple[int, int]  # (tile size, overlap) in frames or pixels


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class TileSizes:
    """Per axis ``(tile size, overlap)`` in frames / pixels; None leaves the axis whole.

    ``attention_slab``: elements of one attention slab (``NeighborhoodAttention``): set by the memory plan where
    whole-tile attention's temporaries do not fit; None attends over each tile at once (fastest)."""

    frames: Axis | None = None
    height: Axis | None = None
    width: Axis | None = None
    attention_slab: int | None = None

    @classmethod
    def of(cls, config: object) -> TileSizes | None:
        """From ours, ltx-core 1.0.0's ``TilingConfig`` or the reference's ``TileSizeConfig`` (None: untiled)."""
        if config is None or isinstance(config, TileSizes):
            return config
        if hasattr(config, "spatial_config") or hasattr(config, "temporal_config"):
            spatial, temporal = getattr(config, "spatial_config", None), getattr(config, "temporal_config", None)
            side = (spatial.tile_size_in_pixels, spatial.tile_overlap_in_pixels) if spatial is not None else None
            frames = (temporal.tile_size_in_frames, temporal.tile_overlap_in_frames) if temporal is not None else None
            return cls(frames=frames, height=side, width=side)
        if all(hasattr(config, a) for a in ("frames", "height", "width")):
            axes = [getattr(config, a) for a in ("frames", "height", "width")]
            return cls(*[(a.tile_size, a.overlap) if getattr(a, "tile_size", 0) else None for a in axes])
        raise TypeError(f"diffusion decoder tiling: cannot read tile sizes from {type(config).__name__}")


@dataclass(frozen=True)
class PixelBox:
    """The decoded video's shape ``[B, C, F, H, W]``."""

    batch: int
    channels: int
    frames: int
    height: int
    width: int

    @classmethod
    def of_latent(cls, latent_shape: torch.Size, scale: tuple[int, int, int], channels: int = 3) -> PixelBox:
        b, _, t, h, w = latent_shape
        return cls(b, channels, (t - 1) * scale[0] + 1, h * scale[1], w * scale[2])

    @property
    def shape(self) -> tuple[int, int, int, int, int]:
        return (self.batch, self.channels, self.frames, self.height, self.width)


@dataclass(frozen=True)
class Pads:
    """Latent cells added to reach the decoder's minimum size: trailing frames, (before, after) rows and columns."""

    frames: int = 0
    height: tuple[int, int] = (0, 0)
    width: tuple[int, int] = (0, 0)

    def crop_pixels(self, chunk: torch.Tensor, content: PixelBox, scale: tuple[int, int, int]) -> torch.Tensor:
        """Cut the padded rows and columns off decoded pixels (frames are cut by the caller)."""
        chunk = chunk.narrow(3, self.height[0] * scale[1], content.height)
        return chunk.narrow(4, self.width[0] * scale[2], content.width)


def resize(x: torch.Tensor, size: tuple[int, int, int]) -> torch.Tensor:
    """``[B, C, F, H, W]`` to ``size``: frames repeat (or drop) at the end, rows and columns at both edges."""
    x = _resize_axis(x, 2, size[0], both_ends=False)
    x = _resize_axis(x, 3, size[1], both_ends=True)
    return _resize_axis(x, 4, size[2], both_ends=True)


def _resize_axis(x: torch.Tensor, dim: int, size: int, *, both_ends: bool) -> torch.Tensor:
    length = x.shape[dim]
    if length == size:
        return x
    need = abs(size - length)
    before = need // 2 if both_ends else 0
    if length > size:
        return x.narrow(dim, before, size)
    parts = []
    if before:
        parts.append(x.narrow(dim, 0, 1).expand(*x.shape[:dim], before, *x.shape[dim + 1 :]))
    parts.append(x)
    parts.append(x.narrow(dim, length - 1, 1).expand(*x.shape[:dim], need - before, *x.shape[dim + 1 :]))
    return torch.cat(parts, dim=dim)


def ramp_mask(length: int, left: int, right: int) -> torch.Tensor:
    """Weights of one tile along one axis: linear ramps (excluding 0 and 1) over the overlaps, 1 elsewhere."""
    mask = torch.ones(length)
    left, right = max(0, min(left, length)), max(0, min(right, length))
    if left:
        mask[:left] *= torch.linspace(0.0, 1.0, left + 2)[1:-1]
    if right:
        mask[-right:] *= torch.linspace(1.0, 0.0, right + 2)[1:-1]
    return mask.clamp_(0, 1)


@dataclass(frozen=True)
class Interval:
    start: int
    end: int
    left: int  # overlap with the previous interval
    right: int  # overlap with the next one


def split_axis(length: int, size: int, overlap: int, minimum: int) -> list[Interval]:
    """Tiles of ``size`` overlapping by ``overlap``; a short last tile grows backwards to ``minimum``."""
    if length <= size or length < minimum:
        return [Interval(0, length, 0, 0)]
    stride = size - overlap
    count = (length + size - 2 * overlap - 1) // stride
    out = [Interval(i * stride, i * stride + size, overlap if i else 0, overlap) for i in range(count - 1)]
    out.append(Interval((count - 1) * stride, length, overlap, 0))
    last = out[-1]
    if len(out) > 1 and last.end - last.start < minimum:
        start = last.end - minimum
        shared = out[-2].end - start
        out[-2:] = [Interval(out[-2].start, out[-2].end, out[-2].left, shared), Interval(start, last.end, shared, 0)]
    return out


@dataclass(frozen=True)
class Tile:
    """One tile: its stage-4 cells, where its pixels go and their blend weights per axis."""

    stage4: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
    pixels: tuple[slice, slice, slice]
    masks: tuple[torch.Tensor, torch.Tensor, torch.Tensor]

    @property
    def pixel_extent(self) -> tuple[int, int, int]:
        return tuple(s.stop - s.start for s in self.pixels)  # type: ignore[return-value]

    def weigh(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, C, f, h, w]`` times the separable blend weights (float32)."""
        mt, mh, mw = (m.to(x.device, torch.float32) for m in self.masks)
        return x * mt[:, None, None] * mh[:, None] * mw


@dataclass(frozen=True)
class Schedule:
    """Tiles in decode order (frames slowest), grouped by their frames."""

    groups: list[list[Tile]]
    complementary: bool  # the weights add up to one everywhere: no weight buffer needed

    @property
    def group_frames(self) -> list[slice]:
        return [g[0].pixels[0] for g in self.groups]

    @property
    def tiles(self) -> list[Tile]:
        return [t for g in self.groups for t in g]


@dataclass(frozen=True)
class TileGeometry:
    """What tiling needs to know of a decoder, from its config (no weights)."""

    scale: tuple[int, int, int]  # pixels per latent cell
    stage4_strides: tuple[tuple[int, int, int], ...]  # the three upsamplings before stage 4
    cell: tuple[int, int, int]  # pixels per stage-4 cell (last upsampling x patch)
    minimum_latent: tuple[int, int, int]
    minimum_tile: tuple[int, int, int]  # stage-4 cells
    halo: tuple[int, int, int]  # stage-4 cells a tile edge disturbs (the larger of stage 4's and stage 5's reach)
    trailing_frames: int
    stage5_frames_floor: int

    @classmethod
    def of(cls, config: DiffusionDecoderConfig) -> TileGeometry:
        strides = [stride for stride, _ in config.upsamples]
        up3, k4, k5 = strides[3], config.stage_kernels[3], config.stage5_kernel
        cumulative = [(1, 1, 1)]
        for s in strides:
            cumulative.append(tuple(a * b for a, b in zip(cumulative[-1], s, strict=True)))
        minimum = [1, 1, 1]
        for axis in range(3):
            for stage in range(4):
                minimum[axis] = max(
                    minimum[axis], _ceil_div(config.stage_kernels[stage][axis], cumulative[stage][axis])
                )
            minimum[axis] = max(minimum[axis], _ceil_div(k5[axis], cumulative[4][axis]))
        halo4 = [config.stage_depths[3] * (k4[a] // 2) for a in range(3)]
        halo5 = [_ceil_div(config.stage5_depth * (k5[a] // 2), up3[a]) for a in range(3)]
        return cls(
            scale=config.scale,
            stage4_strides=tuple(strides[:3]),
            cell=(up3[0], up3[1] * config.patch_size, up3[2] * config.patch_size),
            minimum_latent=tuple(minimum),  # type: ignore[arg-type]
            minimum_tile=tuple(max(k4[a], _ceil_div(k5[a], up3[a])) for a in range(3)),  # type: ignore[arg-type]
            halo=tuple(max(halo4[a], halo5[a]) for a in range(3)),  # type: ignore[arg-type]
            trailing_frames=config.trailing_frames,
            stage5_frames_floor=k5[0],
        )

    @property
    def minimum_overlap(self) -> tuple[int, int]:
        """(frames, pixels): the smallest overlaps that keep the blend off the tiles' disturbed edges."""
        frames = _round_up(self.halo[0] * self.cell[0], 8)
        pixels = _round_up(max(self.halo[1], self.halo[2]) * self.cell[1], 32)
        return frames, pixels

    def pad_to_minimum(self, latent: torch.Tensor) -> tuple[torch.Tensor, Pads]:
        """Edge-pad a latent smaller than the windows (frames at the end, rows and columns on both sides)."""
        t, h, w = latent.shape[2:]
        mt, mh, mw = self.minimum_latent
        size = (max(t, mt), max(h, mh), max(w, mw))
        if size == (t, h, w):
            return latent, Pads()
        pads = Pads(size[0] - t, ((size[1] - h) // 2, size[1] - h - (size[1] - h) // 2),
                    ((size[2] - w) // 2, size[2] - w - (size[2] - w) // 2))  # fmt: skip
        return resize(latent, size), pads

    def repeat_last_frame(self, latent: torch.Tensor) -> torch.Tensor:
        if not self.trailing_frames:
            return latent
        last = latent[:, :, -1:].expand(-1, -1, self.trailing_frames, -1, -1)
        return torch.cat([latent, last], dim=2)

    def stage4_shape(self, latent_thw: tuple[int, ...]) -> tuple[int, int, int]:
        t, h, w = latent_thw
        for st, sh, sw in self.stage4_strides:
            t, h, w = t * st - (1 if st == 2 else 0), h * sh, w * sw
        return (t, h, w)

    def stage5_extent(self, cells: tuple[int, int, int], origin: bool, trailing: bool) -> tuple[int, int, int]:
        """Pixels (frames, rows, columns) stage 5 works on for a tile of ``cells`` stage-4 cells."""
        ct, ch, cw = self.cell
        frames = cells[0] * ct - (1 if origin and ct == 2 else 0)
        if trailing:
            frames = max(frames, self.stage5_frames_floor)
        return frames, cells[1] * ch, cells[2] * cw

    # -- schedule ------------------------------------------------------------------------------------

    def axis_sizes(self, sizes: TileSizes) -> tuple[tuple[int, int] | None, ...]:
        """Tile size and overlap per axis in stage-4 cells, on the grid and at least the minimum overlap."""
        floors = self.minimum_overlap
        out = []
        for axis, given in enumerate((sizes.frames, sizes.height, sizes.width)):
            if given is None or not given[0]:
                out.append(None)
                continue
            cell = self.cell[axis]
            floor = floors[0] if axis == 0 else floors[1]
            size, overlap = given
            overlap_px = _round_up(max(overlap, floor), cell)
            size_px = _round_up(max(size, 2 * cell), cell)
            if (size_px, overlap_px) != (size, overlap):
                logger.debug("diffusion decoder tiles: axis %d %s -> (%d, %d)", axis, given, size_px, overlap_px)
            tile, lap = size_px // cell, overlap_px // cell
            out.append((max(tile, lap + 1, 2), lap))
        return tuple(out)

    def schedule(self, stage4_shape: tuple[int, int, int], config: object) -> Schedule:
        """The tiles for a stage-4 grid under a tiling config (None: one tile)."""
        sizes = TileSizes.of(config)
        axes = self.axis_sizes(sizes) if sizes is not None else (None, None, None)
        per_axis = [self._axis_tiles(a, n, axes[a]) for a, n in enumerate(stage4_shape)]
        tiles = [Tile(stage4=(t[0], h[0], w[0]), pixels=(t[1], h[1], w[1]), masks=(t[2], h[2], w[2]))
                 for t, h, w in itertools.product(*per_axis)]  # fmt: skip
        groups: list[list[Tile]] = []
        for tile in tiles:
            if groups and groups[-1][0].pixels[0] == tile.pixels[0]:
                groups[-1].append(tile)
            else:
                groups.append([tile])
        complementary = all(_partition_of_unity(spec) for spec in per_axis)
        return Schedule(groups=groups, complementary=complementary)

    def _axis_tiles(self, axis: int, length: int, size: tuple[int, int] | None,
                    ) -> list[tuple[tuple[int, int], slice, torch.Tensor]]:  # fmt: skip
        intervals = split_axis(length, *size, self.minimum_tile[axis]) if size else [Interval(0, length, 0, 0)]
        out = []
        for iv in intervals:
            start, end, left, right = self._to_pixels(axis, iv)
            out.append(((iv.start, iv.end), slice(start, end), ramp_mask(end - start, left, right)))
        return out

    def _to_pixels(self, axis: int, iv: Interval) -> tuple[int, int, int, int]:
        """A stage-4 interval in pixels; a x2 temporal step loses the origin's duplicated first frame."""
        k = self.cell[axis]
        start, end = iv.start * k, iv.end * k
        if axis == 0 and k == 2:
            end -= 1
            start -= 1 if iv.start else 0
        return start, end, iv.left * k, iv.right * k


def _partition_of_unity(spec: list[tuple[tuple[int, int], slice, torch.Tensor]]) -> bool:
    length = max(s.stop for _, s, _ in spec)
    total = torch.zeros(length)
    for _, where, mask in spec:
        total[where] += mask
    return bool(torch.allclose(total, torch.ones(length), atol=1e-5, rtol=0.0))


# -- memory -----------------------------------------------------------------------------------------
# The constants below are the pre-flight's model of a tiled decode's device memory. They are checked against the
# decoder's own allocations at full channel counts on fake tensors (memory.traced_peak,
# tests/models/ltx25/test_diffusion_memory.py: never below the traced peak, at most 1.3x it);
# benchmarks/diffusion_decoder.py logs the GPU's measured peak beside the estimate for every case.

#: Stage-5 activations held at once per token, in units of one token's widest activation: the context, the
#: block's input, its own copy, and the attention's output (slabs) or modulated input (whole). Traced at
#: 1536x1024x121 in 48x576x576 tiles: 4.
STAGE5_WORKING_COPIES = 4
#: Whole-tile attention's temporaries in the same units (the W-padded input, Q/K/V after RoPE, their
#: FlexAttention tile-order copies, the output): traced 8.4 (the padding and the tile rounding add ~5 %).
#: Before these were traced, 12 in all measured 40.4 GiB against 37.0 estimated (H200, 1536x1024x121 whole).
WHOLE_ATTENTION_COPIES = 9
#: One attention slab's temporaries, in slab inputs (the same list, for one slab and its halo): ~11.7 traced,
#: 9.6 measured on an H100 (an earlier layout).
SLAB_WORKING_COPIES = 12
#: An MLP chunk's temporaries, in hidden activations (gate, up, their product).
MLP_WORKING_COPIES = 3
#: Copies of one tile's pixels held in stage 5 (its noise cut from the host copy, the Euler state, the velocity's
#: unpatchified pixels, the blend's float16 copy): traced with ``memory.traced_peak``.
PIXEL_COPIES = 4
#: Frames per chunk the decoder hands out: the caller's uint8 conversion (ltx-core's ``decode_video``: two bf16
#: temporaries) then holds a few frames, not a whole temporal group (at 3840x2176 a 40-frame chunk and its
#: conversion were 5.6 GiB, traced: more than the tile loop under a 16 GiB cap).
HANDOUT_FRAMES = 8
#: Copies of a handed-out chunk alive at once: the chunk, the conversion's temporaries, its uint8 result.
HANDOUT_COPIES = 3.5
#: Copies of the stage-4 input while the last whole-video upsampling runs (its projection, the depth-to-space
#: copy and the stage-3 activations it came from). H100, 3840x2176x121: more than 2 (11.5 GiB held + 4.4 asked).
UPSAMPLE_COPIES = 2.5


def stage4_input_bytes(config: DiffusionDecoderConfig, frames: int, height: int, width: int, element: int = 2) -> int:
    """The stage-4 input: stages 1-3 run on the whole video and it stays on the device through the decode."""
    geometry = TileGeometry.of(config)
    latent_t = (frames - 1) // config.scale[0] + 1 + config.trailing_frames
    s4 = geometry.stage4_shape((latent_t, max(1, height // config.scale[1]), max(1, width // config.scale[2])))
    return math.prod(s4) * config.stage_channels[3] * element


def working_set_bytes(geometry: TileGeometry, config: DiffusionDecoderConfig, frames: int, height: int, width: int,
                      tile: tuple[int, int, int], element: int = 2, slab: int | None = None) -> int:  # fmt: skip
    """Device bytes of a decode beyond the weights: the larger of the whole-video stages 1-3 (their last
    upsampling) and the tile loop (the resident stage-4 input, one temporal group's blend buffer and weights
    and the next group's overlap, then the larger of one tile's stage-5 working set with its attention in
    ``slab``-element slabs, or whole, and its pixels, and a handed-out chunk with its uint8 conversion). A tiled or slabbed decode keeps the whole-video pixel noise in host memory; a whole one on the
    device. (A CUDA generator draws the noise on the device first, before stages 1-3 hold anything; that moment
    stays under the upsampling's peak: 1.1 against 2.0 GiB at 1536x1024x121, 5.6 against 10.7 GiB at 4K.)"""
    features = stage4_input_bytes(config, frames, height, width, element)
    frame = height * width * config.out_channels * element
    accum = 2 * tile[0] * frame  # one group's blend buffer, and its weights or the overlap carried to the next
    tokens = tile[0] * (tile[1] // config.patch_size) * (tile[2] // config.patch_size)
    volume = tokens * max(config.stage5_width, config.context_width) * element
    mlp = MLP_WORKING_COPIES * MLP_CHUNK_TOKENS * 4 * config.stage5_width * element
    if slab is None:
        stage5 = volume * (STAGE5_WORKING_COPIES + WHOLE_ATTENTION_COPIES) + mlp
    else:
        stage5 = volume * STAGE5_WORKING_COPIES + SLAB_WORKING_COPIES * slab * element + mlp
    pixels = PIXEL_COPIES * math.prod(tile) * config.out_channels * element
    handout = int(HANDOUT_COPIES * min(HANDOUT_FRAMES, frames) * frame)
    whole = tile == (frames, height, width) and slab is None
    noise = frames * height * width * config.out_channels * element if whole else 0
    return noise + max(int(UPSAMPLE_COPIES * features), features + accum + max(stage5 + pixels, handout))


def plan_working_set_bytes(config: DiffusionDecoderConfig, frames: int, height: int, width: int,
                           plan: TileSizes | None, element: int = 2) -> int:  # fmt: skip
    """:func:`working_set_bytes` of a plan from :func:`tiles_for_budget` (None: the whole video, whole attention)."""
    whole = (frames, height, width)
    axes = (plan.frames, plan.height, plan.width) if plan is not None else (None, None, None)
    tile = tuple(axis[0] if axis else n for axis, n in zip(axes, whole, strict=True))
    slab = plan.attention_slab if plan is not None else None
    return working_set_bytes(TileGeometry.of(config), config, frames, height, width, tile, element, slab)  # type: ignore[arg-type]


def tiles_for_budget(config: DiffusionDecoderConfig, frames: int, height: int, width: int, budget: int,
                     element: int = 2) -> TileSizes | None:  # fmt: skip
    """The cheapest plan whose working set fits ``budget`` bytes: None (the whole video, whole-volume attention)
    when it fits, else the tile sizes and attention slabs with the least recomputation (:func:`_plan_cost`);
    a ValueError when not even the smallest tile fits."""
    geometry = TileGeometry.of(config)
    whole = (frames, height, width)
    if working_set_bytes(geometry, config, frames, height, width, whole, element) <= budget:
        return None
    lap_t, lap_px = geometry.minimum_overlap
    cells = geometry.cell
    best: tuple[float, tuple[int, int, int], int | None] | None = None
    widths = _sizes(width, 2 * lap_px + cells[2], 32)
    for t in _sizes(frames, 2 * lap_t + cells[0], 8):
        for h in _sizes(height, 2 * lap_px + cells[1], 32):
            for slab in (None, ATTENTION_SLAB_ELEMENTS):
                fits = bisect.bisect_left(widths, True, key=lambda w, t=t, h=h, slab=slab: working_set_bytes(
                    geometry, config, frames, height, width, (t, h, w), element, slab) > budget)  # fmt: skip
                for w in widths[max(0, fits - 8) : fits]:  # the working set grows with w; the largest waste least
                    cost = _plan_cost(config, whole, (t, h, w), (lap_t, lap_px), slab)
                    if best is None or cost < best[0]:
                        best = (cost, (t, h, w), slab)
    if best is None:
        raise ValueError(f"the diffusion decoder's smallest tile does not fit in {budget / 2**30:.1f} GiB at "
                         f"{width}x{height}x{frames} (its whole-video stage-4 input alone is "
                         f"{stage4_input_bytes(config, frames, height, width, element) / 2**30:.1f} GiB)")  # fmt: skip
    _, (t, h, w), slab = best
    return TileSizes(frames=(t, lap_t) if t < frames else None, height=(h, lap_px) if h < height else None,
                     width=(w, lap_px) if w < width else None, attention_slab=slab)  # fmt: skip


def _plan_cost(config: DiffusionDecoderConfig, whole: tuple[int, int, int], tile: tuple[int, int, int],
               laps: tuple[int, int], slab: int | None) -> float:  # fmt: skip
    """Work relative to one whole-video pass: the tiles' recomputed overlap times the slabs' recomputed
    neighbour frames (a slab of ``step`` frames attends over ``step + 2 * halo``; attention and its projections
    taken as half of stage 5's time)."""
    (frames, height, width), (t, h, w), (lap_t, lap_px) = whole, tile, laps
    cost = _waste(frames, t, lap_t) * _waste(height, h, lap_px) * _waste(width, w, lap_px)
    if slab is not None:
        halo = config.stage5_kernel[0] // 2
        step = slab_frames(slab, (h // config.patch_size) * (w // config.patch_size) * config.stage5_width)
        if step + 2 * halo < t:
            cost *= 1.0 + 0.5 * 2 * halo / step
    return cost


def _sizes(length: int, smallest: int, step: int) -> list[int]:
    top = _round_up(length, step)
    return [s for s in range(_round_up(smallest, step), top + step, step)] or [top]


def _waste(length: int, size: int, overlap: int) -> float:
    """Processed / output length along one axis."""
    if size >= length:
        return 1.0
    count = (length + size - 2 * overlap - 1) // (size - overlap)
    return count * size / length


__all__ = ["HANDOUT_FRAMES", "Pads", "PixelBox", "Schedule", "Tile", "TileGeometry", "TileSizes", "ramp_mask", "resize", "split_axis",
           "plan_working_set_bytes", "stage4_input_bytes", "tiles_for_budget", "working_set_bytes"]
