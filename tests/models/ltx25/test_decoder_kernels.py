"""The decoder's fused elementwise kernels (compiled here by Inductor's C++ backend, where CUDA gets Triton's):
the same numbers as the eager forms, and a failed compile falls back to them with one warning."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from ltx_pipelines.models.ltx25 import decoder_kernels as kernels
from ltx_pipelines.models.ltx25.diffusion_decoder import NeighborhoodAttention, SwiGLU


@pytest.fixture
def compiled_names(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The kernels that went through the compiler (the fused path really ran)."""
    names: list[str] = []
    real = kernels._compiled

    def spy(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        names.append(fn.__name__)
        return real(fn)

    monkeypatch.setattr(kernels, "_compiled", spy)
    monkeypatch.setattr(kernels, "_failed", set())
    return names


def _eager_then_fused(monkeypatch: pytest.MonkeyPatch, run: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, ...]:
    monkeypatch.setattr(kernels, "FUSE_ELEMENTWISE", "never")
    eager = run()
    monkeypatch.setattr(kernels, "FUSE_ELEMENTWISE", "always")
    return eager, run()


def _attention_and_keys() -> tuple[NeighborhoodAttention, torch.Tensor]:
    attention = NeighborhoodAttention(64, (3, 7, 7), 32)
    torch.nn.init.normal_(attention.k_norm.weight, 1.0, 0.1, generator=torch.Generator().manual_seed(1))
    return attention, torch.randn(1, 3, 5, 6, 2, 32, generator=torch.Generator().manual_seed(0))


def test_fused_norm_rope_equals_the_eager_one(monkeypatch: pytest.MonkeyPatch, compiled_names: list[str]) -> None:
    attention, x = _attention_and_keys()
    eager, fused = _eager_then_fused(monkeypatch, lambda: attention._norm_rope(x, attention.k_norm, 0.125))
    assert compiled_names == ["norm_rope"]
    assert float((eager - fused).abs().max()) <= 2e-6 * float(eager.abs().max())


def test_fused_swiglu_equals_the_eager_one(monkeypatch: pytest.MonkeyPatch, compiled_names: list[str]) -> None:
    mlp = SwiGLU(32)
    x = torch.randn(100, 32, generator=torch.Generator().manual_seed(2))
    eager, fused = _eager_then_fused(monkeypatch, lambda: mlp.hidden(x))
    assert compiled_names == ["silu_mul"]
    assert float((eager - fused).abs().max()) <= 1e-6 * float(eager.abs().max())


def test_a_failed_compile_warns_once_and_runs_eager(monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    def broken(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        def fail(*args: object) -> torch.Tensor:
            raise RuntimeError("no compiler here")

        return fail

    monkeypatch.setattr(kernels, "_failed", set())
    monkeypatch.setattr(kernels, "_compiled", broken)
    attention, x = _attention_and_keys()
    with caplog.at_level("WARNING"):
        eager, fallback = _eager_then_fused(monkeypatch, lambda: attention._norm_rope(x, attention.k_norm))
        assert ["norm_rope kernel failed" in r.getMessage() for r in caplog.records] == [True]
        caplog.clear()
        again = attention._norm_rope(x, attention.k_norm)
    assert torch.equal(fallback, eager) and torch.equal(again, eager)
    assert kernels._failed == {"norm_rope"} and not caplog.records  # warned once, then eager without trying again
