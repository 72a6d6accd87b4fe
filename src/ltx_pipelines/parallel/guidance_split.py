"""Guidance parallelism: the transformer passes of one denoising step spread across ranks.

A guided step asks for up to four passes (cond, uncond, perturbed, isolated) that only meet in
the guidance combination. :class:`GuidanceSplit` wraps the default pass executor: it assigns the
passes to groups of ranks (:func:`plan_split`); each group computes its passes, whole on one rank
or with the tokens sharded across its ranks (``ulysses``); an all-gather then gives every rank
every pass's result, so every rank combines guidance and steps identically and the ranks stay in
lock-step without exchanging latents.

How passes are assigned (the same plan on every rank, from the pass names alone):

* fewer ranks than passes: the STG pass joins the conditional one (it reuses cond's blocks up to
  its first perturbed block), then the two cheapest groups merge until there are as many groups
  as ranks - with 2 ranks and 4 passes: cond + perturbed | uncond + isolated;
* as many ranks as passes: one pass each;
* more ranks than passes: the leftover ranks join the group with the most work per rank, which
  then runs its passes with Ulysses sequence parallelism (a single pass - stage 2, the distilled
  pipeline - is sharded across all ranks).

Same seed, same result: a pass computed whole on one rank runs the arithmetic of the
single-process run, so the split is bit-exact on its own. (On a GPU, small passes are stacked in
one batch; a rank stacks only its own passes, which can change the matmul kernels' rounding.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from ltx_core.model.transformer import X0Model
from ltx_core.types import LatentState

from ltx_pipelines.models.transformer_passes import (
    GuidancePass,
    PassExecutor,
    Prediction,
    TransformerPasses,
    stg_fork_block,
)
from ltx_pipelines.parallel.collectives import all_gather
from ltx_pipelines.parallel.process_group import ParallelContext
from ltx_pipelines.parallel.ulysses import UlyssesBlocks

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkUnit:
    """Passes computed together by a group of ranks (one rank: whole; several: tokens sharded)."""

    passes: tuple[str, ...]
    ranks: tuple[int, ...]


def _cost(passes: list[str], num_blocks: int, fork: int | None) -> int:
    """Blocks a group runs: the STG pass starts at its fork block when cond is in the same group."""
    shares_prefix = fork is not None and "cond" in passes
    return sum(num_blocks - fork if name == "perturbed" and shares_prefix else num_blocks for name in passes)


def _divisors(heads: tuple[int, int]) -> list[int]:
    return [n for n in range(1, min(heads) + 1) if all(h % n == 0 for h in heads)]


def plan_split(
    names: list[str], world_size: int, heads: tuple[int, int], num_blocks: int, fork: int | None
) -> tuple[WorkUnit, ...]:
    """Which ranks compute which passes; a pure function of its inputs, so the same on every rank."""
    order = {name: i for i, name in enumerate(names)}
    groups = [[name] for name in names]
    while len(groups) > world_size:
        cond = next((g for g in groups if "cond" in g), None)
        stg = next((g for g in groups if "perturbed" in g), None)
        if fork is not None and cond is not None and stg is not None and cond is not stg:
            first, second = cond, stg
        else:
            first, second = sorted(groups, key=lambda g: (_cost(g, num_blocks, fork), order[g[0]]))[:2]
        groups.remove(second)
        first.extend(second)
        first.sort(key=order.__getitem__)
    groups.sort(key=lambda g: order[g[0]])
    sizes = [1] * len(groups)
    left = world_size - len(groups)
    allowed = _divisors(heads)
    while left > 0:
        grow = {i: min((d for d in allowed if s < d <= s + left), default=None) for i, s in enumerate(sizes)}
        candidates = [i for i, size in grow.items() if size is not None]
        if not candidates:
            break  # the remaining ranks cannot share any group's heads: they idle (only with unusual head counts)
        i = max(candidates, key=lambda i: (_cost(groups[i], num_blocks, fork) / sizes[i], -i))
        left -= grow[i] - sizes[i]
        sizes[i] = grow[i]
    units, start = [], 0
    for group, size in zip(groups, sizes, strict=True):
        units.append(WorkUnit(tuple(group), tuple(range(start, start + size))))
        start += size
    return tuple(units)


def describe(plan: tuple[WorkUnit, ...], fork: int | None) -> str:
    """One line for the log: which ranks compute which passes."""
    parts = []
    for unit in plan:
        who = f"rank {unit.ranks[0]}" if len(unit.ranks) == 1 else f"ranks {unit.ranks[0]}-{unit.ranks[-1]}"
        what = " + ".join(unit.passes)
        if fork is not None and {"cond", "perturbed"} <= set(unit.passes):
            what += f" (STG reuses cond's first {fork} blocks)"
        if len(unit.ranks) > 1:
            what += f", tokens split {len(unit.ranks)} ways"
        parts.append(f"{who}: {what}")
    return "; ".join(parts)


def model_heads(transformer: X0Model) -> tuple[int, int]:
    """(video, audio) attention heads of a built transformer."""
    block = transformer.velocity_model.transformer_blocks[0]
    video = block.attn1.heads
    audio = block.audio_attn1.heads if hasattr(block, "audio_attn1") else video
    return video, audio


class GuidanceSplit:
    """A PassExecutor that spreads the step's passes across the ranks of ``ctx`` (see the module doc)."""

    def __init__(self, inner: TransformerPasses, ctx: ParallelContext):
        self.inner = inner
        self.ctx = ctx
        self.heads = model_heads(inner.transformer)
        self._executors: dict[tuple[int, ...], PassExecutor] = {}
        self._logged: set[tuple[WorkUnit, ...]] = set()

    def __call__(
        self, video_state: LatentState, audio_state: LatentState | None, sigma: torch.Tensor, passes: list[GuidancePass]
    ) -> dict[str, Prediction]:
        stg = next((p for p in passes if p.name == "perturbed"), None)
        fork = stg_fork_block(stg.perturbations) if stg is not None and self.inner.share_stg_prefix else None
        plan = plan_split([p.name for p in passes], self.ctx.world_size, self.heads, self.inner.engine.num_blocks, fork)
        self._announce(plan, fork)
        unit = next((u for u in plan if self.ctx.rank in u.ranks), None)
        mine: dict[str, Prediction] = {}
        if unit is not None:
            executor = self._executor(unit.ranks)
            mine = executor(video_state, audio_state, sigma, [p for p in passes if p.name in unit.passes])
        if len(plan) == 1 and len(plan[0].ranks) == self.ctx.world_size:
            return mine  # one group of all ranks: every rank already has the result
        return self._share(plan, unit, mine, video_state, audio_state)

    def _announce(self, plan: tuple[WorkUnit, ...], fork: int | None) -> None:
        """Create the plan's sub-groups (collective: every rank, same order) and log the plan once."""
        if plan in self._logged:
            return
        self._logged.add(plan)
        for unit in plan:
            if len(unit.ranks) > 1:
                self.ctx.subgroup(unit.ranks)
        if self.ctx.rank == 0:
            ctx = self.ctx
            logger.info("Work split over %d ranks (%s): %s", ctx.world_size, ctx.backend, describe(plan, fork))

    def _executor(self, ranks: tuple[int, ...]) -> PassExecutor:
        """The inner executor for a one-rank group; the same with a Ulysses engine for several ranks."""
        if len(ranks) == 1:
            return self.inner
        if ranks not in self._executors:
            inner = self.inner
            self._executors[ranks] = TransformerPasses(
                inner.transformer,
                batch_passes=inner.batch_passes,
                share_stg_prefix=inner.share_stg_prefix,
                engine=UlyssesBlocks(inner.engine, self.ctx, ranks),
                block_major=inner.block_major,
            )
        return self._executors[ranks]

    def _share(
        self,
        plan: tuple[WorkUnit, ...],
        unit: WorkUnit | None,
        mine: dict[str, Prediction],
        video_state: LatentState,
        audio_state: LatentState | None,
    ) -> dict[str, Prediction]:
        """All-gather every group's results; each pass is taken from its group's first rank."""
        slots = max(len(u.passes) for u in plan)
        results: dict[str, list[torch.Tensor | None]] = {name: [None, None] for u in plan for name in u.passes}
        for index, state in enumerate((video_state, audio_state)):
            if state is None:
                continue
            buffer = state.latent.new_zeros((slots, *state.latent.shape))
            for slot, name in enumerate(unit.passes if unit is not None else ()):
                buffer[slot] = mine[name][index]
            gathered = all_gather(buffer, None, self.ctx.world_size)
            for u in plan:
                for slot, name in enumerate(u.passes):
                    results[name][index] = gathered[u.ranks[0], slot]
        return {name: (video, audio) for name, (video, audio) in results.items()}


def split_guidance(executor: PassExecutor, ctx: ParallelContext | None) -> PassExecutor:
    """The executor a pipeline uses: ``executor`` itself outside a group, else wrapped to split the work."""
    if ctx is None:
        return executor
    if not isinstance(executor, TransformerPasses):
        raise TypeError(f"parallel runs need a TransformerPasses executor (its engine gets sharded); got {executor!r}")
    return GuidanceSplit(executor, ctx)


__all__ = ["GuidanceSplit", "WorkUnit", "describe", "model_heads", "plan_split", "split_guidance"]
