"""The fused block forward, run eagerly, is ltx-core's block forward bit for bit."""

from __future__ import annotations

import pytest
import torch
from ltx_core.guidance.perturbations import BatchedPerturbationConfig
from ltx_core.model.transformer.rope import LTXRopeType
from ltx_core.model.transformer.transformer import BasicAVTransformerBlock, TransformerConfig
from ltx_core.model.transformer.transformer_args import TransformerArgs

from ltx_pipelines.acceleration.block_plan import MIXED, RUN, SKIP, BlockPlans
from ltx_pipelines.acceleration.compiled_blocks import CompiledBlocks
from ltx_pipelines.acceleration.fused_block import fused_block_forward, stream_of
from ltx_pipelines.acceleration.fused_ops import Kernels

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("case", ["plain", "stg", "isolated", "mixed"])
def test_eager_fused_equals_ltx_core(transformer, batch_for, reference, run, case) -> None:  # noqa: ANN001
    video, audio, perturbations = batch_for(case)
    got = run(CompiledBlocks(transformer, compile=False), video, audio, perturbations)
    for g, w in zip(got, reference(case), strict=True):
        assert torch.equal(g, w), case


def test_plans_follow_the_perturbations(transformer, batch_for) -> None:  # noqa: ANN001
    video, audio, perturbations = batch_for("mixed")
    with torch.inference_mode():
        v_args, a_args = CompiledBlocks(transformer, compile=False).prepare(video, audio)
    plans = BlockPlans()
    plain, _ = plans.get(perturbations, 3, v_args, a_args)
    assert (plain.video_self, plain.audio_self, plain.a2v, plain.v2a) == (RUN, RUN, MIXED, MIXED)
    stg, masks = plans.get(perturbations, 29, v_args, a_args)
    assert (stg.video_self, stg.audio_self) == (MIXED, MIXED)
    assert masks.video_self.flatten().tolist() == [1.0, 0.0, 1.0]  # the STG sample skips, the others attend
    assert masks.a2v.flatten().tolist() == [1.0, 1.0, 0.0]  # the isolated sample is cut from audio
    assert plans.get(perturbations, 29, v_args, a_args)[1].video_self is masks.video_self  # built once
    video, audio, alone = batch_for("stg")
    with torch.inference_mode():
        v_args, a_args = CompiledBlocks(transformer, compile=False).prepare(video, audio)
    assert plans.get(alone, 29, v_args, a_args)[0].video_self == SKIP
    assert plans.get(alone, 28, v_args, a_args)[0].video_self == RUN
    isolated = plans.get(batch_for("isolated")[2], 0, v_args, a_args)[0]
    assert (isolated.a2v, isolated.v2a) == (SKIP, SKIP)


def _random_args(batch: int, tokens: int, dim: int, cross_dim: int, generator: torch.Generator) -> TransformerArgs:
    """Block inputs of one modality (9 AdaLN rows: LTX-2.3's cross-attention AdaLN)."""

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator)

    angle, cross = rand(batch, tokens, dim), rand(batch, tokens, cross_dim)
    return TransformerArgs(
        x=rand(batch, tokens, dim), context=rand(batch, 5, dim), context_mask=None, timesteps=rand(batch, 1, 9 * dim),
        embedded_timestep=rand(batch, 1, dim),
        positional_embeddings=(angle.cos(), angle.sin()), cross_positional_embeddings=(cross.cos(), cross.sin()),
        cross_scale_shift_timestep=rand(batch, 1, 4 * dim), cross_gate_timestep=rand(batch, 1, dim), enabled=True,
        prompt_timestep=rand(batch, 1, 2 * dim),
    )  # fmt: skip


def test_ltx_2_3_block_options_are_bit_exact(cases) -> None:  # noqa: ANN001
    """Gated attention and the cross-attention AdaLN of LTX-2.3 go through the same restatement."""
    generator = torch.Generator().manual_seed(0)
    video_cfg = TransformerConfig(dim=32, heads=4, d_head=8, context_dim=32, apply_gated_attention=True,
                                  cross_attention_adaln=True)  # fmt: skip
    audio_cfg = TransformerConfig(dim=16, heads=2, d_head=8, context_dim=16, apply_gated_attention=True,
                                  cross_attention_adaln=True)  # fmt: skip
    block = BasicAVTransformerBlock(29, video_cfg, audio_cfg, rope_type=LTXRopeType.INTERLEAVED).eval()
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
    # audio <-> video attention runs at the audio width (16) on both sides
    video, audio = _random_args(3, 12, 32, 16, generator), _random_args(3, 7, 16, 16, generator)
    perturbations = BatchedPerturbationConfig(cases["mixed"])
    with torch.inference_mode():
        want_v, want_a = block(video, audio, perturbations)
        plan, masks = BlockPlans().get(perturbations, block.idx, video, audio)
        got_v, got_a = fused_block_forward(block, video.x, audio.x, stream_of(video), stream_of(audio), plan, masks,
                                           Kernels())  # fmt: skip
    assert torch.equal(got_v, want_v.x) and torch.equal(got_a, want_a.x)
