"""Audio-to-video on the smoke bundle: the soundtrack is encoded once and held fixed in both stages."""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_module
from helpers import probe_mp4, two_stage_files
from ltx_core.components.guiders import MultiModalGuiderParams
from ltx_core.types import Audio

from ltx_pipelines.a2vid_two_stage import A2VidPipelineTwoStage
from ltx_pipelines.engine.media_latents import encode_audio_latent
from ltx_pipelines.utils.errors import InputError
from ltx_pipelines.utils.media_io import read_audio, write_video

NUM_FRAMES, FPS = 9, 24.0  # 0.375 s of video
CHEAP = MultiModalGuiderParams(cfg_scale=3.0, stg_scale=0.0, rescale_scale=0.0, modality_scale=1.0, stg_blocks=[])


def write_wav(path: Path, seconds: float, rate: int = 22050, channels: int = 1) -> Path:
    """A 16-bit PCM tone (numpy + wave, no model involved)."""
    t = np.arange(round(seconds * rate)) / rate
    tone = 0.4 * np.sin(2 * math.pi * 440 * t)
    pcm = (np.repeat(tone[:, None], channels, axis=1) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(pcm.tobytes())
    return path


def make_pipeline(bundle) -> A2VidPipelineTwoStage:  # noqa: ANN001
    return A2VidPipelineTwoStage(**two_stage_files(bundle, 0.8))


def test_audio_is_held_fixed_and_written_unchanged(smoke_bundle, tmp_path: Path) -> None:  # noqa: ANN001
    wav = write_wav(tmp_path / "tone.wav", 1.0)
    pipeline = make_pipeline(smoke_bundle)
    stages: list = []
    for name in ("guided_stage", "upsample_and_refine"):  # record both stages' results
        original = getattr(pipeline, name)
        setattr(pipeline, name, lambda _f=original, **kw: stages.append(_f(**kw)) or stages[-1])

    out = tmp_path / "a2v.mp4"
    result = pipeline(
        "a drummer in a garage", wav, output_path=out, audio_start_time=0.25, seed=4, height=128, width=128,
        num_frames=NUM_FRAMES, frame_rate=FPS, num_inference_steps=2, video_guider_params=CHEAP,
        audio_guider_params=CHEAP,
    )  # fmt: skip

    window = read_audio(wav, start_time=0.25, max_duration=NUM_FRAMES / FPS)
    assert result.audio.sampling_rate == 22050 and torch.equal(result.audio.waveform, window.waveform)
    expected = encode_audio_latent(pipeline.ledger, window, stages[0].audio.shape[2])
    for stage in stages:  # the audio latent never moved
        assert torch.equal(stage.audio, expected.to(stage.audio))
    assert stages[1].video.shape[-2:] == (4, 4)  # 128 / 32: stage 2 ran at full size

    info = probe_mp4(out)
    assert (info["frames"], info["width"], info["height"], info["fps"]) == (NUM_FRAMES, 128, 128, FPS)
    assert info["has_audio"] and abs(info["audio_duration"] - NUM_FRAMES / FPS) < 0.05
    tags = info["metadata"]
    assert (tags["pipeline"], tags["prompt"], tags["seed"]) == ("a2vid_two_stage", "a drummer in a garage", "4")
    assert tags["checkpoint"] == smoke_bundle.checkpoint.name and tags["num_inference_steps"] == "2"
    assert tags["distilled_lora"] == f'["{smoke_bundle.distilled_lora.name}:0.8"]'
    assert (tags["audio_path"], tags["audio_start_time"], tags["audio_duration"]) == ("tone.wav", "0.25", "0.375")
    assert '"cfg": 3.0' in tags["video_guidance"] and (tags["height"], tags["num_frames"]) == ("128", "9")


@pytest.mark.parametrize(
    ("seconds", "start", "max_duration", "expected"),
    [(0.2, 0.0, None, r"gives 0\.200 s, but the video needs 0\.375 s \(9 frames at 24 fps\)"),
     (1.0, 0.8, None, r"from 0\.8 s .* gives 0\.200 s, but the video needs 0\.375 s"),
     (1.0, 0.0, 0.25, r"gives 0\.250 s \(--audio-max-duration 0\.25 s\), but the video needs 0\.375 s")],
)  # fmt: skip
def test_short_audio_is_refused_before_any_model_loads(
    smoke_bundle,  # noqa: ANN001
    tmp_path: Path,
    seconds: float,
    start: float,
    max_duration: float | None,
    expected: str,
) -> None:
    pipeline = make_pipeline(smoke_bundle)
    wav = write_wav(tmp_path / "short.wav", seconds)
    with pytest.raises(InputError, match=expected):
        pipeline("x", wav, tmp_path / "o.mp4", audio_start_time=start, audio_max_duration=max_duration,
                 height=128, width=128, num_frames=NUM_FRAMES, frame_rate=FPS)  # fmt: skip
    assert pipeline.ledger.files_loaded == []
    assert not (tmp_path / "o.mp4").exists()


def test_refuses_a_file_without_audio(smoke_bundle, tmp_path: Path) -> None:  # noqa: ANN001
    silent = tmp_path / "silent.mp4"
    write_video(silent, torch.zeros(9, 64, 64, 3, dtype=torch.uint8), FPS)
    with pytest.raises(InputError, match="has no audio"):
        make_pipeline(smoke_bundle)("x", silent, height=128, width=128, num_frames=NUM_FRAMES)


def test_cli_from_a_videos_stereo_audio_track(smoke_bundle, tmp_path: Path) -> None:  # noqa: ANN001
    """The soundtrack may be a video file's (AAC, 48 kHz stereo) track; the output keeps it."""
    t = torch.arange(48000) / 48000
    track = Audio(torch.stack([torch.sin(2 * math.pi * 220 * t), torch.sin(2 * math.pi * 330 * t)]) * 0.3, 48000)
    source = tmp_path / "clip.mp4"
    write_video(source, torch.zeros(24, 64, 64, 3, dtype=torch.uint8), 24.0, track)
    out = tmp_path / "cli.mp4"
    proc = run_module(
        "ltx_pipelines.a2vid_two_stage", "--checkpoint-path", smoke_bundle.checkpoint,
        "--distilled-lora", smoke_bundle.distilled_lora, "--spatial-upsampler-path", smoke_bundle.spatial_upsampler,
        "--gemma-root", smoke_bundle.gemma_root, "--prompt", "waves at night", "--output-path", out,
        "--audio-path", source, "--audio-start-time", "0.5", "--height", "128", "--width", "128",
        "--num-frames", str(NUM_FRAMES), "--num-inference-steps", "1", "--seed", "9",
        "--video-stg-guidance-scale", "0", "--audio-stg-guidance-scale", "0",
        "--a2v-guidance-scale", "1", "--v2a-guidance-scale", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = probe_mp4(out)
    assert (info["frames"], info["width"], info["height"]) == (NUM_FRAMES, 128, 128)
    assert info["has_audio"] and abs(info["audio_duration"] - NUM_FRAMES / FPS) < 0.05
    tags = info["metadata"]
    assert (tags["pipeline"], tags["prompt"], tags["seed"], tags["audio_path"]) == (
        "a2vid_two_stage", "waves at night", "9", "clip.mp4"
    )


def test_cli_error_is_one_line(smoke_bundle, tmp_path: Path) -> None:  # noqa: ANN001
    wav = write_wav(tmp_path / "short.wav", 0.1)
    from ltx_pipelines.a2vid_two_stage import main
    from ltx_pipelines.engine import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.run_cli(main, [
            "--checkpoint-path", str(smoke_bundle.checkpoint), "--distilled-lora", str(smoke_bundle.distilled_lora),
            "--spatial-upsampler-path", str(smoke_bundle.spatial_upsampler),
            "--gemma-root", str(smoke_bundle.gemma_root),
            "--prompt", "x", "--output-path", str(tmp_path / "o.mp4"), "--audio-path", str(wav),
            "--height", "128", "--width", "128", "--num-frames", "9",
        ])  # fmt: skip
    assert exit_info.value.code == 2
