"""Distributed VAE decode: the latent's tiles decoded on different ranks, blended on rank 0.

The same result as the single-process tiled decode, bit for bit, by construction: rank 0 runs
ltx-core's own ``VideoDecoder.tiled_decode`` (tiling, trapezoidal blend masks, temporal overlap
blending, uint8 conversion) on a stand-in decoder whose ``forward`` hands back each tile in the
order ltx-core asks for it: decoded on rank 0 or received from the rank that decoded it. Tile
``i`` is decoded by rank ``i % N``.

Noise: a timestep-conditioned decoder draws ``randn(tile.shape)`` from the generator at the start
of each tile. Every rank walks the tiles in order and, for a tile another rank decodes, draws the
same numbers and drops them, so each tile sees the generator state it has in one process. A
decoder that also injects noise inside its blocks cannot be replayed that way: rank 0 decodes it
alone. Without a tiling config (one tile) rank 0 decodes alone too. The frames are broadcast so
every rank returns the same result.

LTX-2.5's diffusion decoder has its own tiles and blend: :mod:`ltx_pipelines.parallel.diffusion_decode` splits
them the same way (tile ``i`` on rank ``i % N``, blended on rank 0, bit for bit).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
from ltx_core.model.video_vae import TilingConfig, VideoDecoder, decode_video

from ltx_pipelines.parallel import diffusion_decode
from ltx_pipelines.parallel.collectives import broadcast, broadcast_object, recv, send
from ltx_pipelines.parallel.process_group import ParallelContext

logger = logging.getLogger(__name__)


def _draws_noise(decoder: VideoDecoder) -> bool:
    return bool(decoder.timestep_conditioning)


def _replayable(decoder: VideoDecoder) -> bool:
    """True when a tile's only random draw is the decoder's initial noise (no noise injected in blocks)."""
    return not any(getattr(module, "inject_noise", False) for module in decoder.modules())


def _skip_noise(decoder: VideoDecoder, sample: torch.Tensor, generator: torch.Generator | None) -> None:
    """Advance ``generator`` as decoding ``sample`` would (the decoder's one ``randn`` per tile)."""
    if _draws_noise(decoder):
        torch.randn(sample.size(), generator=generator, dtype=sample.dtype, device=sample.device)


class _TileSource:
    """Stands in for the decoder inside ltx-core's ``tiled_decode`` on rank 0: tiles decoded here or received.

    ltx-core's tiling and blending methods run unchanged with this object as ``self``; only
    ``_prepare_tiles`` (the tile list, computed once) and ``forward`` (the next tile) are ours.
    """

    tiled_decode = VideoDecoder.tiled_decode
    _group_tiles_by_temporal_slice = VideoDecoder._group_tiles_by_temporal_slice
    _accumulate_temporal_group_into_buffer = VideoDecoder._accumulate_temporal_group_into_buffer

    def __init__(self, decoder: VideoDecoder, tiles: list, world_size: int):
        self.decoder = decoder
        self.video_downscale_factors = decoder.video_downscale_factors
        self.tiles = tiles
        self.world_size = world_size
        self.next_tile = 0
        self.dtype: torch.dtype | None = None

    def _prepare_tiles(self, latent: torch.Tensor, tiling_config: TilingConfig | None = None) -> list:
        return self.tiles

    def forward(
        self, sample: torch.Tensor, timestep: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        index, self.next_tile = self.next_tile, self.next_tile + 1
        owner = index % self.world_size
        if owner == 0:
            decoded = self.decoder(sample, timestep, generator)
            self.dtype = decoded.dtype
            return decoded
        _skip_noise(self.decoder, sample, generator)
        shape = recv(torch.empty(5, dtype=torch.int64, device=sample.device), owner)
        return recv(torch.empty(shape.tolist(), dtype=self.dtype, device=sample.device), owner)


def _decode_my_tiles(
    ctx: ParallelContext, decoder: VideoDecoder, latent: torch.Tensor, tiles: list, generator: torch.Generator | None
) -> None:
    """A rank other than 0: decode tiles ``rank, rank + N, ...`` in order and send them to rank 0."""
    pending = []
    for index, tile in enumerate(tiles):
        sample = latent[tile.in_coords]
        if index % ctx.world_size != ctx.rank:
            _skip_noise(decoder, sample, generator)
            continue
        decoded = decoder(sample, None, generator).contiguous()
        shape = torch.tensor(decoded.shape, dtype=torch.int64, device=decoded.device)
        pending.append((send(shape, 0), send(decoded, 0), shape, decoded))  # tensors kept alive until sent
    for shape_request, tile_request, *_ in pending:
        shape_request.wait()
        tile_request.wait()


def _frames_from_rank_0(ctx: ParallelContext, frames: torch.Tensor | None) -> torch.Tensor:
    """Rank 0's uint8 frames [F, H, W, 3] on every rank (on the CPU)."""
    shape = broadcast_object(tuple(frames.shape) if frames is not None else None, 0, ctx.device)
    if frames is None:
        frames = torch.empty(shape, dtype=torch.uint8, device=ctx.device)
    return broadcast(frames.to(ctx.device), 0).cpu()


def decode_tiles_across_ranks(
    ctx: ParallelContext,
    decoder: VideoDecoder,
    latent: torch.Tensor,
    generator: torch.Generator | None,
    tiling: TilingConfig,
) -> torch.Tensor | None:
    """uint8 frames [F, H, W, 3] on rank 0 (None elsewhere): the tiles decoded by all ranks, blended on rank 0."""
    tiles = decoder._prepare_tiles(latent, tiling)
    if ctx.rank != 0:
        _decode_my_tiles(ctx, decoder, latent, tiles, generator)
        return None
    source = _TileSource(decoder, tiles, ctx.world_size)
    return torch.cat([chunk.cpu() for chunk in decode_video(latent, source, tiling, generator=generator)], dim=0)


def splits_across_ranks(decoder: VideoDecoder, latent: torch.Tensor, tiling: TilingConfig | None) -> bool:
    """Whether the decode has several tiles whose noise every rank can reproduce (ltx-core's decoders: replayed
    tile by tile; LTX-2.5's diffusion decoder: drawn once over the whole video on every rank)."""
    return tiling is not None and _tile_count(decoder, latent, tiling) > 1 and _replayable(decoder)


def _tile_count(decoder: VideoDecoder, latent: torch.Tensor, tiling: TilingConfig) -> int:
    if diffusion_decode.is_diffusion_decoder(decoder):
        return diffusion_decode.tile_count(decoder, latent, tiling)
    return len(decoder._prepare_tiles(latent, tiling))


def _split_decode(
    ctx: ParallelContext, decoder: VideoDecoder, latent: torch.Tensor, generator: torch.Generator | None,
    tiling: TilingConfig,
) -> torch.Tensor | None:  # fmt: skip
    """The tiles decoded by every rank: the frames on rank 0, None elsewhere."""
    if not diffusion_decode.is_diffusion_decoder(decoder):
        return decode_tiles_across_ranks(ctx, decoder, latent, generator, tiling)
    if ctx.rank != 0:
        for _ in diffusion_decode.diffusion_chunks_across_ranks(ctx, decoder, latent, generator, tiling):
            pass  # other ranks yield nothing: iterating decodes and sends their tiles
        return None
    source = diffusion_decode.BlendedOnRank0(ctx, decoder)
    return torch.cat([chunk.cpu() for chunk in decode_video(latent, source, tiling, generator=generator)], dim=0)


def _my_share(
    ctx: ParallelContext,
    decoder: VideoDecoder,
    latent: torch.Tensor,
    generator: torch.Generator | None,
    tiling: TilingConfig | None,
) -> torch.Tensor | None:
    """This rank's part of the decode: the frames on rank 0, None elsewhere."""
    if splits_across_ranks(decoder, latent, tiling):
        if ctx.rank == 0:
            count, world = _tile_count(decoder, latent, tiling), ctx.world_size
            logger.info("Decoding %d tiles on %d ranks (tile i on rank i mod %d)", count, world, world)
        return _split_decode(ctx, decoder, latent, generator, tiling)
    if ctx.rank != 0:
        return None
    return torch.cat([chunk.cpu() for chunk in decode_video(latent, decoder, tiling, generator=generator)], dim=0)


def decode_frames(
    ctx: ParallelContext,
    decoder: VideoDecoder,
    latent: torch.Tensor,
    generator: torch.Generator | None,
    tiling: TilingConfig | None,
) -> torch.Tensor:
    """uint8 frames [F, H, W, 3] on every rank: what ``decode_video`` gives in one process, bit for bit."""
    return _frames_from_rank_0(ctx, _my_share(ctx, decoder, latent, generator, tiling))


def decode_video_frames_across_ranks(
    ctx: ParallelContext,
    open_decoder: Callable[[], AbstractContextManager[VideoDecoder]],
    latent: torch.Tensor,
    generator: torch.Generator,
    tiling: TilingConfig | None = None,
) -> torch.Tensor:
    """``stages.decode_video_frames`` inside a process group: the same frames, on every rank.

    ``open_decoder()`` lends the decoder for the decode (the engine decides where it comes from). Without
    tiling there is one tile: only rank 0 opens the decoder and decodes.
    """
    started = time.perf_counter()
    with torch.inference_mode():
        frames = None
        if tiling is not None or ctx.rank == 0:
            with open_decoder() as decoder:
                frames = _my_share(ctx, decoder, latent, generator, tiling)
        frames = _frames_from_rank_0(ctx, frames)
    logger.info("Decoded video in %.1f s", time.perf_counter() - started)
    return frames


__all__ = ["decode_frames", "decode_tiles_across_ranks", "decode_video_frames_across_ranks", "splits_across_ranks"]
