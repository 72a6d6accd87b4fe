"""The elementwise and attention pieces of a transformer block, as plain functions.

Each one does exactly the arithmetic of its ltx-core counterpart (same ops, same order), so run
eagerly they give ltx-core's numbers bit for bit. They are written as straight-line torch code
with no Python decisions on tensor values, so inside ``torch.compile`` inductor fuses each chain
into one kernel: RMSNorm with its AdaLN shift/scale (and, with FP8, the activation quantization),
q/k RMSNorm with RoPE, gate times output plus residual, bias with GELU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from ltx_core.model.transformer import attention as attention_module
from ltx_core.model.transformer.attention import Attention, AttentionFunction, PytorchAttention
from ltx_core.model.transformer.rope import LTXRopeType
from torch.nn import functional as F  # noqa: N812
from torch.nn.attention import SDPBackend, sdpa_kernel

from ltx_pipelines.acceleration import attention_8bit
from ltx_pipelines.acceleration.fp8_matmul import fp8_project
from ltx_pipelines.models.fp8 import FP8ScaledLinear

#: SDPA backends by the names the benchmarks and the engine use.
BACKENDS = {
    "flash": SDPBackend.FLASH_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "math": SDPBackend.MATH,
}
SDPA_BACKENDS = tuple(BACKENDS)
#: The block's own attention function rather than SDPA (ltx-core picks xformers where installed).
OWN_ATTENTION = "own"
#: The 8-bit attention kernel (``attention_8bit``; unmasked attention only).
EIGHT_BIT = "8bit"


def uses_sdpa(attn: Attention) -> bool:
    """Whether this attention's function is PyTorch SDPA (what the fused forward restates)."""
    function = attn.attention_function
    if function is AttentionFunction.PYTORCH or isinstance(function, PytorchAttention):
        return True
    return function is AttentionFunction.DEFAULT and attention_module.memory_efficient_attention is None


@dataclass(frozen=True)
class Kernels:
    """How a block's matmuls and attentions run (static: part of a compiled variant's key).

    ``fp8_in_graph``: FP8 layers quantize their input with torch ops (fusable) instead of calling
    their own forward; ``fp8_native``: with ``torch._scaled_mm`` (else exact float32 emulation).
    Attention backends per attention of the block: None for PyTorch's SDPA pick, an SDPA backend
    name, or ``OWN_ATTENTION`` for the block's own function (see :func:`sdpa`).
    """

    fp8_in_graph: bool = False
    fp8_native: bool = False
    video_self: str | None = None
    video_text: str | None = None
    audio_self: str | None = None
    audio_text: str | None = None
    a2v: str | None = None
    v2a: str | None = None


# -- norms and modulation ----------------------------------------------------------------------------


def rms_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """ltx-core's weightless RMSNorm over the last dimension."""
    return F.rms_norm(x, (x.shape[-1],), eps=eps)


def modulate(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, eps: float) -> torch.Tensor:
    """AdaLN: RMSNorm, then ``* (1 + scale) + shift``."""
    return rms_norm(x, eps) * (1 + scale) + shift


def ada_values(table: torch.Tensor, batch: int, timestep: torch.Tensor, indices: slice) -> tuple[torch.Tensor, ...]:
    """Rows ``indices`` of a block's scale-shift table plus the timestep embedding (per token or per sample)."""
    count = table.shape[0]
    rows = table[indices].unsqueeze(0).unsqueeze(0).to(device=timestep.device, dtype=timestep.dtype)
    return (rows + timestep.reshape(batch, timestep.shape[1], count, -1)[:, :, indices, :]).unbind(dim=2)


def av_ada_values(
    table: torch.Tensor, batch: int, scale_shift_timestep: torch.Tensor, gate_timestep: torch.Tensor, indices: slice
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(scale, shift, gate) of an audio<->video cross-attention: 4 scale/shift rows, then the gate row."""
    scale, shift = ada_values(table[:4, :], batch, scale_shift_timestep, indices)
    (gate,) = ada_values(table[4:, :], batch, gate_timestep, slice(None, None))
    return scale, shift, gate


# -- rotary embeddings -------------------------------------------------------------------------------


def rope_interleaved(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (2i, 2i+1)."""
    first, second = x.unflatten(-1, (-1, 2)).unbind(dim=-1)
    rotated = torch.stack((-second, first), dim=-1).flatten(-2)
    return x * cos + rotated * sin


def rope_split(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel i with channel i + d/2 of each head (cos/sin per head: ``[B, H, T, d/2]``)."""
    per_head = x.ndim != 4 and cos.ndim == 4
    if per_head:
        batch, heads, tokens, _ = cos.shape
        x = x.reshape(batch, tokens, heads, -1).swapaxes(1, 2)
    halves = x.unflatten(-1, (2, -1))
    first, second = halves[..., :1, :], halves[..., 1:, :]
    cos, sin = cos.unsqueeze(-2), sin.unsqueeze(-2)
    scaled = halves * cos
    out = torch.cat(
        (torch.addcmul(scaled[..., :1, :], -sin, second), torch.addcmul(scaled[..., 1:, :], sin, first)), dim=-2
    ).flatten(-2)
    if per_head:
        out = out.swapaxes(1, 2).reshape(batch, tokens, -1)
    return out


def rope(x: torch.Tensor, pe: tuple[torch.Tensor, torch.Tensor], rope_type: LTXRopeType) -> torch.Tensor:
    cos, sin = pe
    return rope_interleaved(x, cos, sin) if rope_type == LTXRopeType.INTERLEAVED else rope_split(x, cos, sin)


# -- projections and attention -------------------------------------------------------------------------


def project(x: torch.Tensor, layers: list[torch.nn.Module], kernels: Kernels) -> list[torch.Tensor]:
    """Apply linears to one input; FP8 layers share one quantization of it when ``fp8_in_graph``."""
    fp8 = [layer for layer in layers if isinstance(layer, FP8ScaledLinear)] if kernels.fp8_in_graph else []
    if not fp8:
        return [layer(x) for layer in layers]
    quantized = iter(fp8_project(x, fp8, kernels.fp8_native))
    return [next(quantized) if isinstance(layer, FP8ScaledLinear) else layer(x) for layer in layers]


def sdpa(attn: Attention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
         backend: str | None) -> torch.Tensor:  # fmt: skip
    """Multi-head attention on ``[B, T, H*d]`` tensors, as ltx-core's PyTorch attention computes it.

    ``backend``: None for PyTorch's own SDPA pick, an SDPA backend name to force one, ``"own"`` for the
    block's own attention function (xformers, FlashAttention 3: eager only), or ``"8bit"`` for the 8-bit kernel.
    """
    if backend == OWN_ATTENTION:
        return attn.attention_function(q, k, v, attn.heads, mask)
    batch, heads = q.shape[0], attn.heads
    head_dim = q.shape[-1] // heads
    if backend == EIGHT_BIT and mask is None:  # the kernel takes the block's [B, T, H, d] layout as it is
        q, k, v = (t.reshape(batch, -1, heads, head_dim) for t in (q, k, v))
        return attention_8bit.attention(q, k, v).reshape(batch, -1, heads * head_dim)
    q, k, v = (t.view(batch, -1, heads, head_dim).transpose(1, 2) for t in (q, k, v))
    if mask is not None:
        if mask.ndim == 2:
            mask = mask.unsqueeze(0)
        if mask.ndim == 3:
            mask = mask.unsqueeze(1)
    if backend not in BACKENDS:  # None: PyTorch's pick (also for a masked attention given the 8-bit kernel)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    else:
        with sdpa_kernel([BACKENDS[backend]]):
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return out.transpose(1, 2).reshape(batch, -1, heads * head_dim)


def attention(
    attn: Attention,
    x: torch.Tensor,
    kernels: Kernels,
    backend: str | None,
    *,
    context: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    pe: tuple[torch.Tensor, torch.Tensor] | None = None,
    k_pe: tuple[torch.Tensor, torch.Tensor] | None = None,
    skip: bool = False,
    keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """ltx-core's ``Attention.forward`` with its perturbation made explicit.

    ``skip``: every sample bypasses attention (the value projection passes through, q/k are not
    computed); ``keep``: a per-sample 0/1 mask blending attention (1) with that bypass (0).
    """
    source = x if context is None else context
    if skip:
        (v,) = project(source, [attn.to_v], kernels)
        out = v
    else:
        if context is None:
            v, q, k = project(x, [attn.to_v, attn.to_q, attn.to_k], kernels)
        else:
            v, k = project(source, [attn.to_v, attn.to_k], kernels)
            (q,) = project(x, [attn.to_q], kernels)
        q = F.rms_norm(q, attn.q_norm.normalized_shape, attn.q_norm.weight, attn.q_norm.eps)
        k = F.rms_norm(k, attn.k_norm.normalized_shape, attn.k_norm.weight, attn.k_norm.eps)
        if pe is not None:
            q = rope(q, pe, attn.rope_type)
            k = rope(k, pe if k_pe is None else k_pe, attn.rope_type)
        out = sdpa(attn, q, k, v, mask, backend)
        if keep is not None:
            out = out * keep + v * (1 - keep)
    if attn.to_gate_logits is not None:  # LTX-2.3: per-head gates, 2 * sigmoid so that zero init is identity
        batch, tokens, _ = out.shape
        gates = 2.0 * torch.sigmoid(attn.to_gate_logits(x))
        out = (out.view(batch, tokens, attn.heads, attn.dim_head) * gates.unsqueeze(-1)).view(batch, tokens, -1)
    (result,) = project(out, [attn.to_out[0]], kernels)
    return result


def feed_forward(ff: torch.nn.Module, x: torch.Tensor, kernels: Kernels) -> torch.Tensor:
    """Linear, tanh-approximated GELU, linear (ltx-core's FeedForward)."""
    (hidden,) = project(x, [ff.net[0].proj], kernels)
    (out,) = project(F.gelu(hidden, approximate="tanh"), [ff.net[2]], kernels)
    return out


__all__ = [
    "BACKENDS",
    "EIGHT_BIT",
    "OWN_ATTENTION",
    "SDPA_BACKENDS",
    "Kernels",
    "ada_values",
    "attention",
    "av_ada_values",
    "feed_forward",
    "modulate",
    "project",
    "rms_norm",
    "rope",
    "rope_interleaved",
    "rope_split",
    "sdpa",
    "uses_sdpa",
]
