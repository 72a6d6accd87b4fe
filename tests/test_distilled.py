"""End-to-end tests of DistilledPipeline on the smoke bundle: Python API and `python -m`.

The distilled pipeline takes no step count (fixed 8 + 3 sigmas) and no guidance.
The smoke weights are random: these tests check mechanics, never picture quality.
"""

from __future__ import annotations

import json
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

from ltx_pipelines import DistilledPipeline, ImageConditioningInput
from ltx_pipelines.distilled import main
from ltx_pipelines.engine.model_ledger import comfy_lora
from ltx_pipelines.utils import constants as C
from ltx_pipelines.utils.errors import InputError

MODULE = "ltx_pipelines.distilled"
HEIGHT = WIDTH = 128
NUM_FRAMES = 17
FPS = 24.0
SEED = 11
PROMPT = "a street musician plays the violin in the rain"


# --------------------------------------------------------------------------- shared runs


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pipeline(smoke_bundle) -> DistilledPipeline:
    return DistilledPipeline(
        checkpoint_path=smoke_bundle.distilled_checkpoint,
        gemma_root=smoke_bundle.gemma_root,
        spatial_upsampler_path=smoke_bundle.spatial_upsampler,
    )


def generate(pipeline: DistilledPipeline, **overrides):
    kwargs = dict(prompt=PROMPT, seed=SEED, height=HEIGHT, width=WIDTH, num_frames=NUM_FRAMES, frame_rate=FPS)
    return pipeline(**{**kwargs, **overrides})


@pytest.fixture(scope="module")
def written(pipeline, tmp_path_factory):
    """One generation written to an mp4; the reference the other runs are compared with."""
    return generate(pipeline, output_path=tmp_path_factory.mktemp("distilled") / "violin.mp4")


PICTURE = dict(width=140, height=100, across=1, down=2, box=(30, 70, 50, 100))  # write_picture(path, **PICTURE)


# --------------------------------------------------------------------------- API


def test_api_writes_playable_mp4(written):
    assert written.output_path is not None and written.output_path.name == "violin.mp4"
    info = check_mp4(
        written.output_path, frames=NUM_FRAMES, fps=FPS, width=WIDTH, height=HEIGHT, prompt=PROMPT, seed=SEED
    )
    assert info["metadata"]["pipeline"] == "distilled"
    assert info["metadata"]["checkpoint"] == "ltx-2-smoke-distilled.safetensors"
    assert json.loads(info["metadata"]["sigmas"]) == C.DISTILLED_SIGMA_VALUES


def test_same_seed_same_frames_and_nothing_written_without_output_path(pipeline, written, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    again = generate(pipeline)
    assert again.output_path is None
    assert list(tmp_path.iterdir()) == []
    assert again.frames.dtype == torch.uint8
    assert tuple(again.frames.shape) == (NUM_FRAMES, HEIGHT, WIDTH, 3)
    assert again.audio is not None and again.audio.waveform.numel() > 0 and again.audio.sampling_rate > 0
    assert torch.equal(again.frames, written.frames)
    assert torch.equal(again.audio.waveform, written.audio.waveform)


def test_different_seed_different_frames(pipeline, written):
    other = generate(pipeline, seed=SEED + 100)
    assert not torch.equal(other.frames, written.frames)


def test_image_at_frame_0_changes_output(pipeline, written, make_image):
    image = make_image("first.png", size=(160, 120))
    conditioned = generate(pipeline, images=[ImageConditioningInput(str(image), 0, 1.0)])
    assert tuple(conditioned.frames.shape) == (NUM_FRAMES, HEIGHT, WIDTH, 3)
    assert not torch.equal(conditioned.frames, written.frames)


# --------------------------------------------------------------------------- CLI


def base_argv(bundle, output: Path) -> list[str]:
    return [
        "--distilled-checkpoint-path", str(bundle.distilled_checkpoint), "--gemma-root", str(bundle.gemma_root),
        "--spatial-upsampler-path", str(bundle.spatial_upsampler), "--prompt", PROMPT,
        "--output-path", str(output), "--height", str(HEIGHT), "--width", str(WIDTH),
        "--num-frames", str(NUM_FRAMES), "--seed", str(SEED),
    ]  # fmt: skip


def test_cli_end_to_end(smoke_bundle, tmp_path, cli_env):
    output = tmp_path / "cli.mp4"
    image = write_picture(tmp_path / "first.png", **PICTURE)
    done = run_module(
        MODULE, "--checkpoint-path", smoke_bundle.distilled_checkpoint, *base_argv(smoke_bundle, output)[2:],
        "--num-frames", "9", "--frame-rate", "30", "--image", image, "0", "1.0", "0",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Loaded transformer" in done.stderr  # the log the refusal tests expect to be absent
    info = check_mp4(output, frames=9, fps=30.0, width=WIDTH, height=HEIGHT, prompt=PROMPT, seed=SEED)
    assert json.loads(info["metadata"]["images"]) == [[str(image), 0, 1.0, 0]]


def test_cli_help_lists_flags(cli_env):
    done = run_module(MODULE, "--help")
    assert done.returncode == 0, done.stderr
    for flag in (
        "--checkpoint-path", "--distilled-checkpoint-path", "--gemma-root", "--spatial-upsampler-path", "--prompt",
        "--output-path", "--overwrite", "--seed", "--height", "--width", "--num-frames", "--frame-rate", "--image",
        "--lora",
    ):  # fmt: skip
        assert flag in done.stdout, flag
    text = " ".join(done.stdout.split())  # the reference's flag is accepted, and the help says it is not used
    assert "--num-inference-steps N Accepted for the reference's command lines and not used" in text


def test_cli_subprocess_refuses_upsampler_as_checkpoint(smoke_bundle, tmp_path, cli_env):
    output = tmp_path / "bad.mp4"
    argv = base_argv(smoke_bundle, output)
    argv[1] = str(smoke_bundle.spatial_upsampler)
    done = run_module(MODULE, *argv)
    assert done.returncode == 2
    assert "error: " in done.stderr and "--spatial-upsampler-path" in done.stderr
    assert "Traceback" not in done.stderr and "Loaded" not in done.stderr
    assert not output.exists()


# --------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def paths(smoke_bundle, tmp_path_factory) -> dict[str, Path]:
    """The bundle's files plus missing and wrong ones, by name (for `{name}` in CLI arguments)."""
    folder = tmp_path_factory.mktemp("bad_inputs")
    unmatched_lora = write_unmatched_lora(folder / "unmatched-lora.safetensors")
    return {
        "checkpoint": smoke_bundle.distilled_checkpoint,
        "spatial_upsampler": smoke_bundle.spatial_upsampler,
        "distilled_lora": smoke_bundle.distilled_lora,
        "ic_lora": smoke_bundle.ic_lora,
        "image": write_picture(folder / "image.png", **PICTURE),
        "unmatched_lora": unmatched_lora,
        "missing": folder / "missing.safetensors",
        "missing_dir": folder / "no-gemma-here",
        "missing_image": folder / "missing.png",
    }


def make_pipeline(bundle, **overrides) -> DistilledPipeline:
    kwargs = dict(
        checkpoint_path=bundle.distilled_checkpoint, gemma_root=bundle.gemma_root,
        spatial_upsampler_path=bundle.spatial_upsampler,
    )  # fmt: skip
    return DistilledPipeline(**{**kwargs, **overrides})


CALL_ERRORS = {
    "frames_not_8k_plus_1": (dict(num_frames=8), "Use 1 or 9"),
    "frames_large": (dict(num_frames=100), "Use 97 or 105"),
    "height_not_multiple_of_64": (dict(height=32), "Use 64 or 128"),
    "width_not_multiple_of_64": (dict(width=200), "Use 192 or 256"),
    "image_missing": ("missing_image", "does not exist"),
    "image_frame_out_of_range": ("image_frame_17", "outside the video's 0..16"),
}


@pytest.mark.parametrize("name", CALL_ERRORS)
def test_api_bad_request_refused_before_loading(name, smoke_bundle, paths, tmp_path, no_model_builds):
    case, fragment = CALL_ERRORS[name]
    fresh = make_pipeline(smoke_bundle)
    assert_api_refuses_request(generate, fresh, tmp_path, fragment, call_overrides(case, paths))


def test_api_existing_output_untouched(smoke_bundle, tmp_path, no_model_builds):
    fresh = make_pipeline(smoke_bundle)
    assert_api_keeps_existing_output(generate, fresh, tmp_path, not_mp4="out")


INIT_ERRORS = {
    "checkpoint_missing": (dict(checkpoint_path="missing"), "does not exist"),
    "gemma_dir_missing": (dict(gemma_root="missing_dir"), "Gemma directory"),
    "upsampler_missing": (dict(spatial_upsampler_path="missing"), "does not exist"),
    "upsampler_as_checkpoint": (dict(checkpoint_path="spatial_upsampler"), "looks like a spatial upsampler"),
    "lora_as_checkpoint": (dict(checkpoint_path="ic_lora"), "looks like a LoRA"),
    "checkpoint_as_upsampler": (dict(spatial_upsampler_path="checkpoint"), "not an upsampler"),
    "lora_missing": (dict(loras="missing"), "does not exist"),
    "lora_matching_nothing": (dict(loras="unmatched_lora"), "matches no module"),
}


@pytest.mark.parametrize("name", INIT_ERRORS)
def test_api_bad_files_refused_before_loading(name, smoke_bundle, paths, no_model_builds):
    overrides, fragment = INIT_ERRORS[name]
    kwargs = {
        key: [comfy_lora(paths[value], 1.0)] if key == "loras" else paths[value] for key, value in overrides.items()
    }
    with pytest.raises(InputError, match=re.escape(fragment)):
        make_pipeline(smoke_bundle, **kwargs)


CLI_ERRORS = {
    "frames_not_8k_plus_1": (["--num-frames", "2"], "Use 1 or 9"),
    "size_not_multiple_of_64": (["--width", "100"], "multiple of 64"),
    "checkpoint_missing": (["--checkpoint-path", "{missing}"], "does not exist"),
    "gemma_dir_missing": (["--gemma-root", "{missing_dir}"], "Gemma directory"),
    "upsampler_missing": (["--spatial-upsampler-path", "{missing}"], "does not exist"),
    "lora_as_checkpoint": (["--distilled-checkpoint-path", "{distilled_lora}"], "--lora or --distilled-lora"),
    "checkpoint_as_upsampler": (["--spatial-upsampler-path", "{checkpoint}"], "not an upsampler"),
    "lora_missing": (["--lora", "{missing}"], "does not exist"),
    "lora_matching_nothing": (["--lora", "{unmatched_lora}"], "matches no module"),
    "image_missing": (["--image", "{missing_image}", "0", "1.0"], "does not exist"),
    "image_frame_out_of_range": (["--image", "{image}", "17", "1.0"], "outside the video"),
    "output_not_mp4": (["--output-path", "{out_txt}"], "must end in .mp4"),
}


@pytest.mark.parametrize("name", CLI_ERRORS)
def test_cli_bad_input_exit_2_before_loading(name, smoke_bundle, paths, tmp_path, capsys, no_model_builds):
    extra, fragment = CLI_ERRORS[name]
    extra = [arg.format(**paths, out_txt=tmp_path / "out.txt") for arg in extra]
    argv = [*base_argv(smoke_bundle, tmp_path / "out.mp4"), *extra]
    assert_cli_refuses(main, argv, fragment, tmp_path, capsys)


def test_cli_existing_output_untouched(smoke_bundle, tmp_path, capsys, no_model_builds):
    output = tmp_path / "taken.mp4"
    assert_cli_keeps_existing_output(main, base_argv(smoke_bundle, output), output, capsys)
