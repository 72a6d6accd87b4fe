"""Tests for ltx_pipelines.utils.validation: the generation-setting checks run before any model loads."""

from __future__ import annotations

import pytest

from ltx_pipelines.utils.errors import InputError
from ltx_pipelines.utils.validation import (
    check_generation,
    check_num_frames,
    check_positive,
    check_prompt,
    check_size,
    nearest_multiples,
    nearest_valid_frames,
)


@pytest.mark.parametrize("frames", [1, 9, 17, 97, 121, 257])
def test_valid_frame_counts_pass(frames):
    check_num_frames(frames)


@pytest.mark.parametrize(
    ("frames", "lower", "upper"),
    [(2, 1, 9), (8, 1, 9), (10, 9, 17), (16, 9, 17), (100, 97, 105), (120, 113, 121), (122, 121, 129)],
)
def test_invalid_frame_counts_propose_nearest_valid(frames, lower, upper):
    assert nearest_valid_frames(frames) == (lower, upper)
    with pytest.raises(InputError, match=rf"got {frames}\. Use {lower} or {upper}\.") as raised:
        check_num_frames(frames)
    assert "8k+1" in str(raised.value)
    for proposal in (lower, upper):
        check_num_frames(proposal)  # the proposals are themselves valid


@pytest.mark.parametrize("frames", [0, -1, -16])
def test_non_positive_frame_counts_refused(frames):
    with pytest.raises(InputError, match=r"Use 1 or 9\."):
        check_num_frames(frames)


@pytest.mark.parametrize(("value", "multiple"), [(32, 32), (64, 32), (512, 32), (64, 64), (1024, 64), (1536, 64)])
def test_sizes_on_the_grid_pass(value, multiple):
    check_size(value, value, multiple)


@pytest.mark.parametrize(
    ("value", "multiple", "lower", "upper"),
    [
        (80, 32, 64, 96), (500, 32, 480, 512), (96, 64, 64, 128), (1000, 64, 960, 1024), (10, 32, 32, 64),
        (0, 64, 64, 128),
    ],  # fmt: skip
)
def test_off_grid_sizes_propose_nearest_multiples(value, multiple, lower, upper):
    assert nearest_multiples(value, multiple) == (lower, upper)
    expected = rf"--width must be a positive multiple of {multiple}.*Use {lower} or {upper}\."
    with pytest.raises(InputError, match=expected):
        check_size(multiple, value, multiple)


def test_size_error_names_the_dimension_and_explains_64():
    with pytest.raises(InputError, match=r"^--height must be a positive multiple of 64 \(two-stage") as raised:
        check_size(96, 128, 64)
    assert "got 96" in str(raised.value)
    check_size(96, 128, 32)  # fine for one-stage pipelines
    with pytest.raises(InputError) as raised:
        check_size(80, 128, 32)
    assert "two-stage" not in str(raised.value)


def test_one_stage_sizes_pass_and_negative_refused():
    check_size(96, 160, 32)
    with pytest.raises(InputError, match="--height must be a positive multiple of 32"):
        check_size(-32, 64, 32)


@pytest.mark.parametrize("value", [0, -1.0, float("nan")])
def test_check_positive_refuses(value):
    with pytest.raises(InputError, match="--frame-rate must be greater than 0"):
        check_positive("--frame-rate", value)


def test_check_generation_checks_every_setting():
    check_generation(128, 192, 9, 24.0, 64)
    with pytest.raises(InputError, match="--width"):
        check_generation(128, 160, 9, 24.0, 64)
    with pytest.raises(InputError, match="--num-frames"):
        check_generation(128, 192, 10, 24.0, 64)
    with pytest.raises(InputError, match="--frame-rate"):
        check_generation(128, 192, 9, 0.0, 64)


def test_input_error_is_a_value_error():
    assert issubclass(InputError, ValueError)


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t"])
def test_blank_prompt_is_refused_without_other_conditioning(prompt):
    with pytest.raises(InputError, match="--prompt is empty.*--image.*reference video.*soundtrack.*source clip"):
        check_prompt(prompt)


def test_blank_prompt_is_accepted_with_other_conditioning_and_text_always():
    check_prompt("", conditioned_by="the images")
    check_prompt("a red fox")
    with pytest.raises(InputError, match="--prompt must be text; got NoneType"):
        check_prompt(None, conditioned_by="the images")
