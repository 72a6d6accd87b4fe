"""LTX-2.5's distilled pipeline decoding with the diffusion video VAE, tiled: in one process or under torchrun.

    python -m ltx_pipelines.smoke_model --model-version 2.5 --diffusion-vae DIR
    python tests/parallel/ltx25_diffusion_driver.py DIR OUT.pt                                     # one process
    torchrun --standalone --nproc-per-node 2 tests/parallel/ltx25_diffusion_driver.py DIR OUT.pt   # 2 ranks

The pipeline is built through the Python API (``--model-dir`` picks the diffusion file), so under torchrun it
takes the parallel route, the decode included. Rank 0 saves the frames, the decode's log line and whether every
rank returned the same frames; only rank 0 writes the mp4.

Under torchrun the decode's input (latent, generator state) is kept, and every rank decodes it again in one
process (``stages.decode_video_frames``, the single-process path): ``decode_exact`` says whether the frames the
ranks decoded together are those, bit for bit. (The frames against a one-process generation differ by the
sharded passes' rounding: LTX-2.5's transformer on 2 ranks is not the one-process arithmetic bit for bit, even
with the text cross-attentions on the same query chunks, so the latents reaching the decode differ slightly.)
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from ltx_core.model.video_vae import SpatialTilingConfig, TemporalTilingConfig, TilingConfig

from ltx_pipelines.distilled import DistilledPipeline
from ltx_pipelines.engine.stages import decode_video_frames
from ltx_pipelines.models.ltx25.diffusion_decoder import DiffusionVideoDecoder

#: 128x128, 17 frames, decoded in 4 spatial x 2 temporal tiles (the decoder's grid and overlaps).
REQUEST = {"prompt": "a red kite over the sea", "height": 128, "width": 128, "seed": 3, "num_frames": 17}
TILES = TilingConfig(SpatialTilingConfig(96, 32), TemporalTilingConfig(16, 8))


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _keep_decode_input(pipeline: DistilledPipeline) -> dict:
    """Wrap (this instance only) the decode across ranks to keep its latent, generator state and frames."""
    kept: dict = {}
    real = pipeline._decode_across_ranks

    def decode(latent: torch.Tensor, generator: torch.Generator, tiling: object) -> torch.Tensor:
        kept.update(latent=latent.clone(), state=generator.get_state(), tiling=tiling)
        kept["frames"] = real(latent, generator, tiling)
        return kept["frames"]

    pipeline._decode_across_ranks = decode
    return kept


def _decoded_as_one_process(pipeline: DistilledPipeline, kept: dict) -> bool:
    """The ranks' frames against this process decoding the same latent alone, from the same generator state."""
    generator = torch.Generator()
    generator.set_state(kept["state"])
    alone = decode_video_frames(pipeline.ledger, kept["latent"], generator, kept["tiling"])
    return torch.equal(alone, kept["frames"])


def main() -> None:
    model_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    torch.set_num_threads(1)
    if distributed:
        dist.init_process_group("gloo")
    log = _Lines()
    logging.getLogger("ltx_pipelines.parallel").addHandler(log)
    logging.getLogger("ltx_pipelines.parallel").setLevel(logging.INFO)
    pipeline = DistilledPipeline(model_dir=model_dir, device="cpu", dtype=torch.float32)
    kept = _keep_decode_input(pipeline) if distributed else {}
    result = pipeline(**REQUEST, tiling_config=TILES, output_path=out.with_suffix(".mp4"))
    assert isinstance(pipeline.ledger.get("video_decoder"), DiffusionVideoDecoder)
    same, rank, exact = True, 0, None
    if distributed:
        rank = dist.get_rank()
        everyone: list = [None] * dist.get_world_size()
        dist.all_gather_object(everyone, result.frames.clone())
        same = all(torch.equal(frames, everyone[0]) for frames in everyone)
        assert (result.output_path is not None) == (rank == 0), (rank, result.output_path)
        exact = _decoded_as_one_process(pipeline, kept)
        flags: list = [None] * dist.get_world_size()
        dist.all_gather_object(flags, exact)
        exact = all(flags)
    if rank == 0:
        torch.save({"frames": result.frames, "ranks_agree": same, "decode_exact": exact, "log": log.lines}, out)
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
