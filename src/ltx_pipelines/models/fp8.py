"""FP8 transformer linears that run on PyTorch's own ``torch._scaled_mm`` (no TensorRT-LLM).

ltx-core's ``QuantizationPolicy.fp8_scaled_mm()`` needs TensorRT-LLM kernels and a checkpoint
that was quantized ahead of time. This module does the same job with stock PyTorch on a normal
bf16 checkpoint:

* the linears of ``transformer_blocks`` (``to_q/to_k/to_v/to_out.0/ff.net.0.proj/ff.net.2``, the
  set ltx-core's ``TRANSFORMER_LINEAR_DOWNCAST_MAP`` downcasts) keep their weight in
  ``float8_e4m3fn`` with one float32 scale per output channel (``<name>.weight_scale``);
* :class:`FP8ScaledLinear` quantizes its input per token (row) on the fly and multiplies with
  ``torch._scaled_mm`` (CUDA compute capability >= 8.9: Ada, Hopper, Blackwell);
* elsewhere (CPU, older GPUs) it dequantizes the weight and multiplies in the input dtype: the
  same results up to the activation rounding, FP8 memory savings, but no speed-up.

Use it with ``quantization=fp8_scaled_mm_policy()`` (or ``--quantization fp8-scaled-mm``). A
``QuantizationPolicy.fp8_scaled_mm()`` object from ltx-core (which raises ImportError without
``tensorrt_llm``) is recognised by the model ledger and replaced by this one.

Weight layout: ``weight`` is ``W.T`` (shape ``[in_features, out_features]``, column-major), the
operand layout ``torch._scaled_mm`` wants and the one ltx-core's LoRA fusion assumes for
"scaled FP8" weights (it dequantizes ``weight.t() * weight_scale``), so even LoRAs fused by a
bare ``SingleGPUModelBuilder`` come out right. The model ledger does better: with LoRAs it fuses
them into the bf16 weights first and quantizes once, while each layer loads.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import replace
from functools import lru_cache

import torch
from ltx_core.loader import LoraPathStrengthAndSDOps
from ltx_core.loader.module_ops import ModuleOps
from ltx_core.loader.sd_ops import KeyValueOperationResult, SDOps
from ltx_core.model.transformer import LTXModel
from ltx_core.quantization import QuantizationPolicy
from torch import nn

logger = logging.getLogger(__name__)

FP8_DTYPE = torch.float8_e4m3fn
FP8_MAX = float(torch.finfo(FP8_DTYPE).max)  # 448
_FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
# Smallest amax we divide by: keeps all-zero rows finite (0 * 448/1e-12 = 0) without overflow.
_MIN_AMAX = 1e-12

#: Which linears are quantized: module names under ``BLOCKS_PREFIX`` ending with one of these.
BLOCKS_PREFIX = "transformer_blocks."
TARGET_SUFFIXES = (".to_q", ".to_k", ".to_v", ".to_out.0", "ff.net.0.proj", "ff.net.2")

#: ``ModuleOps.name`` of our policy, and of ltx-core's TensorRT-LLM one (recognised and replaced).
MODULE_OPS_NAME = "ltx_pipelines_fp8_scaled_mm"
SD_OPS_NAME = "ltx_pipelines_fp8_scaled_mm_quantize"
LTX_CORE_SCALED_MM_OPS_NAME = "fp8_prepare_for_loading"


def is_fp8_target(module_name: str) -> bool:
    """Whether a linear (by its name in LTXModel) is stored in FP8 under this policy."""
    return module_name.startswith(BLOCKS_PREFIX) and module_name.endswith(TARGET_SUFFIXES)


# -- device support ------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _cuda_fp8_capable(index: int) -> bool:
    return hasattr(torch, "_scaled_mm") and torch.cuda.get_device_capability(index) >= (8, 9)


def fp8_matmul_supported(device: torch.device | str) -> bool:
    """True where ``torch._scaled_mm`` runs FP8 natively (CUDA, compute capability >= 8.9)."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    return _cuda_fp8_capable(device.index if device.index is not None else torch.cuda.current_device())


_warned_devices: set[str] = set()


def warn_if_no_native_fp8(device: torch.device | str) -> bool:
    """Log once per device when FP8 scaled-mm must run its slow fallback; returns True if native."""
    device = torch.device(device)
    if fp8_matmul_supported(device):
        return True
    if str(device) not in _warned_devices:
        _warned_devices.add(str(device))
        logger.warning(
            "fp8-scaled-mm: native FP8 matmul (torch._scaled_mm) is not available on %s (it needs a CUDA GPU "
            "of compute capability 8.9 or newer). Running the slower fallback: weights stay FP8 in memory but "
            "are dequantized for every matmul, so this saves memory but is slower than no quantization.",
            device,
        )
    return False


# -- quantization ----------------------------------------------------------------------------------


def quantize_weight_rowwise(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[out, in]`` float weight -> (FP8 ``[out, in]``, float32 scale ``[out, 1]``); W ~= q * scale."""
    w = weight.detach().to(torch.float32)
    scale = w.abs().amax(dim=1, keepdim=True).clamp_(min=_MIN_AMAX) / FP8_MAX
    q = (w / scale).clamp_(-FP8_MAX, FP8_MAX).to(FP8_DTYPE)
    return q, scale


def quantize_activation_rowwise(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[M, K]`` activations -> (FP8 ``[M, K]``, float32 scale ``[M, 1]``), one scale per token.

    On CUDA one fused Triton kernel (read x once, write FP8 and scales): the plain PyTorch
    version costs as much as a third of the FP8 matmul it feeds. Both give the same numbers.
    """
    if x.is_cuda and x.shape[0] > 0:
        kernel = _triton_rowwise_quantizer()
        if kernel is not None:
            try:
                return kernel(x)
            except Exception as e:  # noqa: BLE001 - any Triton failure: fall back, once, loudly
                _TRITON["fn"] = None
                logger.warning("fp8-scaled-mm: the Triton quantization kernel failed (%s); using PyTorch ops.", e)
    return quantize_activation_rowwise_torch(x)


def quantize_activation_rowwise_torch(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The same as :func:`quantize_activation_rowwise` in plain PyTorch ops (any device).

    A max-abs reduction, then one multiply that writes FP8 directly (computed in float32, so
    nothing exceeds 448 and no temporary of x's size is made).
    """
    amax = torch.linalg.vector_norm(x, float("inf"), dim=1, keepdim=True).to(torch.float32)
    amax = amax.clamp_(min=_MIN_AMAX)
    q = torch.empty(x.shape, dtype=FP8_DTYPE, device=x.device)
    torch.mul(x, FP8_MAX / amax, out=q)
    return q, amax / FP8_MAX


_TRITON: dict[str, object] = {}


def _triton_rowwise_quantizer() -> callable | None:
    """Build the fused per-row quantization kernel on first use; None where Triton is unusable."""
    if "fn" in _TRITON:
        return _TRITON["fn"]
    _TRITON["fn"] = None
    try:
        import triton
        import triton.language as tl
    except ImportError:
        return None

    @triton.jit
    def quantize_rows(x_ptr, q_ptr, s_ptr, K, stride_x, stride_q, fp8_max, min_amax,  # noqa: ANN001, N803
                      BLOCK: tl.constexpr, ONE_BLOCK: tl.constexpr):  # fmt: skip
        row = tl.program_id(0).to(tl.int64)
        x_row, q_row = x_ptr + row * stride_x, q_ptr + row * stride_q
        offs = tl.arange(0, BLOCK)
        if ONE_BLOCK:  # the whole row fits in registers: read it once
            mask = offs < K
            v = tl.load(x_row + offs, mask=mask, other=0.0).to(tl.float32)
            amax = tl.maximum(tl.max(tl.abs(v), axis=0), min_amax)
            tl.store(q_row + offs, (v * (fp8_max / amax)).to(tl.float8e4nv), mask=mask)
        else:
            acc = tl.zeros([BLOCK], dtype=tl.float32)
            for start in range(0, K, BLOCK):
                v = tl.load(x_row + start + offs, mask=start + offs < K, other=0.0)
                acc = tl.maximum(acc, tl.abs(v.to(tl.float32)))
            amax = tl.maximum(tl.max(acc, axis=0), min_amax)
            inv = fp8_max / amax
            for start in range(0, K, BLOCK):
                mask = start + offs < K
                v = tl.load(x_row + start + offs, mask=mask, other=0.0).to(tl.float32)
                tl.store(q_row + start + offs, (v * inv).to(tl.float8e4nv), mask=mask)
        tl.store(s_ptr + row, amax / fp8_max)

    def run(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.stride(1) != 1:
            x = x.contiguous()
        rows, k = x.shape
        q = torch.empty((rows, k), dtype=FP8_DTYPE, device=x.device)
        scale = torch.empty((rows, 1), dtype=torch.float32, device=x.device)
        block = min(triton.next_power_of_2(k), 16384)
        warps = 4 if block <= 2048 else 8 if block <= 8192 else 16
        quantize_rows[(rows,)](
            x, q, scale, k, x.stride(0), q.stride(0), FP8_MAX, _MIN_AMAX,
            BLOCK=block, ONE_BLOCK=block >= k, num_warps=warps,
        )  # fmt: skip
        return q, scale

    _TRITON["fn"] = run
    return run


class FP8ScaledLinear(nn.Module):
    """``y = x W^T + b`` with W in float8_e4m3fn and one float32 scale per output channel.

    ``weight`` holds ``W.T`` (``[in_features, out_features]``, column-major) and ``weight_scale``
    is ``[out_features, 1]``: ``W ~= weight.t() * weight_scale``. Loading accepts a float ``[out, in]``
    weight too (quantized here, e.g. after LoRA fusion) and a single per-tensor scale.
    """

    #: cuBLAS "fast accumulation": the FP8 matmul ~20% faster on an H100 (6144x4096x16384), and on the
    #: 19B transformer no measurable change in error (X0 rel. error 0.0449 vs 0.0452). Class-wide switch.
    use_fast_accum: bool = True

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        bias_dtype: torch.dtype | None = None,
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        weight = torch.empty((out_features, in_features), dtype=FP8_DTYPE, device=device).t()
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.weight_scale = nn.Parameter(
            torch.ones((out_features, 1), dtype=torch.float32, device=device), requires_grad=False
        )
        if bias:
            self.bias = nn.Parameter(torch.zeros(out_features, dtype=bias_dtype, device=device), requires_grad=False)
        else:
            self.register_parameter("bias", None)

    @classmethod
    def like(cls, linear: nn.Linear) -> "FP8ScaledLinear":
        """An unloaded FP8 twin of ``linear`` (same device, e.g. meta, and bias dtype)."""
        bias = linear.bias
        return cls(
            linear.in_features,
            linear.out_features,
            bias=bias is not None,
            device=linear.weight.device,
            bias_dtype=bias.dtype if bias is not None else None,
        )

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> "FP8ScaledLinear":
        """Quantize a materialised ``nn.Linear`` (its float weight is not kept)."""
        module = cls.like(linear)
        q, scale = quantize_weight_rowwise(linear.weight)
        module.weight = nn.Parameter(q.t(), requires_grad=False)
        module.weight_scale = nn.Parameter(scale, requires_grad=False)
        if linear.bias is not None:
            module.bias = nn.Parameter(linear.bias.detach(), requires_grad=False)
        return module

    def dequantized_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The ``[out, in]`` weight this layer multiplies by."""
        return (self.weight.t().to(torch.float32) * self.weight_scale).to(dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, fp8"

    # -- loading ---------------------------------------------------------------------------------

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object, **kwargs: object) -> None:
        """Bring whatever form the weight arrives in to ours before the normal load runs."""
        weight_key, scale_key = f"{prefix}weight", f"{prefix}weight_scale"
        weight = state_dict.get(weight_key)
        if weight is not None and weight.dtype not in _FP8_DTYPES:
            # A float [out, in] weight (LoRAs already fused into it): quantize it now.
            q, scale = quantize_weight_rowwise(weight)
            state_dict[weight_key], state_dict[scale_key] = q.t(), scale
        elif weight is not None:
            if tuple(weight.shape) != (self.in_features, self.out_features):
                weight = weight.t()  # an [out, in] FP8 weight
            state_dict[weight_key] = weight.to(FP8_DTYPE)
            scale = state_dict.get(scale_key)
            if scale is None:
                scale = torch.ones((), device=weight.device)
            if scale.numel() == 1:  # one scale for the whole tensor (e.g. ltx-core's LoRA re-quantization)
                scale = scale.reshape(1, 1).expand(self.out_features, 1)
            state_dict[scale_key] = scale.reshape(self.out_features, 1).to(torch.float32).contiguous()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # -- forward ---------------------------------------------------------------------------------

    def _native(self, x: torch.Tensor) -> bool:
        return (
            x.is_cuda
            and x.dtype in (torch.bfloat16, torch.float16)
            and self.in_features % 16 == 0
            and self.out_features % 16 == 0
            and fp8_matmul_supported(x.device)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._native(x):
            if x.is_cuda:
                warn_if_no_native_fp8(x.device)
            bias = self.bias.to(x.dtype) if self.bias is not None else None
            return nn.functional.linear(x, self.dequantized_weight(x.dtype), bias)
        if self.weight.stride(0) != 1:  # someone made it row-major; _scaled_mm wants column-major
            self.weight.data = self.weight.data.t().contiguous().t()
        shape = x.shape
        xq, x_scale = quantize_activation_rowwise(x.reshape(-1, self.in_features))
        bias = self.bias
        fuse_bias = bias is not None and bias.dtype == x.dtype
        out = torch._scaled_mm(
            xq,
            self.weight,
            scale_a=x_scale,
            scale_b=self.weight_scale.view(1, -1),
            bias=bias if fuse_bias else None,
            out_dtype=x.dtype,
            use_fast_accum=self.use_fast_accum,
        )
        if bias is not None and not fuse_bias:
            out = out + bias.to(out.dtype)
        return out.view(*shape[:-1], self.out_features)


# -- module surgery --------------------------------------------------------------------------------


def _replace_linears(model: nn.Module, make: callable) -> nn.Module:
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Linear) and is_fp8_target(name):
            parent_name, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent_name), attr, make(module))
    return model


def prepare_fp8_scaled_mm(model: nn.Module) -> nn.Module:
    """Swap the target linears of an unloaded (meta) model for unloaded FP8ScaledLinear twins."""
    return _replace_linears(model, FP8ScaledLinear.like)


def convert_to_fp8_scaled_mm(model: nn.Module) -> nn.Module:
    """Quantize the target linears of a built model in place (each float weight is freed as it goes)."""
    return _replace_linears(model, FP8ScaledLinear.from_linear)


def _quantize_weight_kv(key: str, value: torch.Tensor) -> list[KeyValueOperationResult]:
    """Quantize a target linear's weight while the checkpoint loads (one tensor at a time)."""
    if value.dim() != 2 or not is_fp8_target(key.removesuffix(".weight")):
        return [KeyValueOperationResult(key, value)]
    if value.dtype in _FP8_DTYPES:  # already FP8 in the file: [out, in] -> our [in, out]; its scale loads as is
        return [KeyValueOperationResult(key, value.t())]
    q, scale = quantize_weight_rowwise(value)
    return [KeyValueOperationResult(key, q.t()), KeyValueOperationResult(f"{key}_scale", scale)]


#: Quantizes during the state-dict load: peak memory stays near the FP8 size of the model.
FP8_SCALED_MM_SD_OPS = SDOps(SD_OPS_NAME).with_kv_operation(
    _quantize_weight_kv, key_prefix=BLOCKS_PREFIX, key_suffix=".weight"
)

FP8_SCALED_MM_MODULE_OPS = ModuleOps(
    name=MODULE_OPS_NAME,
    matcher=lambda model: isinstance(model, LTXModel),
    mutator=prepare_fp8_scaled_mm,
)


def fp8_scaled_mm_policy(quantize_on_load: bool = True) -> QuantizationPolicy:
    """FP8 weights + ``torch._scaled_mm`` for the transformer blocks' linears.

    ``quantize_on_load`` quantizes each weight as it is read (lowest peak memory); without it
    the float weights load first and each layer quantizes its own (what LoRA fusion needs).
    """
    return QuantizationPolicy(
        sd_ops=FP8_SCALED_MM_SD_OPS if quantize_on_load else None,
        module_ops=(FP8_SCALED_MM_MODULE_OPS,),
    )


def is_fp8_scaled_mm_policy(policy: QuantizationPolicy | None) -> bool:
    names = {op.name for op in policy.module_ops} if policy is not None else set()
    return bool(names & {MODULE_OPS_NAME, LTX_CORE_SCALED_MM_OPS_NAME})


def prepare_quantization(
    policy: QuantizationPolicy | None,
    device: torch.device | str,
    loras: tuple[LoraPathStrengthAndSDOps, ...] = (),
) -> QuantizationPolicy | None:
    """The policy to build the transformer with (what the model ledger calls before each build).

    * ltx-core's TensorRT-LLM ``fp8_scaled_mm`` policy is replaced by ours (same idea, stock PyTorch);
    * with LoRAs, ours loads float weights so LoRAs fuse exactly before the one quantization;
    * warns once when this device has no native FP8 matmul.
    """
    if not is_fp8_scaled_mm_policy(policy):
        return policy
    if LTX_CORE_SCALED_MM_OPS_NAME in {op.name for op in policy.module_ops}:
        logger.info("Using ltx_pipelines' FP8 scaled-mm (torch._scaled_mm) in place of ltx-core's TensorRT-LLM one.")
        policy = fp8_scaled_mm_policy()
    if any(lora.strength != 0 for lora in loras) and policy.sd_ops is not None and policy.sd_ops.name == SD_OPS_NAME:
        policy = replace(policy, sd_ops=None)
    warn_if_no_native_fp8(device)
    return policy


def route_ltx_core_fp8_scaled_mm_to_ours() -> None:
    """Make ``QuantizationPolicy.fp8_scaled_mm()`` work without TensorRT-LLM.

    The documented Python API passes ``quantization=QuantizationPolicy.fp8_scaled_mm()``;
    ltx-core's classmethod raises ImportError when TensorRT-LLM is missing, before any of our
    code runs. Where TensorRT-LLM is absent, the classmethod returns our policy instead (where it
    is installed, ltx-core's policy is left alone and the ledger still swaps in ours).
    """
    if importlib.util.find_spec("tensorrt_llm") is not None:
        return
    if getattr(QuantizationPolicy.fp8_scaled_mm, "_ltx_pipelines", False):
        return

    def fp8_scaled_mm(cls: type[QuantizationPolicy]) -> QuantizationPolicy:  # noqa: ARG001
        return fp8_scaled_mm_policy()

    fp8_scaled_mm._ltx_pipelines = True
    QuantizationPolicy.fp8_scaled_mm = classmethod(fp8_scaled_mm)


__all__ = [
    "FP8ScaledLinear",
    "route_ltx_core_fp8_scaled_mm_to_ours",
    "convert_to_fp8_scaled_mm",
    "fp8_matmul_supported",
    "fp8_scaled_mm_policy",
    "is_fp8_scaled_mm_policy",
    "prepare_quantization",
    "quantize_activation_rowwise",
    "quantize_activation_rowwise_torch",
    "quantize_weight_rowwise",
]
