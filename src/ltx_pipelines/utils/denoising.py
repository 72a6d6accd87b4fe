"""Denoising loops: walk a sigma schedule, asking a denoise function for clean estimates.

A loop knows nothing about models or guidance. It receives

* ``sigmas``: the schedule, ending at 0;
* ``video_state`` / ``audio_state``: ltx-core ``LatentState`` objects (patchified);
* ``stepper``: an ltx-core diffusion step (``EulerDiffusionStep``, ...);
* ``denoise_fn(video_state, audio_state, sigmas, step_index) -> (video_x0, audio_x0)``.

Tokens with a denoise-mask below 1 (conditioning) are pulled back to their clean
values after every prediction, so frozen content stays frozen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

import torch
from ltx_core.components.diffusion_steps import EulerDiffusionStep, Res2sDiffusionStep
from ltx_core.components.protocols import DiffusionStepProtocol
from ltx_core.types import LatentState
from ltx_core.utils import to_denoised, to_velocity

Prediction = tuple[torch.Tensor | None, torch.Tensor | None]
DenoiseFn = Callable[[LatentState, LatentState | None, torch.Tensor, int], Prediction]
StepCallback = Callable[[int, int], None]


class DenoisingLoop(Protocol):
    def __call__(
        self,
        sigmas: torch.Tensor,
        video_state: LatentState,
        audio_state: LatentState | None,
        stepper: DiffusionStepProtocol,
        denoise_fn: DenoiseFn,
        on_step: StepCallback | None = None,
    ) -> tuple[LatentState, LatentState | None]: ...


def keep_conditioned_tokens(denoised: torch.Tensor, state: LatentState) -> torch.Tensor:
    """Blend the prediction with the clean latent where the denoise mask is below 1."""
    mask = state.denoise_mask.to(torch.float32)
    blended = denoised.to(torch.float32) * mask + state.clean_latent.to(torch.float32) * (1 - mask)
    return blended.to(denoised.dtype)


def _predict(
    denoise_fn: DenoiseFn,
    video_state: LatentState,
    audio_state: LatentState | None,
    sigmas: torch.Tensor,
    step: int,
) -> Prediction:
    video_x0, audio_x0 = denoise_fn(video_state, audio_state, sigmas, step)
    video_x0 = keep_conditioned_tokens(video_x0, video_state)
    if audio_state is not None and audio_x0 is not None:
        audio_x0 = keep_conditioned_tokens(audio_x0, audio_state)
    return video_x0, audio_x0


def _advance(state: LatentState | None, latent: torch.Tensor | None) -> LatentState | None:
    return state if state is None or latent is None else replace(state, latent=latent)


def euler_denoising_loop(
    sigmas: torch.Tensor,
    video_state: LatentState,
    audio_state: LatentState | None,
    stepper: DiffusionStepProtocol,
    denoise_fn: DenoiseFn,
    on_step: StepCallback | None = None,
) -> tuple[LatentState, LatentState | None]:
    """First-order sampling: one model evaluation per step."""
    steps = len(sigmas) - 1
    for step in range(steps):
        video_x0, audio_x0 = _predict(denoise_fn, video_state, audio_state, sigmas, step)
        video_state = _advance(video_state, stepper.step(video_state.latent, video_x0, sigmas, step))
        if audio_state is not None:
            audio_state = _advance(audio_state, stepper.step(audio_state.latent, audio_x0, sigmas, step))
        if on_step:
            on_step(step + 1, steps)
    return video_state, audio_state


def _extrapolate(
    sample: torch.Tensor, x0: torch.Tensor, sigma: torch.Tensor, previous_velocity: torch.Tensor | None, gamma: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient estimation: push the velocity along its change since the last step."""
    velocity = to_velocity(sample, sigma, x0)
    if previous_velocity is None:
        return velocity, x0
    corrected = previous_velocity + gamma * (velocity - previous_velocity)
    return velocity, to_denoised(sample, corrected, sigma)


def gradient_estimating_euler_denoising_loop(
    sigmas: torch.Tensor,
    video_state: LatentState,
    audio_state: LatentState | None,
    stepper: DiffusionStepProtocol,
    denoise_fn: DenoiseFn,
    ge_gamma: float = 2.0,
    on_step: StepCallback | None = None,
) -> tuple[LatentState, LatentState | None]:
    """Euler with gradient estimation: similar quality in ~20-30 steps instead of 40.

    From the second step on, the velocity used is ``v_prev + gamma * (v - v_prev)``.
    The final step (to sigma 0) returns the clean estimate directly.
    """
    steps = len(sigmas) - 1
    video_velocity = audio_velocity = None
    for step in range(steps):
        video_x0, audio_x0 = _predict(denoise_fn, video_state, audio_state, sigmas, step)
        if float(sigmas[step + 1]) == 0.0:
            video_state = _advance(video_state, video_x0)
            audio_state = _advance(audio_state, audio_x0)
        else:
            sigma = sigmas[step]
            video_velocity, video_x0 = _extrapolate(video_state.latent, video_x0, sigma, video_velocity, ge_gamma)
            video_state = _advance(video_state, stepper.step(video_state.latent, video_x0, sigmas, step))
            if audio_state is not None and audio_x0 is not None:
                audio_velocity, audio_x0 = _extrapolate(audio_state.latent, audio_x0, sigma, audio_velocity, ge_gamma)
                audio_state = _advance(audio_state, stepper.step(audio_state.latent, audio_x0, sigmas, step))
        if on_step:
            on_step(step + 1, steps)
    return video_state, audio_state


def default_stepper() -> DiffusionStepProtocol:
    return EulerDiffusionStep()


__all__ = [
    "DenoiseFn",
    "DenoisingLoop",
    "EulerDiffusionStep",
    "Res2sDiffusionStep",
    "euler_denoising_loop",
    "gradient_estimating_euler_denoising_loop",
    "keep_conditioned_tokens",
]
