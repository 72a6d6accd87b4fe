"""Scheduling the transformer passes of one denoising step through a block engine.

A guided step asks for up to four passes (conditional, negative prompt, STG-perturbed, modality-
isolated). :func:`run_passes` runs them through an engine (``transformer_blocks``) in one of two
orders, with the same arithmetic for each pass either way:

* pass-major: each group of passes goes through all blocks, then the next group (what graph
  replay needs, and the fastest on a resident model);
* block-major: every group goes through block ``i`` before any goes on to ``i + 1``, so a streamed
  block's weights cross to the GPU once per step and serve all passes.

Passes may be stacked in one batch (one group), and the STG pass, which equals the conditional one
up to its first perturbed block, starts there from a copy of the conditional state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from typing import Protocol

import torch
from ltx_core.guidance.perturbations import BatchedPerturbationConfig, PerturbationConfig, PerturbationType
from ltx_core.model.transformer import Modality, X0Model
from ltx_core.types import LatentState

from ltx_pipelines.models.ltx25.transformer import (
    KeyframedModality,
    first_frame_keyframes_mask,
    with_keyframes_mask,
)
from ltx_pipelines.models.transformer_blocks import Args, EagerBlocks, pick_args, stack_args

logger = logging.getLogger(__name__)

#: A denoised estimate per modality (video, audio); None where a modality is absent.
Prediction = tuple[torch.Tensor | None, torch.Tensor | None]

#: Stack passes in one batch up to this many video tokens (on a GPU): measured on an H100, 2x faster
#: at 1 536 video tokens, no gain at 6 144.
BATCH_PASSES_MAX_TOKENS = 2048


@dataclass(frozen=True)
class PromptEmbeddings:
    """A prompt encoded for the transformer: one context per modality."""

    video: torch.Tensor
    audio: torch.Tensor | None

    def to(self, device: torch.device, dtype: torch.dtype) -> "PromptEmbeddings":
        audio = self.audio.to(device=device, dtype=dtype) if self.audio is not None else None
        return PromptEmbeddings(self.video.to(device=device, dtype=dtype), audio)


@dataclass(frozen=True)
class GuidancePass:
    """One transformer evaluation: which prompt, and which attention is cut."""

    name: str
    prompt: PromptEmbeddings
    perturbations: PerturbationConfig


class PassExecutor(Protocol):
    """Runs the passes a step needs and returns each pass's (video, audio) clean estimate by name."""

    def __call__(
        self, video_state: LatentState, audio_state: LatentState | None, sigma: torch.Tensor, passes: list[GuidancePass]
    ) -> dict[str, Prediction]: ...


@dataclass(frozen=True)
class StreamState(LatentState):
    """A latent state with what the reference 1.2.0's transformer input also knows about the stream (LTX-2.5)."""

    #: The generated video's first latent frame (these leading tokens) carries the keyframe embedding.
    keyframe_tokens: int | None = None
    #: Every token is given (an audio-to-video soundtrack): the stream runs at sigma 0.
    frozen: bool = False
    #: Sigma and timesteps keep the sigma's dtype (float64 at res_2s substeps) instead of float32.
    precise_sigma: bool = False

    @classmethod
    def of(cls, state: LatentState, **changes: object) -> StreamState:
        values = {f.name: getattr(state, f.name) for f in fields(StreamState) if hasattr(state, f.name)}
        return cls(**{**values, **changes})


def make_modality(state: LatentState, sigma: torch.Tensor, context: torch.Tensor) -> Modality:
    """The transformer input for one modality at noise level `sigma`."""
    batch = state.latent.shape[0]
    sigma_value = 0.0 if getattr(state, "frozen", False) else float(sigma)
    dtype = sigma.dtype if getattr(state, "precise_sigma", False) and torch.is_tensor(sigma) else torch.float32
    sigmas = torch.full((batch,), sigma_value, device=state.latent.device, dtype=dtype)
    modality = Modality(
        latent=state.latent,
        sigma=sigmas,
        timesteps=_timesteps(state.denoise_mask, sigma_value, sigmas),
        positions=state.positions,
        context=context,
        attention_mask=state.attention_mask,
    )
    tokens = getattr(state, "keyframe_tokens", None)
    if tokens is not None:  # LTX-2.5: the first latent frame carries the keyframe embedding
        return with_keyframes_mask(modality, first_frame_keyframes_mask(state.denoise_mask, tokens))
    return modality


def _timesteps(denoise_mask: torch.Tensor, sigma_value: float, sigmas: torch.Tensor) -> torch.Tensor:
    """Per-token timesteps: the mask times the sigma (a float32 product, or in the sigmas' wider dtype)."""
    if sigmas.dtype == torch.float32:
        return denoise_mask * sigma_value
    return denoise_mask * sigmas.view(-1, *([1] * (denoise_mask.dim() - 1)))


def batch_modality(modalities: list[Modality]) -> Modality:
    """Stack the inputs of several passes along the batch."""
    first = modalities[0]
    if len(modalities) == 1:
        return first
    mask = first.attention_mask

    def cat(attr: str) -> torch.Tensor:
        return torch.cat([getattr(m, attr) for m in modalities], dim=0)

    batched = Modality(
        latent=cat("latent"),
        sigma=cat("sigma"),
        timesteps=cat("timesteps"),
        positions=cat("positions"),
        context=cat("context"),
        attention_mask=torch.cat([mask] * len(modalities), dim=0) if mask is not None else None,
    )
    if isinstance(first, KeyframedModality):
        return with_keyframes_mask(batched, cat("keyframes_mask"))
    return batched


def stg_fork_block(perturbations: PerturbationConfig) -> int | None:
    """First perturbed block when a pass only skips self-attention in listed blocks, else None."""
    items = perturbations.perturbations or []
    self_attn = (PerturbationType.SKIP_VIDEO_SELF_ATTN, PerturbationType.SKIP_AUDIO_SELF_ATTN)
    if not items or any(p.type not in self_attn or not p.blocks for p in items):
        return None
    return min(min(p.blocks) for p in items) or None


@dataclass
class _Group:
    """Passes stacked in one batch, their inputs, and their transformer state between blocks."""

    passes: list[GuidancePass]
    video: Modality
    audio: Modality | None
    v_args: Args
    a_args: Args
    from_block: int = 0  # the STG group joins at its first perturbed block

    @property
    def perturbations(self) -> BatchedPerturbationConfig:
        return BatchedPerturbationConfig([p.perturbations for p in self.passes])

    def index(self, name: str) -> int | None:
        return next((i for i, p in enumerate(self.passes) if p.name == name), None)


class _Schedule:
    """The groups of one step and how each moves through the blocks."""

    def __init__(self, engine: EagerBlocks, video_state: LatentState, audio_state: LatentState | None,
                 sigma: torch.Tensor, batched: bool) -> None:  # fmt: skip
        self.engine = engine
        self.video_state, self.audio_state, self.sigma = video_state, audio_state, sigma
        self.batched = batched

    def modalities(self, passes: list[GuidancePass]) -> tuple[Modality, Modality | None]:
        video = batch_modality([make_modality(self.video_state, self.sigma, p.prompt.video) for p in passes])
        if self.audio_state is None:
            return video, None
        return video, batch_modality([make_modality(self.audio_state, self.sigma, p.prompt.audio) for p in passes])

    def start(self, passes: list[GuidancePass]) -> _Group:
        video, audio = self.modalities(passes)
        v_args, a_args = self.engine.prepare(video, audio)
        return _Group(passes, video, audio, v_args, a_args)

    def fork(self, group: _Group, stg: GuidancePass, at_block: int) -> _Group | None:
        """Start the STG pass from the conditional state: inside `group` when batched, else as a new group."""
        cond = group.index("cond")
        if self.batched:
            group.passes = [*group.passes, stg]
            group.video, group.audio = self.modalities(group.passes)
            group.v_args = stack_args([group.v_args, pick_args(group.v_args, cond)])
            group.a_args = stack_args([group.a_args, pick_args(group.a_args, cond)])
            return None
        video, audio = self.modalities([stg])
        return _Group([stg], video, audio, pick_args(group.v_args, cond), pick_args(group.a_args, cond), at_block)

    def advance(self, group: _Group, start: int, stop: int) -> None:
        group.v_args, group.a_args = self.engine.blocks(group.v_args, group.a_args, group.perturbations, start, stop)

    def finish(self, group: _Group) -> dict[str, Prediction]:
        video_x0, audio_x0 = self.engine.finish(group.video, group.audio, group.v_args, group.a_args)
        return {
            p.name: (video_x0[i : i + 1], audio_x0[i : i + 1] if audio_x0 is not None else None)
            for i, p in enumerate(group.passes)
        }


def _segments(num_blocks: int, fork: int | None, block_major: bool) -> list[tuple[int, int]]:
    if block_major:
        return [(i, i + 1) for i in range(num_blocks)]
    cuts = [0, fork, num_blocks] if fork else [0, num_blocks]
    return list(zip(cuts[:-1], cuts[1:], strict=True))


def run_passes(
    engine: EagerBlocks,
    video_state: LatentState,
    audio_state: LatentState | None,
    sigma: torch.Tensor,
    passes: list[GuidancePass],
    *,
    batched: bool = False,
    fork_block: int | None = None,
    block_major: bool = False,
) -> dict[str, Prediction]:
    """Every pass's clean estimate; ``fork_block`` lets the STG pass ("perturbed") share the cond prefix."""
    stg = next((p for p in passes if p.name == "perturbed"), None) if fork_block else None
    fork = fork_block if stg is not None and any(p.name == "cond" for p in passes) else None
    if fork is None:
        stg = None
    head = [p for p in passes if p is not stg]
    schedule = _Schedule(engine, video_state, audio_state, sigma, batched)
    groups = [schedule.start(g) for g in ([head] if batched else [[p] for p in head])]
    segments = _segments(engine.num_blocks, fork, block_major)
    results: dict[str, Prediction] = {}
    if block_major:
        for start, stop in segments:
            if start == fork:
                cond_group = next(g for g in groups if g.index("cond") is not None)
                groups += [g for g in [schedule.fork(cond_group, stg, fork)] if g is not None]
            for group in groups:
                schedule.advance(group, start, stop)
        for group in groups:
            results.update(schedule.finish(group))
        return results
    # Pass-major: a group is finished before the next one starts (graph replays reuse output buffers);
    # the STG group runs right after the conditional one, from the state it had at the fork.
    pending = list(groups)
    while pending:
        group = pending.pop(0)
        for start, stop in segments:
            if start == fork and group.index("cond") is not None:
                forked = schedule.fork(group, stg, fork)
                if forked is not None:
                    pending.insert(0, forked)
            if start >= group.from_block:
                schedule.advance(group, start, stop)
        results.update(schedule.finish(group))
    return results


class TransformerPasses:
    """The default pass executor: the engine, batching and STG-prefix sharing chosen per input.

    * small inputs on a GPU: passes stacked in one batch and replayed from CUDA graphs (captured on
      first use; a capture that fails falls back to eager for the rest of the stage, with a warning);
    * otherwise one pass after another on ``engine`` (eager by default), ``block_major`` when the
      engine streams weights.
    """

    def __init__(
        self,
        transformer: X0Model,
        *,
        batch_passes: bool | None = None,
        share_stg_prefix: bool = True,
        cuda_graphs: bool | None = None,
        engine: EagerBlocks | None = None,
        block_major: bool = False,
    ):
        self.transformer = transformer
        self.batch_passes = batch_passes
        self.share_stg_prefix = share_stg_prefix
        self.cuda_graphs = cuda_graphs if engine is None else False  # a custom engine is never graphed over
        self.engine = engine or EagerBlocks(transformer)
        self.block_major = block_major
        self._graphed: EagerBlocks | None = None
        self._graphs_failed = False

    def __call__(
        self, video_state: LatentState, audio_state: LatentState | None, sigma: torch.Tensor, passes: list[GuidancePass]
    ) -> dict[str, Prediction]:
        stg = next((p for p in passes if p.name == "perturbed"), None)
        fork = stg_fork_block(stg.perturbations) if stg is not None and self.share_stg_prefix else None
        batched = self.batched(video_state)
        if self.wants_graphs(video_state):
            try:
                return run_passes(self._graph_engine(), video_state, audio_state, sigma, passes,
                                  batched=batched, fork_block=fork)  # fmt: skip
            except RuntimeError as e:
                logger.warning("CUDA graph capture failed (%s); running eagerly.", str(e).splitlines()[0])
                self._graphs_failed, self._graphed = True, None
        return run_passes(self.engine, video_state, audio_state, sigma, passes,
                          batched=batched, fork_block=fork, block_major=self.block_major)  # fmt: skip

    def batched(self, video_state: LatentState) -> bool:
        """Stack passes in one batch? Only where it pays: small inputs on a GPU (unless told)."""
        if self.batch_passes is not None:
            return self.batch_passes
        return video_state.latent.device.type == "cuda" and video_state.latent.shape[1] <= BATCH_PASSES_MAX_TOKENS

    def wants_graphs(self, video_state: LatentState) -> bool:
        if self._graphs_failed or self.cuda_graphs is False:
            return False
        on_gpu = video_state.latent.device.type == "cuda"
        return on_gpu and (bool(self.cuda_graphs) or video_state.latent.shape[1] <= BATCH_PASSES_MAX_TOKENS)

    def _graph_engine(self) -> EagerBlocks:
        if self._graphed is None:
            from ltx_pipelines.models.cuda_graphs import GraphedTransformer

            self._graphed = GraphedTransformer(self.transformer)
        return self._graphed


__all__ = [
    "BATCH_PASSES_MAX_TOKENS",
    "GuidancePass",
    "PassExecutor",
    "Prediction",
    "PromptEmbeddings",
    "StreamState",
    "TransformerPasses",
    "batch_modality",
    "make_modality",
    "run_passes",
    "stg_fork_block",
]
