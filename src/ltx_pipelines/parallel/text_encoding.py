"""Prompts encoded (and enhanced) once, on rank 0, and broadcast: the other ranks never load Gemma.

The text encoder is the largest model after the transformer and its work is tiny next to the
denoising; running it on every rank would only cost memory and load time.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ltx_pipelines.parallel.collectives import broadcast, broadcast_object
from ltx_pipelines.parallel.process_group import ParallelContext
from ltx_pipelines.utils.model_ledger import ChecksPassed, ModelLedger
from ltx_pipelines.utils.prompt_enhancement import maybe_enhance_prompt
from ltx_pipelines.utils.prompts import encode_prompts
from ltx_pipelines.utils.transformer_passes import PromptEmbeddings


def _no_collective_while_checking(ledger: ModelLedger) -> None:
    """``validate()`` stops at the first model build; every rank must stop here, not wait for rank 0."""
    if ledger.checking_only:
        raise ChecksPassed("text_encoder")


def encode_prompts_on_rank_0(
    ctx: ParallelContext | None, ledger: ModelLedger, prompts: list[str]
) -> list[PromptEmbeddings]:
    """``encode_prompts`` on rank 0, its embeddings broadcast; plain ``encode_prompts`` outside a group."""
    if ctx is None:
        return encode_prompts(ledger, prompts)
    _no_collective_while_checking(ledger)
    encoded = encode_prompts(ledger, prompts) if ctx.rank == 0 else None
    with ledger.timed("text encoding"):
        return _broadcast_embeddings(ctx, ledger, encoded)


def _broadcast_embeddings(
    ctx: ParallelContext, ledger: ModelLedger, encoded: list[PromptEmbeddings] | None
) -> list[PromptEmbeddings]:
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
                tensor = torch.empty(size, dtype=ledger.dtype, device=ctx.device)
            tensors.append(broadcast(tensor, 0))
        out.append(PromptEmbeddings(*tensors))
    return out


def enhance_prompt_on_rank_0(
    ctx: ParallelContext | None,
    ledger: ModelLedger,
    prompt: str,
    enabled: bool,
    images: Sequence[object] = (),
    seed: int = 0,
) -> tuple[str, dict[str, str]]:
    """``maybe_enhance_prompt`` on rank 0 (Gemma generates once), the rewrite broadcast."""
    if ctx is None or not enabled:
        return maybe_enhance_prompt(ledger, prompt, enabled, images, seed)
    _no_collective_while_checking(ledger)
    result = maybe_enhance_prompt(ledger, prompt, enabled, images, seed) if ctx.rank == 0 else None
    return broadcast_object(result, 0, ctx.device)


__all__ = ["encode_prompts_on_rank_0", "enhance_prompt_on_rank_0"]
