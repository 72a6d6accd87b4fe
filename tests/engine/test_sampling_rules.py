"""The reference 1.2.0's sampling rules (LTX-2.5) next to 1.0.0's (LTX-2, 2.3), each checked against its formula.

The whole-pipeline comparison with the reference's own output is the golden test; these pin each rule alone.
"""

from __future__ import annotations

import pytest
import torch
from ltx_core.components.diffusion_steps import EulerDiffusionStep
from ltx_core.components.noisers import GaussianNoiser
from ltx_core.components.patchifiers import VideoLatentPatchifier
from ltx_core.conditioning import VideoConditionByKeyframeIndex, VideoConditionByLatentIndex
from ltx_core.tools import VideoLatentTools
from ltx_core.types import LatentState, VideoLatentShape

from ltx_pipelines.engine.conditioning import OnePixelFrameKeyframe
from ltx_pipelines.engine.denoising import ancestral_step, euler_ancestral_denoising_loop
from ltx_pipelines.engine.sampling_rules import REFERENCE_1_0, CleanLatentNoiser, SamplingRules, keep_noisy_latent
from ltx_pipelines.engine.stages import prepare_state, with_stream_rules
from ltx_pipelines.models.transformer_passes import make_modality

FPS = 24.0


def tools(frames: int = 3, height: int = 2, width: int = 3) -> VideoLatentTools:
    shape = VideoLatentShape(batch=1, channels=4, frames=frames, height=height, width=width)
    return VideoLatentTools(patchifier=VideoLatentPatchifier(patch_size=1), target_shape=shape, fps=FPS)


def state(generator: torch.Generator, tokens: int = 18, mask: float | torch.Tensor = 1.0) -> LatentState:
    latent = torch.randn(1, tokens, 4, generator=generator)
    denoise_mask = mask if isinstance(mask, torch.Tensor) else torch.full((1, tokens, 1), mask)
    return LatentState(latent=latent, denoise_mask=denoise_mask, positions=torch.zeros(1, 3, tokens, 2),
                       clean_latent=torch.randn(1, tokens, 4, generator=generator))  # fmt: skip


def test_clean_latent_noiser_blends_from_the_clean_latent() -> None:
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(1, 18, 1, generator=g)
    start = state(g, mask=mask)
    noise = torch.randn(start.latent.shape, generator=torch.Generator().manual_seed(5))
    got = CleanLatentNoiser(torch.Generator().manual_seed(5))(start, 0.7).latent
    noisy = (1 - 0.7) * start.latent + 0.7 * noise
    torch.testing.assert_close(got, start.clean_latent + mask * (noisy - start.clean_latent), rtol=1e-6, atol=1e-6)


def test_clean_latent_noiser_equals_1_0_where_the_rules_agree() -> None:
    """Fully denoised tokens, or a clean latent equal to the latent at full noise: both give the same values."""
    g = torch.Generator().manual_seed(1)
    full = state(g, mask=1.0)
    old = GaussianNoiser(torch.Generator().manual_seed(3))(full, 0.6).latent
    new = CleanLatentNoiser(torch.Generator().manual_seed(3))(full, 0.6).latent
    torch.testing.assert_close(new, old, rtol=1e-6, atol=1e-6)
    partial = state(g, mask=0.4)
    same = LatentState(partial.latent, partial.denoise_mask, partial.positions, partial.latent)
    old = GaussianNoiser(torch.Generator().manual_seed(3))(same, 1.0).latent
    new = CleanLatentNoiser(torch.Generator().manual_seed(3))(same, 1.0).latent
    torch.testing.assert_close(new, old, rtol=1e-6, atol=1e-6)
    assert not torch.allclose(CleanLatentNoiser(torch.Generator().manual_seed(3))(partial, 0.5).latent,
                              GaussianNoiser(torch.Generator().manual_seed(3))(partial, 0.5).latent)  # fmt: skip


def test_conditioning_writes_only_the_clean_latent_under_1_2() -> None:
    g = torch.Generator().manual_seed(2)
    t = tools()
    image = torch.randn(1, 4, 1, 2, 3, generator=g)
    keyframe = torch.randn(1, 4, 1, 2, 3, generator=g)
    items = [VideoConditionByLatentIndex(image, strength=1.0, latent_idx=0),
             VideoConditionByKeyframeIndex(keyframe, frame_idx=16, strength=0.8)]  # fmt: skip
    initial = torch.randn(1, 4, 3, 2, 3, generator=g)
    keep = SamplingRules(conditioning_keeps_latent=True)
    no_noise = lambda s, scale: s  # noqa: E731 - look at the conditioned state itself
    before = prepare_state(t, items, no_noise, 1.0, torch.device("cpu"), torch.float32, initial, REFERENCE_1_0)
    after = prepare_state(t, items, no_noise, 1.0, torch.device("cpu"), torch.float32, initial, keep)
    patchified = t.patchifier.patchify(initial)
    torch.testing.assert_close(after.latent[:, :18], patchified)  # the replaced frame keeps its noisy latent
    assert torch.count_nonzero(after.latent[:, 18:]) == 0  # appended tokens start at zero
    torch.testing.assert_close(after.clean_latent, before.clean_latent)
    torch.testing.assert_close(after.denoise_mask, before.denoise_mask)
    torch.testing.assert_close(before.latent[:, :6], t.patchifier.patchify(image))  # 1.0.0 wrote the latent too


def test_keep_noisy_latent_restores_existing_tokens_and_zeroes_appended_ones() -> None:
    g = torch.Generator().manual_seed(3)
    before = state(g, tokens=4)
    grown = LatentState(torch.randn(1, 6, 4, generator=g), torch.ones(1, 6, 1), torch.zeros(1, 3, 6, 2),
                        torch.randn(1, 6, 4, generator=g))  # fmt: skip
    kept = keep_noisy_latent(before, grown)
    torch.testing.assert_close(kept.latent[:, :4], before.latent)
    assert torch.count_nonzero(kept.latent[:, 4:]) == 0
    assert kept.clean_latent is grown.clean_latent


@pytest.mark.parametrize("frame_idx", [0, 8, 17])
def test_one_pixel_frame_keyframes_span_one_frame(frame_idx: int) -> None:
    t = tools()
    keyframe = torch.randn(1, 4, 1, 2, 3, generator=torch.Generator().manual_seed(frame_idx))
    start = t.create_initial_state(torch.device("cpu"), torch.float32)
    old = VideoConditionByKeyframeIndex(keyframe, frame_idx, 1.0).apply_to(start, t)
    new = OnePixelFrameKeyframe(keyframe, frame_idx, 1.0).apply_to(start, t)
    appended_old, appended_new = old.positions[:, :, 18:], new.positions[:, :, 18:]
    torch.testing.assert_close(appended_new[:, 0, :, 0], appended_old[:, 0, :, 0])  # same start
    torch.testing.assert_close(appended_new[:, 0, :, 1], appended_new[:, 0, :, 0] + 1 / FPS)  # one frame on
    torch.testing.assert_close(appended_new[:, 1:], appended_old[:, 1:])  # space unchanged
    torch.testing.assert_close(new.positions[:, :, :18], start.positions)
    torch.testing.assert_close(new.latent, old.latent)


def test_ancestral_step_at_eta_0_is_an_euler_step_and_renoises_at_eta_1() -> None:
    g = torch.Generator().manual_seed(4)
    sample, x0, noise = (torch.randn(1, 8, 4, generator=g) for _ in range(3))
    sigmas = torch.tensor([0.9, 0.6, 0.0])
    euler = EulerDiffusionStep().step(sample, x0, sigmas, 0)
    torch.testing.assert_close(ancestral_step(sample, x0, sigmas[0], sigmas[1], noise, eta=0.0), euler)
    sigma, nxt = 0.9, 0.6
    down = nxt * nxt / sigma
    renoise = (nxt**2 - down**2 * (1 - nxt) ** 2 / (1 - down) ** 2) ** 0.5
    want = (1 - nxt) / (1 - down) * (down / sigma * sample + (1 - down / sigma) * x0) + renoise * noise
    torch.testing.assert_close(ancestral_step(sample, x0, sigmas[0], sigmas[1], noise), want)


def test_ancestral_loop_draws_its_own_seeded_noise_and_keeps_conditioned_tokens() -> None:
    g = torch.Generator().manual_seed(5)
    mask = torch.ones(1, 18, 1)
    mask[:, :6] = 0.0
    video, audio = state(g, mask=mask), state(g, tokens=5)
    x0 = torch.randn(1, 18, 4, generator=g), torch.randn(1, 5, 4, generator=g)
    sigmas = torch.tensor([1.0, 0.7, 0.0])
    run = lambda seed, s: euler_ancestral_denoising_loop(  # noqa: E731
        s, video, audio, EulerDiffusionStep(), lambda *_: x0, noise_seed=seed)
    (v1, _), (v2, _), (v3, _) = run(10, sigmas[:2]), run(10, sigmas[:2]), run(11, sigmas[:2])
    torch.testing.assert_close(v1.latent, v2.latent)
    assert not torch.allclose(v1.latent[:, 6:], v3.latent[:, 6:])  # the noise comes from the loop's own seed
    torch.testing.assert_close(v1.latent[:, :6], video.clean_latent[:, :6])  # conditioned tokens put back
    final_video, final_audio = run(10, sigmas)
    torch.testing.assert_close(final_video.latent[:, 6:], x0[0][:, 6:])  # the last step returns the estimate
    torch.testing.assert_close(final_audio.latent, x0[1])


def test_first_frame_marking_and_frozen_streams_reach_the_transformer_input() -> None:
    g = torch.Generator().manual_seed(6)
    seen = []

    def look(v: LatentState, a: LatentState, s: torch.Tensor, i: int) -> None:
        seen.append((make_modality(v, s[i], torch.zeros(1, 2, 8)), make_modality(a, s[i], torch.zeros(1, 2, 8))))

    given_audio = state(g, tokens=5, mask=0.0)
    with_stream_rules(look, SamplingRules(marks_first_frame=True, frozen_streams_at_sigma_0=True), 6)(
        state(g, tokens=20), given_audio, torch.tensor([0.8]), 0)
    video, audio = seen[0]
    mask = video.keyframes_mask
    assert mask.shape == (1, 20, 1) and mask[:, :6].eq(1).all() and mask[:, 6:].eq(0).all()
    assert float(video.sigma) == pytest.approx(0.8) and float(audio.sigma) == 0.0  # the soundtrack is frozen
    with_stream_rules(look, REFERENCE_1_0, 6)(state(g, tokens=20), given_audio, torch.tensor([0.8]), 0)
    video, audio = seen[1]
    assert not hasattr(video, "keyframes_mask") and float(audio.sigma) == pytest.approx(0.8)  # 1.0.0 unchanged


def test_a_float64_sigma_reaches_the_transformer_in_float64_only_under_1_2() -> None:
    """res_2s's substep sigma is float64: 1.2.0 hands it on as it is, 1.0.0 rounds the timesteps to float32."""
    g = torch.Generator().manual_seed(7)
    seen = []

    def look(v: LatentState, a: LatentState | None, s: torch.Tensor, i: int) -> None:
        seen.append(make_modality(v, s[i], torch.zeros(1, 2, 8)))

    sigma = torch.tensor([0.316227803714123], dtype=torch.float64)
    with_stream_rules(look, SamplingRules(keeps_sigma_precision=True), 6)(state(g), None, sigma, 0)
    with_stream_rules(look, REFERENCE_1_0, 6)(state(g), None, sigma, 0)
    precise, rounded = seen
    assert precise.sigma.dtype == precise.timesteps.dtype == torch.float64
    assert float(precise.timesteps.max()) == 0.316227803714123
    assert rounded.sigma.dtype == rounded.timesteps.dtype == torch.float32
