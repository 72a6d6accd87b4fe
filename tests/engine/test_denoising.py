"""Denoising loops on toy denoisers whose right answer is known exactly."""

from __future__ import annotations

import math
from functools import partial

import torch
from ltx_core.components.diffusion_steps import EulerDiffusionStep, Res2sDiffusionStep
from ltx_core.types import LatentState

from ltx_pipelines.engine.denoising import (
    euler_denoising_loop,
    gradient_estimating_euler_denoising_loop,
    res2s_coefficients,
    res2s_denoising_loop,
)

#: The deterministic (ODE) res_2s, whose convergence order can be measured.
res2s_ode = partial(res2s_denoising_loop, sde_noise=False)

# Gaussian data x0 ~ N(MEAN, STD^2) per element. Under x = (1 - sigma) x0 + sigma * noise the
# posterior mean E[x0 | x] is analytic, and the flow ODE carries noise n (sigma 1) to MEAN + STD * n.
MEAN, STD = 0.7, 0.4


def gaussian_x0(x: torch.Tensor, sigma: float) -> torch.Tensor:
    signal = 1.0 - sigma
    gain = signal * STD**2 / (signal**2 * STD**2 + sigma**2)
    return MEAN + gain * (x - signal * MEAN)


def make_state(
    latent: torch.Tensor, mask: torch.Tensor | None = None, clean: torch.Tensor | None = None
) -> LatentState:
    """A [1, tokens, channels] state; mask 1 = denoise, 0 = keep the clean value."""
    tokens = latent.shape[1]
    return LatentState(
        latent=latent,
        denoise_mask=mask if mask is not None else torch.ones(1, tokens, 1, dtype=latent.dtype),
        positions=torch.zeros(1, 3, tokens, 2),
        clean_latent=clean if clean is not None else torch.zeros_like(latent),
    )


def analytic_denoiser(video: LatentState, audio: LatentState | None, sigmas: torch.Tensor, step: int):
    sigma = float(sigmas[step])
    return gaussian_x0(video.latent, sigma), gaussian_x0(audio.latent, sigma) if audio is not None else None


def final_error(loop, steps: int, noise: torch.Tensor) -> float:  # noqa: ANN001
    sigmas = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    video, _ = loop(sigmas, make_state(noise.clone()), None, EulerDiffusionStep(), analytic_denoiser)
    return float((video.latent - (MEAN + STD * noise)).abs().max())


def convergence_ratios(loop) -> list[float]:  # noqa: ANN001
    """error(n steps) / error(2n steps) for n = 8, 16, 32."""
    noise = torch.randn(1, 256, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    errors = [final_error(loop, steps, noise) for steps in (8, 16, 32, 64)]
    return [coarse / fine for coarse, fine in zip(errors, errors[1:])]


def test_res2s_is_second_order() -> None:
    ratios = convergence_ratios(res2s_ode)
    assert all(ratio > 3.0 for ratio in ratios), ratios


def test_euler_is_first_order() -> None:
    ratios = convergence_ratios(euler_denoising_loop)
    assert all(1.6 < ratio < 2.6 for ratio in ratios), ratios


def test_res2s_beats_euler_at_equal_model_evaluations() -> None:
    noise = torch.randn(1, 64, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert final_error(res2s_ode, 16, noise) < final_error(euler_denoising_loop, 32, noise) / 2


def test_res2s_coefficients_are_exact_for_constant_x0() -> None:
    """With x0 constant the flow is x(sigma) = x0 + sigma / sigma_0 (x - x0): both the midpoint
    (h / 2 in log-sigma) and the full step must reproduce it exactly."""
    for h in (1e-3, 0.3, math.log(0.8 / 0.3), 4.0):
        c = res2s_coefficients(h)
        assert abs(h * c.a21 - (1 - math.exp(-h / 2))) < 1e-12
        assert abs(h * (c.b1 + c.b2) - (1 - math.exp(-h))) < 1e-12
    tiny = res2s_coefficients(1e-12)  # the series limits, no 0 / 0
    assert (tiny.a21, tiny.b1 + tiny.b2) == (0.5, 1.0)


def test_res2s_evaluates_twice_per_step_and_once_for_the_last() -> None:
    calls: list[tuple[int, float]] = []

    def denoiser(video: LatentState, audio: LatentState | None, sigmas: torch.Tensor, step: int):
        calls.append((step, round(float(sigmas[step]), 6)))
        return analytic_denoiser(video, audio, sigmas, step)

    sigmas = torch.tensor([1.0, 0.25, 0.0])
    audio = make_state(torch.randn(1, 5, 2))
    done: list[tuple[int, int]] = []
    res2s_denoising_loop(
        sigmas, make_state(torch.randn(1, 8, 4)), audio, EulerDiffusionStep(), denoiser, lambda *p: done.append(p)
    )
    # Each step: at sigma, then at the geometric midpoint (as step 0 of a one-sigma schedule); a final sigma 0
    # becomes 0.0011 -> 0, the last step ending at 0.0011 and the result being the x0 predicted there.
    assert calls == [(0, 1.0), (0, 0.5), (1, 0.25), (0, round((0.25 * 0.0011) ** 0.5, 6)), (2, 0.0011)]
    assert done == [(1, 2), (2, 2)]


def test_res2s_keeps_conditioned_tokens_and_sde_noise_is_seeded() -> None:
    clean = torch.full((1, 6, 4), 5.0)
    mask = torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0, 1.0]).view(1, 6, 1)
    start = torch.where(mask.bool(), torch.randn(1, 6, 4, generator=torch.Generator().manual_seed(2)), clean)
    sigmas = torch.tensor([1.0, 0.6, 0.3, 0.1])  # never reaches 0: the result still carries SDE noise

    def run(**seeds: int) -> torch.Tensor:
        video, _ = res2s_denoising_loop(
            sigmas, make_state(start.clone(), mask, clean), None, Res2sDiffusionStep(), analytic_denoiser, **seeds
        )  # fmt: skip
        return video.latent

    first, again = run(), run(noise_seed=-1, substep_noise_seed=9999)  # the reference's seeds are the defaults
    assert torch.equal(first, again)
    assert not torch.allclose(first[:, 2:], run(noise_seed=4)[:, 2:])
    assert not torch.allclose(first[:, 2:], run(substep_noise_seed=4)[:, 2:])
    assert torch.equal(first[:, :2], clean[:, :2])
    ode, _ = res2s_ode(sigmas, make_state(start.clone(), mask, clean), None, Res2sDiffusionStep(), analytic_denoiser)
    assert not torch.allclose(first[:, 2:], ode.latent[:, 2:])  # the SDE variant does inject noise


def test_gradient_estimation_two_steps_by_hand() -> None:
    """sigmas 1 -> 0.5 -> 0.25, gamma 2, fixed x0 predictions per step.

    video, element 0: x=2, x0=1 then 0.5. Step 0: v=(2-1)/1=1, x=2-0.5*1=1.5.
    Step 1: v=(1.5-0.5)/0.5=2, corrected 1+2*(2-1)=3, x=1.5-0.25*3=0.75.
    video, element 1: x=-1, x0=0 then 0.25. v=-1, x=-0.5; v=-1.5, corrected -1+2*(-0.5)=-2, x=0.
    audio: x=4, x0=0 then 1. v=4, x=2; v=(2-1)/0.5=2, corrected 4+2*(2-4)=0, x=2.
    """
    predictions = {
        0: (torch.tensor([[[1.0], [0.0]]]), torch.tensor([[[0.0]]])),
        1: (torch.tensor([[[0.5], [0.25]]]), torch.tensor([[[1.0]]])),
    }
    seen: list[float] = []

    def fixed(video: LatentState, audio: LatentState | None, sigmas: torch.Tensor, step: int):
        seen.append(float(sigmas[step]))
        return predictions[step]

    video, audio = gradient_estimating_euler_denoising_loop(
        torch.tensor([1.0, 0.5, 0.25]),
        make_state(torch.tensor([[[2.0], [-1.0]]])),
        make_state(torch.tensor([[[4.0]]])),
        EulerDiffusionStep(),
        fixed,
        ge_gamma=2.0,
    )
    assert seen == [1.0, 0.5]
    assert torch.equal(video.latent, torch.tensor([[[0.75], [0.0]]]))
    assert torch.equal(audio.latent, torch.tensor([[[2.0]]]))


def test_gradient_estimation_last_step_returns_the_prediction() -> None:
    """Steps ending at sigma 0 return that step's x0, uncorrected."""
    predictions = {0: torch.tensor([[[1.0]]]), 1: torch.tensor([[[0.5]]])}

    def fixed(video: LatentState, audio: LatentState | None, sigmas: torch.Tensor, step: int):
        return predictions[step], None

    video, _ = gradient_estimating_euler_denoising_loop(
        torch.tensor([1.0, 0.5, 0.0]), make_state(torch.tensor([[[2.0]]])), None, EulerDiffusionStep(), fixed
    )
    assert torch.equal(video.latent, torch.tensor([[[0.5]]]))
