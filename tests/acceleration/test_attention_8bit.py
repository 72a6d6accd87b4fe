"""--attention 8bit's plumbing on the CPU: the self-attentions reach the registered op, eagerly and compiled.

The real kernel (SageAttention) needs an NVIDIA GPU; here a stand-in computes exact attention through the same op,
so the block must give the plain path's numbers, and the op must be what ran.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn.functional import scaled_dot_product_attention

from ltx_pipelines.acceleration import attention_8bit
from ltx_pipelines.acceleration.attention_choice import AttentionChooser
from ltx_pipelines.acceleration.compiled_blocks import CompiledBlocks
from ltx_pipelines.acceleration.fused_ops import EIGHT_BIT

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def stand_in(monkeypatch):  # noqa: ANN001, ANN201
    """The op's kernel replaced by exact attention that counts its calls; CPU shapes allowed."""
    calls = []

    def kernel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:  # [B, T, H, d], as SageAttention's NHD
        calls.append(tuple(q.shape))
        return scaled_dot_product_attention(*(t.transpose(1, 2) for t in (q, k, v))).transpose(1, 2)

    monkeypatch.setattr(attention_8bit, "loaded_kernel", lambda: kernel)
    monkeypatch.setattr(attention_8bit, "qualifies", lambda head_dim, masked, device, dtype: not masked)
    torch._dynamo.reset()
    yield calls
    torch._dynamo.reset()


@pytest.mark.parametrize("backend", [None, "aot_eager"])
def test_self_attentions_run_through_the_op(transformer, batch_for, reference, run, stand_in, backend) -> None:  # noqa: ANN001
    chooser = AttentionChooser(eight_bit=True)
    engine = CompiledBlocks(transformer, compile=backend is not None, backend=backend or "inductor",
                            attention=chooser, compact=False)  # fmt: skip
    video, audio, perturbations = batch_for("plain")
    got = run(engine, video, audio, perturbations)
    (kernels,) = engine._kernels.values()
    assert kernels.video_self == EIGHT_BIT and kernels.audio_self == EIGHT_BIT
    assert kernels.video_text != EIGHT_BIT  # prompt attention keeps SDPA
    assert stand_in, "the 8-bit op never ran"
    for g, w in zip(got, reference("plain"), strict=True):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)
