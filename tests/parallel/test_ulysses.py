"""Sequence parallelism (Ulysses) against the single-process transformer, and its token bookkeeping.

Measured on the CPU (2 gloo ranks, smoke model, 9 video + 18 audio tokens, fp32): attention on a
head shard is bit-identical to the same heads of the full attention, and so are the linear layers
on a rank's rows (5 of 9, one of them padding), the norms and the gates. One kernel is not: the text
cross-attention runs on the rank's share of the queries, and scaled-dot-product attention rounds 9
audio queries differently from 18 (by ~6e-8). So every Ulysses case equals, bit for bit, one process
whose text cross-attentions run on the same query chunks (``exact_chunked``), and differs from plain
one process by that rounding carried through the blocks: up to 1e-6 in x0 (about 2 ulp at the
largest values, 4.7). The tests allow 1e-5 of the largest value there.
"""

from __future__ import annotations

import pytest
import torch

from ltx_pipelines.parallel.process_group import ParallelContext
from ltx_pipelines.parallel.ulysses import ShardedAttention, TokenShards, UlyssesBlocks

RELATIVE_TOLERANCE = 1e-5


def test_tokens_are_end_padded_into_equal_shares() -> None:
    tokens = torch.arange(9.0).view(1, 9, 1)
    first, second = (TokenShards(9, 2, i).take(tokens, 1) for i in range(2))
    assert first.flatten().tolist() == [0, 1, 2, 3, 4]
    assert second.flatten().tolist() == [5, 6, 7, 8, 0]
    assert TokenShards(9, 2, 0).padded == 10
    # Fewer tokens than ranks: the last ranks hold padding only.
    assert TokenShards(1, 4, 3).take(torch.ones(1, 1, 2), 1).tolist() == [[[0.0, 0.0]]]
    rope = torch.arange(18.0).view(1, 2, 9, 1)  # split-rope table (B, H, T, D/2): tokens on dim 2
    assert TokenShards(9, 2, 1).take(rope, 2)[0, 1].flatten().tolist() == [14, 15, 16, 17, 0]
    with pytest.raises(ValueError, match="expected 9 tokens"):
        TokenShards(9, 2, 0).take(torch.ones(1, 8, 1), 1)


class FailingEngine:
    """An inner engine whose blocks fail after looking at the attention functions it runs with."""

    def __init__(self, velocity_model):  # noqa: ANN001
        self.velocity_model = velocity_model
        self.num_blocks = len(velocity_model.transformer_blocks)
        self.seen: list[object] = []

    def blocks(self, video, audio, perturbations, start, stop):  # noqa: ANN001, ANN201
        self.seen = [block.attn1.attention_function for block in self.velocity_model.transformer_blocks]
        raise RuntimeError("block failed")


def test_attention_is_swapped_only_inside_blocks_and_restored(smoke_bundle) -> None:  # noqa: ANN001
    from ltx_pipelines.engine.model_ledger import ModelLedger

    velocity = ModelLedger(smoke_bundle.checkpoint, smoke_bundle.gemma_root).get("transformer").velocity_model
    before = [b.attn1.attention_function for b in velocity.transformer_blocks]
    engine = FailingEngine(velocity)
    ctx = ParallelContext(rank=0, world_size=2, backend="gloo", device=torch.device("cpu"))
    ulysses = UlyssesBlocks(engine, ctx, (0, 1))
    ulysses.video, ulysses.audio = TokenShards(9, 2, 0), TokenShards(18, 2, 0)
    state = type("State", (), {"x": torch.zeros(1, 5, 32)})()
    with pytest.raises(RuntimeError, match="block failed"):
        ulysses.blocks(state, None, None, 2, 4)
    swapped = [isinstance(f, ShardedAttention) for f in engine.seen]
    assert swapped == [2 <= i < 4 for i in range(len(before))]
    assert [b.attn1.attention_function for b in velocity.transformer_blocks] == before
    assert all(not isinstance(b.attn2.attention_function, ShardedAttention) for b in velocity.transformer_blocks)


def test_sharded_passes_match_one_process(transformer_report) -> None:  # noqa: ANN001
    """All four passes through the Ulysses engine, every schedule, with and without a self-attention mask."""
    report = transformer_report(2)
    assert report["tokens"] == {"video": 9, "audio": 18}  # odd video count: padding is exercised
    cases = {k: v for k, v in report["cases"].items() if k.startswith("ulysses/")}
    assert len(cases) == 8
    for name, case in cases.items():
        assert case["exact_chunked"], (name, case)  # nothing but the text cross-attention's rounding differs
        tolerance = RELATIVE_TOLERANCE * case["max_ref"]
        if "batched" in name:  # stacking passes in one batch alone differs from one process by this much
            tolerance = 1e-4
        assert case["max_abs"] <= tolerance, (name, case)
