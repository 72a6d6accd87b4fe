"""Run under torchrun: the distributed tiled VAE decode against ltx-core's single-process tiled decode.

    torchrun --standalone --nproc-per-node N tests/parallel/decode_check.py SMOKE_BUNDLE OUT.json

Three decoders: the smoke bundle's (no noise), the same architecture timestep-conditioned (one
``randn`` per tile, replayed on every rank), and one that also injects noise in its blocks (decoded
on rank 0 alone). Every rank computes the single-process decode itself and compares; rank 0 writes
the report (frames equal on every rank, generator state after the decode equal, tiles, whether split).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from ltx_core.model.video_vae import (
    SpatialTilingConfig,
    TemporalTilingConfig,
    TilingConfig,
    VideoDecoderConfigurator,
    decode_video,
)

from ltx_pipelines.engine.model_ledger import ModelLedger
from ltx_pipelines.parallel.decode import decode_frames, splits_across_ranks
from ltx_pipelines.parallel.process_group import ParallelContext
from rank_reports import write_merged_report
from ltx_pipelines.smoke_model import SmokeBundle, video_vae_config

TILINGS = {
    "spatial+temporal": TilingConfig(SpatialTilingConfig(64, 32), TemporalTilingConfig(16, 8)),
    "temporal": TilingConfig(temporal_config=TemporalTilingConfig(16, 8)),  # (spatial-only fails in ltx-core 1.0)
    "none": None,
}


def decoder_variant(noise: str) -> torch.nn.Module:
    """The smoke decoder's architecture with timestep conditioning (and block noise), seeded random weights."""
    config = copy.deepcopy(video_vae_config())
    config["timestep_conditioning"] = True
    if noise == "blocks":
        config["decoder_blocks"][0] = ["res_x", {"num_layers": 1, "inject_noise": True}]
    torch.manual_seed(0)
    decoder = VideoDecoderConfigurator.from_config({"vae": config})
    with torch.no_grad():
        for name, tensor in decoder.named_parameters():
            if tensor.ndim <= 1 or "scale_shift" in name:
                tensor.normal_(0.0, 0.1)
        decoder.timestep_scale_multiplier.fill_(1000.0)
        for name, buffer in decoder.named_buffers():  # the latent statistics (torch.empty until loaded)
            buffer.copy_(0.5 + torch.rand(buffer.shape) if "std" in name else 0.1 * torch.randn(buffer.shape))
    return decoder.eval()


def main() -> None:
    bundle, out = SmokeBundle.at(Path(sys.argv[1])), Path(sys.argv[2])
    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    ctx = ParallelContext(dist.get_rank(), dist.get_world_size(), "gloo", torch.device("cpu"))
    decoders = {
        "smoke": ModelLedger(bundle.checkpoint, bundle.gemma_root).get("video_decoder"),
        "timestep noise": decoder_variant("timestep"),
        "block noise": decoder_variant("blocks"),
    }
    latent = torch.randn(1, 16, 3, 4, 4, generator=torch.Generator().manual_seed(1))  # 17 frames, 128x128
    report = {}
    with torch.inference_mode():
        for name, decoder in decoders.items():
            for label, tiling in TILINGS.items():
                mine, theirs = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
                want = torch.cat(list(decode_video(latent, decoder, tiling, generator=theirs)), dim=0)
                got = decode_frames(ctx, decoder, latent, mine, tiling)
                other_seed = torch.cat(list(decode_video(latent, decoder, tiling, torch.Generator().manual_seed(8))))
                report[f"{name} / {label}"] = {
                    "exact": torch.equal(got, want),
                    "split": splits_across_ranks(decoder, latent, tiling),
                    "tiles": len(decoder._prepare_tiles(latent, tiling)) if tiling is not None else 1,
                    # after the decode, the generator is where one process leaves it (rank 0 blends; others replay)
                    "generator_state": torch.equal(mine.get_state(), theirs.get_state()),
                    "frames": list(got.shape),
                    "seed_matters": not torch.equal(other_seed, want),  # the decoder really draws noise
                }
    write_merged_report(ctx.rank, ctx.world_size, report, out)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
