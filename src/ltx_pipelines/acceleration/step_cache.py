"""Optional step caching: skip the later blocks when the first block's output barely moved.

First-block cache (the idea behind TeaCache and FBCache): between neighbouring denoising steps
the transformer's input changes little, and how much the first block's residual (its output
minus its input) changed is a cheap predictor of how much the whole stack's output would. For
each pass (conditional, negative, STG, isolated) the executor remembers, from the last step it
computed fully, the first block's residual and the residual of all the other blocks. On a new
step it runs block 0 only; if that residual moved by less than ``threshold`` (mean absolute
change over mean magnitude, the worse of video and audio) it adds the remembered residual instead
of running blocks 1..N. Off by default; with ``threshold=0`` nothing is ever reused and the
result equals the plain passes exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from ltx_core.guidance.perturbations import BatchedPerturbationConfig
from ltx_core.types import LatentState

from ltx_pipelines.models.transformer_blocks import Args, EagerBlocks
from ltx_pipelines.models.transformer_passes import GuidancePass, Prediction, make_modality


@dataclass
class _Memory:
    """One pass's residuals from its last fully computed step."""

    first: tuple[torch.Tensor, torch.Tensor | None]  # block 0's residual (video, audio)
    rest: tuple[torch.Tensor, torch.Tensor | None]  # blocks 1..N's residual


def _residual(after: Args, before: Args) -> torch.Tensor | None:
    return None if after is None else after.x - before.x


def relative_change(now: torch.Tensor | None, then: torch.Tensor | None) -> float:
    if now is None or then is None:
        return 0.0
    return float((now - then).abs().mean() / then.abs().mean().clamp(min=1e-12))


class StepCachedPasses:
    """A pass executor that reuses the later blocks' residual across steps (see the module docstring).

    Passes run one at a time through ``engine`` (eager or compiled; not graph-replayed, whose
    outputs live in reused buffers). ``blocks_run`` / ``blocks_reused`` count the work done.
    """

    def __init__(self, engine: EagerBlocks, threshold: float):
        self.engine = engine
        self.threshold = threshold
        self._memory: dict[tuple, _Memory] = {}
        self.blocks_run = 0
        self.blocks_reused = 0

    def __call__(
        self, video_state: LatentState, audio_state: LatentState | None, sigma: torch.Tensor, passes: list[GuidancePass]
    ) -> dict[str, Prediction]:
        return {p.name: self._one_pass(video_state, audio_state, sigma, p) for p in passes}

    def _one_pass(
        self, video_state: LatentState, audio_state: LatentState | None, sigma: torch.Tensor, guidance: GuidancePass
    ) -> Prediction:
        video = make_modality(video_state, sigma, guidance.prompt.video)
        audio = make_modality(audio_state, sigma, guidance.prompt.audio) if audio_state is not None else None
        perturbations = BatchedPerturbationConfig([guidance.perturbations])
        v_in, a_in = self.engine.prepare(video, audio)
        v_first, a_first = self.engine.blocks(v_in, a_in, perturbations, 0, 1)
        first = (_residual(v_first, v_in), _residual(a_first, a_in))
        key = (guidance.name, tuple(video_state.latent.shape), audio_state is not None)
        memory = self._memory.get(key)
        rest_blocks = self.engine.num_blocks - 1
        if memory is not None and self._close(first, memory.first):
            v_out = replace(v_first, x=v_first.x + memory.rest[0])
            a_out = replace(a_first, x=a_first.x + memory.rest[1]) if a_first is not None else None
            self.blocks_run += 1
            self.blocks_reused += rest_blocks
        else:
            v_out, a_out = self.engine.blocks(v_first, a_first, perturbations, 1, None)
            self._memory[key] = _Memory(first=first, rest=(_residual(v_out, v_first), _residual(a_out, a_first)))
            self.blocks_run += 1 + rest_blocks
        return self.engine.finish(video, audio, v_out, a_out)

    def _close(self, now: tuple, then: tuple) -> bool:
        change = max(relative_change(n, t) for n, t in zip(now, then, strict=True))
        return change < self.threshold


__all__ = ["StepCachedPasses", "relative_change"]
