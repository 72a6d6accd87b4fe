"""Checks of generation settings, run before any model is built."""

from __future__ import annotations

from ltx_pipelines.utils.errors import InputError


def nearest_valid_frames(num_frames: int) -> tuple[int, int]:
    lower = max(1, (num_frames - 1) // 8 * 8 + 1)
    return lower, lower + 8


def check_num_frames(num_frames: int) -> None:
    if num_frames < 1 or (num_frames - 1) % 8 != 0:
        lower, upper = nearest_valid_frames(max(num_frames, 1))
        raise InputError(
            f"--num-frames must be 8k+1 (1, 9, 17, ..., 97, 121, ...); got {num_frames}. "
            f"Use {lower} or {upper}."
        )


def nearest_multiples(value: int, multiple: int) -> tuple[int, int]:
    lower = max(multiple, value // multiple * multiple)
    return lower, lower + multiple


def check_size(height: int, width: int, multiple: int) -> None:
    """Sizes must be multiples of 32 (64 for two-stage pipelines, which run stage 1 at half size)."""
    for name, value in (("height", height), ("width", width)):
        if value < multiple or value % multiple != 0:
            lower, upper = nearest_multiples(value, multiple)
            why = " (two-stage pipelines generate at half size first)" if multiple == 64 else ""
            raise InputError(
                f"--{name} must be a positive multiple of {multiple}{why}; got {value}. Use {lower} or {upper}."
            )


def check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise InputError(f"{name} must be greater than 0; got {value}.")


def check_generation(height: int, width: int, num_frames: int, frame_rate: float, size_multiple: int) -> None:
    check_size(height, width, size_multiple)
    check_num_frames(num_frames)
    check_positive("--frame-rate", frame_rate)


def check_prompt(prompt: object, conditioned_by: str | None = None) -> None:
    """Refuse a missing or blank prompt, unless another input drives the video (``conditioned_by`` names it).

    Text-to-video from nothing is not a request; with conditioning images, a reference video (IC-LoRA),
    a soundtrack (audio-to-video) or a source clip (retake), an empty prompt is meaningful.
    """
    if not isinstance(prompt, str):
        raise InputError(f"--prompt must be text; got {type(prompt).__name__}.")
    if prompt.strip() or conditioned_by:
        return
    raise InputError(
        "--prompt is empty: describe what the video should show (and sound like). An empty prompt is accepted "
        "only with another input that drives the video: --image (any text/image-to-video pipeline), a reference "
        "video (ic_lora), a soundtrack (a2vid_two_stage) or a source clip (retake)."
    )
