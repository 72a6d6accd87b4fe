"""Stage helpers of engine/stages.py: what the decode hands to the mp4 writer."""

from __future__ import annotations

import torch

from ltx_pipelines import DistilledPipeline
from ltx_pipelines.engine.stages import decode_video_chunks
from ltx_pipelines.smoke_model import SMOKE_SIZES


def test_decoded_chunks_are_row_major_frames(smoke_bundle) -> None:  # noqa: ANN001
    """ltx-core's decode hands out a permuted view; the chunks must be plain [f, H, W, 3] rows, or the writer's
    thread copies every frame before encoding it."""
    pipeline = DistilledPipeline(checkpoint_path=smoke_bundle.distilled_checkpoint, gemma_root=smoke_bundle.gemma_root,
                                 spatial_upsampler_path=smoke_bundle.spatial_upsampler, device="cpu")  # fmt: skip
    latent = torch.randn(1, SMOKE_SIZES.video_latent_channels, 2, 2, 3, generator=torch.Generator().manual_seed(0))
    chunks = list(decode_video_chunks(pipeline.ledger, latent, torch.Generator().manual_seed(1)))
    assert chunks and all(c.dtype == torch.uint8 and c.shape[-1] == 3 for c in chunks)
    assert all(c.is_contiguous() for c in chunks)
    assert sum(c.shape[0] for c in chunks) == 9  # 2 latent frames: 1 + 8 pixel frames
