"""Denoise functions: turn latent states into clean estimates with the transformer.

* :class:`ConditionalDenoiser` - one pass with the prompt (distilled model, stage 2).
* :class:`MultiModalGuidedDenoiser` - multimodal guidance per modality: CFG against the
  negative prompt, STG against a pass with self-attention skipped in chosen blocks,
  modality CFG against a pass with the audio<->video cross-attention cut, then
  variance rescale; each guider may skip steps. Only the passes some modality needs
  at this step are run.

How the passes run (engine, batching, order) is the pass executor's business
(``transformer_passes``); a denoiser only asks for passes and combines their results.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from ltx_core.components.guiders import MultiModalGuider, MultiModalGuiderFactory
from ltx_core.guidance.perturbations import Perturbation, PerturbationConfig, PerturbationType
from ltx_core.model.transformer import X0Model
from ltx_core.types import LatentState

from ltx_pipelines.models.transformer_passes import (
    GuidancePass,
    PassExecutor,
    Prediction,
    PromptEmbeddings,
    TransformerPasses,
)


class ConditionalDenoiser:
    """A single conditional pass: the distilled model needs no guidance."""

    def __init__(
        self,
        transformer: X0Model,
        prompt: PromptEmbeddings,
        cuda_graphs: bool | None = None,
        executor: PassExecutor | None = None,
    ):
        self.transformer = transformer
        self.prompt = prompt
        self.executor = executor or TransformerPasses(transformer, cuda_graphs=cuda_graphs)

    def __call__(
        self, video_state: LatentState, audio_state: LatentState | None, sigmas: torch.Tensor, step: int
    ) -> Prediction:
        passes = [GuidancePass("cond", self.prompt, PerturbationConfig.empty())]
        return self.executor(video_state, audio_state, sigmas[step], passes)["cond"]


def stg_perturbations(video: MultiModalGuider, audio: MultiModalGuider) -> PerturbationConfig:
    """Skip self-attention in the STG blocks of each modality that asks for it."""
    perturbations = []
    if video.do_perturbed_generation():
        perturbations.append(Perturbation(PerturbationType.SKIP_VIDEO_SELF_ATTN, list(video.params.stg_blocks or [])))
    if audio.do_perturbed_generation():
        perturbations.append(Perturbation(PerturbationType.SKIP_AUDIO_SELF_ATTN, list(audio.params.stg_blocks or [])))
    return PerturbationConfig(perturbations)


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
        executor: PassExecutor | None = None,
        in_float32: bool = False,
        contiguous_latents: bool = False,
    ):
        """``in_float32``: combine the passes in float32 (the reference 1.2.0; 1.0.0 used the passes' dtype).
        ``contiguous_latents``: the passes read contiguous copies of the latents, as the 1.2.0 reference's do (it
        repeats the state to batch its passes); the memory layout decides how the first projection rounds."""
        self.transformer = transformer
        self.in_float32 = in_float32
        self.contiguous_latents = contiguous_latents
        self.positive = positive
        self.negative = negative
        self.video_guider = video_guider
        self.audio_guider = audio_guider
        self.executor = executor or TransformerPasses(
            transformer, batch_passes=batch_passes, share_stg_prefix=share_stg_prefix, cuda_graphs=cuda_graphs
        )

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
        if self.contiguous_latents:
            video_state, audio_state = _contiguous_latent(video_state), _contiguous_latent(audio_state)
        results = self.executor(video_state, audio_state, sigma, passes)
        video = _combine(video_guider, results, 0, step, self.in_float32)
        audio = _combine(audio_guider, results, 1, step, self.in_float32) if audio_state is not None else None
        return video, audio


def _contiguous_latent(state: LatentState | None) -> LatentState | None:
    return state if state is None else replace(state, latent=state.latent.contiguous())


def _combine(
    guider: MultiModalGuider, results: dict[str, Prediction], index: int, step: int, in_float32: bool = False
) -> torch.Tensor:
    cond = results["cond"][index]
    if guider.should_skip_step(step):
        return cond

    def other(name: str) -> torch.Tensor:
        # A pass this modality did not ask for contributes nothing: use cond in its place.
        value = results[name][index] if name in results else cond
        return value.to(torch.float32) if in_float32 else value

    guided = guider.calculate(other("cond"), other("uncond"), other("perturbed"), other("isolated"))
    return guided.to(cond.dtype)
