"""End-to-end tests of TI2VidOneStagePipeline on the smoke bundle: Python API and `python -m`.

The smoke weights are random, so these tests check mechanics (shapes, files, determinism,
conditioning takes effect, bad input refused before any model loads), never picture quality.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from conftest import run_module
from helpers import (
    assert_api_keeps_existing_output,
    assert_api_refuses_request,
    assert_cli_keeps_existing_output,
    assert_cli_refuses,
    call_overrides,
    check_mp4,
    write_picture,
    write_unmatched_lora,
)
from ltx_core.components.guiders import MultiModalGuiderParams

from ltx_pipelines import ImageConditioningInput, TI2VidOneStagePipeline
from ltx_pipelines.engine.model_ledger import comfy_lora
from ltx_pipelines.ti2vid_one_stage import main
from ltx_pipelines.utils.errors import InputError

MODULE = "ltx_pipelines.ti2vid_one_stage"
HEIGHT = WIDTH = 64
NUM_FRAMES = 9
FPS = 24.0
STEPS = 2
SEED = 7
PROMPT = "a red fox runs across a snowy field, wind howls"


# --------------------------------------------------------------------------- shared runs


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pipeline(smoke_bundle) -> TI2VidOneStagePipeline:
    return TI2VidOneStagePipeline(checkpoint_path=smoke_bundle.checkpoint, gemma_root=smoke_bundle.gemma_root)


def generate(pipeline: TI2VidOneStagePipeline, **overrides):
    kwargs = dict(
        prompt=PROMPT, seed=SEED, height=HEIGHT, width=WIDTH, num_frames=NUM_FRAMES, frame_rate=FPS,
        num_inference_steps=STEPS,
    )  # fmt: skip
    return pipeline(**{**kwargs, **overrides})


@pytest.fixture(scope="module")
def written(pipeline, tmp_path_factory):
    """One generation written to an mp4; the reference the other runs are compared with."""
    return generate(pipeline, output_path=tmp_path_factory.mktemp("one_stage") / "fox.mp4")


PICTURE = dict(width=96, height=80, across=0, down=1, box=(20, 40, 24, 48))  # write_picture(path, **PICTURE)


# --------------------------------------------------------------------------- API


def test_api_writes_playable_mp4(written):
    assert written.output_path is not None and written.output_path.name == "fox.mp4"
    info = check_mp4(
        written.output_path, frames=NUM_FRAMES, fps=FPS, width=WIDTH, height=HEIGHT, prompt=PROMPT, seed=SEED
    )
    assert info["metadata"]["pipeline"] == "ti2vid_one_stage"
    assert info["metadata"]["num_inference_steps"] == str(STEPS)
    assert written.metadata["prompt"] == PROMPT
    assert not list(written.output_path.parent.glob("*.partial*")), "temporary files left next to the output"


def test_same_seed_same_frames_and_nothing_written_without_output_path(pipeline, written, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    again = generate(pipeline)
    assert again.output_path is None
    assert list(tmp_path.iterdir()) == []
    assert again.frames.dtype == torch.uint8
    assert tuple(again.frames.shape) == (NUM_FRAMES, HEIGHT, WIDTH, 3)
    assert again.audio is not None and again.audio.waveform.numel() > 0 and again.audio.sampling_rate > 0
    assert again.frame_rate == FPS
    assert torch.equal(again.frames, written.frames)
    assert torch.equal(again.audio.waveform, written.audio.waveform)


def test_different_seed_different_frames(pipeline, written):
    other = generate(pipeline, seed=SEED + 1)
    assert not torch.equal(other.frames, written.frames)


def test_image_at_frame_0_changes_output(pipeline, written, make_image):
    image = make_image("first.png")
    conditioned = generate(pipeline, images=[ImageConditioningInput(str(image), 0, 1.0, 33)])
    assert tuple(conditioned.frames.shape) == (NUM_FRAMES, HEIGHT, WIDTH, 3)
    assert not torch.equal(conditioned.frames, written.frames)
    assert conditioned.metadata["images"].startswith(f'[["{image}", 0, 1.0, 33]')


# --------------------------------------------------------------------------- CLI


def base_argv(bundle, output: Path) -> list[str]:
    return [
        "--checkpoint-path", str(bundle.checkpoint), "--gemma-root", str(bundle.gemma_root), "--prompt", PROMPT,
        "--output-path", str(output), "--height", str(HEIGHT), "--width", str(WIDTH),
        "--num-frames", str(NUM_FRAMES), "--num-inference-steps", str(STEPS), "--seed", str(SEED),
    ]  # fmt: skip


def test_cli_end_to_end_overwrites_when_asked(smoke_bundle, tmp_path, cli_env):
    output = tmp_path / "cli.mp4"
    output.write_bytes(b"an older file")
    done = run_module(MODULE, *base_argv(smoke_bundle, output), "--frame-rate", "25", "--overwrite")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "SMOKE MODEL" in done.stderr
    assert "Loaded transformer" in done.stderr  # the log the refusal tests expect to be absent
    check_mp4(output, frames=NUM_FRAMES, fps=25.0, width=WIDTH, height=HEIGHT, prompt=PROMPT, seed=SEED)


def test_cli_help_lists_flags(cli_env):
    done = run_module(MODULE, "--help")
    assert done.returncode == 0, done.stderr
    for flag in (
        "--checkpoint-path", "--gemma-root", "--prompt", "--output-path", "--overwrite", "--seed", "--height",
        "--width", "--num-frames", "--frame-rate", "--image", "--lora", "--num-inference-steps",
        "--negative-prompt", "--video-cfg-guidance-scale", "--audio-cfg-guidance-scale", "--video-stg-blocks",
    ):  # fmt: skip
        assert flag in done.stdout, flag
    assert "multiple of 32" in done.stdout


def test_cli_subprocess_refuses_bad_frame_count(smoke_bundle, tmp_path, cli_env):
    output = tmp_path / "bad.mp4"
    done = run_module(MODULE, *base_argv(smoke_bundle, output), "--num-frames", "10")
    assert done.returncode == 2
    assert "error: --num-frames must be 8k+1" in done.stderr and "Use 9 or 17" in done.stderr
    assert "Traceback" not in done.stderr and "Loaded" not in done.stderr
    assert not output.exists()


# --------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def paths(smoke_bundle, tmp_path_factory) -> dict[str, Path]:
    """The bundle's files plus missing and wrong ones, by name (for `{name}` in CLI arguments)."""
    folder = tmp_path_factory.mktemp("bad_inputs")
    unmatched_lora = write_unmatched_lora(folder / "unmatched-lora.safetensors")
    return {
        "spatial_upsampler": smoke_bundle.spatial_upsampler,
        "distilled_lora": smoke_bundle.distilled_lora,
        "image": write_picture(folder / "image.png", **PICTURE),
        "unmatched_lora": unmatched_lora,
        "missing": folder / "missing.safetensors",
        "missing_dir": folder / "no-gemma-here",
        "missing_image": folder / "missing.png",
    }


# (call overrides, expected message fragment)
CALL_ERRORS = {
    "frames_not_8k_plus_1": (dict(num_frames=10), "Use 9 or 17"),
    "frames_zero": (dict(num_frames=0), "8k+1"),
    "height_not_multiple_of_32": (dict(height=80), "Use 64 or 96"),
    "width_not_multiple_of_32": (dict(width=100), "multiple of 32"),
    "image_missing": ("missing_image", "does not exist"),
    "image_frame_out_of_range": ("image_frame_9", "outside the video's 0..8"),
    "image_frame_negative": ("image_frame_-1", "outside the video's 0..8"),
    "stg_block_beyond_layers": (
        dict(video_guider_params=MultiModalGuiderParams(cfg_scale=3.0, stg_scale=1.0, stg_blocks=[30])),
        "blocks 0..29",
    ),
    "zero_steps": (dict(num_inference_steps=0), "at least 1"),
}


@pytest.mark.parametrize("name", CALL_ERRORS)
def test_api_bad_request_refused_before_loading(name, smoke_bundle, paths, tmp_path, no_model_builds):
    case, fragment = CALL_ERRORS[name]
    fresh = TI2VidOneStagePipeline(checkpoint_path=smoke_bundle.checkpoint, gemma_root=smoke_bundle.gemma_root)
    assert_api_refuses_request(generate, fresh, tmp_path, fragment, call_overrides(case, paths))


def test_api_existing_output_untouched(smoke_bundle, tmp_path, no_model_builds):
    fresh = TI2VidOneStagePipeline(checkpoint_path=smoke_bundle.checkpoint, gemma_root=smoke_bundle.gemma_root)
    assert_api_keeps_existing_output(generate, fresh, tmp_path, not_mp4="out.avi")


# (constructor overrides as names in `paths`, expected message fragment)
INIT_ERRORS = {
    "checkpoint_missing": (dict(checkpoint_path="missing"), "does not exist"),
    "gemma_dir_missing": (dict(gemma_root="missing_dir"), "Gemma directory"),
    "upsampler_as_checkpoint": (dict(checkpoint_path="spatial_upsampler"), "spatial upsampler"),
    "lora_as_checkpoint": (dict(checkpoint_path="distilled_lora"), "looks like a LoRA"),
    "lora_missing": (dict(loras="missing"), "does not exist"),
    "lora_matching_nothing": (dict(loras="unmatched_lora"), "matches no module"),
}


@pytest.mark.parametrize("name", INIT_ERRORS)
def test_api_bad_files_refused_before_loading(name, smoke_bundle, paths, no_model_builds):
    overrides, fragment = INIT_ERRORS[name]
    kwargs = {"checkpoint_path": smoke_bundle.checkpoint, "gemma_root": smoke_bundle.gemma_root}
    for key, value in overrides.items():
        kwargs[key] = [comfy_lora(paths[value], 1.0)] if key == "loras" else paths[value]
    with pytest.raises(InputError, match=re.escape(fragment)):
        TI2VidOneStagePipeline(**kwargs)


CLI_ERRORS = {
    "frames_not_8k_plus_1": (["--num-frames", "12"], "Use 9 or 17"),
    "size_not_multiple_of_32": (["--height", "48"], "multiple of 32"),
    "checkpoint_missing": (["--checkpoint-path", "{missing}"], "does not exist"),
    "gemma_dir_missing": (["--gemma-root", "{missing_dir}"], "Gemma directory"),
    "upsampler_as_checkpoint": (["--checkpoint-path", "{spatial_upsampler}"], "spatial upsampler"),
    "lora_as_checkpoint": (["--checkpoint-path", "{distilled_lora}"], "looks like a LoRA"),
    "lora_missing": (["--lora", "{missing}"], "does not exist"),
    "lora_matching_nothing": (["--lora", "{unmatched_lora}", "0.5"], "matches no module"),
    "image_missing": (["--image", "{missing_image}", "0", "1.0"], "does not exist"),
    "image_frame_out_of_range": (["--image", "{image}", "9", "1.0"], "outside the video"),
    "output_not_mp4": (["--output-path", "{out_avi}"], "must end in .mp4"),
    "stg_block_beyond_layers": (["--video-stg-blocks", "30"], "do not exist"),
}


@pytest.mark.parametrize("name", CLI_ERRORS)
def test_cli_bad_input_exit_2_before_loading(name, smoke_bundle, paths, tmp_path, capsys, no_model_builds):
    extra, fragment = CLI_ERRORS[name]
    extra = [arg.format(**paths, out_avi=tmp_path / "out.avi") for arg in extra]
    argv = [*base_argv(smoke_bundle, tmp_path / "out.mp4"), *extra]
    assert_cli_refuses(main, argv, fragment, tmp_path, capsys)


def test_cli_existing_output_untouched(smoke_bundle, tmp_path, capsys, no_model_builds):
    output = tmp_path / "taken.mp4"
    assert_cli_keeps_existing_output(main, base_argv(smoke_bundle, output), output, capsys)
