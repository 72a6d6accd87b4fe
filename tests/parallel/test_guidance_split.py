"""Guidance parallelism: which ranks compute which passes, and the result against one process."""

from __future__ import annotations

import pytest

from ltx_pipelines.parallel.guidance_split import WorkUnit, describe, plan_split, split_guidance

ALL = ["cond", "uncond", "perturbed", "isolated"]
HEADS_32 = (32, 32)


def plan(names, world, fork=29, heads=HEADS_32):  # noqa: ANN001, ANN201
    return [(u.passes, u.ranks) for u in plan_split(names, world, heads, 48, fork)]


def test_two_ranks_keep_stg_with_cond() -> None:
    assert plan(ALL, 2) == [(("cond", "perturbed"), (0,)), (("uncond", "isolated"), (1,))]
    assert plan(["cond", "uncond", "perturbed"], 2) == [(("cond", "perturbed"), (0,)), (("uncond",), (1,))]


def test_without_prefix_sharing_the_cheapest_merge() -> None:
    assert plan(ALL, 2, fork=None) == [(("cond", "uncond"), (0,)), (("perturbed", "isolated"), (1,))]


def test_one_pass_per_rank_when_there_are_enough() -> None:
    assert plan(ALL, 4) == [((name,), (rank,)) for rank, name in enumerate(ALL)]


def test_leftover_ranks_shard_tokens() -> None:
    assert plan(["cond"], 2) == [(("cond",), (0, 1))]
    assert plan(["cond"], 8) == [(("cond",), tuple(range(8)))]
    assert plan(["cond", "uncond"], 4) == [(("cond",), (0, 1)), (("uncond",), (2, 3))]
    assert plan(ALL, 8) == [((name,), (2 * i, 2 * i + 1)) for i, name in enumerate(ALL)]
    # Three groups on four ranks: the one with the most work per rank gets the spare rank.
    assert plan(["cond", "uncond", "perturbed"], 4, fork=None) == [
        (("cond",), (0, 1)), (("uncond",), (2,)), (("perturbed",), (3,))
    ]  # fmt: skip


def test_ranks_that_cannot_share_heads_idle() -> None:
    assert plan(["cond"], 4, heads=(2, 2)) == [(("cond",), (0, 1))]


def test_plan_is_described_for_the_log() -> None:
    units = plan_split(ALL, 2, HEADS_32, 48, 29)
    assert describe(units, 29) == (
        "rank 0: cond + perturbed (STG reuses cond's first 29 blocks); rank 1: uncond + isolated"
    )
    assert describe((WorkUnit(("cond",), (0, 1)),), None) == "ranks 0-1: cond, tokens split 2 ways"


def test_outside_a_group_the_executor_is_unchanged() -> None:
    executor = object()
    assert split_guidance(executor, None) is executor


@pytest.mark.parametrize("nproc", [2, 4])
def test_split_passes_equal_one_process_bit_for_bit(transformer_report, nproc) -> None:  # noqa: ANN001
    """Each pass is computed whole on one rank: the same arithmetic as one process, so equal bits.

    Where a group has spare ranks (fewer passes than ranks), it shards its tokens (Ulysses): within the
    tolerance measured in test_ulysses."""
    cases = transformer_report(nproc)["cases"]
    whole = ["4 passes"] if nproc == 4 else ["4 passes", "3 passes", "2 passes"]
    for mask in ("", " (masked)") if nproc == 2 else ("",):
        for label in whole:
            assert cases[f"split/{label}{mask}"]["exact"], (label, cases[f"split/{label}{mask}"])
        for label in {"4 passes", "3 passes", "2 passes", "1 pass"} - set(whole):
            case = cases[f"split/{label}{mask}"]
            assert case["max_abs"] <= 1e-5 * case["max_ref"], (label, case)
