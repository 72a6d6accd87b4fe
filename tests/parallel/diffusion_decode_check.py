"""Run under torchrun: LTX-2.5's diffusion decoder across ranks against its single-process tiled decode.

    torchrun --standalone --nproc-per-node N tests/parallel/diffusion_decode_check.py OUT.json

The decoder is the golden fixture's (tests/golden/ltx25/diffusion_vae.safetensors: fused QKV, gates, asymmetric
windows) on a 17 x 128 x 160 video. Every rank computes the single-process decode itself and compares; rank 0
writes the report. Cases ``frames ...`` compare the decoder's float chunks (before the uint8 conversion), cases
``uint8 ...`` the frames of ``decode_frames`` (what the pipelines call), bit for bit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from ltx_core.model.video_vae import SpatialTilingConfig, TemporalTilingConfig, TilingConfig, decode_video

from ltx_pipelines.models.ltx25.diffusion_tiling import TileSizes
from ltx_pipelines.models.ltx25.diffusion_vae_file import load_diffusion_decoder
from ltx_pipelines.parallel.decode import decode_frames, splits_across_ranks
from ltx_pipelines.parallel.diffusion_decode import diffusion_chunks_across_ranks
from ltx_pipelines.parallel.process_group import ParallelContext
from rank_reports import write_merged_report

VAE_FILE = Path(__file__).resolve().parents[1] / "golden/ltx25/diffusion_vae.safetensors"
#: name -> (tiling, dtype, compare the float chunks (else decode_frames' uint8 frames))
CASES = {
    "uint8 / ltx-core tiling, 8 tiles in 2 groups": (TilingConfig(SpatialTilingConfig(96, 32),
                                                                 TemporalTilingConfig(16, 8)), torch.float32, False),
    "float / 3 tiles across the height": (TileSizes(height=(64, 32)), torch.float32, True),
    "float / 5 temporal groups, weights not complementary": (TileSizes(frames=(8, 8)), torch.float32, True),
    "float / bfloat16, 3 tiles": (TileSizes(height=(64, 32)), torch.bfloat16, True),
    "uint8 / no tiling": (None, torch.float32, False),
}  # fmt: skip


def single_process(decoder, latent, tiling, generator, floats: bool) -> torch.Tensor:  # noqa: ANN001
    if floats:
        return torch.cat(list(decoder.tiled_decode(latent, tiling, generator)), dim=2)
    return torch.cat(list(decode_video(latent, decoder, tiling, generator=generator)), dim=0)


def across_ranks(ctx, decoder, latent, tiling, generator, floats: bool) -> torch.Tensor | None:  # noqa: ANN001
    if floats:
        chunks = list(diffusion_chunks_across_ranks(ctx, decoder, latent, generator, tiling))
        return torch.cat(chunks, dim=2) if chunks else None
    return decode_frames(ctx, decoder, latent, generator, tiling)


def run_case(ctx: ParallelContext, tiling: object, dtype: torch.dtype, floats: bool) -> dict:
    decoder = load_diffusion_decoder(VAE_FILE, dtype=dtype)
    latent = torch.randn(1, 8, 3, 4, 5, generator=torch.Generator().manual_seed(1)).to(dtype)
    mine, theirs = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    want = single_process(decoder, latent, tiling, theirs, floats)
    got = across_ranks(ctx, decoder, latent, tiling, mine, floats)
    return {
        # float chunks exist on rank 0 only; decode_frames' frames on every rank
        "exact": torch.equal(got, want) if got is not None else ctx.rank != 0,
        "split": splits_across_ranks(decoder, latent, tiling),
        "tiles": len(decoder.schedule(latent.shape, tiling).tiles) if tiling is not None else 1,
        "generator_state": torch.equal(mine.get_state(), theirs.get_state()),
        "shape": list(want.shape),
    }


def main() -> None:
    out = Path(sys.argv[1])
    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    ctx = ParallelContext(dist.get_rank(), dist.get_world_size(), "gloo", torch.device("cpu"))
    with torch.inference_mode():
        report = {name: run_case(ctx, *case) for name, case in CASES.items()}
    write_merged_report(ctx.rank, ctx.world_size, report, out)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
