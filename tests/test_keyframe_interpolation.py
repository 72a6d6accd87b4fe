"""Keyframe interpolation end to end on the smoke bundle (random weights: the video is noise).

What the keyframe test can and cannot show: with strength 1 a keyframe becomes extra
tokens at its frame's time position that are kept clean; the generated tokens feel
them only through attention. With random weights that effect has no direction: we
measured the decoded frame's distance to its (resized) keyframe with and without the
keyframe over several seeds and it moved either way by under 1%. (A random VAE decoder
does not even reproduce its own encoder's image.) So the test checks the mechanism
instead: the keyframe tokens are in stage 1 at the right time positions, stay exactly
their encoded image, and change what is generated.
"""

from __future__ import annotations

import json

import pytest
import torch
from conftest import run_module
from helpers import probe_mp4, two_stage_files
from ltx_core.types import LatentState

from ltx_pipelines.engine.denoising import euler_denoising_loop
from ltx_pipelines.keyframe_interpolation import KeyframeInterpolationPipeline

SMALL = {"height": 128, "width": 128, "num_frames": 9, "num_inference_steps": 2, "frame_rate": 24.0}
MAIN_TOKENS = 2 * 2 * 2  # stage 1: 64x64 px, 9 frames -> 2 latent frames of 2x2
KEYFRAME_TOKENS = 2 * 2  # one image -> one latent frame of 2x2


class RecordingLoop:
    """Stage 1's Euler loop, keeping the video state it started from and ended with."""

    def __init__(self) -> None:
        self.start: LatentState | None = None
        self.end: LatentState | None = None

    def __call__(self, sigmas, video_state, audio_state, stepper, denoise_fn, on_step=None):  # noqa: ANN001, ANN204
        self.start = video_state
        self.end, audio_state = euler_denoising_loop(sigmas, video_state, audio_state, stepper, denoise_fn, on_step)
        return self.end, audio_state


@pytest.fixture(scope="module")
def pipeline(smoke_bundle) -> KeyframeInterpolationPipeline:  # noqa: ANN001
    return KeyframeInterpolationPipeline(**two_stage_files(smoke_bundle, 0.8), device="cpu")


def test_keyframes_are_clean_guiding_tokens_that_change_the_video(pipeline, make_image) -> None:  # noqa: ANN001
    first, last = make_image("first.png", seed=1), make_image("last.png", seed=2)
    with_keys, without = RecordingLoop(), RecordingLoop()
    keyframes = [(first, 0, 1.0), (last, 8, 1.0)]
    keyed = pipeline("a ball rolls", seed=3, images=keyframes, denoising_loop=with_keys, **SMALL)
    plain = pipeline("a ball rolls", seed=3, denoising_loop=without, **SMALL)

    start, end = with_keys.start, with_keys.end
    assert start.latent.shape[1] == MAIN_TOKENS + 2 * KEYFRAME_TOKENS
    assert without.start.latent.shape[1] == MAIN_TOKENS
    keys = slice(MAIN_TOKENS, None)
    assert torch.all(start.denoise_mask[:, keys] == 0)  # strength 1: never denoised
    assert torch.equal(end.latent[:, keys], start.clean_latent[:, keys])  # and kept exactly clean
    first_start_s = start.positions[0, 0, MAIN_TOKENS, 0].item()
    last_start_s = start.positions[0, 0, MAIN_TOKENS + KEYFRAME_TOKENS, 0].item()
    assert (first_start_s, last_start_s * SMALL["frame_rate"]) == (0.0, pytest.approx(8.0))

    # Same seed and noise: only the keyframes (through attention) make the difference.
    assert torch.equal(start.latent[:, :MAIN_TOKENS], without.start.latent)
    assert (end.latent[:, :MAIN_TOKENS] - without.end.latent).abs().mean() > 1e-3
    assert (keyed.frames.float() - plain.frames.float()).abs().mean() > 1.0
    assert json.loads(keyed.metadata["images"]) == [[str(first), 0, 1.0, 33], [str(last), 8, 1.0, 33]]


def test_cli_writes_mp4(smoke_bundle, make_image, tmp_path) -> None:  # noqa: ANN001
    out = tmp_path / "keyframes.mp4"
    first, last = make_image("a.png", seed=1), make_image("b.png", seed=2)
    done = run_module(
        "ltx_pipelines.keyframe_interpolation",
        "--checkpoint-path", smoke_bundle.checkpoint, "--gemma-root", smoke_bundle.gemma_root,
        "--distilled-lora", smoke_bundle.distilled_lora, "--spatial-upsampler-path", smoke_bundle.spatial_upsampler,
        "--prompt", "a ball rolls", "--output-path", out, "--height", 128, "--width", 128, "--num-frames", 9,
        "--num-inference-steps", 2, "--image", first, 0, 1.0, "--image", last, 8, 0.9, "--device", "cpu",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    info = probe_mp4(out)
    assert (info["frames"], info["width"], info["height"], info["has_audio"]) == (9, 128, 128, True)
    assert info["metadata"]["pipeline"] == "keyframe_interpolation"
    assert [image[1:3] for image in json.loads(info["metadata"]["images"])] == [[0, 1.0], [8, 0.9]]
