"""End-to-end tests of TI2VidTwoStagesPipeline on the smoke bundle: Python API and `python -m`.

The module's reference run is the Python example of the README, verbatim, with smoke paths.
The smoke weights are random: these tests check mechanics, never picture quality.
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
from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP, LoraPathStrengthAndSDOps

import ltx_pipelines.utils
from ltx_pipelines import ImageConditioningInput, TI2VidTwoStagesPipeline
from ltx_pipelines.engine.model_ledger import comfy_lora
from ltx_pipelines.ti2vid_two_stages import main
from ltx_pipelines.utils import constants as C
from ltx_pipelines.utils.errors import InputError

MODULE = "ltx_pipelines.ti2vid_two_stages"
HEIGHT = WIDTH = 128
NUM_FRAMES = 9
FPS = 25.0
STEPS = 2
SEED = 42
PROMPT = "A lighthouse on a cliff at dusk, waves crash below and gulls cry."


# --------------------------------------------------------------------------- shared runs


pytestmark = pytest.mark.usefixtures("one_thread")


PICTURE = dict(width=160, height=96, across=0, down=2, box=(24, 60, 40, 90))  # write_picture(path, **PICTURE)


@pytest.fixture(scope="module")
def image_path(tmp_path_factory) -> Path:
    return write_picture(tmp_path_factory.mktemp("two_stage_images") / "lighthouse.png", **PICTURE)


@pytest.fixture(scope="module")
def example(smoke_bundle, image_path, tmp_path_factory):
    """The README's Python example, verbatim but for the smoke paths and tiny sizes: (pipeline, result)."""
    output_path = tmp_path_factory.mktemp("two_stage") / "lighthouse.mp4"

    pipeline = TI2VidTwoStagesPipeline(
        checkpoint_path=str(smoke_bundle.checkpoint),
        distilled_lora=[LoraPathStrengthAndSDOps(str(smoke_bundle.distilled_lora), 0.6, LTXV_LORA_COMFY_RENAMING_MAP)],
        spatial_upsampler_path=str(smoke_bundle.spatial_upsampler),
        gemma_root=str(smoke_bundle.gemma_root),
        loras=[],
    )
    result = pipeline(
        prompt=PROMPT,
        output_path=str(output_path),
        seed=42,
        height=HEIGHT,
        width=WIDTH,
        num_frames=NUM_FRAMES,
        frame_rate=25.0,
        num_inference_steps=STEPS,
        video_guider_params=MultiModalGuiderParams(
            cfg_scale=3.0, stg_scale=1.0, rescale_scale=0.7, modality_scale=3.0, skip_step=0, stg_blocks=[29]
        ),
        audio_guider_params=MultiModalGuiderParams(
            cfg_scale=7.0, stg_scale=1.0, rescale_scale=0.7, modality_scale=3.0, skip_step=0, stg_blocks=[29]
        ),
        images=[ImageConditioningInput(str(image_path), 0, 1.0, 33)],
    )
    return pipeline, result


def generate(pipeline: TI2VidTwoStagesPipeline, **overrides):
    """The example's call with the default guidance (equal to the example's) and no output file."""
    kwargs = dict(
        prompt=PROMPT, seed=SEED, height=HEIGHT, width=WIDTH, num_frames=NUM_FRAMES, frame_rate=FPS,
        num_inference_steps=STEPS,
    )  # fmt: skip
    return pipeline(**{**kwargs, **overrides})


# --------------------------------------------------------------------------- API


def test_image_conditioning_input_importable_from_both_packages():
    assert ltx_pipelines.utils.ImageConditioningInput is ImageConditioningInput
    # The CRF left out is the model's (33 for LTX-2 and 2.3, as 1.0.0's default; 18 from 2.4, as 1.2.0 does).
    assert ImageConditioningInput("x.png", 0, 1.0) == ("x.png", 0, 1.0, None)
    assert ImageConditioningInput("x.png", 0, 1.0, 33) == ("x.png", 0, 1.0, 33)


def test_readme_example_writes_playable_mp4(example, image_path):
    _, result = example
    info = check_mp4(
        result.output_path, frames=NUM_FRAMES, fps=25.0, width=WIDTH, height=HEIGHT, prompt=PROMPT, seed=42
    )
    meta = info["metadata"]
    assert meta["pipeline"] == "ti2vid_two_stages"
    assert meta["distilled_lora"] == '["ltx-2-smoke-distilled-lora.safetensors:0.6"]'
    assert meta["images"] == f'[["{image_path}", 0, 1.0, 33]]'
    assert tuple(result.frames.shape) == (NUM_FRAMES, HEIGHT, WIDTH, 3) and result.frames.dtype == torch.uint8


def test_same_seed_same_frames_and_nothing_written_without_output_path(example, image_path, tmp_path, monkeypatch):
    pipeline, reference = example
    monkeypatch.chdir(tmp_path)
    again = generate(pipeline, images=[ImageConditioningInput(str(image_path), 0, 1.0, 33)])
    assert again.output_path is None
    assert list(tmp_path.iterdir()) == []
    assert again.frames.dtype == torch.uint8 and tuple(again.frames.shape) == (NUM_FRAMES, HEIGHT, WIDTH, 3)
    assert again.audio is not None and again.audio.waveform.numel() > 0
    assert torch.equal(again.frames, reference.frames)
    assert torch.equal(again.audio.waveform, reference.audio.waveform)


def test_different_seed_different_frames(example, image_path):
    pipeline, reference = example
    other = generate(pipeline, seed=SEED + 1, images=[ImageConditioningInput(str(image_path), 0, 1.0, 33)])
    assert not torch.equal(other.frames, reference.frames)


def test_image_at_frame_0_changes_output(example):
    pipeline, conditioned = example
    unconditioned = generate(pipeline)
    assert tuple(unconditioned.frames.shape) == (NUM_FRAMES, HEIGHT, WIDTH, 3)
    assert not torch.equal(unconditioned.frames, conditioned.frames)


# --------------------------------------------------------------------------- CLI


def base_argv(bundle, output: Path) -> list[str]:
    return [
        "--checkpoint-path", str(bundle.checkpoint), "--gemma-root", str(bundle.gemma_root),
        "--spatial-upsampler-path", str(bundle.spatial_upsampler), "--distilled-lora", str(bundle.distilled_lora),
        "--prompt", PROMPT, "--output-path", str(output), "--height", str(HEIGHT), "--width", str(WIDTH),
        "--num-frames", str(NUM_FRAMES), "--num-inference-steps", str(STEPS), "--seed", str(SEED),
    ]  # fmt: skip


def test_cli_end_to_end(smoke_bundle, image_path, tmp_path, cli_env):
    output = tmp_path / "nested" / "cli.mp4"
    done = run_module(MODULE, *base_argv(smoke_bundle, output), "--frame-rate", "24", "--image", image_path, "0", "0.9")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Loaded transformer" in done.stderr  # the log the refusal tests expect to be absent
    info = check_mp4(output, frames=NUM_FRAMES, fps=24.0, width=WIDTH, height=HEIGHT, prompt=PROMPT, seed=SEED)
    strength = C.DEFAULT_DISTILLED_LORA_STRENGTH
    assert info["metadata"]["distilled_lora"] == f'["ltx-2-smoke-distilled-lora.safetensors:{strength}"]'


def test_cli_help_lists_flags(cli_env):
    done = run_module(MODULE, "--help")
    assert done.returncode == 0, done.stderr
    for flag in (
        "--checkpoint-path", "--gemma-root", "--spatial-upsampler-path", "--distilled-lora", "--prompt",
        "--output-path", "--overwrite", "--seed", "--height", "--width", "--num-frames", "--frame-rate", "--image",
        "--lora", "--num-inference-steps", "--video-stg-blocks", "--audio-stg-blocks",
    ):  # fmt: skip
        assert flag in done.stdout, flag
    assert "multiple of 64" in done.stdout


def test_cli_subprocess_refuses_size_not_multiple_of_64(smoke_bundle, tmp_path, cli_env):
    output = tmp_path / "bad.mp4"
    done = run_module(MODULE, *base_argv(smoke_bundle, output), "--width", "96")
    assert done.returncode == 2
    assert "error: --width must be a positive multiple of 64" in done.stderr and "Use 64 or 128" in done.stderr
    assert "Traceback" not in done.stderr and "Loaded" not in done.stderr
    assert not output.exists()


# --------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def paths(smoke_bundle, image_path, tmp_path_factory) -> dict[str, Path]:
    """The bundle's files plus missing and wrong ones, by name (for `{name}` in CLI arguments)."""
    folder = tmp_path_factory.mktemp("bad_inputs")
    unmatched_lora = write_unmatched_lora(folder / "unmatched-lora.safetensors")
    return {
        "checkpoint": smoke_bundle.checkpoint,
        "spatial_upsampler": smoke_bundle.spatial_upsampler,
        "distilled_lora": smoke_bundle.distilled_lora,
        "image": image_path,
        "unmatched_lora": unmatched_lora,
        "missing": folder / "missing.safetensors",
        "missing_dir": folder / "no-gemma-here",
        "missing_image": folder / "missing.png",
    }


def make_pipeline(bundle, **overrides) -> TI2VidTwoStagesPipeline:
    kwargs = dict(
        checkpoint_path=bundle.checkpoint, distilled_lora=[comfy_lora(bundle.distilled_lora, 0.6)],
        spatial_upsampler_path=bundle.spatial_upsampler, gemma_root=bundle.gemma_root,
    )  # fmt: skip
    return TI2VidTwoStagesPipeline(**{**kwargs, **overrides})


CALL_ERRORS = {
    "frames_not_8k_plus_1": (dict(num_frames=16), "Use 9 or 17"),
    "height_not_multiple_of_64": (dict(height=96), "Use 64 or 128"),
    "width_multiple_of_32_only": (dict(width=160), "multiple of 64 (two-stage pipelines generate at half size"),
    "image_missing": ("missing_image", "does not exist"),
    "image_frame_out_of_range": ("image_frame_9", "outside the video's 0..8"),
    "stg_block_beyond_layers": (
        dict(audio_guider_params=MultiModalGuiderParams(cfg_scale=7.0, stg_scale=1.0, stg_blocks=[29, 31])),
        "STG blocks [31] do not exist",
    ),
}


@pytest.mark.parametrize("name", CALL_ERRORS)
def test_api_bad_request_refused_before_loading(name, smoke_bundle, paths, tmp_path, no_model_builds):
    case, fragment = CALL_ERRORS[name]
    fresh = make_pipeline(smoke_bundle)
    assert_api_refuses_request(generate, fresh, tmp_path, fragment, call_overrides(case, paths))


def test_api_existing_output_untouched(smoke_bundle, tmp_path, no_model_builds):
    fresh = make_pipeline(smoke_bundle)
    assert_api_keeps_existing_output(generate, fresh, tmp_path, not_mp4="out.mov")


INIT_ERRORS = {
    "checkpoint_missing": (dict(checkpoint_path="missing"), "does not exist"),
    "gemma_dir_missing": (dict(gemma_root="missing_dir"), "Gemma directory"),
    "upsampler_missing": (dict(spatial_upsampler_path="missing"), "does not exist"),
    "upsampler_as_checkpoint": (dict(checkpoint_path="spatial_upsampler"), "looks like a spatial upsampler"),
    "lora_as_checkpoint": (dict(checkpoint_path="distilled_lora"), "looks like a LoRA"),
    "checkpoint_as_upsampler": (dict(spatial_upsampler_path="checkpoint"), "not an upsampler"),
    "distilled_lora_missing": (dict(distilled_lora="missing"), "does not exist"),
    "distilled_lora_matching_nothing": (dict(distilled_lora="unmatched_lora"), "matches no module"),
    "lora_matching_nothing": (dict(loras="unmatched_lora"), "matches no module"),
}


@pytest.mark.parametrize("name", INIT_ERRORS)
def test_api_bad_files_refused_before_loading(name, smoke_bundle, paths, no_model_builds):
    overrides, fragment = INIT_ERRORS[name]
    kwargs = {
        key: [comfy_lora(paths[value], 1.0)] if key in ("loras", "distilled_lora") else paths[value]
        for key, value in overrides.items()
    }
    with pytest.raises(InputError, match=re.escape(fragment)):
        make_pipeline(smoke_bundle, **kwargs)


CLI_ERRORS = {
    "frames_not_8k_plus_1": (["--num-frames", "20"], "Use 17 or 25"),
    "size_not_multiple_of_64": (["--height", "192", "--width", "224"], "Use 192 or 256"),
    "checkpoint_missing": (["--checkpoint-path", "{missing}"], "does not exist"),
    "gemma_dir_missing": (["--gemma-root", "{missing_dir}"], "Gemma directory"),
    "upsampler_missing": (["--spatial-upsampler-path", "{missing}"], "does not exist"),
    "upsampler_as_checkpoint": (["--checkpoint-path", "{spatial_upsampler}"], "--spatial-upsampler-path"),
    "checkpoint_as_upsampler": (["--spatial-upsampler-path", "{checkpoint}"], "not an upsampler"),
    "distilled_lora_matching_nothing": (["--distilled-lora", "{unmatched_lora}"], "matches no module"),
    "lora_missing": (["--lora", "{missing}", "0.3"], "does not exist"),
    "lora_matching_nothing": (["--lora", "{unmatched_lora}"], "matches no module"),
    "image_missing": (["--image", "{missing_image}", "0", "1.0"], "does not exist"),
    "image_frame_out_of_range": (["--image", "{image}", "12", "1.0"], "outside the video"),
    "output_not_mp4": (["--output-path", "{out_gif}"], "must end in .mp4"),
    "stg_block_beyond_layers": (["--audio-stg-blocks", "28", "40"], "do not exist"),
}


@pytest.mark.parametrize("name", CLI_ERRORS)
def test_cli_bad_input_exit_2_before_loading(name, smoke_bundle, paths, tmp_path, capsys, no_model_builds):
    extra, fragment = CLI_ERRORS[name]
    extra = [arg.format(**paths, out_gif=tmp_path / "out.gif") for arg in extra]
    argv = [*base_argv(smoke_bundle, tmp_path / "out.mp4"), *extra]
    assert_cli_refuses(main, argv, fragment, tmp_path, capsys)


def test_cli_existing_output_untouched(smoke_bundle, tmp_path, capsys, no_model_builds):
    output = tmp_path / "taken.mp4"
    assert_cli_keeps_existing_output(main, base_argv(smoke_bundle, output), output, capsys)
