"""What one transformer block must do for a batch, decided on the host before the block runs.

ltx-core's block reads its own index and asks the perturbation object, inside its forward, which
attentions each sample skips. A compiled graph cannot branch on that without recompiling per
block, so here the same decisions become data: a small hashable :class:`BlockPlan` (which
attentions run, are skipped for the whole batch, or differ between samples) that selects one of
a handful of graph variants, and :class:`BlockMasks` (per-sample 0/1 tensors, only where samples
differ) that the graph takes as inputs. Masks are built once per perturbation set and block and
reused, so no host-to-device copy happens per block (which CUDA-graph capture also forbids).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from ltx_core.guidance.perturbations import BatchedPerturbationConfig, PerturbationType
from ltx_core.model.transformer.transformer_args import TransformerArgs

#: Every sample of the batch runs this attention.
RUN = "run"
#: No sample does: a skipped self-attention passes its value projection through; a skipped
#: audio<->video attention adds nothing.
SKIP = "skip"
#: Some samples skip it: a per-sample 0/1 mask blends the two outcomes.
MIXED = "mixed"


@dataclass(frozen=True)
class BlockPlan:
    """The static decisions of one block call: the key of a compiled graph variant."""

    video: bool  # the video stream runs (present, enabled, non-empty)
    audio: bool
    video_self: str = RUN  # RUN / SKIP / MIXED
    audio_self: str = RUN
    a2v: str = SKIP  # audio -> video cross-attention; SKIP when it cannot run at all
    v2a: str = SKIP

    @property
    def cross_modal(self) -> bool:
        return self.a2v != SKIP or self.v2a != SKIP


class BlockMasks(NamedTuple):
    """Per-sample keep masks (1 keeps the attention, 0 cuts it), shaped to broadcast over tokens.

    Only the entries whose plan says MIXED are tensors; the rest are None.
    """

    video_self: torch.Tensor | None = None
    audio_self: torch.Tensor | None = None
    a2v: torch.Tensor | None = None
    v2a: torch.Tensor | None = None


def _runs(args: TransformerArgs | None) -> bool:
    return args is not None and args.enabled and args.x.numel() > 0


def _present(args: TransformerArgs | None) -> bool:
    return args is not None and args.x.numel() > 0


def _state(perturbations: BatchedPerturbationConfig, kind: PerturbationType, block: int) -> str:
    if perturbations.all_in_batch(kind, block):
        return SKIP
    return MIXED if perturbations.any_in_batch(kind, block) else RUN


def block_plan(
    perturbations: BatchedPerturbationConfig, block: int, video: TransformerArgs | None, audio: TransformerArgs | None
) -> BlockPlan:
    """The decisions ltx-core's ``BasicAVTransformerBlock.forward`` takes for block ``block``."""
    run_video, run_audio = _runs(video), _runs(audio)
    a2v = _state(perturbations, PerturbationType.SKIP_A2V_CROSS_ATTN, block) if run_video and _present(audio) else SKIP
    v2a = _state(perturbations, PerturbationType.SKIP_V2A_CROSS_ATTN, block) if run_audio and _present(video) else SKIP
    return BlockPlan(
        video=run_video,
        audio=run_audio,
        video_self=_state(perturbations, PerturbationType.SKIP_VIDEO_SELF_ATTN, block) if run_video else SKIP,
        audio_self=_state(perturbations, PerturbationType.SKIP_AUDIO_SELF_ATTN, block) if run_audio else SKIP,
        a2v=a2v,
        v2a=v2a,
    )


class BlockPlans:
    """Plans and masks per (perturbation set, block, batch layout), computed once and reused."""

    def __init__(self) -> None:
        self._cache: dict[tuple, tuple[BlockPlan, BlockMasks]] = {}

    def get(
        self,
        perturbations: BatchedPerturbationConfig,
        block: int,
        video: TransformerArgs | None,
        audio: TransformerArgs | None,
    ) -> tuple[BlockPlan, BlockMasks]:
        ref = video.x if video is not None else audio.x
        key = (repr(perturbations.perturbations), block, _runs(video), _runs(audio), _present(video), _present(audio),
               ref.device, ref.dtype)  # fmt: skip
        if key not in self._cache:
            plan = block_plan(perturbations, block, video, audio)
            self._cache[key] = (plan, _masks(plan, perturbations, block, ref.device, ref.dtype))
        return self._cache[key]


def _masks(
    plan: BlockPlan, perturbations: BatchedPerturbationConfig, block: int, device: torch.device, dtype: torch.dtype
) -> BlockMasks:
    def keep(kind: PerturbationType) -> torch.Tensor:
        values = [0.0 if p.is_perturbed(kind, block) else 1.0 for p in perturbations.perturbations]
        return torch.tensor(values, device=device, dtype=dtype).view(-1, 1, 1)

    def maybe(state: str, kind: PerturbationType) -> torch.Tensor | None:
        return keep(kind) if state == MIXED else None

    return BlockMasks(
        video_self=maybe(plan.video_self, PerturbationType.SKIP_VIDEO_SELF_ATTN),
        audio_self=maybe(plan.audio_self, PerturbationType.SKIP_AUDIO_SELF_ATTN),
        a2v=maybe(plan.a2v, PerturbationType.SKIP_A2V_CROSS_ATTN),
        v2a=maybe(plan.v2a, PerturbationType.SKIP_V2A_CROSS_ATTN),
    )


__all__ = ["MIXED", "RUN", "SKIP", "BlockMasks", "BlockPlan", "BlockPlans", "block_plan"]
