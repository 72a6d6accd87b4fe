"""The compiled path's drift, pinned: in bf16 it is no farther from float32 than the plain bf16 path is.

Issue 23 reported the compiled guided step 6.5-11.8 % (relative) away from the plain bf16 step. Measured on the
CPU (benchmarks/compile_drift.py --tiny: the same distances, 6.5 % video / 11.8 % audio, on a 30-block random
model), that is two bf16 roundings of the same float32 result, not a fault of the compiled path: the compiled
pass is closer to float32 than the plain one (0.9 vs 1.2 %), and the guided step multiplies any pass's error
(CFG 3 / 7, STG, modality CFG, rescale: 5.5 / 8.6 % for the plain step, 4.1 / 6.6 % compiled). This test pins
the pass level, on a batch that carries the STG and modality-isolation perturbations (a mask captured wrongly in
a graph would show here), against the model in float32. Measured here (smoke model, mixed batch): plain bf16
1.07 / 1.27 % (video / audio) from float32, compiled bf16 0.77 / 0.95 %, compiled vs plain 1.13 / 1.14 %.
"""

from __future__ import annotations

import copy

import pytest
import torch

from ltx_pipelines.acceleration.compiled_blocks import CompiledBlocks
from ltx_pipelines.models.transformer_blocks import EagerBlocks
from ltx_pipelines.models.transformer_passes import batch_modality

pytestmark = pytest.mark.usefixtures("one_thread")


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm())


def bf16_batch(video, audio):  # noqa: ANN001, ANN202
    from dataclasses import replace

    cast = lambda m: replace(m, latent=m.latent.bfloat16(), context=m.context.bfloat16())  # noqa: E731
    return cast(video), cast(audio)


def test_compiled_bf16_is_as_close_to_float32_as_plain_bf16(transformer, batch_for, run) -> None:  # noqa: ANN001
    torch._dynamo.reset()
    video, audio, perturbations = batch_for("mixed")  # plain, STG at block 29 and modality-isolated, stacked
    exact = run(EagerBlocks(transformer), video, audio, perturbations)  # the smoke model runs in float32
    model16 = copy.deepcopy(transformer).to(torch.bfloat16)
    video16, audio16 = bf16_batch(video, audio)
    plain = run(EagerBlocks(model16), video16, audio16, perturbations)
    engine = CompiledBlocks(model16)  # inductor (C++ on the CPU), compact timesteps: the default compiled engine
    compiled = run(engine, video16, audio16, perturbations)
    assert engine.compiled and engine.stats.fallback is None
    for name, p, c, e in zip(("video", "audio"), plain, compiled, exact, strict=True):
        plain_drift, compiled_drift = rel(p, e), rel(c, e)
        print(f"{name}: plain bf16 vs fp32 {plain_drift:.4%}, compiled bf16 vs fp32 {compiled_drift:.4%}, "
              f"compiled vs plain {rel(c, p):.4%}")  # shown with pytest -s
        assert 0 < plain_drift < 0.05, name  # bf16 rounding, not a broken model
        assert compiled_drift <= 1.1 * plain_drift, (name, compiled_drift, plain_drift)
        # two independent roundings of the same result: at most about their sum apart
        assert rel(c, p) <= 2.0 * plain_drift, (name, rel(c, p), plain_drift)
    torch._dynamo.reset()
