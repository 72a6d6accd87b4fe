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

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import torch
from ltx_core.components.diffusion_steps import EulerDiffusionStep, Res2sDiffusionStep
from ltx_core.components.protocols import DiffusionStepProtocol
from ltx_core.types import LatentState
from ltx_core.utils import to_denoised, to_velocity

from ltx_pipelines.models.transformer_passes import Prediction

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
    return blend_float32(denoised, state).to(denoised.dtype)


def blend_float32(latent: torch.Tensor, state: LatentState) -> torch.Tensor:
    """``latent`` where the denoise mask allows, the clean latent elsewhere, in float32."""
    mask = state.denoise_mask.to(torch.float32)
    return latent.to(torch.float32) * mask + state.clean_latent.to(torch.float32) * (1 - mask)


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


# -- Euler-ancestral: LTX-2.5's distilled stage 1 (the reference 1.2.0) -------------------------------
#
# Rectified flow (alpha = 1 - sigma). A step from sigma to sigma' goes deterministically to
# sigma_d = sigma' * (1 + (sigma'/sigma - 1) * eta) (sigma'^2 / sigma at eta 1), then is renoised up to
# sigma': x' = (alpha'/alpha_d) * x_d + s_noise * k * z with k = sqrt(max(0, sigma'^2 - sigma_d^2 alpha'^2 /
# alpha_d^2)). Arithmetic in float32; conditioned tokens are put back after the noise.


def ancestral_step(sample: torch.Tensor, x0: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor,
                   noise: torch.Tensor, eta: float = 1.0, s_noise: float = 1.0) -> torch.Tensor:  # fmt: skip
    """One Euler-ancestral step of float32 ``sample`` towards float32 ``x0`` (float32 result)."""
    sigma, sigma_next = sigma.to(torch.float32), sigma_next.to(torch.float32)
    sigma_down = sigma_next * (1.0 + (sigma_next / sigma - 1.0) * eta)
    ratio = sigma_down / sigma
    stepped = ratio * sample + (1.0 - ratio) * x0
    alpha_next, alpha_down = 1.0 - sigma_next, 1.0 - sigma_down
    renoise = (sigma_next**2 - sigma_down**2 * alpha_next**2 / alpha_down**2).clamp(min=0) ** 0.5
    return (alpha_next / alpha_down) * stepped + noise.to(torch.float32) * s_noise * renoise


def euler_ancestral_denoising_loop(
    sigmas: torch.Tensor,
    video_state: LatentState,
    audio_state: LatentState | None,
    stepper: DiffusionStepProtocol,  # noqa: ARG001 - the loop's own step (the protocol's argument)
    denoise_fn: DenoiseFn,
    on_step: StepCallback | None = None,
    *,
    noise_seed: int,
    eta: float = 1.0,
    s_noise: float = 1.0,
) -> tuple[LatentState, LatentState | None]:
    """Euler-ancestral sampling with its own noise: a generator seeded ``noise_seed`` on the latents' device
    draws one latent-shaped, latent-dtype noise per modality and step (video, then audio). The last step, to
    sigma 0, returns the clean estimate."""
    generator = torch.Generator(device=video_state.latent.device).manual_seed(noise_seed)
    states = [video_state, audio_state]
    steps = len(sigmas) - 1
    for step in range(steps):
        predictions = denoise_fn(states[0], states[1], sigmas, step)
        for index, (state, x0) in enumerate(zip(states, predictions, strict=True)):
            if state is None or x0 is None:
                continue
            denoised = blend_float32(x0, state)
            if float(sigmas[step + 1]) == 0.0:
                states[index] = replace(state, latent=denoised.to(state.latent.dtype))
                continue
            noise = torch.randn(state.latent.shape, generator=generator, dtype=state.latent.dtype,
                                device=state.latent.device)  # fmt: skip
            stepped = ancestral_step(state.latent.to(torch.float32), denoised, sigmas[step], sigmas[step + 1], noise,
                                     eta, s_noise)  # fmt: skip
            states[index] = replace(state, latent=blend_float32(stepped, state).to(state.latent.dtype))
        if on_step:
            on_step(step + 1, steps)
    return states[0], states[1]


# -- res_2s: the reference's stochastic second-order exponential integrator ----------------------
#
# In x0 form the flow ODE is dx/dsigma = (x - x0(x, sigma)) / sigma. With t = -log(sigma) the part
# linear in x integrates exactly; one step of size h = log(sigma / sigma_next) evaluates x0 at the
# start (x0_1) and at the geometric midpoint sqrt(sigma * sigma_next) (x0_2), with eps = x0 - x:
#
#     x_mid  = x + h * a21 * eps_1                     a21 = c2 * phi1(-c2 h)
#     x_next = x + h * (b1 * eps_1 + b2 * eps_2)       b2 = phi2(-h) / c2,  b1 = phi1(-h) - b2
#
# (c2 = 1/2; phi1(z) = (e^z - 1) / z, phi2(z) = (e^z - 1 - z) / z^2): second order in h.
# As ltx-pipelines 1.0.0 defines it, and as its HQ pipeline's defaults were tuned for:
#
# * SDE: x_mid and x_next are each partly re-noised with ltx-core's Res2sDiffusionStep from the
#   step's anchor, with fresh Gaussian noise (float64, standardised over the whole latent, twice).
#   x_mid's noise comes from a "substep" generator, x_next's from a "step" generator, seeded
#   noise_seed + 10000 and noise_seed; each step draws substep video, substep audio, step video,
#   step audio. Conditioned tokens (denoise mask 0) are put back to their clean values.
# * Anchor refinement: for steps with h < 0.5 above sigma 0.03, the anchor x is re-solved from the
#   noised x_mid (x = x_mid - h a21 (x0_1 - x), iterated) so that x_next continues from the noise
#   actually injected.
# * A schedule ending in 0 gets an extra sigma 0.0011 before it: the last full step ends there and
#   the model's x0 at 0.0011 is the result.
# * The arithmetic is float64; the states return to their dtype after each step.


@dataclass(frozen=True)
class Res2sCoefficients:
    """Weights of one res_2s step of size h (see above)."""

    a21: float
    b1: float
    b2: float


def _phi1(z: float) -> float:
    return 1.0 if abs(z) < 1e-10 else (math.exp(z) - 1.0) / z


def _phi2(z: float) -> float:
    return 0.5 if abs(z) < 1e-10 else (math.exp(z) - (1.0 + z)) / z**2


def res2s_coefficients(h: float, c2: float = 0.5) -> Res2sCoefficients:
    """a21, b1, b2 for a step of size h = log(sigma / sigma_next), midpoint at c2 in log-sigma time."""
    b2 = _phi2(-h) / c2
    return Res2sCoefficients(a21=c2 * _phi1(-h * c2), b1=_phi1(-h) - b2, b2=b2)


#: The reference's res_2s noise seed (its HQ pipeline leaves it at the default): SDE noise does not follow --seed.
RES2S_NOISE_SEED = -1
RES2S_SUBSTEP_SEED_OFFSET = 10000
#: Inserted before a final sigma of 0: the last step ends here and takes the model's x0.
RES2S_LAST_SIGMA = 0.0011
RES2S_ANCHOR_ITERATIONS = 100


def _standard_noise(shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
    """Gaussian noise, float64, made exactly zero-mean and unit-std (once overall, once over each sample)."""
    noise = torch.randn(shape, generator=generator, dtype=torch.float64, device=generator.device)
    noise = (noise - noise.mean()) / noise.std()
    centered = noise - noise.mean(dim=(-2, -1), keepdim=True)
    return centered / centered.std(dim=(-2, -1), keepdim=True)


def _with_clean_tokens(latent: torch.Tensor, state: LatentState) -> torch.Tensor:
    """Conditioned tokens back to their clean values, keeping ``latent``'s (float64) precision."""
    mask = state.denoise_mask
    return (latent * mask + state.clean_latent.float() * (1 - mask)).to(latent.dtype)


def _renoised(
    stepper: Res2sDiffusionStep,
    state: LatentState,
    anchor: torch.Tensor,
    target: torch.Tensor,
    sigmas: torch.Tensor,
    step: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """ltx-core's SDE step from ``anchor`` (at sigmas[step]) through ``target`` (at sigmas[step + 1])."""
    noise = _standard_noise(state.latent.shape, generator)
    return _with_clean_tokens(stepper.step(anchor, target, sigmas, step, noise=noise), state)


@dataclass(frozen=True)
class _Res2sNoise:
    stepper: Res2sDiffusionStep
    step: torch.Generator
    substep: torch.Generator


def _res2s_step(
    sigmas: torch.Tensor,
    step: int,
    h: float,
    states: tuple[LatentState, LatentState | None],
    denoise_fn: DenoiseFn,
    noise: _Res2sNoise | None,
    anchor_iterations: int,
) -> tuple[LatentState, LatentState | None]:
    sigma, sigma_next = sigmas[step].double(), sigmas[step + 1].double()
    sigma_mid = torch.sqrt(sigma * sigma_next)
    c = res2s_coefficients(h)
    live = [i for i, s in enumerate(states) if s is not None]
    anchor = {i: states[i].latent.clone().double() for i in live}
    first = _predict(denoise_fn, *states, sigmas, step)
    eps = {i: first[i].double() - anchor[i] for i in live}
    mid = {i: anchor[i] + h * c.a21 * eps[i] for i in live}
    if noise is not None:
        substep_sigmas = torch.stack([sigma, sigma_mid])
        for i in live:  # video first, then audio: the draw order of the substep generator
            mid[i] = _renoised(noise.stepper, states[i], anchor[i], mid[i], substep_sigmas, 0, noise.substep)
        if h < 0.5 and float(sigma) > 0.03:
            for _ in range(anchor_iterations):
                for i in live:
                    anchor[i] = mid[i] - h * c.a21 * eps[i]
                    eps[i] = first[i].double() - anchor[i]
    mid_states = [replace(s, latent=mid[i].to(s.latent.dtype)) if s is not None else None for i, s in enumerate(states)]
    second = _predict(denoise_fn, *mid_states, torch.stack([sigma_mid]).to(sigmas.device), 0)
    advanced = list(states)
    for i in live:
        target = anchor[i] + h * (c.b1 * eps[i] + c.b2 * (second[i].double() - anchor[i]))
        if noise is not None:
            target = _renoised(noise.stepper, states[i], anchor[i], target, sigmas, step, noise.step)
        advanced[i] = replace(states[i], latent=target.to(states[i].latent.dtype))
    return advanced[0], advanced[1]


def res2s_denoising_loop(
    sigmas: torch.Tensor,
    video_state: LatentState,
    audio_state: LatentState | None,
    stepper: DiffusionStepProtocol,
    denoise_fn: DenoiseFn,
    on_step: StepCallback | None = None,
    noise_seed: int = RES2S_NOISE_SEED,
    substep_noise_seed: int | None = None,
    sde_noise: bool = True,
    anchor_iterations: int = RES2S_ANCHOR_ITERATIONS,
) -> tuple[LatentState, LatentState | None]:
    """res_2s (see above): two model evaluations per step, second order.

    ``stepper`` is used when it is a ``Res2sDiffusionStep`` (a new one otherwise). The SDE noise is
    drawn on the latent's device from generators seeded ``noise_seed`` and ``substep_noise_seed``
    (default ``noise_seed + 10000``); ``sde_noise=False`` gives the deterministic (ODE) sampler.
    """
    noise = None
    if sde_noise:
        device = video_state.latent.device
        substep_seed = noise_seed + RES2S_SUBSTEP_SEED_OFFSET if substep_noise_seed is None else substep_noise_seed
        noise = _Res2sNoise(
            stepper=stepper if isinstance(stepper, Res2sDiffusionStep) else Res2sDiffusionStep(),
            step=torch.Generator(device=device).manual_seed(noise_seed),
            substep=torch.Generator(device=device).manual_seed(substep_seed),
        )
    steps = len(sigmas) - 1
    ends_clean = float(sigmas[-1]) == 0.0
    if ends_clean:
        sigmas = torch.cat([sigmas[:-1], torch.tensor([RES2S_LAST_SIGMA, 0.0], device=sigmas.device)])
    step_sizes = -torch.log(sigmas[1:].double().cpu() / sigmas[:-1].double().cpu())
    states = (video_state, audio_state)
    for step in range(steps):
        states = _res2s_step(sigmas, step, float(step_sizes[step]), states, denoise_fn, noise, anchor_iterations)
        if on_step:
            on_step(step + 1, steps)
    if ends_clean:
        video_x0, audio_x0 = _predict(denoise_fn, *states, sigmas, steps)
        states = (_advance(states[0], video_x0), _advance(states[1], audio_x0))
    return states


def default_stepper() -> DiffusionStepProtocol:
    return EulerDiffusionStep()


__all__ = [
    "ancestral_step",
    "euler_ancestral_denoising_loop",
    "DenoiseFn",
    "DenoisingLoop",
    "EulerDiffusionStep",
    "Res2sDiffusionStep",
    "euler_denoising_loop",
    "gradient_estimating_euler_denoising_loop",
    "keep_conditioned_tokens",
    "res2s_coefficients",
    "res2s_denoising_loop",
]
