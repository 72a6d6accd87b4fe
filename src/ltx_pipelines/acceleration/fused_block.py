"""ltx-core's ``BasicAVTransformerBlock.forward`` as one function of explicit inputs.

The function uses the block's own submodules and parameters but never reads ``block.idx`` and
never asks a perturbation object anything: what to skip arrives as a :class:`BlockPlan` (static:
one compiled variant per distinct plan) and :class:`BlockMasks` (tensors). With ltx-core's own
attention function it reproduces the block's output bit for bit; compiled once, the same graph
serves every block of the model, because blocks differ only in their parameter tensors.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from ltx_core.model.transformer.transformer import BasicAVTransformerBlock
from ltx_core.model.transformer.transformer_args import TransformerArgs

from ltx_pipelines.acceleration.block_plan import MIXED, SKIP, BlockMasks, BlockPlan
from ltx_pipelines.acceleration.fused_ops import (
    Kernels,
    ada_values,
    attention,
    av_ada_values,
    feed_forward,
    modulate,
    rms_norm,
)

Rope = tuple[torch.Tensor, torch.Tensor]


class Stream(NamedTuple):
    """One modality's block inputs other than its hidden states (the same for every block)."""

    context: torch.Tensor
    context_mask: torch.Tensor | None
    timesteps: torch.Tensor
    pe: Rope
    cross_pe: Rope | None
    cross_scale_shift_timestep: torch.Tensor | None
    cross_gate_timestep: torch.Tensor | None
    prompt_timestep: torch.Tensor | None
    self_attention_mask: torch.Tensor | None


def stream_of(args: TransformerArgs | None) -> Stream | None:
    if args is None:
        return None
    return Stream(
        context=args.context,
        context_mask=args.context_mask,
        timesteps=args.timesteps,
        pe=tuple(args.positional_embeddings),
        cross_pe=tuple(args.cross_positional_embeddings) if args.cross_positional_embeddings is not None else None,
        cross_scale_shift_timestep=args.cross_scale_shift_timestep,
        cross_gate_timestep=args.cross_gate_timestep,
        prompt_timestep=args.prompt_timestep,
        self_attention_mask=args.self_attention_mask,
    )


def _text_attention(
    block: BasicAVTransformerBlock,
    attn: torch.nn.Module,
    x: torch.Tensor,
    stream: Stream,
    table: torch.Tensor,
    prompt_table: torch.Tensor | None,
    kernels: Kernels,
    backend: str | None,
) -> torch.Tensor:
    """Cross-attention to the prompt; with LTX-2.3's cross-attention AdaLN, modulated and gated."""
    eps = block.norm_eps
    if not block.cross_attention_adaln:
        return attention(attn, rms_norm(x, eps), kernels, backend, context=stream.context, mask=stream.context_mask)
    batch = x.shape[0]
    shift_q, scale_q, gate = ada_values(table, batch, stream.timesteps, slice(6, 9))
    prompt = stream.prompt_timestep
    shift_kv, scale_kv = (
        prompt_table[None, None].to(device=x.device, dtype=x.dtype) + prompt.reshape(batch, prompt.shape[1], 2, -1)
    ).unbind(dim=2)
    query = rms_norm(x, eps) * (1 + scale_q) + shift_q
    context = stream.context * (1 + scale_kv) + shift_kv
    return attention(attn, query, kernels, backend, context=context, mask=stream.context_mask) * gate


def _self_and_text(
    block: BasicAVTransformerBlock,
    x: torch.Tensor,
    stream: Stream,
    audio: bool,
    state: str,
    keep: torch.Tensor | None,
    kernels: Kernels,
) -> torch.Tensor:
    """Modulated self-attention (possibly skipped or blended per sample), then the prompt cross-attention."""
    prefix = "audio_" if audio else ""
    table = getattr(block, f"{prefix}scale_shift_table")
    self_attn, text_attn = getattr(block, f"{prefix}attn1"), getattr(block, f"{prefix}attn2")
    backends = (kernels.audio_self, kernels.audio_text) if audio else (kernels.video_self, kernels.video_text)
    shift, scale, gate = ada_values(table, x.shape[0], stream.timesteps, slice(0, 3))
    normed = modulate(x, scale, shift, block.norm_eps)
    out = attention(self_attn, normed, kernels, backends[0], mask=stream.self_attention_mask, pe=stream.pe,
                    skip=state == SKIP, keep=keep if state == MIXED else None)  # fmt: skip
    x = x + out * gate
    prompt_table = getattr(block, f"{prefix}prompt_scale_shift_table", None)
    return x + _text_attention(block, text_attn, x, stream, table, prompt_table, kernels, backends[1])


def _feed_forward(
    block: BasicAVTransformerBlock, x: torch.Tensor, stream: Stream, audio: bool, kernels: Kernels
) -> torch.Tensor:
    prefix = "audio_" if audio else ""
    shift, scale, gate = ada_values(getattr(block, f"{prefix}scale_shift_table"), x.shape[0], stream.timesteps,
                                    slice(3, 6))  # fmt: skip
    ff = block.audio_ff if audio else block.ff
    return x + feed_forward(ff, modulate(x, scale, shift, block.norm_eps), kernels) * gate


def _cross_modal(
    block: BasicAVTransformerBlock,
    vx: torch.Tensor,
    ax: torch.Tensor,
    video: Stream,
    audio: Stream,
    plan: BlockPlan,
    masks: BlockMasks,
    kernels: Kernels,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Audio -> video, then video -> audio cross-attention, each modulated on both sides and gated."""
    eps = block.norm_eps
    vx_normed, ax_normed = rms_norm(vx, eps), rms_norm(ax, eps)
    video_table, audio_table = block.scale_shift_table_a2v_ca_video, block.scale_shift_table_a2v_ca_audio
    if plan.a2v != SKIP:
        scale_v, shift_v, gate = av_ada_values(video_table, vx.shape[0], video.cross_scale_shift_timestep,
                                               video.cross_gate_timestep, slice(0, 2))  # fmt: skip
        scale_a, shift_a, _ = av_ada_values(audio_table, ax.shape[0], audio.cross_scale_shift_timestep,
                                            audio.cross_gate_timestep, slice(0, 2))  # fmt: skip
        query, context = vx_normed * (1 + scale_v) + shift_v, ax_normed * (1 + scale_a) + shift_a
        out = attention(block.audio_to_video_attn, query, kernels, kernels.a2v, context=context, pe=video.cross_pe,
                        k_pe=audio.cross_pe)  # fmt: skip
        out = out * gate
        vx = vx + (out * masks.a2v if plan.a2v == MIXED else out)
    if plan.v2a != SKIP:
        scale_a, shift_a, gate = av_ada_values(audio_table, ax.shape[0], audio.cross_scale_shift_timestep,
                                               audio.cross_gate_timestep, slice(2, 4))  # fmt: skip
        scale_v, shift_v, _ = av_ada_values(video_table, vx.shape[0], video.cross_scale_shift_timestep,
                                            video.cross_gate_timestep, slice(2, 4))  # fmt: skip
        query, context = ax_normed * (1 + scale_a) + shift_a, vx_normed * (1 + scale_v) + shift_v
        out = attention(block.video_to_audio_attn, query, kernels, kernels.v2a, context=context, pe=audio.cross_pe,
                        k_pe=video.cross_pe)  # fmt: skip
        out = out * gate
        ax = ax + (out * masks.v2a if plan.v2a == MIXED else out)
    return vx, ax


def fused_block_forward(
    block: BasicAVTransformerBlock,
    vx: torch.Tensor | None,
    ax: torch.Tensor | None,
    video: Stream | None,
    audio: Stream | None,
    plan: BlockPlan,
    masks: BlockMasks,
    kernels: Kernels,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """One block on hidden states ``vx``/``ax``: what ``block(video, audio, perturbations)`` computes.

    (ltx-core multiplies the audio<->video terms by an all-ones mask when no sample cuts them; a
    product with 1 changes nothing, so here they are multiplied only where samples differ.)
    """
    if plan.video:
        vx = _self_and_text(block, vx, video, False, plan.video_self, masks.video_self, kernels)
    if plan.audio:
        ax = _self_and_text(block, ax, audio, True, plan.audio_self, masks.audio_self, kernels)
    if plan.cross_modal:
        vx, ax = _cross_modal(block, vx, ax, video, audio, plan, masks, kernels)
    if plan.video:
        vx = _feed_forward(block, vx, video, False, kernels)
    if plan.audio:
        ax = _feed_forward(block, ax, audio, True, kernels)
    return vx, ax


__all__ = ["Stream", "fused_block_forward", "stream_of"]
