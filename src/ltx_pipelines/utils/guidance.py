"""Denoise functions: turn latent states into clean estimates with the transformer.

* :class:`ConditionalDenoiser` - one pass with the prompt (distilled model, stage 2).
* :class:`MultiModalGuidedDenoiser` - multimodal guidance per modality: CFG against the
  negative prompt, STG against a pass with self-attention skipped in chosen blocks,
  modality CFG against a pass with the audio<->video cross-attention cut, then
  variance rescale; each guider may skip steps. Only the passes some modality needs
  at this step are run, and small passes can be stacked into one batch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from ltx_core.components.guiders import MultiModalGuider, MultiModalGuiderFactory
from ltx_core.guidance.perturbations import (
    BatchedPerturbationConfig,
    Perturbation,
    PerturbationConfig,
    PerturbationType,
)
from ltx_core.model.transformer import Modality, X0Model
from ltx_core.types import LatentState

from ltx_pipelines.utils.denoising import Prediction

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromptEmbeddings:
    """A prompt encoded for the transformer: one context per modality."""

    video: torch.Tensor
    audio: torch.Tensor | None

    def to(self, device: torch.device, dtype: torch.dtype) -> "PromptEmbeddings":
        audio = self.audio.to(device=device, dtype=dtype) if self.audio is not None else None
        return PromptEmbeddings(self.video.to(device=device, dtype=dtype), audio)


def make_modality(state: LatentState, sigma: torch.Tensor, context: torch.Tensor) -> Modality:
    """The transformer input for one modality at noise level `sigma`."""
    batch = state.latent.shape[0]
    sigma_value = float(sigma)
    return Modality(
        latent=state.latent,
        sigma=torch.full((batch,), sigma_value, device=state.latent.device, dtype=torch.float32),
        timesteps=state.denoise_mask * sigma_value,
        positions=state.positions,
        context=context,
        attention_mask=state.attention_mask,
    )


@dataclass(frozen=True)
class GuidancePass:
    """One transformer evaluation: which prompt, and which attention is cut."""

    name: str
    prompt: PromptEmbeddings
    perturbations: PerturbationConfig


def _batch_modality(modalities: list[Modality]) -> Modality:
    first = modalities[0]
    if len(modalities) == 1:
        return first
    mask = first.attention_mask

    def cat(attr: str) -> torch.Tensor:
        return torch.cat([getattr(m, attr) for m in modalities], dim=0)

    return Modality(
        latent=cat("latent"),
        sigma=cat("sigma"),
        timesteps=cat("timesteps"),
        positions=cat("positions"),
        context=cat("context"),
        attention_mask=torch.cat([mask] * len(modalities), dim=0) if mask is not None else None,
    )


def run_passes(
    transformer: X0Model,
    video_state: LatentState,
    audio_state: LatentState | None,
    sigma: torch.Tensor,
    passes: list[GuidancePass],
    batched: bool = False,
) -> dict[str, Prediction]:
    """Evaluate the transformer for each pass, one after another or stacked in one batch."""
    groups = [passes] if batched else [[p] for p in passes]
    results: dict[str, Prediction] = {}
    for group in groups:
        video = _batch_modality([make_modality(video_state, sigma, p.prompt.video) for p in group])
        audio = None
        if audio_state is not None:
            audio = _batch_modality([make_modality(audio_state, sigma, p.prompt.audio) for p in group])
        perturbations = BatchedPerturbationConfig([p.perturbations for p in group])
        video_x0, audio_x0 = transformer(video=video, audio=audio, perturbations=perturbations)
        for i, p in enumerate(group):
            results[p.name] = (
                video_x0[i : i + 1] if video_x0 is not None else None,
                audio_x0[i : i + 1] if audio_x0 is not None else None,
            )
    return results


def _stg_fork_block(perturbations: PerturbationConfig) -> int | None:
    """First perturbed block when a pass only skips self-attention in listed blocks, else None."""
    items = perturbations.perturbations or []
    self_attn = (PerturbationType.SKIP_VIDEO_SELF_ATTN, PerturbationType.SKIP_AUDIO_SELF_ATTN)
    if not items or any(p.type not in self_attn or not p.blocks for p in items):
        return None
    return min(min(p.blocks) for p in items)


def run_cond_and_stg(
    transformer: X0Model,
    video_state: LatentState,
    audio_state: LatentState | None,
    sigma: torch.Tensor,
    cond: GuidancePass,
    perturbed: GuidancePass,
    fork_block: int,
) -> dict[str, Prediction]:
    """The STG pass equals the conditional one up to its first perturbed block: compute that prefix once."""
    from ltx_pipelines.utils.cuda_graphs import denoised_outputs

    engine = EagerBlocks(transformer)
    model = engine.velocity_model
    video = make_modality(video_state, sigma, cond.prompt.video)
    audio = make_modality(audio_state, sigma, cond.prompt.audio) if audio_state is not None else None
    v_args = model.video_args_preprocessor.prepare(video, audio)
    a_args = model.audio_args_preprocessor.prepare(audio, video) if audio is not None else None
    unperturbed = BatchedPerturbationConfig([PerturbationConfig.empty()])
    v_args, a_args = engine.blocks(v_args, a_args, unperturbed, 0, fork_block)
    results: dict[str, Prediction] = {}
    for p in (cond, perturbed):
        v, a = engine.blocks(v_args, a_args, BatchedPerturbationConfig([p.perturbations]), fork_block, None)
        results[p.name] = denoised_outputs(model, video, audio, v, a)
    return results


class EagerBlocks:
    """The transformer blocks run eagerly; the same interface as the CUDA-graph runner's ``blocks``."""

    def __init__(self, transformer: X0Model):
        self.velocity_model = transformer.velocity_model

    def blocks(self, video, audio, perturbations: BatchedPerturbationConfig, start: int = 0, stop: int | None = None):  # noqa: ANN001, ANN201
        for block in list(self.velocity_model.transformer_blocks)[start:stop]:
            video, audio = block(video=video, audio=audio, perturbations=perturbations)
        return video, audio


def run_passes_sharing_prefix(
    engine: object,
    video_state: LatentState,
    audio_state: LatentState | None,
    sigma: torch.Tensor,
    passes: list[GuidancePass],
    fork_block: int,
) -> dict[str, Prediction]:
    """All passes in one batch; the STG pass joins it at its first perturbed block as a copy of "cond".

    Blocks before the fork run for the other passes only, so the STG pass costs
    (blocks - fork) / blocks of a pass instead of a whole one.
    """
    from ltx_pipelines.utils.cuda_graphs import denoised_outputs, pick_args, stack_args

    head = [p for p in passes if p.name != "perturbed"]
    everyone = [*head, next(p for p in passes if p.name == "perturbed")]
    cond = next(i for i, p in enumerate(head) if p.name == "cond")
    model = engine.velocity_model

    def modalities(group: list[GuidancePass]) -> tuple[Modality, Modality | None]:
        video = _batch_modality([make_modality(video_state, sigma, p.prompt.video) for p in group])
        if audio_state is None:
            return video, None
        return video, _batch_modality([make_modality(audio_state, sigma, p.prompt.audio) for p in group])

    video, audio = modalities(head)
    v = model.video_args_preprocessor.prepare(video, audio)
    a = model.audio_args_preprocessor.prepare(audio, video) if audio is not None else None
    v, a = engine.blocks(v, a, BatchedPerturbationConfig([p.perturbations for p in head]), 0, fork_block)
    v = stack_args([v, pick_args(v, cond)])
    a = stack_args([a, pick_args(a, cond)]) if a is not None else None
    v, a = engine.blocks(v, a, BatchedPerturbationConfig([p.perturbations for p in everyone]), fork_block, None)
    video_x0, audio_x0 = denoised_outputs(model, *modalities(everyone), v, a)
    return {
        p.name: (video_x0[i : i + 1], audio_x0[i : i + 1] if audio_x0 is not None else None)
        for i, p in enumerate(everyone)
    }


class _TransformerRunner:
    """Chooses how passes run: CUDA-graph replay for small (launch-bound) inputs on a GPU, else eager.

    Graph capture that fails (an op that cannot be captured, e.g. in a custom layer) falls back to
    eager for the rest of the stage, with a warning.
    """

    def __init__(self, transformer: X0Model, cuda_graphs: bool | None):
        self.transformer = transformer
        self.cuda_graphs = cuda_graphs
        self._graphed = None
        self._graphs_failed = False

    def wants_graphs(self, video_state: LatentState) -> bool:
        if self._graphs_failed or self.cuda_graphs is False:
            return False
        on_gpu = video_state.latent.device.type == "cuda"
        return on_gpu and (self.cuda_graphs or video_state.latent.shape[1] <= BATCH_PASSES_MAX_TOKENS)

    def run(
        self,
        video_state: LatentState,
        audio_state: LatentState | None,
        sigma: torch.Tensor,
        passes: list[GuidancePass],
        batched: bool,
        share_stg_prefix: bool = False,
    ) -> dict[str, Prediction] | None:
        """Run the passes through CUDA graphs; None when graphs are not used (the caller runs eager)."""
        if not self.wants_graphs(video_state):
            return None
        from ltx_pipelines.utils.cuda_graphs import GraphedTransformer

        if self._graphed is None:
            self._graphed = GraphedTransformer(self.transformer)
        stg = next((p for p in passes if p.name == "perturbed"), None)
        fork = _stg_fork_block(stg.perturbations) if stg is not None and share_stg_prefix and batched else None
        try:
            if fork:
                return run_passes_sharing_prefix(self._graphed, video_state, audio_state, sigma, passes, fork)
            return run_passes(self._graphed, video_state, audio_state, sigma, passes, batched)
        except RuntimeError as e:
            logger.warning("CUDA graph capture failed (%s); running eagerly.", str(e).splitlines()[0])
            self._graphs_failed = True
            self._graphed = None
            return None


class ConditionalDenoiser:
    """A single conditional pass: the distilled model needs no guidance."""

    def __init__(self, transformer: X0Model, prompt: PromptEmbeddings, cuda_graphs: bool | None = None):
        self.transformer = transformer
        self.prompt = prompt
        self._runner = _TransformerRunner(transformer, cuda_graphs)

    def __call__(
        self, video_state: LatentState, audio_state: LatentState | None, sigmas: torch.Tensor, step: int
    ) -> Prediction:
        passes = [GuidancePass("cond", self.prompt, PerturbationConfig.empty())]
        results = self._runner.run(video_state, audio_state, sigmas[step], passes, batched=False)
        if results is None:
            results = run_passes(self.transformer, video_state, audio_state, sigmas[step], passes)
        return results["cond"]


def stg_perturbations(video: MultiModalGuider, audio: MultiModalGuider) -> PerturbationConfig:
    """Skip self-attention in the STG blocks of each modality that asks for it."""
    perturbations = []
    if video.do_perturbed_generation():
        perturbations.append(Perturbation(PerturbationType.SKIP_VIDEO_SELF_ATTN, list(video.params.stg_blocks or [])))
    if audio.do_perturbed_generation():
        perturbations.append(Perturbation(PerturbationType.SKIP_AUDIO_SELF_ATTN, list(audio.params.stg_blocks or [])))
    return PerturbationConfig(perturbations)


BATCH_PASSES_MAX_TOKENS = 2048

ISOLATED_MODALITIES = PerturbationConfig(
    [
        Perturbation(PerturbationType.SKIP_A2V_CROSS_ATTN, None),
        Perturbation(PerturbationType.SKIP_V2A_CROSS_ATTN, None),
    ]
)


class MultiModalGuidedDenoiser:
    """CFG + STG + modality CFG + rescale, with independent parameters per modality."""

    def __init__(
        self,
        transformer: X0Model,
        positive: PromptEmbeddings,
        negative: PromptEmbeddings | None,
        video_guider: MultiModalGuiderFactory,
        audio_guider: MultiModalGuiderFactory,
        batch_passes: bool | None = None,
        share_stg_prefix: bool = True,
        cuda_graphs: bool | None = None,
    ):
        self.share_stg_prefix = share_stg_prefix
        self._runner = _TransformerRunner(transformer, cuda_graphs)
        self.transformer = transformer
        self.positive = positive
        self.negative = negative
        self.video_guider = video_guider
        self.audio_guider = audio_guider
        self.batch_passes = batch_passes

    def passes_for(self, video: MultiModalGuider, audio: MultiModalGuider, step: int) -> list[GuidancePass]:
        """The evaluations this step needs: guidance a skipped or disabled guider wants is not run."""
        active = [g for g in (video, audio) if not g.should_skip_step(step)]
        passes = [GuidancePass("cond", self.positive, PerturbationConfig.empty())]
        if any(g.do_unconditional_generation() for g in active):
            if self.negative is None:
                raise ValueError("CFG is enabled but no negative prompt was encoded.")
            passes.append(GuidancePass("uncond", self.negative, PerturbationConfig.empty()))
        if any(g.do_perturbed_generation() for g in active):
            passes.append(GuidancePass("perturbed", self.positive, stg_perturbations(video, audio)))
        if any(g.do_isolated_modality_generation() for g in active):
            passes.append(GuidancePass("isolated", self.positive, ISOLATED_MODALITIES))
        return passes

    def __call__(
        self, video_state: LatentState, audio_state: LatentState | None, sigmas: torch.Tensor, step: int
    ) -> Prediction:
        sigma = sigmas[step]
        video_guider = self.video_guider.build_from_sigma(sigma)
        audio_guider = self.audio_guider.build_from_sigma(sigma)
        passes = self.passes_for(video_guider, audio_guider, step)
        results = self._run(video_state, audio_state, sigma, passes)
        video = _combine(video_guider, results, 0, step)
        audio = _combine(audio_guider, results, 1, step) if audio_state is not None else None
        return video, audio


    def _run(
        self, video_state: LatentState, audio_state: LatentState | None, sigma: torch.Tensor, passes: list[GuidancePass]
    ) -> dict[str, Prediction]:
        graphed = self._runner.run(
            video_state, audio_state, sigma, passes, self._batched(video_state), self.share_stg_prefix
        )
        if graphed is not None:  # small inputs on a GPU: all passes replayed from captured graphs
            return graphed
        by_name = {p.name: p for p in passes}
        stg = by_name.get("perturbed")
        fork = _stg_fork_block(stg.perturbations) if stg is not None and self.share_stg_prefix else None
        batched = self._batched(video_state)
        if fork is None or fork == 0:
            return run_passes(self.transformer, video_state, audio_state, sigma, passes, batched)
        results = run_cond_and_stg(self.transformer, video_state, audio_state, sigma, by_name["cond"], stg, fork)
        rest = [p for p in passes if p.name not in ("cond", "perturbed")]
        if rest:
            results.update(run_passes(self.transformer, video_state, audio_state, sigma, rest, batched))
        return results

    def _batched(self, video_state: LatentState) -> bool:
        """Stack passes in one batch? Measured on an H100: 2x faster at 1 536 video tokens, no gain at 6 144."""
        if self.batch_passes is not None:
            return self.batch_passes
        return video_state.latent.device.type == "cuda" and video_state.latent.shape[1] <= BATCH_PASSES_MAX_TOKENS


def _combine(guider: MultiModalGuider, results: dict[str, Prediction], index: int, step: int) -> torch.Tensor:
    cond = results["cond"][index]
    if guider.should_skip_step(step):
        return cond

    def other(name: str) -> torch.Tensor:
        # A pass this modality did not ask for contributes nothing: use cond in its place.
        return results[name][index] if name in results else cond

    guided = guider.calculate(cond, other("uncond"), other("perturbed"), other("isolated"))
    return guided.to(cond.dtype)
