"""Step caching: exact with threshold 0, skips the later blocks with a large one."""

from __future__ import annotations

import pytest
import torch

from ltx_pipelines.acceleration.step_cache import StepCachedPasses, relative_change
from ltx_pipelines.models.transformer_blocks import EagerBlocks

pytestmark = pytest.mark.usefixtures("one_thread")


def test_threshold_zero_is_exact(transformer, step_inputs, steps, plain_passes) -> None:  # noqa: ANN001
    cached = StepCachedPasses(EagerBlocks(transformer), threshold=0.0)
    got, want = steps(cached), steps(plain_passes)
    for got_step, want_step in zip(got, want, strict=True):
        for name in want_step:
            for g, w in zip(got_step[name], want_step[name], strict=True):
                assert torch.equal(g, w), name
    assert cached.blocks_reused == 0 and cached.blocks_run == 3 * 4 * 30  # 3 steps, 4 passes, 30 blocks


def test_large_threshold_skips_the_later_blocks(transformer, step_inputs, steps, plain_passes) -> None:  # noqa: ANN001
    cached = StepCachedPasses(EagerBlocks(transformer), threshold=1e9)
    got, want = steps(cached), steps(plain_passes)
    passes = len(step_inputs[2])
    # step 1 computes everything; steps 2 and 3 run block 0 only and reuse blocks 1..29
    assert cached.blocks_run == passes * 30 + 2 * passes * 1
    assert cached.blocks_reused == 2 * passes * 29
    for name in want[0]:
        assert all(torch.equal(g, w) for g, w in zip(got[0][name], want[0][name], strict=True))
    for step in got[1:]:
        for tensor in step["cond"]:
            assert torch.isfinite(tensor).all()
    assert not torch.equal(got[2]["cond"][0], want[2]["cond"][0])  # the reuse is an approximation


def test_relative_change() -> None:
    then = torch.ones(2, 3)
    assert relative_change(then * 1.1, then) == pytest.approx(0.1)
    assert relative_change(then, then) == 0.0
    assert relative_change(None, None) == 0.0
