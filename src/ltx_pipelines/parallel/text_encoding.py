"""Prompts encoded (and enhanced) once, on rank 0, and broadcast: the other ranks never load Gemma.

The text encoder is the largest model after the transformer and its work is tiny next to the
denoising; running it on every rank would only cost memory and load time. The engine decides what
rank 0 computes; this module only moves the results.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

from ltx_pipelines.models.transformer_passes import PromptEmbeddings
from ltx_pipelines.parallel.collectives import broadcast, broadcast_object
from ltx_pipelines.parallel.process_group import ParallelContext

T = TypeVar("T")


def computed_on_rank_0(ctx: ParallelContext, compute: Callable[[], T]) -> T:
    """``compute()`` on rank 0 only, its (picklable) result sent to every rank."""
    return broadcast_object(compute() if ctx.rank == 0 else None, 0, ctx.device)


def broadcast_embeddings(
    ctx: ParallelContext, encoded: list[PromptEmbeddings] | None, dtype: torch.dtype
) -> list[PromptEmbeddings]:
    """Rank 0's embeddings (``encoded``; None on the other ranks) on every rank, as tensors of ``dtype``."""

    def shape(tensor: torch.Tensor | None) -> tuple[int, ...] | None:
        return tuple(tensor.shape) if tensor is not None else None

    shapes = [(shape(e.video), shape(e.audio)) for e in encoded] if encoded is not None else None
    shapes = broadcast_object(shapes, 0, ctx.device)
    out = []
    for i, (video_shape, audio_shape) in enumerate(shapes):
        tensors = []
        for j, size in enumerate((video_shape, audio_shape)):
            if size is None:
                tensors.append(None)
                continue
            if encoded is not None:
                tensor = (encoded[i].video, encoded[i].audio)[j].contiguous()
            else:
                tensor = torch.empty(size, dtype=dtype, device=ctx.device)
            tensors.append(broadcast(tensor, 0))
        out.append(PromptEmbeddings(*tensors))
    return out


__all__ = ["broadcast_embeddings", "computed_on_rank_0"]
