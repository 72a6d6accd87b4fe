"""FP8 transformer weights: ltx-core's fp8-cast and our fp8-scaled-mm (torch._scaled_mm, CPU fallback here).

The native FP8 matmul needs a CUDA GPU of compute capability >= 8.9; these tests run the
dequantize-and-matmul fallback and check everything around it (quantization, loading, LoRAs,
the ledger and the CLI). benchmarks/fp8_transformer.py measures the native path on a GPU.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import ltx_core.loader  # noqa: F401  (ltx_core.quantization must not be imported first: circular import)
import pytest
import torch
from conftest import run_module
from helpers import lora_delta, probe_mp4
from ltx_core.loader import SDOps, SingleGPUModelBuilder
from ltx_core.model.transformer import LTXV_MODEL_COMFY_RENAMING_MAP, LTXModelConfigurator
from ltx_core.quantization import FP8_PREPARE_MODULE_OPS, FP8_TRANSPOSE_SD_OPS, QuantizationPolicy
from transformer_probe import relative_error, single_thread, transformer_outputs

from ltx_pipelines.engine.cli import quantization_from_arg
from ltx_pipelines.engine.model_ledger import ModelLedger, comfy_lora
from ltx_pipelines.models import fp8
from ltx_pipelines.models.fp8 import (
    FP8ScaledLinear,
    convert_to_fp8_scaled_mm,
    fp8_scaled_mm_policy,
    is_fp8_target,
    quantize_activation_rowwise,
    quantize_weight_rowwise,
)
from ltx_pipelines.smoke_model import SmokeBundle

PROBE = "transformer_blocks.3.attn1.to_q"  # adapted by the smoke LoRAs


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    with single_thread():
        yield


@pytest.fixture(autouse=True)
def _fresh_fallback_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fp8, "_warned_devices", set())


def _ledger(bundle: SmokeBundle, quantization: QuantizationPolicy | None, *loras: tuple[Path, float]) -> ModelLedger:
    return ModelLedger(
        bundle.checkpoint,
        loras=[comfy_lora(path, strength) for path, strength in loras],
        quantization=quantization,
        device="cpu",
    )


@pytest.fixture(scope="module")
def float_ledger(smoke_bundle: SmokeBundle) -> ModelLedger:
    return _ledger(smoke_bundle, None)


@pytest.fixture(scope="module")
def float_outputs(float_ledger: ModelLedger) -> tuple[torch.Tensor, torch.Tensor]:
    return transformer_outputs(float_ledger)


# -- the layer -------------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
def test_fp8_linear_fallback_is_close_to_the_float_linear(bias: bool) -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(512, 256, bias=bias)
    torch.nn.init.normal_(linear.weight, std=512**-0.5)
    x = torch.randn(2, 77, 512)
    expected = linear(x)
    layer = FP8ScaledLinear.from_linear(linear)
    assert layer.weight.dtype == torch.float8_e4m3fn and layer.weight.shape == (512, 256)
    assert layer.weight.stride(0) == 1  # column-major W.T, as torch._scaled_mm wants it
    assert layer.weight_scale.dtype == torch.float32 and layer.weight_scale.shape == (256, 1)
    actual = layer(x)
    assert actual.shape == expected.shape and actual.dtype == x.dtype
    assert relative_error(actual, expected) < 0.03


def test_weight_quantization_is_rowwise_and_bounded() -> None:
    torch.manual_seed(1)
    w = torch.randn(64, 128) * torch.logspace(-3, 1, 64)[:, None]  # rows of very different size
    w[5] = 0.0
    q, scale = quantize_weight_rowwise(w)
    assert q.dtype == torch.float8_e4m3fn and scale.shape == (64, 1)
    assert torch.equal(q.float().abs().amax(dim=1)[torch.arange(64) != 5], torch.full((63,), 448.0))
    restored = q.float() * scale
    assert torch.equal(restored[5], torch.zeros(128))
    # e4m3 keeps 3 mantissa bits: within 1/16 of each value (or half the smallest step near zero)
    assert bool(((restored - w).abs() <= w.abs() / 16 + scale * 2.0**-10 + 1e-12).all())


def test_activation_quantization_per_token() -> None:
    torch.manual_seed(2)
    x = torch.randn(33, 256, dtype=torch.bfloat16) * torch.logspace(-2, 2, 33, dtype=torch.bfloat16)[:, None]
    x[0] = 0.0
    xq, scale = quantize_activation_rowwise(x)
    assert xq.dtype == torch.float8_e4m3fn and scale.dtype == torch.float32 and scale.shape == (33, 1)
    assert not torch.isnan(xq.float()).any()
    assert torch.equal(xq[0].float(), torch.zeros(256))
    assert relative_error(xq.float() * scale, x.float()) < 0.03
    # What the GPU path computes (both operands in FP8) stays close on random data too.
    w = torch.randn(128, 256) / 16
    wq, w_scale = quantize_weight_rowwise(w)
    emulated = (xq.float() * scale) @ (wq.float() * w_scale).t()
    expected = x.float() @ w.t()
    assert relative_error(emulated, expected) < 0.05


def test_layer_loads_float_weights_and_per_tensor_scales() -> None:
    torch.manual_seed(3)
    linear = torch.nn.Linear(64, 32)
    reference = FP8ScaledLinear.from_linear(linear)
    # A float [out, in] weight (what LoRA fusion leaves) is quantized while it loads...
    from_float = FP8ScaledLinear(64, 32)
    from_float.load_state_dict(linear.state_dict())
    assert torch.equal(from_float.dequantized_weight(), reference.dequantized_weight())
    # ...and ltx-core's per-tensor re-quantized form ([in, out] FP8, one scale) is accepted too.
    q, scale = reference.weight.float(), reference.weight_scale
    per_tensor = scale.max()
    weight = (q * scale.t() / per_tensor).to(torch.float8_e4m3fn)
    state = {"weight": weight, "weight_scale": per_tensor, "bias": linear.bias}
    from_fp8 = FP8ScaledLinear(64, 32)
    from_fp8.load_state_dict(state)
    assert from_fp8.weight_scale.shape == (32, 1)
    assert relative_error(from_fp8.dequantized_weight(), linear.weight.detach()) < 0.05


# -- the policy, through the model ledger ----------------------------------------------------------


def _check_fp8_modules(model: torch.nn.Module) -> int:
    model = getattr(model, "velocity_model", model)  # X0Model wraps the LTXModel
    converted = 0
    for name, module in model.named_modules():
        if isinstance(module, FP8ScaledLinear):
            assert is_fp8_target(name), name
            assert module.weight.dtype == torch.float8_e4m3fn
            assert module.weight_scale.dtype == torch.float32  # the ledger's dtype cast leaves scales alone
            converted += 1
        elif isinstance(module, torch.nn.Linear):
            assert not is_fp8_target(name), f"{name} was not converted"
            assert module.weight.dtype == torch.float32
    return converted


def test_fp8_scaled_mm_policy_builds_and_runs_the_transformer(
    smoke_bundle: SmokeBundle, float_outputs, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = _ledger(smoke_bundle, fp8_scaled_mm_policy())
    with caplog.at_level(logging.WARNING, logger="ltx_pipelines.models.fp8"):
        video, audio = transformer_outputs(ledger)
        ledger.release_all()
        transformer_outputs(ledger)  # a second build on the same device does not warn again
    assert _check_fp8_modules(ledger.get("transformer")) >= 30 * 6  # six per video block at least
    warnings = [r.getMessage() for r in caplog.records if "native FP8 matmul" in r.getMessage()]
    assert len(warnings) == 1 and "fallback" in warnings[0]
    assert relative_error(video, float_outputs[0]) < 0.1
    assert relative_error(audio, float_outputs[1]) < 0.1


def test_ltx_core_scaled_mm_policy_is_replaced_by_ours(smoke_bundle: SmokeBundle) -> None:
    # What QuantizationPolicy.fp8_scaled_mm() returns where tensorrt_llm is installed.
    ltx_core_policy = QuantizationPolicy(sd_ops=FP8_TRANSPOSE_SD_OPS, module_ops=(FP8_PREPARE_MODULE_OPS,))
    ledger = _ledger(smoke_bundle, ltx_core_policy)
    assert _check_fp8_modules(ledger.get("transformer")) >= 30 * 6


def test_cli_maps_fp8_scaled_mm_to_our_policy() -> None:
    policy = quantization_from_arg("fp8-scaled-mm")
    assert isinstance(policy, QuantizationPolicy)
    assert [op.name for op in policy.module_ops] == [fp8.MODULE_OPS_NAME]


def test_lora_is_fused_before_quantization(smoke_bundle: SmokeBundle, float_ledger: ModelLedger) -> None:
    lora = (smoke_bundle.distilled_lora, 2.0)
    # With LoRAs the ledger loads float weights (no quantizing sd_ops), fuses, then each layer quantizes once.
    assert fp8.prepare_quantization(fp8_scaled_mm_policy(), "cpu", (comfy_lora(*lora),)).sd_ops is None
    ledger = _ledger(smoke_bundle, fp8_scaled_mm_policy(), lora)
    layer = ledger.get("transformer").velocity_model.get_submodule(PROBE)
    assert isinstance(layer, FP8ScaledLinear)
    base = float_ledger.get("transformer").velocity_model.get_submodule(PROBE).weight.detach()
    fused = base + lora_delta(lora[0], PROBE, lora[1])
    actual = layer.dequantized_weight()
    assert relative_error(actual, fused) < 0.03  # one FP8 rounding of the fused weight
    assert (actual - fused).norm() < (actual - base).norm() / 3  # ...and the LoRA is clearly in it
    # The whole model: close to the float model with the same LoRA, not to the one without it.
    with_lora = transformer_outputs(ledger)
    float_with_lora = transformer_outputs(_ledger(smoke_bundle, None, lora))
    fp8_without_lora = transformer_outputs(_ledger(smoke_bundle, fp8_scaled_mm_policy()))
    for i in (0, 1):
        error = relative_error(with_lora[i], float_with_lora[i])
        assert error < 0.1
        assert relative_error(with_lora[i], fp8_without_lora[i]) > 2 * error


def test_bare_builder_lora_fusion_understands_our_layout(smoke_bundle: SmokeBundle, float_ledger: ModelLedger) -> None:
    """ltx-core's own fusion of LoRAs into "scaled FP8" weights (without the ledger) comes out right."""
    builder = SingleGPUModelBuilder(
        model_class_configurator=LTXModelConfigurator,
        model_path=str(smoke_bundle.checkpoint),
        model_sd_ops=SDOps("renaming+fp8", (*LTXV_MODEL_COMFY_RENAMING_MAP.mapping, *fp8.FP8_SCALED_MM_SD_OPS.mapping)),
        module_ops=fp8_scaled_mm_policy().module_ops,
        loras=(comfy_lora(smoke_bundle.distilled_lora, 2.0),),
    )
    model = builder.build(device=torch.device("cpu"))
    layer = model.get_submodule(PROBE)
    assert isinstance(layer, FP8ScaledLinear) and layer.weight_scale.shape == (layer.out_features, 1)
    base = float_ledger.get("transformer").velocity_model.get_submodule(PROBE).weight.detach()
    fused = base + lora_delta(smoke_bundle.distilled_lora, PROBE, 2.0)
    assert relative_error(layer.dequantized_weight(), fused) < 0.05  # quantized twice: a little further


def test_convert_built_model_in_place(float_ledger: ModelLedger, float_outputs) -> None:
    ledger = ModelLedger(float_ledger.checkpoint_path, device="cpu")
    model = ledger.get("transformer")
    convert_to_fp8_scaled_mm(model.velocity_model)
    assert _check_fp8_modules(model) >= 30 * 6
    video, _ = transformer_outputs(ledger)
    assert relative_error(video, float_outputs[0]) < 0.1


# -- pipelines ---------------------------------------------------------------------------------------


def _frames(result) -> torch.Tensor:  # noqa: ANN001
    return result.frames.float()


@pytest.fixture(scope="module")
def float_frames(smoke_bundle: SmokeBundle) -> torch.Tensor:
    from ltx_pipelines.ti2vid_one_stage import TI2VidOneStagePipeline

    pipeline = TI2VidOneStagePipeline(smoke_bundle.checkpoint, smoke_bundle.gemma_root, device="cpu")
    return _frames(pipeline("a red ball", height=64, width=64, num_frames=9, num_inference_steps=2))


def test_fp8_cast_pipeline_end_to_end(smoke_bundle: SmokeBundle, tmp_path: Path, float_frames: torch.Tensor) -> None:
    from ltx_pipelines.ti2vid_one_stage import TI2VidOneStagePipeline

    pipeline = TI2VidOneStagePipeline(
        smoke_bundle.checkpoint, smoke_bundle.gemma_root, quantization=QuantizationPolicy.fp8_cast(), device="cpu"
    )
    out = tmp_path / "fp8_cast.mp4"
    result = pipeline("a red ball", output_path=out, height=64, width=64, num_frames=9, num_inference_steps=2)
    assert probe_mp4(out)["frames"] == 9
    blocks = pipeline.ledger.get("transformer").velocity_model.transformer_blocks
    linears = [(n, m) for n, m in blocks.named_modules() if isinstance(m, torch.nn.Linear)]
    targets = [m for n, m in linears if is_fp8_target(f"transformer_blocks.{n}")]
    assert len(targets) >= 30 * 6
    assert all(m.weight.dtype == torch.float8_e4m3fn for m in targets)
    # Random weights make noise videos; FP8 noise should still be the same noise, give or take a little.
    assert relative_error(_frames(result), float_frames) < 0.08


def test_fp8_scaled_mm_pipeline_with_lora(smoke_bundle: SmokeBundle, float_frames: torch.Tensor) -> None:
    from ltx_pipelines.ti2vid_one_stage import TI2VidOneStagePipeline

    lora = comfy_lora(smoke_bundle.distilled_lora, 0.5)
    pipeline = TI2VidOneStagePipeline(
        smoke_bundle.checkpoint, smoke_bundle.gemma_root, loras=[lora], quantization=fp8_scaled_mm_policy(),
        device="cpu",
    )  # fmt: skip
    result = pipeline("a red ball", height=64, width=64, num_frames=9, num_inference_steps=2)
    assert result.frames.shape == float_frames.shape
    assert _check_fp8_modules(pipeline.ledger.get("transformer")) >= 30 * 6


def test_cli_fp8_scaled_mm_end_to_end(
    smoke_bundle: SmokeBundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, float_frames: torch.Tensor
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "fp8_scaled_mm.mp4"
    result = run_module(
        "ltx_pipelines.ti2vid_one_stage",
        "--checkpoint-path", smoke_bundle.checkpoint, "--gemma-root", smoke_bundle.gemma_root,
        "--prompt", "a red ball", "--output-path", out, "--quantization", "fp8-scaled-mm", "--device", "cpu",
        "--height", "64", "--width", "64", "--num-frames", "9", "--num-inference-steps", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    info = probe_mp4(out)
    assert info["frames"] == 9 and (info["width"], info["height"]) == (64, 64) and info["has_audio"]
    assert result.stderr.count("native FP8 matmul (torch._scaled_mm) is not available") == 1


def test_seed_api_quantization_policy_fp8_scaled_mm_works_without_tensorrt() -> None:
    """`QuantizationPolicy.fp8_scaled_mm()` (the documented API) gives our policy when TensorRT-LLM is absent."""
    import importlib.util

    from ltx_core.quantization import QuantizationPolicy

    import ltx_pipelines.ti2vid_two_stages  # noqa: F401 - importing a pipeline installs the route
    from ltx_pipelines.models.fp8 import is_fp8_scaled_mm_policy

    if importlib.util.find_spec("tensorrt_llm") is not None:
        pytest.skip("TensorRT-LLM is installed: ltx-core's own policy is used")
    policy = QuantizationPolicy.fp8_scaled_mm()
    assert is_fp8_scaled_mm_policy(policy)
