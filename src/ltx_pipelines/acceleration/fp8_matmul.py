"""FP8 matmuls written in plain torch ops, for use inside a compiled transformer block.

``models.fp8.FP8ScaledLinear`` quantizes its input in a separate Triton kernel: one more read and
write of every activation, which is why FP8 gained only ~1.1x per pass. Here the per-token
quantization is ordinary torch code (max-abs per row, scale, cast), so inside ``torch.compile``
inductor fuses it into the kernel that produced the activation (the RMSNorm + AdaLN modulation
before q/k/v and the first feed-forward matmul, the GELU before the second). The weights are the
ones ``FP8ScaledLinear`` holds: ``weight`` is ``W.T`` in float8_e4m3fn (column-major, what
``torch._scaled_mm`` wants), ``weight_scale`` one float32 scale per output channel.

Where ``torch._scaled_mm`` cannot run per-row scales (CPU, GPUs before compute capability 8.9),
:func:`fp8_project` computes the same quantized product exactly in float32: slower than bf16, but
the numbers the FP8 kernel approximates, which is what the CPU tests check.
"""

from __future__ import annotations

import torch

from ltx_pipelines.models.fp8 import _MIN_AMAX, FP8_DTYPE, FP8_MAX, FP8ScaledLinear


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[M, K]`` activations -> (FP8 ``[M, K]``, float32 ``[M, 1]`` scales): one scale per token.

    The same arithmetic as ``models.fp8.quantize_activation_rowwise`` (max-abs / 448, multiply in
    float32, cast), in ops inductor can fuse with whatever computed ``x``.
    """
    amax = x.abs().amax(dim=1, keepdim=True).to(torch.float32).clamp(min=_MIN_AMAX)
    q = (x.to(torch.float32) * (FP8_MAX / amax)).to(FP8_DTYPE)
    return q, amax / FP8_MAX


def scaled_matmul(
    q: torch.Tensor, scale: torch.Tensor, layer: FP8ScaledLinear, out_dtype: torch.dtype, native: bool
) -> torch.Tensor:
    """``(q * scale) @ W.T + b`` for quantized rows ``q``, with ``torch._scaled_mm`` where it runs."""
    bias = layer.bias
    if native and layer.in_features % 16 == 0 and layer.out_features % 16 == 0:
        fuse_bias = bias is not None and bias.dtype == out_dtype
        out = torch._scaled_mm(
            q,
            layer.weight,
            scale_a=scale,
            scale_b=layer.weight_scale.view(1, -1),
            bias=bias if fuse_bias else None,
            out_dtype=out_dtype,
            use_fast_accum=FP8ScaledLinear.use_fast_accum,
        )
        if bias is not None and not fuse_bias:
            out = out + bias.to(out_dtype)
        return out
    # Exact emulation: the integer-valued FP8 codes times their scales, accumulated in float32.
    out = torch.mm(q.to(torch.float32), layer.weight.to(torch.float32))
    out = out * scale * layer.weight_scale.view(1, -1)
    if bias is not None:
        out = out + bias.to(torch.float32)
    return out.to(out_dtype)


def fp8_project(x: torch.Tensor, layers: list[FP8ScaledLinear], native: bool) -> list[torch.Tensor]:
    """Every layer applied to the same input, which is quantized once (q, k and v share it)."""
    flat = x.reshape(-1, x.shape[-1])
    q, scale = quantize_rows(flat)
    return [scaled_matmul(q, scale, layer, x.dtype, native).view(*x.shape[:-1], layer.out_features) for layer in layers]


__all__ = ["fp8_project", "quantize_rows", "scaled_matmul"]
