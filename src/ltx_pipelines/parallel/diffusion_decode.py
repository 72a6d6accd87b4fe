"""LTX-2.5's diffusion video decoder across ranks: tile ``i`` decoded on rank ``i % N``, blended on rank 0.

Every rank builds the decode's plan itself (:meth:`DiffusionVideoDecoder.plan_decode`): it draws the pixel noise
over the whole video from its generator, as one process does, and runs stages 1-3 on the whole latent. The ranks'
generators are in the same state (same seed, same draws before the decode), so every rank holds the noise one
process would, and leaves its generator where one process would. Running stages 1-3 everywhere rather than on
rank 0 alone costs no wall time (the other ranks would wait for them anyway) and sends nothing: broadcasting
their output (the whole-video stage-4 input, 0.8 GiB at 1536x1024x121 in bfloat16) would only add the transfer.

Rank 0 runs the decoder's own blend, which takes the tiles' pixels one at a time in schedule order: its own
tiles decoded when their turn comes, the others received from the rank that decoded them. The blend's sums
happen in the same order as in one process, on the same bits, so the frames are the single-process ones bit for
bit; rank 0 holds what one process holds (plus one received tile at a time, smaller than a tile's working set).
A sending rank keeps at most one sent tile alive while it decodes its next one.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ltx_pipelines.models.ltx25.diffusion_decoder import DecodePlan, DiffusionVideoDecoder
from ltx_pipelines.parallel.collectives import recv, send
from ltx_pipelines.parallel.process_group import ParallelContext


def is_diffusion_decoder(decoder: object) -> bool:
    return isinstance(decoder, DiffusionVideoDecoder)


def tile_count(decoder: DiffusionVideoDecoder, latent: torch.Tensor, tiling: object) -> int:
    """How many tiles the decode of ``latent`` cuts (1 without a tiling config)."""
    return len(decoder.schedule(latent.shape, tiling).tiles) if tiling is not None else 1


def owner(index: int, world_size: int) -> int:
    """The rank that decodes tile ``index`` (rank 0 always decodes the first, before it receives anything)."""
    return index % world_size


def _pixels_on_rank_0(ctx: ParallelContext, decoder: DiffusionVideoDecoder, plan: DecodePlan) -> Iterator[torch.Tensor]:
    """The tiles' pixels in schedule order: rank 0's decoded here, the others received, one at a time."""
    dtype = None
    for index, tile in enumerate(plan.tiles):
        source = owner(index, ctx.world_size)
        if source == 0:
            pixels = decoder.decode_planned_tile(plan, tile)
            dtype = pixels.dtype
            yield pixels
        else:
            yield recv(torch.empty(plan.tile_shape(tile), dtype=dtype, device=plan.features.device), source)


def _send_my_tiles(ctx: ParallelContext, decoder: DiffusionVideoDecoder, plan: DecodePlan) -> None:
    """A rank other than 0: decode its tiles in order and send each to rank 0, one send in flight at a time."""
    in_flight: tuple[object, torch.Tensor] | None = None
    for index, tile in enumerate(plan.tiles):
        if owner(index, ctx.world_size) != ctx.rank:
            continue
        pixels = decoder.decode_planned_tile(plan, tile).contiguous()
        if in_flight is not None:
            in_flight[0].wait()
        in_flight = (send(pixels, 0), pixels)  # the tensor stays alive until its send is waited on
    if in_flight is not None:
        in_flight[0].wait()


def diffusion_chunks_across_ranks(
    ctx: ParallelContext,
    decoder: DiffusionVideoDecoder,
    latent: torch.Tensor,
    generator: torch.Generator | None,
    tiling: object,
) -> Iterator[torch.Tensor]:
    """What ``decoder.tiled_decode`` yields in one process (``[B, C, f, H, W]`` chunks), on rank 0; nothing on the
    other ranks, which decode and send their tiles when this is iterated. Every rank must iterate it."""
    plan = decoder.plan_decode(latent, tiling, generator)
    if ctx.rank != 0:
        _send_my_tiles(ctx, decoder, plan)
        return
    yield from decoder.blend(plan, _pixels_on_rank_0(ctx, decoder, plan))


class BlendedOnRank0:
    """Stands in for the decoder in ltx-core's ``decode_video`` on rank 0 (so the uint8 conversion is its own):
    ``tiled_decode`` yields the chunks blended from every rank's tiles."""

    def __init__(self, ctx: ParallelContext, decoder: DiffusionVideoDecoder):
        self.ctx, self.decoder = ctx, decoder

    def tiled_decode(
        self, latent: torch.Tensor, tiling_config: object, generator: torch.Generator | None = None
    ) -> Iterator[torch.Tensor]:
        return diffusion_chunks_across_ranks(self.ctx, self.decoder, latent, generator, tiling_config)


__all__ = ["BlendedOnRank0", "diffusion_chunks_across_ranks", "is_diffusion_decoder", "owner", "tile_count"]
