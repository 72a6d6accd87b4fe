"""Retake on the smoke bundle: the window is regenerated, everything outside it is kept bit for bit."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_module
from helpers import probe_mp4
from ltx_core.components.guiders import MultiModalGuiderParams
from ltx_core.types import Audio

from ltx_pipelines.engine.media_latents import (
    audio_window_mask,
    latent_frame_of_pixel_frame,
    pixel_frames_in_window,
    video_window_mask,
)
from ltx_pipelines.engine.model_ledger import LatentFormat
from ltx_pipelines.retake import RetakePipeline
from ltx_pipelines.utils.errors import InputError
from ltx_pipelines.utils.media_io import write_video

FPS = 24.0
NUM_FRAMES = 17  # 3 latent frames: {0}, {1..8}, {9..16}
SIZE = 64
# Two guided passes per step (CFG only) keep the smoke runs short; the guidance itself is not under test.
CHEAP = MultiModalGuiderParams(cfg_scale=3.0, stg_scale=0.0, rescale_scale=0.0, modality_scale=1.0, stg_blocks=[])


def write_clip(path: Path, num_frames: int = NUM_FRAMES, height: int = SIZE, width: int = SIZE) -> Path:
    """A clip with moving colour bars and a stereo tone, written like any user's mp4."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, None, :]
    t = np.arange(num_frames, dtype=np.float32)[:, None, None] * 9
    red = (x + t) % 256 + np.zeros((num_frames, height, width), np.float32)
    frames = np.stack([red, np.full_like(red, 90), 255 - red], axis=-1).astype(np.uint8)
    samples = torch.arange(round(num_frames / FPS * 16000)) / 16000
    tone = 0.3 * torch.sin(2 * math.pi * 330 * samples)
    write_video(path, torch.from_numpy(frames), FPS, Audio(torch.stack([tone, -tone]), 16000))
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("retake") / "source.mp4")


@pytest.fixture(scope="module")
def pipeline(smoke_bundle) -> RetakePipeline:  # noqa: ANN001
    return RetakePipeline(smoke_bundle.checkpoint, smoke_bundle.gemma_root)


def cheap_retake(pipeline: RetakePipeline, clip: Path, start: float, end: float, **kwargs: object):  # noqa: ANN201
    flags = (kwargs.get("regenerate_video", True), kwargs.get("regenerate_audio", True))
    source = pipeline.check_source(clip, start, end, *flags)
    return pipeline.retake_latents(
        source, "a red kite over a beach", seed=3, num_inference_steps=kwargs.pop("steps", 2),
        video_guider_params=CHEAP, audio_guider_params=CHEAP, **kwargs,
    )  # fmt: skip


# --------------------------------------------------------------------------- window arithmetic


def test_causal_latent_frame_rule() -> None:
    assert [latent_frame_of_pixel_frame(f) for f in (0, 1, 8, 9, 16, 17)] == [0, 1, 1, 2, 2, 3]
    assert pixel_frames_in_window(0.2, 0.5, FPS, NUM_FRAMES) == range(5, 12)
    # Latent frame k >= 1 spans [(8k - 7) / fps, (8k + 1) / fps): frame 1 ends at 9 / 24 = 0.375 s.
    assert video_window_mask(0.2, 0.5, 3, FPS).tolist() == [0, 1, 1]
    assert video_window_mask(0.0, 0.04, 3, FPS).tolist() == [1, 0, 0]
    assert video_window_mask(0.36, 0.5, 3, FPS).tolist() == [0, 1, 1]  # starts inside latent frame 1's span
    assert video_window_mask(0.375, 0.5, 3, FPS).tolist() == [0, 0, 1]
    fmt = LatentFormat(16, 2, 16, 16000, 160)  # 25 audio latents per second
    # Audio latent k spans [(4k - 3), (4k + 1)) hops of 10 ms (causal): 5 is [0.17, 0.21), 13 is [0.49, 0.53).
    assert audio_window_mask(0.2, 0.5, 18, fmt).nonzero().flatten().tolist() == list(range(5, 14))
    assert audio_window_mask(0.0, 0.01, 18, fmt).nonzero().flatten().tolist() == [0]  # latent 0 is [0, 0.01)
    assert audio_window_mask(0.0, 0.02, 18, fmt).nonzero().flatten().tolist() == [0, 1]


# --------------------------------------------------------------------------- latent level


def test_only_the_window_changes(pipeline: RetakePipeline, clip: Path) -> None:
    latents = cheap_retake(pipeline, clip, 0.2, 0.5)
    video_in, audio_in = latents.video_mask.bool(), latents.audio_mask.bool()
    assert video_in.tolist() == [False, True, True]
    assert audio_in.nonzero().flatten().tolist() == list(range(5, 14))
    source, result = latents.source, latents.result
    assert torch.equal(result.video[:, :, ~video_in], source.video[:, :, ~video_in])
    assert torch.equal(result.audio[:, :, ~audio_in], source.audio[:, :, ~audio_in])
    assert not torch.allclose(result.video[:, :, video_in], source.video[:, :, video_in])
    assert not torch.allclose(result.audio[:, :, audio_in], source.audio[:, :, audio_in])


def test_audio_kept_entirely_when_not_regenerated(pipeline: RetakePipeline, clip: Path) -> None:
    latents = cheap_retake(pipeline, clip, 0.0, 0.3, regenerate_audio=False, steps=1)
    assert not latents.audio_mask.any()
    assert torch.equal(latents.result.audio, latents.source.audio)
    assert latents.video_mask.tolist() == [1, 1, 0]
    assert torch.equal(latents.result.video[:, :, 2:], latents.source.video[:, :, 2:])
    assert not torch.allclose(latents.result.video[:, :, :2], latents.source.video[:, :, :2])


# --------------------------------------------------------------------------- checks before any model


@pytest.mark.parametrize(
    ("frames", "height", "width", "expected"),
    [(16, 64, 64, "16 frames; retake needs 8k+1 frames (trim it to 9 or extend it to 17)"),
     (17, 64, 48, "48x64; retake needs a size that is a multiple of 32 (width 48 -> 32 or 64)")],
)  # fmt: skip
def test_refuses_shapes_the_vae_cannot_encode(
    smoke_bundle, tmp_path: Path, frames: int, height: int, width: int, expected: str  # noqa: ANN001
) -> None:
    fresh = RetakePipeline(smoke_bundle.checkpoint, smoke_bundle.gemma_root)
    bad = write_clip(tmp_path / "bad.mp4", frames, height, width)
    with pytest.raises(InputError, match=re.escape(expected)):
        fresh(bad, "x", 0.1, 0.3, output_path=tmp_path / "out.mp4")
    assert fresh.ledger.files_loaded == []


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [(0.2, 0.9, "outside the clip"), (-0.1, 0.2, "outside the clip"), (0.4, 0.4, "is empty"),
     (0.3, 0.2, "is empty"), (0.701, 0.705, "contains no frame")],
)  # fmt: skip
def test_refuses_bad_windows(pipeline: RetakePipeline, clip: Path, start: float, end: float, expected: str) -> None:
    with pytest.raises(InputError, match=expected):
        pipeline.check_source(clip, start, end)


def test_refuses_retaking_nothing(pipeline: RetakePipeline, clip: Path) -> None:
    with pytest.raises(InputError, match="Nothing to retake"):
        pipeline.check_source(clip, 0.1, 0.3, regenerate_video=False, regenerate_audio=False)


# --------------------------------------------------------------------------- end to end


def test_retake_of_a_generated_clip_api_then_cli(
    pipeline: RetakePipeline, clip: Path, smoke_bundle, tmp_path: Path  # noqa: ANN001
) -> None:
    first = tmp_path / "first.mp4"
    pipeline(
        clip, "a red kite", 0.0, 0.3, output_path=first, seed=5, num_inference_steps=1,
        video_guider_params=CHEAP, audio_guider_params=CHEAP, regenerate_audio=False,
    )  # fmt: skip
    written = probe_mp4(first)
    assert (written["frames"], written["width"], written["height"], written["fps"]) == (NUM_FRAMES, SIZE, SIZE, FPS)
    assert written["has_audio"]

    # The CLI, with the distilled checkpoint (fixed distilled schedule), retakes that generated clip.
    second = tmp_path / "second.mp4"
    proc = run_module(
        "ltx_pipelines.retake", "--checkpoint-path", smoke_bundle.distilled_checkpoint,
        "--gemma-root", smoke_bundle.gemma_root, "--video-path", first, "--start-time", "0.4", "--end-time", "0.7",
        "--prompt", "the kite dives", "--output-path", second, "--seed", "7", "--no-regenerate-video",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = probe_mp4(second)
    assert (info["frames"], info["width"], info["height"], info["fps"]) == (NUM_FRAMES, SIZE, SIZE, FPS)
    assert info["has_audio"] and info["audio_duration"] > 0.5
    tags = info["metadata"]
    assert tags["pipeline"] == "retake" and tags["prompt"] == "the kite dives" and tags["seed"] == "7"
    assert tags["checkpoint"] == smoke_bundle.distilled_checkpoint.name
    assert (tags["start_time"], tags["end_time"], tags["regenerate_video"]) == ("0.4", "0.7", "false")
    assert tags["sigmas"].startswith("[1.0, 0.99375") and tags["source_video"] == "first.mp4"
    assert (tags["height"], tags["width"], tags["num_frames"], tags["loras"]) == ("64", "64", "17", "[]")


def test_cli_rejects_size_flags(smoke_bundle, clip: Path, tmp_path: Path) -> None:  # noqa: ANN001
    from ltx_pipelines.retake import main

    with pytest.raises(SystemExit) as exit_info:
        main([
            "--checkpoint-path", str(smoke_bundle.checkpoint), "--gemma-root", str(smoke_bundle.gemma_root),
            "--video-path", str(clip), "--start-time", "0", "--end-time", "0.2", "--prompt", "x",
            "--output-path", str(tmp_path / "o.mp4"), "--height", "128",
        ])  # fmt: skip
    assert exit_info.value.code == 2
    assert not (tmp_path / "o.mp4").exists()

