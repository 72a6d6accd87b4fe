"""FP8 inside the fused block: the same quantization as models.fp8, applied to every large linear."""

from __future__ import annotations

import copy

import pytest
import torch
from transformer_probe import relative_error

from ltx_pipelines.acceleration.compiled_blocks import CompiledBlocks
from ltx_pipelines.acceleration.fp8_matmul import fp8_project, quantize_rows, scaled_matmul
from ltx_pipelines.models.fp8 import FP8ScaledLinear, convert_to_fp8_scaled_mm, quantize_activation_rowwise_torch

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def fresh_dynamo():  # noqa: ANN201
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.fixture(scope="module")
def fp8_transformer(transformer):  # noqa: ANN001, ANN201
    model = copy.deepcopy(transformer)
    convert_to_fp8_scaled_mm(model.velocity_model)
    blocks = model.velocity_model.transformer_blocks
    # every block: 6 attentions x (q, k, v, out) + 2 feed-forwards x 2 linears
    assert sum(isinstance(m, FP8ScaledLinear) for m in blocks.modules()) == 28 * len(blocks)
    return model


def test_quantize_rows_is_utils_fp8_quantization() -> None:
    x = torch.randn(6, 48, generator=torch.Generator().manual_seed(0)) * 3
    x[2] = 0  # an all-zero token stays finite
    q, scale = quantize_rows(x)
    want_q, want_scale = quantize_activation_rowwise_torch(x)
    assert q.dtype == torch.float8_e4m3fn and torch.equal(q.view(torch.uint8), want_q.view(torch.uint8))
    assert torch.equal(scale, want_scale) and torch.isfinite(scale).all()


def test_emulated_scaled_matmul_is_the_dequantized_product() -> None:
    g = torch.Generator().manual_seed(1)
    layer = FP8ScaledLinear.from_linear(torch.nn.Linear(48, 32))
    x = torch.randn(5, 48, generator=g)
    q, scale = quantize_rows(x)
    got = scaled_matmul(q, scale, layer, torch.float32, native=False)
    want = (q.float() * scale) @ layer.dequantized_weight().T + layer.bias
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    a, b = fp8_project(x.view(1, 5, 48), [layer, layer], native=False)  # one quantization, several layers
    assert a.shape == (1, 5, 32) and torch.equal(a, b) and torch.equal(a[0], got)


def test_large_linears_run_fp8_in_the_fused_block(fp8_transformer, batch_for, reference, run) -> None:  # noqa: ANN001
    """Activations are quantized (the result differs from FP8 weights alone) and stay close to full precision."""
    video, audio, perturbations = batch_for("mixed")
    fused = run(CompiledBlocks(fp8_transformer, compile=False, fp8_in_graph=True), video, audio, perturbations)
    weights_only = run(CompiledBlocks(fp8_transformer, compile=False), video, audio, perturbations)
    for f, w, full in zip(fused, weights_only, reference("mixed"), strict=True):
        assert not torch.equal(f, w)
        assert relative_error(f, full) < 0.1
        assert relative_error(f, full) < 3 * relative_error(w, full) + 0.02


def test_compiled_fp8_block_matches_eager(fp8_transformer, batch_for, run) -> None:  # noqa: ANN001
    video, audio, perturbations = batch_for("plain")
    # The same forward eagerly (compiled engines keep one timestep row per sample: so does this one).
    eager = run(CompiledBlocks(fp8_transformer, compile=False, fp8_in_graph=True, compact=True), video, audio,
                perturbations)  # fmt: skip
    engine = CompiledBlocks(fp8_transformer)  # inductor: quantization fused into the preceding kernels
    compiled = run(engine, video, audio, perturbations)
    assert engine.stats.fallback is None and engine.stats.graphs == 1
    for c, e in zip(compiled, eager, strict=True):
        # An FP8 code can flip where fused float32 arithmetic rounds a value differently before the cast.
        assert relative_error(c, e) < 0.02
