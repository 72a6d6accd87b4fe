"""The diffusion decoder's memory formula against the decoder itself: the real code at full channel counts, run on
fake CUDA tensors (nothing is allocated), every storage counted (``memory.traced_peak``; the harness is
``benchmarks/decoder_fake_trace.py``).

A GPU run under a 6 GiB cap ran out of memory where the formula said 5.1 GiB; traced, the decode held two temporal
groups' blend buffers at once and stage 5's tile pixels, which the formula did not count. These cases keep the two
together: the traced peak never above the estimate, the estimate not so loose that it wastes a small card.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ltx_pipelines.models.ltx25 import diffusion_tiling as tiling

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
from decoder_fake_trace import CONFIG, GIB, traced_decode  # noqa: E402 -- the harness the benchmark's numbers come from

#: How much the estimate may exceed the traced peak (fragmentation is ``budget.GPU_RESERVE``'s, not this margin's).
LOOSEST = 1.3


@pytest.mark.parametrize(("video", "budget_gib", "fused"), [
    ((49, 512, 768), 2.0, True),  # spatial tiles
    ((121, 512, 768), 2.5, True),  # temporal and spatial tiles
    ((121, 512, 768), 2.5, False),  # the same, elementwise chains eager
    ((49, 1024, 1536), 7.0, True),  # attention in slabs
])  # fmt: skip
def test_the_estimate_covers_the_traced_peak_and_not_by_much(video: tuple[int, int, int], budget_gib: float,
                                                             fused: bool) -> None:  # fmt: skip
    plan = tiling.tiles_for_budget(CONFIG, *video, int(budget_gib * GIB))
    assert plan is not None  # a tiled plan: the case the cap runs take
    estimate = tiling.plan_working_set_bytes(CONFIG, *video, plan)
    traced = traced_decode(video, plan, fused)
    largest = "; ".join(f"{a.nbytes / 2**20:.0f} MiB {a.shape} at {a.where}" for a in traced.largest(8))
    assert traced.peak <= estimate, f"traced {traced.peak / GIB:.2f} GiB > estimated {estimate / GIB:.2f}: {largest}"
    assert estimate <= LOOSEST * traced.peak, f"estimated {estimate / GIB:.2f} GiB for {traced.peak / GIB:.2f} traced"
