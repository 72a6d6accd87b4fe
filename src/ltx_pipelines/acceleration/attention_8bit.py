"""8-bit attention (``--attention 8bit``): the self-attentions through a quantized attention kernel.

At 24 576 video tokens attention is ~40 % of a pass and runs in bf16 at ~650 TFLOP/s; an 8-bit kernel can do the
Q·Kᵀ product at twice the tensor-core rate. Which packages qualify (wheels for torch 2.11 / Python 3.12 / Hopper,
small enough to carry) is in benchmarks/RESULTS.md; today that is SageAttention 1 (``sageattention``: Triton
kernels, Q and K quantized to INT8 per block with K smoothed by its mean, P·V in fp16), the only one of
``flashinfer-python`` (a 101 MB wheel that compiles its kernels with nvcc on first use), ``flash-attn-4`` (FP8
on Blackwell only) and ``sageattention`` that installs from a wheel and runs FP8/INT8 on an H100.

The kernel is wrapped as a PyTorch custom op, so a compiled block keeps it as one opaque call (dynamo does not
trace into the package), registered on first use (nothing happens at import). Only unmasked attention of head
dimension 64 or 128 takes it; other shapes (the prompt cross-attentions with a padding mask) keep SDPA.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable

import torch

from ltx_pipelines.acceleration.options import attention_8bit_package

#: Head dimensions the kernel is used for (the model's: 128 video, 64 audio).
HEAD_DIMS = (64, 128)
OP_NAME = "ltx_pipelines::attention_8bit"


def qualifies(head_dim: int, masked: bool, device: str, dtype: torch.dtype) -> bool:
    """Whether an attention of this shape may run through the 8-bit kernel."""
    return device.startswith("cuda") and not masked and head_dim in HEAD_DIMS and dtype in (torch.bfloat16,
                                                                                            torch.float16)  # fmt: skip


def _kernel() -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """The installed package's attention on ``[B, T, H, d]`` tensors (the block's own layout: no transposes)."""
    package = attention_8bit_package()
    if package is None:
        raise RuntimeError("no 8-bit attention package is installed (pip install sageattention)")
    module = importlib.import_module(package)
    return lambda q, k, v: module.sageattn(q, k, v, tensor_layout="NHD", is_causal=False)


@functools.cache
def loaded_kernel() -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """The kernel, imported once (on the op's first call, not at registration)."""
    return _kernel()


@functools.cache
def attention_op() -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """The custom op (registered once per process): ``[B, T, H, d]`` q, k, v -> contiguous ``[B, T, H, d]`` output
    (contiguous as the fake says, so a compiled graph's assumptions about its strides hold)."""

    @torch.library.custom_op(OP_NAME, mutates_args=())
    def attention_8bit(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return loaded_kernel()(q.contiguous(), k.contiguous(), v.contiguous()).contiguous()

    @attention_8bit.register_fake
    def _(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return q.new_empty(q.shape[:-1] + (v.shape[-1],))

    return attention_8bit


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Attention of ``[B, T, H, d]`` tensors through the registered op (``attention_op()`` must have run: the
    chooser registers it before any block uses it, so a compiled graph sees a plain ``torch.ops`` call)."""
    return torch.ops.ltx_pipelines.attention_8bit(q, k, v)


__all__ = ["HEAD_DIMS", "OP_NAME", "attention", "attention_op", "loaded_kernel", "qualifies"]
